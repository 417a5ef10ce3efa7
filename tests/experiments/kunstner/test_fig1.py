import copy
import json
import math

import pytest
import torch

from fisherlab.experiments import get
from fisherlab.experiments.kunstner.fig1 import STARTS, claims
from fisherlab.experiments.runner import run_experiment


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    torch.set_num_threads(1)
    return run_experiment(
        "kunstner-fig1", tmp_path_factory.mktemp("fig1"), quick=True, show_progress=False
    )


@pytest.fixture(scope="module")
def results(run_dir):
    return json.loads((run_dir / "results.json").read_text())


def test_run_writes_figure_results_and_claims(run_dir, results):
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "ok"
    assert info["figures"] == ["fig1.png"]
    for name in info["figures"]:
        assert (run_dir / name).stat().st_size > 10_000
    assert get("kunstner-fig1").config_class.preset(True, 0).iterations == 5_000
    # quick keeps the integration time γT = 5 of the paper's 1e-4 × 50,000
    assert math.isclose(results["lr"] * results["iterations"], 5.0)
    assert set(results["trajectories"]) == {"GD", "NGD", "EFGD"}
    for runs in results["trajectories"].values():
        assert [tuple(r["start"]) for r in runs] == list(STARTS)
    rows = results["tables"]["Trajectories"]["rows"]
    assert len(rows) == 3 * len(STARTS)
    written = json.loads((run_dir / "claims.json").read_text())
    assert [c["holds"] for c in written] == [c.holds for c in claims(results)]


def test_optimum_is_least_squares_solution(results):
    from fisherlab import datasets

    data = datasets.load("kunstner-fig1", seed=0)
    lstsq = torch.linalg.lstsq(data.X, data.y.unsqueeze(1)).solution.squeeze(1)
    assert results["optimum"] == pytest.approx(lstsq.tolist(), abs=1e-9)
    assert results["optimum"] == pytest.approx([2.0, 2.0], abs=0.2)


def test_ngd_field_points_at_the_optimum(results):
    # the loss is quadratic with Hessian F, so F⁻¹∇L = θ − θ*
    cos = results["field_stats"]["cos_to_optimum"]["NGD"]
    assert min(cos) > 1 - 1e-6
    u, v = results["field"]["vectors"]["NGD"]
    axis = results["field"]["axis"]
    b_star, w_star = results["optimum"]
    assert u[0][0] == pytest.approx(b_star - axis[0], rel=1e-5)
    assert v[0][0] == pytest.approx(w_star - axis[0], rel=1e-5)


def test_claims_hold_in_quick_mode(results):
    out = claims(results)
    assert len(out) == 4
    assert all(c.holds for c in out), [c.measured for c in out if not c.holds]


def test_claims_are_computed_from_the_results(results):
    base = claims(results)
    # bend one NGD path: report a path twice as long as the straight line
    bent = copy.deepcopy(results)
    bent["trajectories"]["NGD"][0]["path_length"] *= 2
    assert claims(bent)[0].holds is False
    assert "min straightness 0.5;" in claims(bent)[0].measured
    # let EFGD reach the optimum along straight paths like NGD: no distortion left
    fixed = copy.deepcopy(results)
    for r in fixed["trajectories"]["EFGD"]:
        r["final"] = list(fixed["optimum"])
        r["path_length"] = math.dist(r["start"], r["final"])
    assert base[1].holds and claims(fixed)[1].holds is False
    # an EF field aligned with the natural gradient everywhere
    aligned = copy.deepcopy(results)
    n = len(aligned["field_stats"]["cos_ef_ngd"])
    aligned["field_stats"]["cos_ef_ngd"] = [1.0] * n
    aligned["field_stats"]["cos_to_optimum"]["EFGD"] = [1.0] * n
    assert claims(aligned)[2].holds is False
    assert claims(aligned)[3].holds is False
    assert "minimum 1," in claims(aligned)[2].measured
