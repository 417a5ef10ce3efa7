"""Wen et al. 2020 experiments in (shrunk) quick mode: files, numbers, claims from results."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from fisherlab.experiments import wen_fig1, wen_fig2_3, wen_fig4, wen_tables
from fisherlab.experiments.runner import run_experiment


def _run(name, tmp_path, **overrides):
    run_dir = run_experiment(name, tmp_path, quick=True, overrides=overrides, show_progress=False)
    status = json.loads((run_dir / "run.json").read_text())
    assert status["status"] == "ok"
    for figure in status["figures"]:
        assert (run_dir / figure).stat().st_size > 0
    results = json.loads((run_dir / "results.json").read_text())
    stored = json.loads((run_dir / "claims.json").read_text())
    return run_dir, status, results, stored


def test_fig1_noise_structure(tmp_path):
    _, status, results, stored = _run("wen-fig1", tmp_path, num_draws=1500)
    assert status["figures"] == ["fig1_one_step_noise.png"]
    stats = results["stats"]
    assert set(stats) == set(wen_fig1.KINDS)
    assert len(results["scatter"]["SGD"]) == 1500
    # the isotropic noise has covariance (lr σ)² I
    iso = torch.tensor(stats["isotropic"]["covariance"])
    expected = (0.1 * 0.1) ** 2
    assert iso.diagonal().tolist() == pytest.approx([expected, expected], rel=0.15)
    claims = wen_fig1.claims(results)
    assert [c.to_dict() for c in claims] == stored
    assert [c.holds for c in claims] == [True, True, True]
    # verdicts follow the numbers
    broken = copy.deepcopy(results)
    broken["stats"]["full Fisher"]["relative_distance_to_sgd"] = 0.6
    broken["stats"]["diagonal Fisher"]["correlation"] = stats["SGD"]["correlation"]
    assert [c.holds for c in wen_fig1.claims(broken)][:2] == [False, False]


def test_fig4_quadratic(tmp_path):
    _, status, results, stored = _run("wen-fig4", tmp_path, num_chains=20)
    assert status["figures"] == ["fig4_trajectories.png", "fig4_loss.png"]
    assert results["hessian_equals_fisher"]
    th = results["theory"]
    # Tr(CᵀAC) = ‖A‖²_F for C = √A and ‖diag A‖²_F for C = √diag(A); same second moment
    s, r = 8.0, 0.95
    assert th["full"]["trace_CtAC"] == pytest.approx(2 * s**2 * (1 + r**2))
    assert th["full"]["trace_CtAC"] == pytest.approx(th["full"]["frobenius_norm_sq"])
    assert th["diag"]["trace_CtAC"] == pytest.approx(2 * s**2)
    assert th["full"]["second_moment"] == pytest.approx(th["diag"]["second_moment"])
    for noise in ("full", "diag"):
        assert len(results["constant"][noise]["mean_loss"]) == 501
        assert len(results["trajectories"][noise]) == 51  # every 10th of 501 iterates
    claims = wen_fig4.claims(results)
    assert [c.to_dict() for c in claims] == stored
    assert claims[0].holds and claims[2].holds
    swapped = copy.deepcopy(results)
    swapped["constant"]["full"], swapped["constant"]["diag"] = (
        results["constant"]["diag"],
        results["constant"]["full"],
    )
    swapped["decaying"]["full"]["final_mean"] = 1e3
    verdicts = [c.holds for c in wen_fig4.claims(swapped)]
    assert verdicts[:3] == [False, False, False]


FIG23_SMALL = {
    "num_samples": 1000,
    "hidden": 8,
    "small_batch_size": 16,
    "large_batch_size": 200,
    "updates": 12,
    "eval_every": 4,
    "variance_draws": 6,
    "frobenius_points": 3,
    "frobenius_samples": 64,
}


def test_fig2_3_regimes(tmp_path):
    run_dir, status, results, stored = _run("wen-fig2-3", tmp_path, **FIG23_SMALL)
    assert status["figures"] == [
        "fig2_gradient_variance.png",
        "fig3_training_curves.png",
        "fig5a_frobenius.png",
    ]
    curves = results["curves"]
    assert set(curves) == set(wen_fig2_3.REGIMES)
    for c in curves.values():
        assert c["update"] == [0, 4, 8, 12]
        assert all(0.0 <= e <= 1.0 for e in c["error"])
    variance = results["variance"]["variance"]
    assert all(len(v) == 6 for v in variance.values())  # 3 layers × (weight, bias)
    assert results["mean_variance"]["LB"] < results["mean_variance"]["SB"]
    fro = results["frobenius"]
    assert fro["update"] == [0, 6, 12]
    # ‖F‖_F ≥ ‖diag F‖_F always
    assert all(f >= d for f, d in zip(fro["full"], fro["diag"], strict=True))
    claims = wen_fig2_3.claims(results)
    assert [c.to_dict() for c in claims] == stored
    # verdicts follow the numbers
    good = copy.deepcopy(results)
    good["curves"]["SB"]["tail_loss"] = 1.0
    good["curves"]["LB"]["tail_loss"] = 0.5
    good["curves"]["LB+full F"]["tail_loss"] = 1.05
    good["curves"]["LB+diag F"]["tail_loss"] = 0.6
    bad = copy.deepcopy(good)
    bad["curves"]["LB+diag F"]["tail_loss"] = 1.2
    bad["curves"]["LB+full F"]["tail_loss"] = 0.5
    assert [c.holds for c in wen_fig2_3.claims(good)][1:3] == [True, True]
    assert [c.holds for c in wen_fig2_3.claims(bad)][1:3] == [False, False]
    # resuming reuses the stored cells (same config) and gives the same results
    again = run_experiment(
        "wen-fig2-3", tmp_path, quick=True, overrides=FIG23_SMALL, show_progress=False
    )
    assert json.loads((again / "results.json").read_text()) == results


def test_tables_methods(tmp_path):
    _, status, results, stored = _run(
        "wen-tables",
        tmp_path,
        num_samples=1000,
        hidden=8,
        small_batch_size=16,
        large_batch_size=200,
        epochs=4,
    )
    assert status["figures"] == ["tables_val_accuracy.png"]
    methods = results["methods"]
    assert list(methods) == list(wen_tables.METHODS)
    for m in methods.values():
        assert len(m["val_accuracy"]) == 1 and 0.0 <= m["mean"] <= 100.0
    assert methods["SB"]["updates"] == 4 * (800 // 16)
    assert methods["LB"]["updates"] == 4 * (800 // 200)
    assert methods["BatchChange"]["updates"] == 800 // 16 + 3 * (800 // 200)
    claims = wen_tables.claims(results)
    assert [c.to_dict() for c in claims] == stored
    # a clear gap that diag noise closes → holds; no gap → not decidable
    r = copy.deepcopy(results)
    for name, acc in [("SB", 80.0), ("LB", 70.0), ("LB+diag F", 79.0), ("BatchChange", 79.5)]:
        r["methods"][name]["mean"] = acc
    for name in ("Multiplicative", "K-FAC", "Fisher trace"):
        r["methods"][name]["mean"] = 75.0
    for m in r["methods"].values():
        m["train_accuracy_mean"] = 99.0
    assert [c.holds for c in wen_tables.claims(r)] == [True, True, True, True]
    # the same accuracies with an under-trained LB: an optimization gap, not decidable
    r["methods"]["LB"]["train_accuracy_mean"] = 60.0
    assert [c.holds for c in wen_tables.claims(r)] == [True, None, True, True]
    r["methods"]["LB"]["mean"] = 80.0
    r["methods"]["K-FAC"]["mean"] = 85.0
    assert [c.holds for c in wen_tables.claims(r)] == [False, None, True, False]
