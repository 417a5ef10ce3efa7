"""Matrix-free operators under ``torch.compile``: the compiled product is the eager one.

The operator's checks (parameters unchanged, data checked once) run eagerly between the
compiled graphs; the products themselves are ``torch.func`` transforms that Dynamo traces.
Each case runs in a fresh interpreter, so that compiled code and the tensors its caches
hold stay out of the test process (whose memory tests count live tensors).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SETUP = """
import torch
from torch import nn
import fisherlab as fl

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
X, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
op = getattr(fl.Curvature(model, fl.likelihoods.Categorical(), X, y), QUANTITY)(form="operator")
v = torch.randn(op.shape[0])
compiled = torch.compile(lambda u: op @ u)
"""


def _run(quantity: str, body: str) -> None:
    script = SETUP.replace("QUANTITY", repr(quantity)) + textwrap.dedent(body)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok"), done.stdout[-2000:]


QUANTITIES = [
    "ggn",
    pytest.param("hessian", marks=pytest.mark.slow),
    pytest.param("empirical_fisher", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("quantity", QUANTITIES)
def test_compiled_product_equals_the_eager_one(quantity):
    _run(
        quantity,
        """
        expected = op @ v
        for _ in range(2):  # the compiling call and a cached one
            assert torch.allclose(compiled(v), expected, rtol=1e-5, atol=1e-6)
        print("ok")
        """,
    )


def test_compiled_product_still_refuses_changed_parameters():
    _run(
        "ggn",
        """
        compiled(v)
        with torch.no_grad():
            model[0].bias.add_(1.0)
        try:
            compiled(v)
        except ValueError as error:
            assert "parameters changed" in str(error), error
            print("ok")
        """,
    )
