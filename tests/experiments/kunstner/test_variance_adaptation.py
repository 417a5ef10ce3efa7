"""kunstner-variance-adaptation in quick mode; the expected error of Eq. 18."""

import pytest
import torch

from fisherlab.experiments.kunstner import variance_adaptation
from fisherlab.experiments.kunstner.variance_adaptation import expected_error

from ..runs import quick_run


def test_variance_adaptation_claims_and_files(tmp_path):
    run_dir, _, results, _ = quick_run("kunstner-variance-adaptation", tmp_path)
    for name in ("expected_error.png", "ef_step_scaling.png"):
        assert (run_dir / name).stat().st_size > 0
    claims = variance_adaptation.claims(results)
    assert len(claims) == 2 * 3 + 2
    for claim in claims[-2:]:  # slopes -1 and +1 on the far decade
        assert claim.holds
    for ray in results["ray"].values():
        assert ray["slope_ef"] == pytest.approx(-1.0, abs=0.05)
    for errors in results["errors"].values():
        for cell in errors["ratios"].values():
            if cell["usable"]:  # D and M* minimise over sets that contain I
                assert cell["max_ratio_to_plain"]["diagonal"] <= 1 + 1e-9
                assert cell["max_ratio_to_plain"]["optimal matrix"] <= 1 + 1e-9


def test_expected_error_formula_against_monte_carlo():
    g = torch.Generator().manual_seed(0)
    D = 3
    A = torch.randn(D, D, generator=g, dtype=torch.float64)
    covariance = A @ A.T
    mean = torch.randn(D, generator=g, dtype=torch.float64)
    M = torch.randn(D, D, generator=g, dtype=torch.float64)
    samples = mean + torch.randn(200_000, D, generator=g, dtype=torch.float64) @ A.T
    monte_carlo = ((samples @ M.T - mean) ** 2).sum(1)
    exact = expected_error(M, mean, covariance)
    standard_error = monte_carlo.std() / monte_carlo.numel() ** 0.5
    assert abs(monte_carlo.mean() - exact) < 4 * standard_error
