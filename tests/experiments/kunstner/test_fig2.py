import copy
import json

import pytest
import torch

from fisherlab.experiments.kunstner.fig2 import VARIANTS, claims
from fisherlab.experiments.runner import run_experiment


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    torch.set_num_threads(1)
    return run_experiment(
        "kunstner-fig2", tmp_path_factory.mktemp("fig2"), quick=True, show_progress=False
    )


@pytest.fixture(scope="module")
def results(run_dir):
    return json.loads((run_dir / "results.json").read_text())


def test_run_writes_figures_results_and_claims(run_dir, results):
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "ok"
    assert info["figures"] == ["fig2_logistic.png", "fig2_linear.png", "fig2_sample_size.png"]
    for name in info["figures"]:
        assert (run_dir / name).stat().st_size > 10_000
    assert results["n"] == 1000
    for problem in ("logistic", "linear"):
        for variant in VARIANTS:
            p = results["panels"][problem][variant]
            assert p["gradient_norm"] < 1e-10
            assert len(p["data"]["y"]) == 1000
            for n in results["sweep_ns"]:
                assert len(results["sweep"][problem][variant][str(n)]) == 4
    assert len(results["tables"]) == 2
    written = json.loads((run_dir / "claims.json").read_text())
    assert [c["holds"] for c in written] == [c.holds for c in claims(results)]


def test_matrices_at_the_minimum(results):
    from fisherlab import datasets

    # linear regression, σ = 1, mean loss: F = XᵀX / N and θ* is least squares
    data = datasets.load("kunstner-fig2-linear-misspecified-a", seed=0, n=1000)
    p = results["panels"]["linear"]["misspecified-a"]
    F = torch.tensor(p["fisher"], dtype=torch.float64)
    torch.testing.assert_close(F, data.X.T @ data.X / 1000)
    lstsq = torch.linalg.lstsq(data.X, data.y.unsqueeze(1)).solution.squeeze(1)
    assert p["theta_star"] == pytest.approx(lstsq.tolist(), abs=1e-10)
    # noise of standard deviation 2 under a σ = 1 model: EF ≈ 4 F
    assert p["generalized_eigenvalues"] == pytest.approx([4.0, 4.0], rel=0.1)
    # the quadratic models' level sets at δ: ½ dᵀ M d = δ on every ellipse point
    for key, matrix in (
        ("ellipse_fisher", "fisher"),
        ("ellipse_empirical_fisher", "empirical_fisher"),
    ):
        d = torch.tensor(p[key], dtype=torch.float64) - torch.tensor(p["theta_star"])
        M = torch.tensor(p[matrix], dtype=torch.float64)
        values = 0.5 * torch.einsum("ni,ij,nj->n", d, M, d)
        torch.testing.assert_close(values, torch.full_like(values, p["level"]))


def test_claims_hold_in_quick_mode(results):
    out = claims(results)
    assert len(out) == 10
    assert all(c.holds for c in out), [c.measured for c in out if not c.holds]
    acc = results["authors_draw_accuracy"]
    assert min(acc["misspecified-a"], acc["misspecified-b"]) >= 0.85
    assert round(acc["correct"], 2) == 0.73


def test_claims_are_computed_from_the_results(results):
    sweep_n = str(results["n"])
    # a correct model whose EF differs from F: first claim fails
    worse = copy.deepcopy(results)
    worse["sweep"]["logistic"]["correct"][sweep_n] = [0.5] * 4
    assert claims(worse)[0].holds is False
    assert "1000: 0.5 " in claims(worse)[0].measured
    # misspecified data sets with an EF as close to F as the correct model's
    close = copy.deepcopy(results)
    correct = close["sweep"]["linear"]["correct"][sweep_n]
    close["sweep"]["linear"]["misspecified-b"][sweep_n] = list(correct)
    assert claims(results)[3].holds and claims(close)[3].holds is False
    # lower accuracies of the misspecified models
    inaccurate = copy.deepcopy(results)
    inaccurate["authors_draw_accuracy"]["misspecified-a"] = 0.7
    assert claims(inaccurate)[4].holds is False
    assert "70 %" in claims(inaccurate)[4].measured
    # a correct model whose difference does not shrink with N
    flat = copy.deepcopy(results)
    for n in flat["sweep_ns"]:
        flat["sweep"]["logistic"]["correct"][str(n)] = [0.05] * 4
    assert claims(flat)[6].holds is False
    # a misspecified model whose difference vanishes like 1/√N
    vanishing = copy.deepcopy(results)
    for n in vanishing["sweep_ns"]:
        vanishing["sweep"]["linear"]["misspecified-a"][str(n)] = [3.0 / n**0.5] * 4
    assert claims(results)[9].holds and claims(vanishing)[9].holds is False
