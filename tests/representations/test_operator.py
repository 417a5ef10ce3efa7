"""CurvatureOperator on explicit matrices, and the form registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fisherlab as fl
from fisherlab.forms import registry
from fisherlab.representations.operator import CurvatureOperator
from oracles import assert_close

D = 9


def _spd(seed=0):
    g = torch.Generator().manual_seed(seed)
    B = torch.randn(D, D, generator=g, dtype=torch.float64)
    return B @ B.T + 0.1 * torch.eye(D, dtype=torch.float64)


def _operator(A, **kwargs):
    calls = []

    def matmat(V):
        assert V.ndim == 2 and V.shape[0] == D
        calls.append(V.shape[1])
        return A @ V

    op = CurvatureOperator(matmat, D, A.dtype, A.device, name="test", **kwargs)
    return op, calls


def test_products():
    A = _spd()
    op, calls = _operator(A)
    v = torch.randn(D, dtype=torch.float64)
    V = torch.randn(D, 4, dtype=torch.float64)
    assert op.shape == (D, D)
    Av = op @ v
    assert Av.shape == (D,)
    assert_close(Av, A @ v, 1e-14)
    assert_close(op @ V, A @ V, 1e-14)
    assert calls == [1, 4]
    assert "test" in repr(op)


@pytest.mark.parametrize("chunk_size", [1, 4, 9, 256])
def test_to_dense(chunk_size):
    A = _spd()
    op, calls = _operator(A)
    assert_close(op.to_dense(chunk_size=chunk_size), A, 1e-14)
    assert sum(calls) == D and max(calls) == min(chunk_size, D)


def test_to_scipy():
    A = _spd()
    op, _ = _operator(A)
    lin = op.to_scipy()
    v = np.random.default_rng(0).standard_normal(D)
    V = np.random.default_rng(1).standard_normal((D, 3))
    np.testing.assert_allclose(lin @ v, A.numpy() @ v, rtol=1e-13)
    np.testing.assert_allclose(lin.matvec(v[:, None]).reshape(-1), A.numpy() @ v, rtol=1e-13)
    np.testing.assert_allclose(lin.matmat(V), A.numpy() @ V, rtol=1e-13)
    np.testing.assert_allclose(lin.rmatvec(v), A.numpy().T @ v, rtol=1e-13)
    assert lin.dtype == np.float64 and lin.shape == (D, D)


def test_to_scipy_of_a_float32_operator():
    A = _spd().float()
    op = CurvatureOperator(lambda V: A @ V, D, torch.float32, A.device)
    out = op.to_scipy() @ np.ones(D)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, (A @ torch.ones(D)).double().numpy(), rtol=1e-6)


@pytest.mark.parametrize("method", ["dense", "cg", "auto"])
@pytest.mark.parametrize("damping", [0.0, 0.5])
def test_solve(method, damping):
    A = _spd()
    op, _ = _operator(A)
    v = torch.randn(D, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    V = torch.randn(D, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    damped = A + damping * torch.eye(D, dtype=torch.float64)
    kwargs = {"rtol": 1e-13} if method == "cg" else {}
    x = op.solve(v, damping, method=method, **kwargs)
    assert x.shape == (D,)
    assert_close(x, torch.linalg.solve(damped, v), 1e-10)
    assert_close(
        op.solve(V, damping, method=method, **kwargs), torch.linalg.solve(damped, V), 1e-10
    )


def test_auto_uses_cg_above_the_dense_threshold():
    A = _spd()
    op, calls = _operator(A, dense_threshold=4)
    v = torch.ones(D, dtype=torch.float64)
    x = op.solve(v, damping=0.1, rtol=1e-13)
    assert_close(x, torch.linalg.solve(A + 0.1 * torch.eye(D, dtype=torch.float64), v), 1e-10)
    assert set(calls) == {1}  # matrix-vector products only: no dense matrix was built
    calls.clear()
    op_small, calls_small = _operator(A, dense_threshold=D)
    op_small.solve(v, damping=0.1)
    assert calls_small == [D]  # one block of unit vectors: the dense matrix


@pytest.mark.parametrize("damping", [-1.0, float("nan"), float("inf")])
def test_solve_rejects_bad_damping(damping):
    op, _ = _operator(_spd())
    with pytest.raises(ValueError, match="damping must be a finite number >= 0"):
        op.solve(torch.ones(D, dtype=torch.float64), damping=damping)


def test_solve_rejects_bad_method_and_shapes():
    op, _ = _operator(_spd())
    with pytest.raises(ValueError, match="method must be 'auto', 'dense' or 'cg'"):
        op.solve(torch.ones(D, dtype=torch.float64), method="lu")
    with pytest.raises(ValueError, match=r"expected a vector of shape \(9,\)"):
        op @ torch.ones(D + 1, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"expected a vector of shape \(9,\)"):
        op.solve(torch.ones(D, 2, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match="expected a torch.Tensor"):
        op @ np.ones(D)


def test_singular_dense_solve_raises():
    A = torch.diag(torch.arange(D, dtype=torch.float64))  # exactly singular: a zero eigenvalue
    op, _ = _operator(A)
    with pytest.raises(RuntimeError, match="singular; use a positive damping"):
        op.solve(torch.ones(D, dtype=torch.float64), damping=0.0, method="dense")


def test_cg_non_convergence_raises():
    A = _spd() + 50 * torch.diag(torch.arange(D, dtype=torch.float64))
    op, _ = _operator(A)
    with pytest.raises(RuntimeError, match="did not converge"):
        op.solve(torch.ones(D, dtype=torch.float64), method="cg", maxiter=1, rtol=1e-14)


# -- registry ---------------------------------------------------------------------------
def test_builtin_forms_are_registered():
    assert {"dense", "diag", "operator"} <= set(fl.available_forms())
    assert fl.available_forms() == sorted(fl.available_forms())


def test_form_enum_and_custom_form():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2).double()
    X, y = torch.randn(4, 3, dtype=torch.float64), torch.randint(0, 2, (4,))
    c = fl.Curvature(model, fl.Categorical(), X, y)
    assert torch.equal(c.ggn(form=registry.Form.DIAG), c.ggn(form="diag"))

    @fl.register_form("trace_for_test")
    def trace(curvature, spec):
        return torch.diagonal(registry.build(curvature, "dense", spec)).sum()

    try:
        assert "trace_for_test" in fl.available_forms()
        assert_close(c.fisher(form="trace_for_test"), torch.trace(c.fisher()), 1e-14)
    finally:
        registry._BUILDERS.pop("trace_for_test")
    with pytest.raises(ValueError, match="unknown form 'trace_for_test'; available forms:"):
        c.fisher(form="trace_for_test")


@pytest.mark.parametrize(
    "make",
    [
        lambda c: c.ggn(form="operator"),
        lambda c: c.covariance(form="operator"),
        lambda c: c.fisher(form="operator", mc_samples=2, generator=torch.Generator()),
    ],
    ids=["ggn", "covariance", "fisher_mc"],
)
def test_operator_refuses_use_after_the_parameters_changed(make):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)
    ).double()
    X, y = torch.randn(6, 3, dtype=torch.float64), torch.randint(0, 2, (6,))
    c = fl.Curvature(model, fl.Categorical(), X, y)
    op = make(c)
    v = torch.ones(c.num_params, dtype=torch.float64)
    op @ v
    with torch.no_grad():
        model[0].weight.add_(0.1)
    with pytest.raises(ValueError, match="parameters changed"):
        op @ v
    with pytest.raises(ValueError, match="parameters changed"):
        op.solve(v, damping=1.0)
