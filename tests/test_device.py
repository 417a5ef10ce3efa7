"""Quantities on the test device (``pytest --device cuda`` or ``FISHERLAB_TEST_DEVICE=cuda``)
against CPU float64 references: brute-force loops where the quantity has one, fisherlab on the
CPU in float64 for K-FAC and the optimizer.

On the default device (``cpu``) the float32 cases still compare a float32 computation with a
float64 reference; on a GPU both dtypes run there.
"""

from __future__ import annotations

import copy

import pytest
import torch

import fisherlab as fl
from cases import LIKELIHOODS, MODELS, make_problem
from fisherlab.engine.hooks import collect
from oracles import BruteForce, relative_error

CASES = [m for m in MODELS if m.name in ("mlp", "cnn")]
CATEGORICAL = next(lik for lik in LIKELIHOODS if lik.name == "categorical")
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-4}


@pytest.fixture(params=CASES, ids=[m.name for m in CASES])
def reference(request):
    """A float64 CPU problem and its brute-force oracle."""
    problem = make_problem(request.param, CATEGORICAL, "mean")
    oracle = BruteForce(problem.model, problem.likelihood, problem.X, problem.y, "mean")
    return problem, oracle


@pytest.fixture(params=[torch.float64, torch.float32], ids=["float64", "float32"])
def dtype(request):
    """The dtype on the device; TensorFloat-32 is off, so float32 means float32 on a GPU."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield request.param
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def _moved(problem, device: torch.device, dtype: torch.dtype):
    model = copy.deepcopy(problem.model).to(device=device, dtype=dtype)
    return model, problem.X.to(device=device, dtype=dtype), problem.y.to(device)


def _close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> None:
    assert actual.device.type != "meta"
    error = relative_error(actual.detach().cpu().double(), expected.detach().cpu().double())
    assert error < TOLERANCE[dtype], f"relative error {error:.2e}"


def test_curvature_quantities_on_device(reference, device, dtype):
    problem, oracle = reference
    model, X, y = _moved(problem, device, dtype)
    c = fl.Curvature(model, fl.likelihoods.Categorical(), X, y)
    gradient = c.gradient()
    assert gradient.device.type == device.type and gradient.dtype == dtype
    _close(gradient, oracle.gradient, dtype)
    _close(c.variance(form="diag"), oracle.variance(), dtype)
    _close(c.ggn(form="diag"), torch.diag(oracle.ggn), dtype)
    v = torch.randn(oracle.D, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    product = c.hessian(form="operator") @ v.to(device=device, dtype=dtype)
    assert product.device.type == device.type
    _close(product, oracle.hessian @ v, dtype)


def test_hooks_on_device(reference, device, dtype):
    problem, oracle = reference
    model, X, y = _moved(problem, device, dtype)
    lik = fl.likelihoods.Categorical()
    with collect(model, lik, statistics=("gradient", "variance", "ggn_diag")) as stats:
        stats.loss(model(X), y).backward()
    flat = stats.flat("variance")
    assert flat.device.type == device.type
    _close(stats.flat("gradient"), oracle.gradient, dtype)
    _close(flat, oracle.variance(), dtype)
    _close(stats.flat("ggn_diag"), torch.diag(oracle.ggn), dtype)


def test_kfac_on_device(reference, device, dtype):
    problem, _ = reference
    cpu = fl.Curvature(problem.model, problem.likelihood, problem.X, problem.y)
    expected = cpu.ggn(form="kfac").to_dense()
    model, X, y = _moved(problem, device, dtype)
    kfac = fl.Curvature(model, fl.likelihoods.Categorical(), X, y).ggn(form="kfac")
    dense = kfac.to_dense()
    assert dense.device.type == device.type
    _close(dense, expected, dtype)


def test_optimizer_steps_on_device(reference, device, dtype):
    problem, _ = reference

    def train(model, X, y) -> torch.Tensor:
        optimizer = fl.optim.MSVAG(model.parameters(), lr=0.1, beta=0.9)
        for _ in range(3):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(X), y).backward()
            optimizer.step()
        return torch.nn.utils.parameters_to_vector(model.parameters())

    expected = train(copy.deepcopy(problem.model), problem.X, problem.y)
    start = torch.nn.utils.parameters_to_vector(problem.model.parameters())
    moved = train(*_moved(problem, device, dtype))
    assert moved.device.type == device.type
    assert relative_error(expected, start.detach()) > 1e-3  # the steps moved the parameters
    _close(moved, expected, dtype)
