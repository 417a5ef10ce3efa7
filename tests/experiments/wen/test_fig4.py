"""wen-fig4 in (shrunk) quick mode: files, numbers, claims from results."""

from __future__ import annotations

import copy

import pytest

from fisherlab.experiments.wen import fig4

from ..runs import quick_run


def test_fig4_quadratic(tmp_path):
    _, status, results, stored = quick_run("wen-fig4", tmp_path, num_chains=20)
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
