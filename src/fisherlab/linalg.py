r"""Linear algebra on every form: solves, matrix functions, traces, norms, spectra.

Every function accepts

- a dense symmetric matrix ``(D, D)`` (:class:`torch.Tensor`, ``ndim == 2``),
- a diagonal ``(D,)`` (:class:`torch.Tensor`, ``ndim == 1``),
- a matrix-free :class:`fisherlab.CurvatureOperator`,
- a :class:`fisherlab.representations.kfac.KFAC` or
  :class:`fisherlab.representations.blockdiag.BlockDiagonal` (or any other
  representation of :mod:`fisherlab.representations`).

:func:`as_matrix` turns tensors into :class:`~fisherlab.representations.DenseMatrix` /
:class:`~fisherlab.representations.DiagonalMatrix`; every function is then written on the
representations' one interface (``@``, ``solve``, ``sqrt``, ``diag``, ``trace``, ...,
and the flags ``matrix_free`` / ``explicit``), and a tensor in gives a tensor out.
Exact answers are used where they are cheap (dense, diagonal, per-factor or per-block
formulas) and randomized estimators otherwise:

- Hutchinson's trace estimator with Rademacher probes :math:`z`,
  :math:`\mathrm{tr}(A) = \mathbb E[z^\top A z]`, and
  :math:`\|A\|_F^2 = \mathbb E[\|A z\|^2]` (both unbiased), with the standard error
  :math:`\hat s/\sqrt{m}` of the mean of :math:`m` probes;
- extreme eigenpairs by Lanczos (ARPACK's implicitly restarted Lanczos,
  :func:`scipy.sparse.linalg.eigsh`, on the SciPy view of the operator);
- the spectral density by stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017;
  Ghorbani, Krishnan & Xiao 2019) with our own Lanczos iteration (full
  reorthogonalisation);
- the :math:`\infty \to 1` norm :math:`\|H\|_{\infty,1} = \max_{\|\theta\|_\infty \le 1}
  \|H\theta\|_1` that governs sign descent (Balles 2021, Eq. 6.18), its bounds
  (Prop. 6.4 / Eq. 6.19, Prop. 6.5 / Eq. 6.20, Eq. 6.21) and the diagonal concentration
  :math:`\rho_\text{diag}(H) = \sum_i |H_{ii}| / \sum_{ij} |H_{ij}|`.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, NamedTuple

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigsh
from torch import Tensor

from fisherlab.progress import progress
from fisherlab.representations import CurvatureOperator, DenseMatrix, DiagonalMatrix
from fisherlab.representations.operator import _check_damping, _SquareMatrix, unit_vectors

__all__ = [
    "Estimate",
    "InfOneNorm",
    "SpectralDensity",
    "as_matrix",
    "as_operator",
    "as_scipy",
    "solve",
    "sqrtm",
    "inv_sqrtm",
    "trace",
    "hutchinson_trace",
    "frobenius_norm",
    "hutchinson_frobenius_norm",
    "top_eigenpairs",
    "lanczos",
    "spectral_density",
    "diagonal_concentration",
    "abs_sum",
    "inf_one_norm",
    "inf_one_norm_bounds",
]

Matrix = Tensor | _SquareMatrix


class Estimate(NamedTuple):
    """A scalar with its standard error (0 for exact values) and the number of probes."""

    value: float
    std_error: float
    num_probes: int


class SpectralDensity(NamedTuple):
    r"""Stochastic Lanczos quadrature of the measure :math:`\frac1D\sum_i\delta_{\lambda_i}`.

    ``nodes`` and ``weights`` are ``(num_probes, num_steps)`` (Ritz values and squared first
    components of the Ritz vectors; each probe's weights sum to 1); ``density`` is the
    Gaussian-smoothed estimate on ``grid``. :math:`\frac1D \mathrm{tr} f(A) \approx`
    ``(weights * f(nodes)).sum(1).mean()``.
    """

    nodes: Tensor
    weights: Tensor
    grid: Tensor
    density: Tensor


class InfOneNorm(NamedTuple):
    r"""Bounds on :math:`\|H\|_{\infty,1}` (Balles 2021, §6.4) and the quantities behind them.

    ``lower``: :math:`\max(\|H s\|_1, |\lambda|\,\|v\|_1/\|v\|_\infty)` for the leading
    eigenpair and :math:`s = \mathrm{sign}(v)` (Eq. 6.21); ``upper``: :math:`\sum_{ij}|H_{ij}|`,
    which equals the bound :math:`\rho_\text{diag}^{-1}\sum_i\lambda_i` of Prop. 6.4 for
    positive semi-definite :math:`H` (and is also the minimum with Eq. 6.20 for dense
    input); ``rho_diag`` the diagonal concentration; ``trace`` :math:`\sum_i \lambda_i`.
    """

    lower: float
    upper: float
    rho_diag: float
    trace: float


# -- the adapter ---------------------------------------------------------------------------
def as_matrix(M: Matrix) -> _SquareMatrix:
    """Return ``M`` as a representation: the one place where inputs are told apart.

    A ``(D, D)`` tensor becomes a :class:`~fisherlab.representations.DenseMatrix`, a
    ``(D,)`` tensor a :class:`~fisherlab.representations.DiagonalMatrix` (both wrap the
    tensor without copying); a representation is returned as is.

    Raises
    ------
    ValueError
        For a tensor that is neither ``(D,)`` nor ``(D, D)``.
    TypeError
        For anything that is neither a tensor nor a representation.
    """
    if isinstance(M, _SquareMatrix):
        return M
    if isinstance(M, Tensor):
        if M.ndim == 1:
            return DiagonalMatrix(M)
        if M.ndim == 2 and M.shape[0] == M.shape[1]:
            return DenseMatrix(M)
        raise ValueError(f"expected a (D,) diagonal or a (D, D) matrix, got {tuple(M.shape)}")
    raise TypeError(
        f"expected a Tensor, CurvatureOperator, KFAC or BlockDiagonal, got {type(M).__name__}"
    )


def _in_form_of(M: Matrix, result: _SquareMatrix) -> Matrix:
    """``result`` in the form ``M`` came in: the plain tensor for a tensor input."""
    return result.tensor if isinstance(M, Tensor) else result


def as_operator(M: Matrix) -> CurvatureOperator:
    """View any supported matrix as a :class:`CurvatureOperator`."""
    return as_matrix(M).to_operator()


def as_scipy(M: Matrix) -> LinearOperator:
    """View any supported matrix as a float64 :class:`scipy.sparse.linalg.LinearOperator`."""
    return as_matrix(M).to_scipy()


def _product_columns(A: _SquareMatrix, chunk_size: int):
    """Yield ``(start, stop, A E)`` for the unit-vector columns ``E`` of ``start..stop``."""
    for start in range(0, A.dim, chunk_size):
        stop = min(start + chunk_size, A.dim)
        yield start, stop, A @ unit_vectors(A.dim, torch.arange(start, stop), A.dtype, A.device)


# -- solves and matrix functions ----------------------------------------------------------
def solve(M: Matrix, v: Tensor, damping: float = 0.0, **kwargs: Any) -> Tensor:
    r"""Solve :math:`(M + \lambda I) x = v` for ``v`` of shape ``(D,)`` or ``(D, k)``.

    Dense: :func:`torch.linalg.solve`; diagonal: elementwise; operators, K-FAC and
    block-diagonal: their ``solve`` (``kwargs`` are passed on, e.g. ``damping_mode="pi"``
    for K-FAC, ``method="cg"`` for operators).
    """
    A = as_matrix(M)
    return A.solve(v, _check_damping(damping), **kwargs)


def sqrtm(M: Matrix) -> Matrix:
    r"""Principal square root :math:`M^{1/2}` of a positive semi-definite matrix, same form.

    Dense: symmetric ``eigh`` (negative round-off eigenvalues clamped to 0); diagonal:
    elementwise; K-FAC: :math:`G^{1/2} \otimes A^{1/2}`; block-diagonal: blockwise.
    A :class:`CurvatureOperator` raises ``TypeError`` (no matrix-free square root).
    """
    return _in_form_of(M, as_matrix(M).sqrt())


def inv_sqrtm(M: Matrix, damping: float = 0.0) -> Matrix:
    r""":math:`(M + \lambda I)^{-1/2}`: a tensor for dense/diagonal input, else an operator.

    K-FAC uses exact damping (see :meth:`KFAC.inv_sqrt` for the π option).
    """
    A = as_matrix(M)
    return _in_form_of(M, A.inv_sqrt(_check_damping(damping)))


# -- trace and Frobenius norm -------------------------------------------------------------
def _rademacher(dim: int, k: int, generator: torch.Generator | None, dtype: torch.dtype) -> Tensor:
    bits = torch.randint(0, 2, (dim, k), generator=generator)
    return (2 * bits - 1).to(dtype)


def _probe_values(
    A: _SquareMatrix, num_probes: int, generator: torch.Generator | None, fn, chunk: int = 32
) -> Tensor:
    values = []
    for start in range(0, num_probes, chunk):
        k = min(chunk, num_probes - start)
        Z = _rademacher(A.dim, k, generator, A.dtype).to(A.device)
        values.append(fn(Z, A @ Z))
    return torch.cat(values)


def _mean_and_error(samples: Tensor) -> Estimate:
    m = samples.numel()
    se = float(samples.std(unbiased=True) / math.sqrt(m)) if m > 1 else float("nan")
    return Estimate(float(samples.mean()), se, m)


def hutchinson_trace(
    M: Matrix, num_probes: int = 100, generator: torch.Generator | None = None
) -> Estimate:
    r"""Hutchinson's estimate :math:`\frac1m\sum_j z_j^\top M z_j`, Rademacher :math:`z_j`.

    Unbiased; the standard error is the sample standard deviation over :math:`\sqrt m`.
    """
    A = as_matrix(M)
    if num_probes < 1:
        raise ValueError(f"num_probes must be positive, got {num_probes}")
    samples = _probe_values(A, num_probes, generator, lambda Z, MZ: (Z * MZ).sum(0))
    return _mean_and_error(samples)


def hutchinson_frobenius_norm(
    M: Matrix,
    num_probes: int = 100,
    generator: torch.Generator | None = None,
    squared: bool = False,
) -> Estimate:
    r"""Estimate :math:`\|M\|_F^2 = \mathbb E\|M z\|^2` with Rademacher probes.

    ``squared=True`` returns the unbiased estimate of :math:`\|M\|_F^2`; otherwise its
    square root with a delta-method standard error :math:`\mathrm{se}/(2\sqrt{\hat s})`
    (the root is slightly biased low, by Jensen's inequality).
    """
    A = as_matrix(M)
    if num_probes < 1:
        raise ValueError(f"num_probes must be positive, got {num_probes}")
    samples = _probe_values(A, num_probes, generator, lambda Z, MZ: MZ.square().sum(0))
    est = _mean_and_error(samples)
    if squared:
        return est
    root = math.sqrt(max(est.value, 0.0))
    se = est.std_error / (2 * root) if root > 0 else float("nan")
    return Estimate(root, se, est.num_probes)


def _exact_view(A: _SquareMatrix) -> _SquareMatrix:
    """``A`` itself, or its dense matrix if it is matrix-free (``D`` products)."""
    return DenseMatrix(A.to_dense(), A.name) if A.matrix_free else A


def _check_method(method: str) -> None:
    if method not in ("auto", "exact", "hutchinson"):
        raise ValueError(f"method must be 'auto', 'exact' or 'hutchinson', got {method!r}")


def trace(
    M: Matrix,
    method: str = "auto",
    num_probes: int = 100,
    generator: torch.Generator | None = None,
) -> Estimate:
    """Trace: exact (``std_error = 0``) for every form except operators, where ``"auto"``
    uses :func:`hutchinson_trace`. ``method`` is ``"auto"``, ``"exact"`` or
    ``"hutchinson"``; ``"exact"`` on an operator builds the dense matrix.
    """  # noqa: D205
    A = as_matrix(M)
    _check_method(method)
    if method == "hutchinson" or (method == "auto" and A.matrix_free):
        return hutchinson_trace(A, num_probes, generator)
    return Estimate(float(_exact_view(A).trace()), 0.0, 0)


def frobenius_norm(
    M: Matrix,
    method: str = "auto",
    num_probes: int = 100,
    generator: torch.Generator | None = None,
    squared: bool = False,
) -> Estimate:
    r"""Frobenius norm :math:`\|M\|_F` (or its square): exact except for operators.

    ``"auto"`` is exact for tensors, K-FAC (:math:`\sqrt{\sum_l\|G_l\|_F^2\|A_l\|_F^2}`)
    and block-diagonal matrices and uses :func:`hutchinson_frobenius_norm` for operators;
    ``"exact"`` on an operator builds the dense matrix.
    """
    A = as_matrix(M)
    _check_method(method)
    if method == "hutchinson" or (method == "auto" and A.matrix_free):
        return hutchinson_frobenius_norm(A, num_probes, generator, squared)
    value = float(_exact_view(A).frobenius_norm())
    return Estimate(value**2 if squared else value, 0.0, 0)


# -- spectra ---------------------------------------------------------------------------------
def top_eigenpairs(
    M: Matrix, k: int = 5, which: str = "LA", method: str = "auto", tol: float = 0.0
) -> tuple[Tensor, Tensor]:
    r"""Return the ``k`` largest (``which="LA"``) or largest-magnitude (``"LM"``) eigenpairs.

    ``method="lanczos"`` runs :func:`scipy.sparse.linalg.eigsh` (implicitly restarted
    Lanczos, ARPACK) on :func:`as_scipy` — only matrix products; ``"exact"`` uses
    ``eigh`` of the dense matrix; ``"auto"`` is exact for tensors and Lanczos otherwise.
    Returns eigenvalues ``(k,)`` in descending order and eigenvectors ``(D, k)``.
    """
    A = as_matrix(M)
    D = A.dim
    if not 1 <= k <= D:
        raise ValueError(f"k must be in [1, {D}], got {k}")
    if which not in ("LA", "LM"):
        raise ValueError(f"which must be 'LA' or 'LM', got {which!r}")
    if method == "auto":
        method = "exact" if A.explicit else "lanczos"
    if method == "exact" or k >= D:
        lam, Q = torch.linalg.eigh(A.to_dense())
        order = (
            lam.argsort(descending=True) if which == "LA" else lam.abs().argsort(descending=True)
        )
        order = order[:k]
        return lam[order], Q[:, order]
    if method != "lanczos":
        raise ValueError(f"method must be 'auto', 'exact' or 'lanczos', got {method!r}")
    values, vectors = eigsh(A.to_scipy(), k=k, which=which, tol=tol)
    order = np.argsort(-values if which == "LA" else -np.abs(values))
    lam = torch.as_tensor(values[order], dtype=A.dtype, device=A.device)
    Q = torch.as_tensor(vectors[:, order], dtype=A.dtype, device=A.device)
    return lam, Q


def lanczos(M: Matrix, v0: Tensor, num_steps: int) -> tuple[Tensor, Tensor]:
    r"""``num_steps`` Lanczos steps from ``v0`` with full reorthogonalisation.

    Returns the tridiagonal matrix's diagonal :math:`\alpha` ``(m,)`` and off-diagonal
    :math:`\beta` ``(m - 1,)`` (``m <= num_steps``: the iteration stops early at an
    invariant subspace).
    """
    A = as_matrix(M)
    q = v0 / v0.norm()
    basis = [q]
    alphas, betas = [], []
    for step in progress(range(num_steps), num_steps, "Lanczos", min_total=50):
        w = (A @ q.unsqueeze(1))[:, 0]
        alpha = torch.dot(q, w)
        alphas.append(alpha)
        Q = torch.stack(basis, dim=1)
        w = w - Q @ (Q.T @ w)
        w = w - Q @ (Q.T @ w)  # twice is enough (Kahan)
        beta = w.norm()
        if step + 1 == num_steps or beta <= 1e-10 * max(1.0, float(alpha.abs())):
            break
        betas.append(beta)
        q = w / beta
        basis.append(q)
    alpha_t = torch.stack(alphas)
    beta_t = torch.stack(betas) if betas else alpha_t.new_zeros(0)
    return alpha_t, beta_t


def spectral_density(
    M: Matrix,
    num_probes: int = 10,
    num_steps: int = 50,
    generator: torch.Generator | None = None,
    grid: Tensor | None = None,
    sigma: float | None = None,
) -> SpectralDensity:
    r"""Spectral density by stochastic Lanczos quadrature.

    For each Rademacher probe :math:`z` (normalised), ``num_steps`` Lanczos steps give
    :math:`T = U \mathrm{diag}(\theta) U^\top`; the nodes :math:`\theta_j` and weights
    :math:`\tau_j = U_{1j}^2` make a Gauss quadrature of :math:`z^\top f(M) z / \|z\|^2`,
    whose mean over probes estimates :math:`\frac1D \mathrm{tr} f(M)` (exact for
    polynomials of degree :math:`< 2m` per probe). The density is
    :math:`\phi(t) = \frac{1}{n_v}\sum_{v,j} \tau_j \mathcal N(t; \theta_j, \sigma^2)`
    on ``grid`` (default: 512 points spanning the nodes, :math:`\sigma` = 1% of the span).
    """
    A = as_matrix(M)
    D = A.dim
    steps = min(num_steps, D)
    nodes = torch.zeros(num_probes, steps, dtype=A.dtype)
    weights = torch.zeros(num_probes, steps, dtype=A.dtype)
    for j in range(num_probes):
        z = _rademacher(D, 1, generator, A.dtype)[:, 0].to(A.device)
        alpha, beta = lanczos(A, z, steps)
        T = torch.diag(alpha) + torch.diag(beta, 1) + torch.diag(beta, -1)
        theta, U = torch.linalg.eigh(T)
        m = theta.numel()
        nodes[j, :m] = theta.cpu()
        weights[j, :m] = U[0].square().cpu()
    if grid is None:
        low, high = float(nodes.min()), float(nodes.max())
        pad = 0.05 * (high - low) + 1e-12
        grid = torch.linspace(low - pad, high + pad, 512, dtype=A.dtype)
    if sigma is None:
        sigma = 0.01 * float(grid[-1] - grid[0]) + 1e-12
    diff = grid.view(-1, 1, 1) - nodes.unsqueeze(0)
    kernel = torch.exp(-0.5 * (diff / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    density = (kernel * weights.unsqueeze(0)).sum((1, 2)) / num_probes
    return SpectralDensity(nodes, weights, grid, density)


# -- sign-descent geometry (Balles 2021, ch. 6) ------------------------------------------------
def abs_sum(M: Matrix, chunk_size: int = 256) -> float:
    r""":math:`\sum_{ij}|M_{ij}|`; operators column chunk by column chunk (``D`` products)."""
    A = as_matrix(M)
    if not A.matrix_free:
        return float(A.abs_sum())
    return sum(float(AE.abs().sum()) for _, _, AE in _product_columns(A, chunk_size))


def _diag(A: _SquareMatrix, chunk_size: int = 256) -> Tensor:
    """The diagonal; of a matrix-free operator from ``D`` products with unit vectors."""
    if not A.matrix_free:
        return A.diag()
    out = torch.empty(A.dim, dtype=A.dtype, device=A.device)
    for start, stop, AE in _product_columns(A, chunk_size):
        idx = torch.arange(start, stop)
        out[start:stop] = AE[idx, idx - start]
    return out


def diagonal_concentration(M: Matrix) -> float:
    r""":math:`\rho_\text{diag}(M) = \sum_i|M_{ii}| / \sum_{ij}|M_{ij}| \in [1/D, 1]` (Balles Prop. 6.4)."""  # noqa: E501
    A = as_matrix(M)
    total = abs_sum(A)
    if total == 0.0:
        raise ValueError("diagonal concentration of the zero matrix is undefined")
    return float(_diag(A).abs().sum()) / total


def inf_one_norm(H: Matrix, max_dim: int = 20) -> float:
    r"""Exact :math:`\|H\|_{\infty,1} = \max_{s \in \{\pm1\}^D} \|H s\|_1` by enumeration.

    The maximum of a convex function over the cube is attained at a vertex; the cost is
    :math:`2^{D-1}` products, so only for ``D <= max_dim`` (the problem is NP-hard in
    general, Rohn 2000); any form works (only products ``H S`` are used). A diagonal
    matrix (:math:`\sum_i |H_{ii}| = \sum_{ij} |H_{ij}|`, e.g. a ``(D,)`` tensor) has
    :math:`\|H\|_{\infty,1} = \sum_i |H_{ii}|` for any ``D``.
    """
    A = as_matrix(H)
    total = abs_sum(A)
    if float(_diag(A).abs().sum()) == total:
        return total
    D = A.dim
    if D > max_dim:
        raise ValueError(f"exact ∞→1 norm enumerates 2^{D} sign vectors; D={D} > {max_dim}")
    signs = torch.tensor(list(itertools.product((1.0, -1.0), repeat=D - 1)), dtype=A.dtype)
    S = torch.cat([torch.ones(signs.shape[0], 1, dtype=A.dtype), signs], dim=1)
    return float((A @ S.T.to(A.device)).abs().sum(0).max())


def inf_one_norm_bounds(M: Matrix) -> InfOneNorm:
    r"""Lower and upper bounds on :math:`\|M\|_{\infty,1}` for symmetric ``M``.

    Upper: :math:`\sum_{ij}|M_{ij}|` (:math:`= \rho_\text{diag}^{-1}\sum_i\lambda_i` for
    positive semi-definite M, Balles Eq. 6.19), tightened for dense input by Eq. 6.20,
    :math:`\sum_i|\lambda_i|\|v^{(i)}\|_1^2`. Lower: Eq. 6.21 for the leading eigenpair
    (by Lanczos unless dense) and :math:`\|M\,\mathrm{sign}(v)\|_1`. A diagonal matrix
    (:math:`\sum_i|M_{ii}| = \sum_{ij}|M_{ij}|`) has both bounds equal to the norm
    :math:`\sum_i |M_{ii}|`.
    """
    A = as_matrix(M)
    total = abs_sum(A)
    diag = _diag(A)
    diag_total = float(diag.abs().sum())
    if diag_total == total:
        return InfOneNorm(total, total, 1.0, float(diag.sum()))
    rho = diag_total / total
    upper = total
    if A.explicit:
        lam, Q = torch.linalg.eigh(A.to_dense())
        upper = min(upper, float((lam.abs() * Q.abs().sum(0).square()).sum()))
        i = int(lam.abs().argmax())
        lam1, v = lam[i], Q[:, i]
    else:
        lam1_t, V = top_eigenpairs(A, k=1, which="LM", method="auto")
        lam1, v = lam1_t[0], V[:, 0]
    ratio = float(lam1.abs() * v.abs().sum() / v.abs().max())
    s = torch.where(v >= 0, 1.0, -1.0).to(v.dtype)
    by_sign = float((A @ s.unsqueeze(1)).abs().sum())
    return InfOneNorm(max(ratio, by_sign), upper, rho, float(diag.sum()))
