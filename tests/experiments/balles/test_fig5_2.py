"""balles-fig5-2 in (further shrunk) quick mode: files, numbers, claims."""

import torch

from fisherlab.experiments.balles import fig5_2

from ..runs import assert_figures, quick_run


def test_fig5_2(tmp_path):
    run_dir, _, res, _ = quick_run("balles-fig5-2", tmp_path, mc_samples=20000, num_mc_etas=5)
    assert_figures(run_dir, ["fig5_2_variance_adaptation_factors.png"])
    eta = torch.tensor(res["eta"])
    assert torch.allclose(torch.tensor(res["curves"]["sgd"]), 1 / (1 + eta**2))
    claims = fig5_2.claims(res)
    assert [c.premise_holds for c in claims] == [True] * 3
    assert [c.holds for c in claims] == [True] * 3
