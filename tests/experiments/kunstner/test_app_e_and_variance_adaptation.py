"""kunstner-app-e and kunstner-variance-adaptation in quick mode."""

import json

import pytest
import torch

from fisherlab.experiments.kunstner import app_e, variance_adaptation
from fisherlab.experiments.kunstner.variance_adaptation import expected_error
from fisherlab.experiments.runner import run_experiment


def _run(name, tmp_path):
    run_dir = run_experiment(name, tmp_path, quick=True, show_progress=False)
    return run_dir, json.loads((run_dir / "results.json").read_text())


def test_app_e_selects_on_the_grid_and_records_the_table_d5_cells(tmp_path):
    run_dir, results = _run("kunstner-app-e", tmp_path)
    assert (run_dir / "app_e_starting_points.png").stat().st_size > 0
    assert len(list((run_dir / "cells" / "grid-boston").iterdir())) == 1 + 2 * 13
    efgd = results["selected"]["EFGD"]
    # Table D.5's EFGD step size 10^-1.25 barely moves; the same value with a + sign
    # ties with the grid minimum
    published = efgd["cells"]["Table D.5"][2]
    flipped = efgd["cells"]["Table D.5, step size sign flipped"][2]
    assert published > 10 * flipped
    assert flipped <= efgd["grid_final_loss"] * (1 + 1e-6)
    # every curve starts at f θ*: the loss there is the loss of the start, for both methods
    for i in range(len(results["factors"])):
        assert results["curves"]["NGD"][i][0] == results["curves"]["EFGD"][i][0]
    assert results["curves"]["NGD"][-1][0] > results["curves"]["NGD"][0][0]  # f = 0 is far
    claims = app_e.claims(results)
    assert len(claims) == 2 and all(c.premise_holds for c in claims)


def test_variance_adaptation_claims_and_files(tmp_path):
    run_dir, results = _run("kunstner-variance-adaptation", tmp_path)
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


@pytest.mark.slow
def test_app_e_restricted_grid_selects_the_full_grid_cell(tmp_path):
    full = json.loads(
        (
            run_experiment(
                "kunstner-fig3",
                tmp_path / "fig3",
                quick=False,
                overrides={"datasets": ("boston",)},
                show_progress=False,
            )
            / "results.json"
        ).read_text()
    )
    _, restricted = _run("kunstner-app-e", tmp_path / "app-e")
    for method in ("NGD", "EFGD"):
        ours, reference = restricted["selected"][method], full["selected"]["boston"][method]
        cell = (ours["log10_lr"], ours["log10_damping"])
        assert cell == (reference["log10_lr"], reference["log10_damping"])
        assert ours["grid_final_loss"] == reference["final_loss"]
