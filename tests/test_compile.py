"""Matrix-free operators under ``torch.compile``: the compiled product is the eager one.

The operator's checks (parameters unchanged, data checked once) run eagerly between the
compiled graphs; the products themselves are ``torch.func`` transforms that Dynamo traces.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import fisherlab as fl


def _operator(quantity: str) -> tuple[nn.Module, object, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    X, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    op = getattr(fl.Curvature(model, fl.likelihoods.Categorical(), X, y), quantity)(
        form="operator"
    )
    return model, op, torch.randn(op.shape[0])


QUANTITIES = [
    "ggn",
    pytest.param("hessian", marks=pytest.mark.slow),
    pytest.param("empirical_fisher", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("quantity", QUANTITIES)
def test_compiled_product_equals_the_eager_one(quantity):
    torch.compiler.reset()
    _, op, v = _operator(quantity)
    compiled = torch.compile(lambda u: op @ u)
    expected = op @ v
    for _ in range(2):  # the compiling call and a cached one
        assert torch.allclose(compiled(v), expected, rtol=1e-5, atol=1e-6)


def test_compiled_product_still_refuses_changed_parameters():
    torch.compiler.reset()
    model, op, v = _operator("ggn")
    compiled = torch.compile(lambda u: op @ u)
    compiled(v)
    with torch.no_grad():
        model[0].bias.add_(1.0)
    with pytest.raises(ValueError, match="parameters changed"):
        compiled(v)
