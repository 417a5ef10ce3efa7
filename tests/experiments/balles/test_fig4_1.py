"""balles-fig4-1 in (further shrunk) quick mode: files, numbers, claims."""

import pytest
import torch

from fisherlab.experiments.balles import fig4_1

from ..runs import assert_figures, quick_run


def test_fig4_1(tmp_path):
    run_dir, _, res, _ = quick_run("balles-fig4-1", tmp_path, trials=300, etas=[0.25, 1.0, 4.0])
    assert_figures(run_dir, ["fig4_1_eta_histograms.png"])
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
