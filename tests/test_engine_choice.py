"""Curvature's diagonals by the fast per-layer engine equal those of the generic engine."""

import pytest
import torch

import fisherlab as fl
from cases import LIKELIHOODS, MODELS, make_problem


def _diagonals(c, seed=3):
    return {
        "empirical_fisher": c.empirical_fisher(form="diag"),
        "fisher": c.fisher(form="diag"),
        "fisher_mc": c.fisher(
            form="diag", mc_samples=2, generator=torch.Generator().manual_seed(seed)
        ),
        "ggn": c.ggn(form="diag"),
        "variance": c.variance(form="diag"),
        "variance_unbiased": c.variance(form="diag", unbiased=True),
    }


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("likelihood", LIKELIHOODS, ids=[lik.name for lik in LIKELIHOODS])
@pytest.mark.parametrize("model", MODELS, ids=[m.name for m in MODELS])
def test_auto_engine_equals_generic(model, likelihood, reduction):
    problem = make_problem(model, likelihood, reduction)
    args = (problem.model, problem.likelihood, problem.X, problem.y)
    auto = fl.Curvature(*args, reduction=reduction, batch_size=4)
    generic = fl.Curvature(*args, reduction=reduction, batch_size=4, engine="generic")
    assert generic.diagonal_engine == "generic"
    for name, value in _diagonals(generic).items():
        torch.testing.assert_close(_diagonals(auto)[name], value, rtol=1e-10, atol=1e-13, msg=name)


def test_fast_engine_is_used_for_covered_models():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    X, y = torch.randn(5, 3), torch.randint(0, 2, (5,))
    assert fl.Curvature(model, fl.Categorical(), X, y).diagonal_engine == "hooks"


def test_hooks_engine_on_an_uncovered_model_is_an_error():
    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(2))

        def forward(self, x):
            return x * self.scale

    X, y = torch.randn(4, 2), torch.randint(0, 2, (4,))
    assert fl.Curvature(Scaled(), fl.Categorical(), X, y).diagonal_engine == "generic"
    with pytest.raises(NotImplementedError, match="fast engine does not cover"):
        fl.Curvature(Scaled(), fl.Categorical(), X, y, engine="hooks")
    with pytest.raises(ValueError, match="engine must be"):
        fl.Curvature(Scaled(), fl.Categorical(), X, y, engine="fast")


def test_fast_diagonals_work_under_no_grad():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    X, y = torch.randn(6, 3), torch.randint(0, 2, (6,))
    expected = fl.Curvature(model, fl.Categorical(), X, y, engine="generic").fisher(form="diag")
    with torch.no_grad():
        fast = fl.Curvature(model, fl.Categorical(), X, y).fisher(form="diag")
    torch.testing.assert_close(fast, expected)
