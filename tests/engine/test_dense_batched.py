"""The dense Hessian and its diagonal from block-restricted batched products, in float64.

Oracle: ``torch.autograd.functional.hessian`` (double backward) of the summed loss as a
function of the flat parameter vector.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call

import fisherlab as fl
from fisherlab.engine import functional
from fisherlab.engine.functional import FunctionalModel
from oracles import assert_close

DT = torch.float64
RTOL = 1e-10


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.Tanh(), nn.Conv2d(3, 2, 2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3)
    ).to(DT)


class HeadFirst(nn.Module):
    """Parameters declared output layer first: the parameter order is not the forward order."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(4, 3)
        self.body = nn.Linear(5, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.body(x)))


class TanhWithoutJvp(torch.autograd.Function):
    """``tanh`` with a backward and no forward-mode derivative (no ``jvp``)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        (out,) = ctx.saved_tensors
        return grad_output * (1 - out * out)


class ReverseOnly(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Conv1d(2, 3, 2)
        self.last = nn.Linear(9, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(TanhWithoutJvp.apply(self.first(x)).flatten(1))


def _problem(model: nn.Module, shape: tuple[int, ...], n: int = 6, dtype=DT):
    generator = torch.Generator().manual_seed(2)
    X = torch.randn(n, *shape, dtype=dtype, generator=generator)
    y = torch.randint(0, 3, (n,), generator=generator)
    return FunctionalModel(model, fl.likelihoods.Categorical()), X, y


def _oracle(fm: FunctionalModel, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    def loss(theta: torch.Tensor) -> torch.Tensor:
        out = functional_call(fm.model, fm.unflatten(theta), (X,))
        return nn.functional.cross_entropy(out, y, reduction="sum")

    return torch.autograd.functional.hessian(loss, fm.flat_params().detach())


@pytest.mark.parametrize("chunk_size", [None, 1, 7, 10_000])
def test_cnn_hessian_with_uneven_chunks(chunk_size):
    fm, X, y = _problem(_cnn(), (1, 5, 5))
    assert fm.num_params % 7 != 0 and fm.numels[0] % 7 != 0  # chunks split columns unevenly
    expected = _oracle(fm, X, y)
    H = fm.hessian_dense(X, y, chunk_size=chunk_size)
    assert_close(H, expected, RTOL)
    assert torch.equal(H, H.T)
    assert_close(fm.hessian_diag(X, y, chunk_size=chunk_size), torch.diagonal(expected), RTOL)


def test_a_tiny_memory_budget_gives_one_column_per_product(monkeypatch):
    fm, X, y = _problem(_cnn(), (1, 5, 5))
    monkeypatch.setattr(functional, "CHUNK_BYTES", 1)
    calls = []
    original = FunctionalModel._block_rows

    def counted(self, X, y, block, wrt, constants, E):
        calls.append(E.shape[0])
        return original(self, X, y, block, wrt, constants, E)

    monkeypatch.setattr(FunctionalModel, "_block_rows", counted)
    assert_close(fm.hessian_dense(X, y), _oracle(fm, X, y), RTOL)
    assert set(calls) == {1} and len(calls) == fm.num_params


def test_blocks_run_from_the_input_layer_to_the_output_layer():
    fm, X, y = _problem(HeadFirst().to(DT), (5,))
    assert fm.names == ["head.weight", "head.bias", "body.weight", "body.bias"]
    order, saved = fm._block_order(X, y)
    assert order[:2] == ["body.weight", "body.bias"] or order[:2] == ["body.bias", "body.weight"]
    assert set(order) == set(fm.names) and saved > 0
    assert_close(fm.hessian_dense(X, y, chunk_size=3), _oracle(fm, X, y), RTOL)


@pytest.mark.parametrize("order", ["reversed", "interleaved"])
def test_any_block_order_gives_the_same_hessian(monkeypatch, order):
    """The symmetric fill is right whatever order the blocks are taken in (only cost differs)."""
    fm, X, y = _problem(_cnn(), (1, 5, 5))
    names = list(fm.names)
    chosen = names[::-1] if order == "reversed" else names[1::2] + names[0::2]
    monkeypatch.setattr(FunctionalModel, "_block_order", lambda self, X, y: (chosen, 1 << 10))
    assert_close(fm.hessian_dense(X, y, chunk_size=4), _oracle(fm, X, y), RTOL)


def test_reverse_mode_where_forward_ad_is_missing():
    torch.manual_seed(0)
    fm, X, y = _problem(ReverseOnly().to(DT), (2, 4))
    assert fm.forward_ad
    H = fm.hessian_dense(X, y, chunk_size=5)
    assert not fm.forward_ad  # the first product switched the model to reverse mode
    expected = _oracle(fm, X, y)
    assert_close(H, expected, RTOL)
    assert torch.equal(H, H.T)
    assert_close(fm.hessian_diag(X, y, chunk_size=5), torch.diagonal(expected), RTOL)


def test_constant_weight_with_a_tangent_on_its_bias_in_float32():
    """torch's forward-mode float32 ``Conv1d`` rejects a constant weight with a dual bias."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(1, 2, 1, stride=2), nn.Tanh(), nn.Flatten(), nn.Linear(4, 3))
    fm, X, y = _problem(model, (1, 3), dtype=torch.float32)
    H = fm.hessian_dense(X, y, chunk_size=2)
    reference = FunctionalModel(model.to(DT), fm.likelihood)
    assert_close(H.double(), _oracle(reference, X.double(), y), 1e-5)


def test_progress_bar_runs_over_the_chunks(monkeypatch):
    fm, X, y = _problem(_cnn(), (1, 5, 5))
    seen = {}

    def recording(iterable, total=None, desc=None, min_total=1, enabled=True):
        seen.update(total=total, desc=desc, items=list(iterable))
        return iter(seen["items"])

    monkeypatch.setattr(functional, "progress", recording)
    fm.hessian_dense(X, y, chunk_size=7)
    expected = sum(-(-n // 7) for n in fm.numels)
    assert seen["total"] == len(seen["items"]) == expected and seen["desc"] == "dense Hessian"


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_chunk_size_must_be_a_positive_integer(bad):
    fm, X, y = _problem(_cnn(), (1, 5, 5))
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        fm.hessian_dense(X, y, chunk_size=bad)
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        fm.hessian_diag(X, y, chunk_size=bad)
