"""Wen et al. 2020 experiments in (shrunk) quick mode: files, numbers, claims from results."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from fisherlab.experiments.runner import run_experiment
from fisherlab.experiments.wen import fig1, fig2_3, fig4, tables


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
    assert set(stats) == set(fig1.KINDS)
    assert len(results["scatter"]["SGD"]) == 1500
    # the isotropic noise has covariance (lr σ)² I
    iso = torch.tensor(stats["isotropic"]["covariance"])
    expected = (0.1 * 0.1) ** 2
    assert iso.diagonal().tolist() == pytest.approx([expected, expected], rel=0.15)
    assert results["num_draws"] == 1500
    claims = fig1.claims(results)
    assert [c.to_dict() | {"scale": ""} for c in claims] == [d | {"scale": ""} for d in stored]
    assert [c.holds for c in claims] == [True, True, True]
    # verdicts follow the numbers
    broken = copy.deepcopy(results)
    broken["stats"]["full Fisher"]["relative_distance_to_sgd"] = 0.6
    assert [c.holds for c in fig1.claims(broken)][:2] == [False, False]


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
    claims = fig4.claims(results)
    assert [c.to_dict() | {"scale": ""} for c in claims] == [d | {"scale": ""} for d in stored]
    # the exact recursion: E[L_0] = L(θ0), and the measured means agree with it
    for noise in ("full", "diag"):
        assert th[noise]["exact_decaying"][0] == pytest.approx(results["loss0"])
        assert th[noise]["stationary_loss_closed_form"] == pytest.approx(
            th[noise]["stationary_loss"], rel=1e-10
        )
    # κ: the diagonal noise puts more variance into the low-curvature direction
    assert th["diag"]["kappa"] > th["full"]["kappa"]
    assert claims[0].holds and claims[2].holds
    swapped = copy.deepcopy(results)
    swapped["constant"]["full"], swapped["constant"]["diag"] = (
        results["constant"]["diag"],
        results["constant"]["full"],
    )
    assert [c.holds for c in fig4.claims(swapped)][:2] == [False, False]


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
    run_dir, status, results, stored = _run("wen-fig2-3", tmp_path, **FIG23_SMALL)
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


def test_tables_methods(tmp_path):
    _, status, results, stored = _run(
        "wen-tables",
        tmp_path,
        train_samples=400,
        channels=3,
        small_batch_size=16,
        large_batch_size=200,
        epochs=4,
        sharpness_samples=16,
    )
    assert status["figures"] == ["tables_val_accuracy.png", "fig5b_hessian_lambda_max.png"]
    methods = results["methods"]
    assert list(methods) == list(tables.METHODS)
    for m in methods.values():
        assert len(m["val_accuracy"]) == 2 and len(m["train_accuracy"]) == 2
        assert all(0.0 <= a <= 100.0 for a in m["val_accuracy"] + m["train_accuracy"])
    assert methods["SB"]["updates"] == 4 * (400 // 16)
    assert methods["LB"]["updates"] == 4 * (400 // 200)
    assert methods["BatchChange"]["updates"] == 400 // 16 + 3 * (400 // 200)
    tuning = results["tuning"]
    assert methods["SB"]["lr"] == tuning["SB"]["selected"] in tuning["SB"]["grid"]
    assert methods["LB+diag F"]["lr"] == methods["LB"]["lr"] == tuning["LB"]["selected"]
    assert methods["BatchChange"]["lr"] == methods["SB"]["lr"]
    for name in tables.SHARPNESS:
        assert all(v > 0 for v in methods[name]["lambda_max"])
    claims = tables.claims(results)
    assert [c.to_dict() | {"scale": ""} for c in claims] == [d | {"scale": ""} for d in stored]
    assert all(not (c.holds and not c.premise_holds) for c in claims)


def test_warmup_schedule():
    """The step size grows linearly over the warm-up: one update of a linear model."""
    from fisherlab.experiments.wen.common import Data, Regime, train

    X = torch.randn(8, 1, 3)
    data = Data(X, torch.zeros(8, dtype=torch.int64), X, torch.zeros(8, dtype=torch.int64))
    seen = []

    class Probe(torch.optim.SGD):
        def step(self, closure=None):
            seen.append(self.param_groups[0]["lr"])
            return super().step(closure)

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3, 2))
    original = torch.optim.SGD
    torch.optim.SGD = Probe
    try:
        train(
            model, data, Regime("LB", 4, None, 0.8, warmup_fraction=0.5),
            small_batch_size=2, large_batch_size=4, fisher="empirical", seed=0, updates=8,
        )  # fmt: skip
    finally:
        torch.optim.SGD = original
    assert seen == pytest.approx([0.2, 0.4, 0.6, 0.8, 0.8, 0.8, 0.8, 0.8])


def test_sharpness_against_dense_hessian():
    """λ_max by Lanczos equals the top eigenvalue of the dense tempered Hessian (float64)."""
    from fisherlab import Curvature
    from fisherlab.experiments.wen.common import Data, _Tempered, fit_temperature, sharpness
    from fisherlab.likelihoods import Categorical

    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.Conv1d(1, 2, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(10, 3),
    )  # fmt: skip
    X, y = torch.randn(20, 1, 5), torch.randint(0, 3, (20,))
    Xt, yt = torch.randn(30, 1, 5), torch.randint(0, 3, (30,))
    data = Data(X, y, Xt, yt)
    out = sharpness(model, data, samples=12, tol=1e-10)
    net = model.double()
    T = fit_temperature(net, Xt.double(), yt)
    assert out["temperature"] == pytest.approx(T)
    H = Curvature(_Tempered(net, T), Categorical(), X[:12].double(), y[:12]).hessian(form="dense")
    assert out["lambda_max"] == pytest.approx(float(torch.linalg.eigvalsh(H)[-1]), rel=1e-8)


def test_fit_temperature_minimises_the_loss():
    from fisherlab.experiments.wen.common import fit_temperature

    torch.manual_seed(0)
    logits = 5.0 * torch.randn(200, 4, dtype=torch.float64)
    y = torch.where(torch.rand(200) < 0.6, logits.argmax(1), torch.randint(0, 4, (200,)))
    model = torch.nn.Identity()
    T = fit_temperature(model, logits, y)
    grid = torch.logspace(-2, 2, 4001, dtype=torch.float64)
    losses = [float(torch.nn.functional.cross_entropy(logits / t, y)) for t in grid]
    best = float(grid[min(range(len(losses)), key=losses.__getitem__)])
    assert T == pytest.approx(best, rel=5e-3)
