"""kunstner-fig3: Table D.5 selections, result format, plots, resumable grid search."""

import json

import pytest

from fisherlab.experiments.kunstner import fig3
from fisherlab.experiments.runner import run_experiment

SMALL_GRID = {"datasets": ("wine",), "lr_grid": (-6.0, 0.5, 53), "damping_grid": (-9.0, -5.0, 9)}


def _results(run_dir):
    return json.loads((run_dir / "results.json").read_text())


@pytest.fixture(scope="module")
def wine_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fig3")
    return run_experiment(
        "kunstner-fig3", out, quick=True, overrides=SMALL_GRID, show_progress=False
    )


def test_wine_selection_on_a_sub_grid_matches_table_d5(wine_run):
    results = _results(wine_run)
    selected = results["selected"]["wine"]
    assert set(selected) == {"GD", "NGD", "EFGD"}
    for method in ("GD", "NGD", "EFGD"):
        assert {"log10_lr", "log10_damping", "final_loss"} <= set(selected[method])
    assert selected["GD"]["log10_damping"] is None
    assert selected["GD"]["log10_lr"] == -5.625
    assert (selected["EFGD"]["log10_lr"], selected["EFGD"]["log10_damping"]) == (-1.375, -6.0)
    # NGD reaches the optimum for many cells; the published cell is one of the ties
    assert selected["NGD"]["published_ties"] is True
    assert selected["NGD"]["num_ties"] > 1
    grid = results["grid"]["wine"]
    assert len(grid["GD"]) == 53 and len(grid["NGD"]) == 53 * 9


def test_claims_are_computed_from_results(wine_run):
    results = _results(wine_run)
    claims = fig3.claims(results)
    table_claims = [c for c in claims if c.claim.startswith("Table D.5")]
    assert len(table_claims) == 3 and all(c.holds for c in table_claims)
    # move our EFGD selection and the published cell's loss: the verdict must follow
    efgd = results["selected"]["wine"]["EFGD"]
    efgd["log10_lr"], efgd["published_ties"] = -1.0, False
    curves = results["curves"]["wine"]
    key = "Table D.5, wine EFGD: grid search selects lr 10^-1.375, damping 10^-6.0"
    curves["EFGD (Table D.5)"] = [*curves["EFGD"][:-1], 10 * curves["EFGD"][-1]]
    assert {c.claim: c.holds for c in fig3.claims(results)}[key] is False
    # run alone, the published cell is as good as ours: the ranking is not decidable
    curves["EFGD (Table D.5)"] = list(curves["EFGD"])
    assert {c.claim: c.holds for c in fig3.claims(results)}[key] is None


def test_plot_and_files_are_written(wine_run):
    for name in ("config.json", "results.json", "claims.json", "fig3.png"):
        path = wine_run / name
        assert path.is_file() and path.stat().st_size > 0


def test_killed_grid_search_resumes_to_the_same_result(tmp_path, monkeypatch):
    overrides = {**SMALL_GRID, "damping_grid": (-9.0, -5.0, 5), "cells_per_batch": 2}
    reference = _results(
        run_experiment(
            "kunstner-fig3", tmp_path / "ref", quick=True, overrides=overrides, show_progress=False
        )
    )

    calls = {"n": 0}
    original = fig3.run_batch

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(fig3, "run_batch", dying)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(
            "kunstner-fig3", tmp_path / "run", quick=True, overrides=overrides, show_progress=False
        )
    cells = list((tmp_path / "run" / "kunstner-fig3" / "cells" / "grid-wine").iterdir())
    assert len(cells) == 1 + 2  # GD, then one group of two NGD dampings

    calls["n"] = -(10**6)  # never die again; count the grid groups computed on resume
    resumed = _results(
        run_experiment(
            "kunstner-fig3", tmp_path / "run", quick=True, overrides=overrides, show_progress=False
        )
    )
    groups = 1 + 3 + 3  # GD; NGD and EFGD with 5 dampings in groups of 2
    curves_speed_and_cosine = 3 + 3 + 2 + 1
    assert calls["n"] + 10**6 == groups - 2 + curves_speed_and_cosine
    assert resumed["grid"] == reference["grid"]
    assert resumed["selected"] == reference["selected"]


@pytest.mark.slow
def test_wine_full_grid_matches_table_d5(tmp_path):
    results = _results(
        run_experiment(
            "kunstner-fig3",
            tmp_path,
            quick=False,
            overrides={"datasets": ("wine",)},
            show_progress=False,
        )
    )
    for method, s in results["selected"]["wine"].items():
        published = fig3.PUBLISHED["wine"][method]
        assert s["published_ties"] or (s["log10_lr"], s["log10_damping"]) == published
