"""wen-fig2-3 in (shrunk) quick mode: files, numbers, claims from results."""

from __future__ import annotations

import json

from fisherlab.experiments.runner import run_experiment
from fisherlab.experiments.wen import fig2_3

from ..runs import quick_run

FIG23_SMALL = {
    "train_samples": 300,
    "channels": 3,
    "small_batch_size": 16,
    "large_batch_size": 100,
    "updates": 12,
    "eval_every": 4,
    "variance_draws": 6,
    "frobenius_points": 3,
    "frobenius_samples": 16,
}


def test_fig2_3_regimes(tmp_path):
    run_dir, status, results, stored = quick_run("wen-fig2-3", tmp_path, **FIG23_SMALL)
    assert status["figures"] == [
        "fig2_gradient_variance.png",
        "fig3_training_curves.png",
        "fig5a_frobenius.png",
    ]
    curves = results["curves"]
    assert set(curves) == set(fig2_3.REGIMES)
    for c in curves.values():
        assert c["update"] == [0, 4, 8, 12]
        assert all(0.0 <= e <= 1.0 for e in c["error"])
    variance = results["variance"]["variance"]
    assert all(len(v) == 8 for v in variance.values())  # 4 layers × (weight, bias)
    assert results["mean_variance"]["LB"] < results["mean_variance"]["SB"]
    fro = results["frobenius"]
    assert fro["update"] == [0, 6, 12]
    # ‖F‖_F ≥ ‖diag F‖_F always
    assert all(f >= d for f, d in zip(fro["full"], fro["diag"], strict=True))
    claims = fig2_3.claims(results)
    assert [c.to_dict() | {"scale": ""} for c in claims] == [d | {"scale": ""} for d in stored]
    # resuming reuses the stored cells (same config) and gives the same results
    again = run_experiment(
        "wen-fig2-3", tmp_path, quick=True, overrides=FIG23_SMALL, show_progress=False
    )
    assert json.loads((again / "results.json").read_text()) == results
