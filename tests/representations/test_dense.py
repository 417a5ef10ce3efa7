"""The one matrix interface: every representation × every method against its dense matrix.

Each case builds a representation from tensors together with the same matrix built
independently as a dense ``(D, D)`` tensor (float64); each method is checked against the
formula on that dense matrix, or, where the class does not provide it, for the
``TypeError`` naming the class and the route.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fisherlab import linalg
from fisherlab.representations import (
    KFAC,
    Block,
    BlockDiagonal,
    CurvatureOperator,
    DenseMatrix,
    DiagonalMatrix,
    KroneckerBlock,
)

DT = torch.float64
CPU = torch.device("cpu")
DAMPING = 0.2


def _spd(n: int, seed: int) -> torch.Tensor:
    B = torch.randn(n, n, dtype=DT, generator=torch.Generator().manual_seed(seed))
    return B @ B.T / n + 0.1 * torch.eye(n, dtype=DT)


# -- the cases: (representation, the same matrix built independently) ---------------------
def _dense():
    A = _spd(7, 0)
    return DenseMatrix(A), A


def _diagonal():
    d = torch.rand(7, dtype=DT, generator=torch.Generator().manual_seed(1)) + 0.1
    return DiagonalMatrix(d), torch.diag(d)


def _operator():
    A = _spd(7, 2)
    return CurvatureOperator(lambda V: A @ V, 7, DT, CPU, name="spd"), A


# two layers: 2 × (3 + bias) with the bias stored after the second layer's weight, and a
# 3 × 2 layer without bias; flat layout [W1 (6), W2 (6), b1 (2)]
KFAC_LAYERS = [
    # name, out, weight columns, has bias, weight offset, bias offset
    ("first", 2, 3, True, 0, 12),
    ("second", 3, 2, False, 6, None),
]


def _kfac():
    blocks, truth = [], torch.zeros(14, 14, dtype=DT)
    for seed, (name, out, cols, bias, w_off, b_off) in enumerate(KFAC_LAYERS):
        d_in = cols + int(bias)
        A, G = _spd(d_in, 10 + seed), _spd(out, 20 + seed)
        blocks.append(KroneckerBlock(name, out, cols, bias, w_off, b_off, A=A, G=G))
        # entry (i, j) of [W, b]: weight W_ij at w_off + i·cols + j, bias b_i at b_off + i
        index = [
            (w_off + i * cols + j) if j < cols else (b_off + i)
            for i in range(out)
            for j in range(d_in)
        ]
        # (G ⊗ A)[(i, j), (k, l)] = G_ik A_jl
        for r, (i, j) in enumerate((i, j) for i in range(out) for j in range(d_in)):
            for c, (k, m) in enumerate((k, m) for k in range(out) for m in range(d_in)):
                truth[index[r], index[c]] = G[i, k] * A[j, m]
    return KFAC(blocks, 14, DT, CPU), truth


def _blockdiag():
    # a dense block and a rank-2 factor block, on interleaved index sets
    dense = _spd(3, 30)
    factor = torch.randn(2, 4, dtype=DT, generator=torch.Generator().manual_seed(31))
    i_dense, i_factor = torch.tensor([5, 0, 3]), torch.tensor([1, 6, 2, 4])
    blocks = [Block("d", i_dense, dense=dense), Block("f", i_factor, factor=factor)]
    truth = torch.zeros(7, 7, dtype=DT)
    truth[i_dense.unsqueeze(1), i_dense] = dense
    truth[i_factor.unsqueeze(1), i_factor] = factor.T @ factor
    return BlockDiagonal(blocks, 7, DT, CPU), truth


CASES = {
    "DenseMatrix": _dense,
    "DiagonalMatrix": _diagonal,
    "KFAC": _kfac,
    "BlockDiagonal": _blockdiag,
    "CurvatureOperator": _operator,
}


# -- references on the dense matrix F ------------------------------------------------------
def _fn(F: torch.Tensor, f) -> torch.Tensor:
    """``Q f(λ) Qᵀ`` with the eigenvalues clamped at 0."""
    lam, Q = torch.linalg.eigh(F)
    return (Q * f(lam.clamp_min(0.0))) @ Q.T


def _eye(F):
    return torch.eye(F.shape[0], dtype=DT)


def _vector(F):
    return torch.randn(F.shape[0], dtype=DT, generator=torch.Generator().manual_seed(7))


def _columns(F):
    return torch.randn(F.shape[0], 3, dtype=DT, generator=torch.Generator().manual_seed(8))


def _dense_of(result) -> torch.Tensor:
    return result if isinstance(result, torch.Tensor) else result.to_dense()


def _square_and_negative_part(S: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    torch.testing.assert_close(S, S.T, rtol=0, atol=1e-14)
    return S @ S, torch.linalg.eigvalsh(S).clamp_max(0.0)


# method name → (call on the representation, reference on F)
METHODS = {
    "matvec": (lambda M, F: M @ _vector(F), lambda F: F @ _vector(F)),
    "matmat": (lambda M, F: M @ _columns(F), lambda F: F @ _columns(F)),
    "solve": (
        lambda M, F: M.solve(_vector(F), DAMPING),
        lambda F: torch.linalg.solve(F + DAMPING * _eye(F), _vector(F)),
    ),
    "solve_columns": (
        lambda M, F: M.solve(_columns(F), DAMPING),
        lambda F: torch.linalg.solve(F + DAMPING * _eye(F), _columns(F)),
    ),
    "power_2": (lambda M, F: _dense_of(M.power(2.0)), lambda F: F @ F),
    "power_inverse": (
        lambda M, F: _dense_of(M.power(-1.0, DAMPING)),
        lambda F: torch.linalg.inv(F + DAMPING * _eye(F)),
    ),
    # the principal root is the one positive semi-definite S with S S = F (compared
    # through S S and the negative part of its spectrum: at the zero eigenvalues of F the
    # square root turns round-off ε into √ε)
    "sqrt": (
        lambda M, F: _square_and_negative_part(_dense_of(M.sqrt())),
        lambda F: (F, torch.zeros(F.shape[0], dtype=DT)),
    ),
    "inv_sqrt": (
        lambda M, F: _dense_of(M.inv_sqrt(DAMPING)),
        lambda F: _fn(F, lambda lam: (lam + DAMPING).rsqrt()),
    ),
    "diag": (lambda M, F: M.diag(), lambda F: F.diagonal()),
    "trace": (lambda M, F: M.trace(), lambda F: F.trace()),
    "frobenius_norm": (lambda M, F: M.frobenius_norm(), lambda F: F.norm()),
    "abs_sum": (lambda M, F: M.abs_sum(), lambda F: F.abs().sum()),
    "eigenvalues": (lambda M, F: M.eigenvalues(), lambda F: torch.linalg.eigvalsh(F)),
    "to_dense": (lambda M, F: M.to_dense(), lambda F: F),
    "to_operator": (lambda M, F: M.to_operator().to_dense(), lambda F: F),
    "to_scipy": (
        lambda M, F: torch.as_tensor(M.to_scipy().matmat(_columns(F).numpy())),
        lambda F: F @ _columns(F),
    ),
}

# what a class does not provide: method → the words its TypeError must contain
UNAVAILABLE = {
    "CurvatureOperator": {
        "power_2": "power of a matrix-free CurvatureOperator.*to_dense",
        "power_inverse": "power of a matrix-free CurvatureOperator.*to_dense",
        "sqrt": "sqrtm of a matrix-free CurvatureOperator.*to_dense",
        "inv_sqrt": "inv_sqrtm of a matrix-free CurvatureOperator.*to_dense",
        "diag": 'diag of a matrix-free CurvatureOperator.*form="diag"',
        "trace": 'trace of a matrix-free CurvatureOperator.*method="hutchinson"',
        "frobenius_norm": 'frobenius_norm of a matrix-free CurvatureOperator.*"hutchinson"',
        "abs_sum": "abs_sum of a matrix-free CurvatureOperator.*linalg.abs_sum",
        "eigenvalues": "eigenvalues of a matrix-free CurvatureOperator.*top_eigenpairs",
    },
}


def _pi_damped_inverse(M: KFAC, F: torch.Tensor) -> torch.Tensor:
    r"""K-FAC's ``power(p, λ)`` uses the factored damping (Martens & Grosse 2015, §6.3).

    :math:`(G + \pi\sqrt\lambda I)^{-1} \otimes (A + \pi^{-1}\sqrt\lambda I)^{-1}` per
    layer, :math:`\pi = \sqrt{(\mathrm{tr}A/\dim A)/(\mathrm{tr}G/\dim G)}`, scattered with
    the layout of ``F`` (the positions of the nonzero entries of each Kronecker block).
    """
    out = torch.zeros_like(F)
    root = math.sqrt(DAMPING)
    for block in M.blocks:
        A, G = block.A, block.G
        pi = math.sqrt((A.trace() / A.shape[0]) / (G.trace() / G.shape[0]))
        inv = torch.kron(
            torch.linalg.inv(G + pi * root * _eye(G)), torch.linalg.inv(A + root / pi * _eye(A))
        )
        index = block.flat_indices()
        out[index.unsqueeze(1), index] = inv
    return out


# the one documented convention that differs from the dense formula
REFERENCE_OVERRIDES = {("KFAC", "power_inverse"): _pi_damped_inverse}


def _as_tuple(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("cls", list(CASES))
def test_interface_method_matches_dense(cls, method):
    M, F = CASES[cls]()
    assert type(M).__name__ == cls
    call, reference = METHODS[method]
    pattern = UNAVAILABLE.get(cls, {}).get(method)
    if pattern is not None:
        with pytest.raises(TypeError, match=pattern):
            call(M, F)
        return
    override = REFERENCE_OVERRIDES.get((cls, method))
    expected = override(M, F) if override else reference(F)
    got = call(M, F)
    assert all(isinstance(t, torch.Tensor) and t.dtype == DT for t in _as_tuple(got))
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-11)


def test_kfac_truth_is_a_permutation_of_the_kronecker_blocks():
    # the independent layout of the K-FAC case puts each G ⊗ A on disjoint index sets
    # that cover 0..D-1 (guards the truth matrix the interface test relies on)
    M, F = _kfac()
    covered = torch.cat([b.flat_indices() for b in M.blocks]).sort().values
    assert torch.equal(covered, torch.arange(14))
    for block in M.blocks:
        index = block.flat_indices()
        torch.testing.assert_close(F[index.unsqueeze(1), index], torch.kron(block.G, block.A))


# -- the wrappers' conventions (clamping, singular matrices, shapes) ------------------------
SINGULAR_CASES = [
    # (build, call, exception, message)
    (lambda: DiagonalMatrix(torch.tensor([0.0, 1.0], dtype=DT)),
     lambda M: M.solve(torch.ones(2, dtype=DT)), RuntimeError,
     "diagonal \\+ damping has zero entries"),
    (lambda: DiagonalMatrix(torch.tensor([-1.0, 1.0], dtype=DT)),
     lambda M: M.inv_sqrt(), RuntimeError, "diagonal \\+ damping has zero entries"),
    (lambda: DiagonalMatrix(torch.tensor([0.0, 1.0], dtype=DT)),
     lambda M: M.power(-1.0), RuntimeError, "diagonal \\+ damping has zero entries"),
    (lambda: DenseMatrix(torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=DT)),
     lambda M: M.inv_sqrt(), RuntimeError, "the matrix is singular; use a positive damping"),
    (lambda: DenseMatrix(torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=DT)),
     lambda M: M.power(-1.0), RuntimeError, "the matrix is singular; use a positive damping"),
    (lambda: DenseMatrix(torch.eye(2, dtype=DT)),
     lambda M: M.solve(torch.ones(2, dtype=DT), -1.0), ValueError,
     "damping must be a finite number >= 0"),
    (lambda: DenseMatrix(torch.eye(2, dtype=DT)),
     lambda M: M @ torch.ones(3, dtype=DT), ValueError, "expected a vector of shape \\(2,\\)"),
    (lambda: DenseMatrix(torch.ones(2, 3, dtype=DT)), None, ValueError, "\\(D, D\\) matrix"),
    (lambda: DiagonalMatrix(torch.ones(2, 2, dtype=DT)), None, ValueError, "\\(D,\\) diagonal"),
]  # fmt: skip


@pytest.mark.parametrize(("build", "call", "error", "message"), SINGULAR_CASES)
def test_wrapper_errors(build, call, error, message):
    with pytest.raises(error, match=message):
        call(build())


def test_singular_dense_solve_raises_the_torch_error():
    M = DenseMatrix(torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=DT))
    with pytest.raises(torch.linalg.LinAlgError):
        M.solve(torch.ones(2, dtype=DT))


CLAMP_CASES = [
    # a PSD matrix with round-off negative eigenvalues: sqrt clamps them to 0
    ("diag_sqrt", lambda: DiagonalMatrix(torch.tensor([-1e-17, 4.0], dtype=DT)),
     lambda M: M.sqrt().to_dense(), torch.diag(torch.tensor([0.0, 2.0], dtype=DT))),
    ("dense_sqrt", lambda: DenseMatrix(torch.diag(torch.tensor([-1e-17, 4.0], dtype=DT))),
     lambda M: M.sqrt().to_dense(), torch.diag(torch.tensor([0.0, 2.0], dtype=DT))),
    ("diag_inv_sqrt", lambda: DiagonalMatrix(torch.tensor([-1e-17, 3.0], dtype=DT)),
     lambda M: M.inv_sqrt(1.0).to_dense(), torch.diag(torch.tensor([1.0, 0.5], dtype=DT))),
    # solve does not clamp: d + λ with d < 0 is used as is
    ("diag_solve", lambda: DiagonalMatrix(torch.tensor([-0.5, 3.0], dtype=DT)),
     lambda M: M.solve(torch.ones(2, dtype=DT), 1.0), torch.tensor([2.0, 0.25], dtype=DT)),
]  # fmt: skip


@pytest.mark.parametrize(("name", "build", "call", "expected"), CLAMP_CASES)
def test_wrapper_clamping(name, build, call, expected):
    torch.testing.assert_close(call(build()), expected, rtol=0, atol=1e-15)


# -- the adapter -------------------------------------------------------------------------------
def test_as_matrix_wraps_tensors_and_passes_representations():
    A = _spd(4, 40)
    wrapped = linalg.as_matrix(A)
    assert isinstance(wrapped, DenseMatrix) and wrapped.tensor is A
    diag = linalg.as_matrix(A.diagonal())
    assert isinstance(diag, DiagonalMatrix)
    M, _ = _kfac()
    assert linalg.as_matrix(M) is M
    with pytest.raises(TypeError, match="expected a Tensor, CurvatureOperator, KFAC"):
        linalg.as_matrix(np.eye(3))
    with pytest.raises(ValueError, match=r"expected a \(D,\) diagonal or a \(D, D\) matrix"):
        linalg.as_matrix(torch.ones(2, 3, dtype=DT))


@pytest.mark.parametrize("form", ["dense", "diag"])
def test_tensor_in_tensor_out(form):
    A = _spd(5, 41)
    M = A if form == "dense" else A.diagonal().clone()
    for result in (linalg.sqrtm(M), linalg.inv_sqrtm(M, 0.1)):
        assert type(result) is torch.Tensor and result.shape == M.shape


@pytest.mark.parametrize("cls", list(CASES))
def test_linalg_on_the_interface_matches_dense(cls):
    # functions written on the interface give the dense matrix's values for every form
    M, F = CASES[cls]()
    assert math.isclose(linalg.inf_one_norm(M), linalg.inf_one_norm(F), rel_tol=1e-12)
    assert math.isclose(linalg.abs_sum(M), float(F.abs().sum()), rel_tol=1e-12)
    assert math.isclose(
        linalg.diagonal_concentration(M),
        float(F.diagonal().abs().sum() / F.abs().sum()),
        rel_tol=1e-12,
    )


def test_inf_one_norm_of_a_large_diagonal_needs_no_enumeration():
    d = torch.linspace(-1.0, 2.0, 30, dtype=DT)
    for M in (d, torch.diag(d)):
        assert math.isclose(linalg.inf_one_norm(M), float(d.abs().sum()), rel_tol=1e-12)
    with pytest.raises(ValueError, match="enumerates 2\\^30 sign vectors"):
        linalg.inf_one_norm(_spd(30, 50))
