"""kunstner-app-e in quick mode."""

import json

import pytest

from fisherlab.experiments.kunstner import app_e
from fisherlab.experiments.runner import run_experiment

from ..runs import quick_run


def test_app_e_selects_on_the_grid_and_records_the_table_d5_cells(tmp_path):
    run_dir, _, results, _ = quick_run("kunstner-app-e", tmp_path)
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
    _, _, restricted, _ = quick_run("kunstner-app-e", tmp_path / "app-e")
    for method in ("NGD", "EFGD"):
        ours, reference = restricted["selected"][method], full["selected"]["boston"][method]
        cell = (ours["log10_lr"], ours["log10_damping"])
        assert cell == (reference["log10_lr"], reference["log10_damping"])
        assert ours["grid_final_loss"] == reference["final_loss"]
