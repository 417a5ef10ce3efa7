"""The balles-* experiments in (further shrunk) quick mode: files, numbers, claims."""

import json
import math

import pytest
import torch

from fisherlab.experiments.balles import (
    cabs,
    fig4_1,
    fig5_2,
    fig5_4,
    fig6_3,
)
from fisherlab.experiments.runner import run_experiment


def _run(name, tmp_path, overrides):
    run_dir = run_experiment(name, tmp_path, quick=True, overrides=overrides, show_progress=False)
    results = json.loads((run_dir / "results.json").read_text())
    return run_dir, results


def _pngs(run_dir, names):
    for name in names:
        assert (run_dir / name).stat().st_size > 1000


def test_fig4_1(tmp_path):
    run_dir, res = _run("balles-fig4-1", tmp_path, {"trials": 300, "etas": [0.25, 1.0, 4.0]})
    _pngs(run_dir, ["fig4_1_eta_histograms.png"])
    cell = res["cells"]["m=10,eta=0.25"]
    assert len(cell["estimates"]) == 300
    assert cell["exact_percentiles"]["5"] < 0.25**2 < cell["exact_percentiles"]["95"]
    assert cell["percentiles"]["5"] < 0.25**2 < cell["percentiles"]["95"]
    claims = fig4_1.claims(res)
    assert [c.premise_holds for c in claims] == [True] * 3
    assert [c.holds for c in claims] == [True] * 3


def test_estimate_eta_squared_is_unbiased_for_sigma():
    g = torch.Generator().manual_seed(1)
    est = fig4_1.estimate_eta_squared(1000, 0.1, 200, g)
    assert est.median().item() == pytest.approx(0.01, rel=0.05)


def test_fig5_2(tmp_path):
    run_dir, res = _run("balles-fig5-2", tmp_path, {"mc_samples": 20000, "num_mc_etas": 5})
    _pngs(run_dir, ["fig5_2_variance_adaptation_factors.png"])
    eta = torch.tensor(res["eta"])
    assert torch.allclose(torch.tensor(res["curves"]["sgd"]), 1 / (1 + eta**2))
    claims = fig5_2.claims(res)
    assert [c.premise_holds for c in claims] == [True] * 3
    assert [c.holds for c in claims] == [True] * 3


def test_fig6_3(tmp_path):
    overrides = {"num_lambda": 4, "num_phi": 6, "rotations": 3, "starts": 3, "num_omega": 31}
    run_dir, res = _run("balles-fig6-3", tmp_path, overrides)
    _pngs(run_dir, ["fig6_1_linf_axis_alignment.png", "fig6_3_gd_vs_sign_gd.png"])
    # φ = 0: H = Λ is diagonal, so L∞ = trace(Λ) = d − 1 + λ_max
    d = res["dim"]
    for lam, row in zip(res["lambda_max"], res["linf_over_l2"], strict=True):
        assert row[0] * lam == pytest.approx(d - 1 + lam, rel=1e-9)
    assert len(res["per_rotation"]["log10_gd_over_sign"]) == 3
    claims = fig6_3.claims(res)
    assert [c.premise_holds for c in claims] == [True] * 4
    assert claims[0].holds and claims[3].holds


def test_fractional_rotation_endpoints():
    from scipy.stats import special_ortho_group

    R = torch.from_numpy(special_ortho_group.rvs(5, random_state=3))
    assert torch.allclose(fig6_3.fractional_rotation(R, 0.0), torch.eye(5, dtype=R.dtype))
    assert torch.allclose(fig6_3.fractional_rotation(R, 1.0), R, atol=1e-10)
    half = fig6_3.fractional_rotation(R, 0.5)
    assert torch.allclose(half @ half, R, atol=1e-10)


def test_fig5_4(tmp_path):
    overrides = {
        "problems": ["digits-mlp"],
        "lrs_non_sign": [0.3],
        "lrs_sign": [0.003],
        "steps": 60,
        "eval_every": 20,
    }
    run_dir, res = _run("balles-fig5-4", tmp_path, overrides)
    _pngs(run_dir, ["fig5_4_sign_and_variance_adaptation.png"])
    digits = res["problems"]["digits-mlp"]
    assert set(digits) == {"M-SGD", "M-SSD", "M-SVAG", "ADAM"}
    for s in digits.values():
        assert s["step"] == [0, 20, 40, 60]
        assert s["train_loss_mean"][-1] < s["train_loss_mean"][0]
        assert len(s["final_train_loss"]) == 2  # the quick preset's 2 seeds
        assert not s["lr_interior"]  # a one-point grid has no interior
    assert 0.0 < digits["M-SVAG"]["shrinkage"][0] <= 1.0
    claims = fig5_4.claims(res)
    assert len(claims) == 4
    assert all(c.holds is None and not c.premise_holds for c in claims)


def test_fig5_4_zero_step_size_leaves_the_model_unchanged():
    rec = fig5_4.train("digits-mlp", "M-SGD", 0.0, 0, 5, 16, 5, 0.9)
    assert rec["train_loss"][0] == pytest.approx(rec["train_loss"][-1])  # lr 0: no change
    assert math.isfinite(rec["train_loss"][-1])


def test_cabs(tmp_path):
    overrides = {"epochs": 0.5, "lrs": [0.3, 0.1], "num_evals": 5}
    run_dir, res = _run("balles-cabs", tmp_path, overrides)
    _pngs(run_dir, ["fig4_2_cabs_vs_constant.png", "fig4_3_lr_sensitivity.png"])
    assert set(res["selected"]) == {"CABS", "constant 64", "competitor"}
    cabs_run = res["runs"]["CABS"]["0.3"]
    assert cabs_run["examples"][-1] == int(0.5 * 1438)
    assert all(2 <= b <= 1024 for b in cabs_run["batch"])
    assert 0.0 <= cabs_run["clipped_min_fraction"] <= 1.0
    assert len(res["selected"]["CABS"]["final_train_loss"]) == 2
    assert res["sensitivity_lrs"] == [0.1]
    claims = cabs.claims(res)
    assert len(claims) == 4
    assert claims[0].premise_holds is False  # a two-point grid has no interior


def test_cabs_stops_a_failed_run():
    cfg = cabs.CABSConfig(epochs=3.0, num_evals=10, constant_batch_sizes=[16])
    rec = cabs.train(cfg, "constant", 50.0, batch_size=16)
    assert rec["stopped"]
    assert len(rec["train_loss"]) == 11 and rec["train_loss"][-1] == rec["train_loss"][-2]
