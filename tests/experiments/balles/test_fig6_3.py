"""balles-fig6-3 in (further shrunk) quick mode: files, numbers, claims."""

import pytest
import torch

from fisherlab.experiments.balles import fig6_3

from ..runs import assert_figures, quick_run


def test_fig6_3(tmp_path):
    overrides = {"num_lambda": 4, "num_phi": 6, "rotations": 3, "starts": 3, "num_omega": 31}
    run_dir, _, res, _ = quick_run("balles-fig6-3", tmp_path, **overrides)
    assert_figures(run_dir, ["fig6_1_linf_axis_alignment.png", "fig6_3_gd_vs_sign_gd.png"])
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
