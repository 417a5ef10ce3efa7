r"""The matrix interface every representation shares, and matrix-free operators.

:class:`_SquareMatrix` declares the interface of a symmetric ``D × D`` representation
:math:`A`:

- ``A @ v``: :math:`A v` for ``(D,)``, :math:`A V` for columns ``(D, k)``;
- ``solve(v, damping)``: :math:`(A + \lambda I)^{-1} v`;
- ``power(p, damping)``: :math:`(A + \lambda I)^p`, as a representation;
- ``sqrt()``: :math:`A^{1/2}` of a positive semi-definite :math:`A`;
- ``inv_sqrt(damping)``: :math:`(A + \lambda I)^{-1/2}`;
- ``diag()``, ``trace()``: :math:`(A_{ii})_i` and :math:`\sum_i A_{ii}`;
- ``frobenius_norm()``: :math:`\|A\|_F = (\sum_{ij} A_{ij}^2)^{1/2}`;
- ``abs_sum()``: :math:`\sum_{ij} |A_{ij}|`;
- ``eigenvalues()``: all ``D`` eigenvalues, ascending;
- ``to_dense()``, ``to_scipy()``, ``to_operator()``: the ``(D, D)`` tensor, a SciPy
  ``LinearOperator`` and a :class:`CurvatureOperator` view.

A method a class cannot provide exactly and cheaply raises ``TypeError`` naming the class
and the cheaper route. Two flags state the cost model for :mod:`fisherlab.linalg`:
``matrix_free`` (only products are available, so traces and norms are estimated) and
``explicit`` (the entries are stored, so a full eigendecomposition is the exact route).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, cg
from torch import Tensor

from fisherlab.progress import progress
from fisherlab.validation import check_memory

__all__ = ["CurvatureOperator", "unit_vectors"]


def unit_vectors(
    dim: int, index: Tensor, dtype: torch.dtype, device: torch.device | None = None
) -> Tensor:
    """Unit vectors ``e_i`` of length ``dim`` for ``i`` in ``index``, as columns ``(dim, k)``.

    The probes of every product-built dense matrix, diagonal and absolute sum.
    """
    E = torch.zeros(dim, index.numel(), dtype=dtype, device=device)
    E[index.to(E.device), torch.arange(index.numel(), device=E.device)] = 1.0
    return E


MatMat = Callable[[Tensor], Tensor]


def _check_damping(damping: float) -> float:
    damping = float(damping)
    if not (damping >= 0.0 and np.isfinite(damping)):
        raise ValueError(f"damping must be a finite number >= 0, got {damping}")
    return damping


class _SquareMatrix:
    """The interface of every ``D × D`` representation, with size, dtype, device and name.

    See the module docstring for the methods. The defaults here raise ``TypeError`` (or
    ``NotImplementedError`` for the products, solves and dense views every subclass
    defines) and build the operator and SciPy views from ``self @ V``.
    """

    matrix_free: bool = False
    explicit: bool = False

    def __init__(self, dim: int, dtype: torch.dtype, device: torch.device, name: str) -> None:
        self.dim = dim
        self.dtype = dtype
        self.device = device
        self.name = name

    @property
    def shape(self) -> tuple[int, int]:
        """``(D, D)``."""
        return (self.dim, self.dim)

    def _as_columns(self, v: Tensor) -> tuple[Tensor, bool]:
        """Check ``v`` (``(D,)`` or ``(D, k)``); return it as columns, and whether a vector."""
        if not isinstance(v, Tensor):
            raise TypeError(f"{self.name}: expected a torch.Tensor, got {type(v).__name__}")
        if v.ndim not in (1, 2) or v.shape[0] != self.dim:
            raise ValueError(
                f"{self.name}: expected a vector of shape ({self.dim},) or a matrix of shape "
                f"({self.dim}, k), got {tuple(v.shape)}"
            )
        is_vector = v.ndim == 1
        return (v.unsqueeze(1) if is_vector else v).to(self.dtype), is_vector

    def _check_dense(self, cheaper: str) -> None:
        """Refuse ``to_dense()`` above the memory limit, naming the ``cheaper`` views."""
        check_memory(
            self.dim * self.dim,
            self.dtype,
            f"{self.name}.to_dense(): a dense ({self.dim}, {self.dim}) matrix",
            cheaper,
            device=self.device,
        )

    def _unavailable(self, what: str, route: str) -> NoReturn:
        kind = "matrix-free " if self.matrix_free else ""
        raise TypeError(f"{what} of a {kind}{type(self).__name__} is not available; {route}")

    def _abstract(self, what: str) -> NoReturn:
        raise NotImplementedError(f"{type(self).__name__} does not define {what}")

    # -- the interface -------------------------------------------------------------------
    def __matmul__(self, v: Tensor) -> Tensor:
        """``A v`` for a vector ``(D,)`` or ``A V`` for columns ``(D, k)``."""
        self._abstract("@")

    def solve(self, v: Tensor, damping: float = 0.0) -> Tensor:
        r"""Solve :math:`(A + \lambda I) x = v` for ``v`` of shape ``(D,)`` or ``(D, k)``."""
        self._abstract("solve()")

    def to_dense(self) -> Tensor:
        """Return the dense ``(D, D)`` matrix."""
        self._abstract("to_dense()")

    def power(self, p: float, damping: float = 0.0) -> _SquareMatrix:
        r""":math:`(A + \lambda I)^p` as a representation."""
        self._unavailable("power", "use to_dense() for small D")

    def sqrt(self) -> _SquareMatrix:
        r"""Principal square root :math:`A^{1/2}` of a positive semi-definite matrix."""
        self._unavailable("sqrtm", "use to_dense() for small D")

    def inv_sqrt(self, damping: float = 0.0) -> _SquareMatrix:
        r""":math:`(A + \lambda I)^{-1/2}`."""
        self._unavailable("inv_sqrtm", "use to_dense() for small D")

    def diag(self) -> Tensor:
        """Return the diagonal ``(D,)``."""
        self._unavailable(
            "diag", 'compute form="diag" of the quantity, or use to_dense() for small D'
        )

    def trace(self) -> Tensor:
        r""":math:`\mathrm{tr}(A)`."""
        self._unavailable("trace", 'use fisherlab.linalg.trace(..., method="hutchinson")')

    def frobenius_norm(self) -> Tensor:
        r""":math:`\|A\|_F`."""
        self._unavailable(
            "frobenius_norm", 'use fisherlab.linalg.frobenius_norm(..., method="hutchinson")'
        )

    def abs_sum(self) -> Tensor:
        r""":math:`\sum_{ij} |A_{ij}|`."""
        self._unavailable("abs_sum", "use fisherlab.linalg.abs_sum (D products)")

    def eigenvalues(self) -> Tensor:
        """All ``D`` eigenvalues, ascending."""
        self._unavailable(
            "eigenvalues",
            "use fisherlab.linalg.top_eigenpairs (Lanczos) or spectral_density, or to_dense() "
            "for small D",
        )

    def to_operator(self) -> CurvatureOperator:
        """Return a matrix-free :class:`CurvatureOperator` view (products ``self @ V``)."""
        return CurvatureOperator(
            lambda V: self @ V, self.dim, self.dtype, self.device, name=self.name
        )

    def to_scipy(self) -> LinearOperator:
        """Return a :class:`scipy.sparse.linalg.LinearOperator` view (float64)."""
        return self.to_operator().to_scipy()


class CurvatureOperator(_SquareMatrix):
    r"""A symmetric ``D × D`` matrix known only through products ``A V``.

    Parameters
    ----------
    matmat : callable
        Maps ``V`` of shape ``(D, k)`` to ``A V`` of shape ``(D, k)``.
    dim : int
        The dimension ``D``.
    dtype, device
        Those of the vectors the operator acts on.
    name : str
        What the operator represents (shown in ``repr`` and error messages).
    dense_threshold : int
        ``solve(method="auto")`` builds the dense matrix and solves directly when
        ``D <= dense_threshold``, and uses conjugate gradients otherwise.

    Notes
    -----
    Only products, solves and the dense and SciPy views are available: ``sqrt``,
    ``power``, ``inv_sqrt``, ``diag``, ``trace``, ``frobenius_norm``, ``abs_sum`` and
    ``eigenvalues`` raise ``TypeError`` naming the route (the estimators of
    :mod:`fisherlab.linalg`, or :meth:`to_dense` for small ``D``).

    Examples
    --------
    >>> import torch
    >>> A = torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    >>> op = CurvatureOperator(lambda V: A @ V, 2, torch.float64, torch.device("cpu"))
    >>> op @ torch.tensor([1.0, 0.0], dtype=torch.float64)
    tensor([2., 1.], dtype=torch.float64)
    """

    matrix_free = True

    def __init__(
        self,
        matmat: MatMat,
        dim: int,
        dtype: torch.dtype,
        device: torch.device,
        name: str = "operator",
        dense_threshold: int = 2048,
    ) -> None:
        super().__init__(dim, dtype, device, name)
        self._matmat = matmat
        self.dense_threshold = dense_threshold

    def __repr__(self) -> str:
        return f"CurvatureOperator({self.name}, shape={self.shape}, dtype={self.dtype})"

    def to_operator(self) -> CurvatureOperator:
        """Return the operator itself."""
        return self

    def __matmul__(self, v: Tensor) -> Tensor:
        """``A v`` for a vector ``(D,)`` or ``A V`` for columns ``(D, k)``."""
        V, is_vector = self._as_columns(v)
        out = self._matmat(V)
        return out[:, 0] if is_vector else out

    def to_dense(self, chunk_size: int = 256) -> Tensor:
        """The dense ``(D, D)`` matrix, built from products with unit-vector blocks."""
        self._check_dense("products (A @ v) and solve(), which need no dense matrix")
        columns = []
        starts = range(0, self.dim, chunk_size)
        for start in progress(starts, len(starts), f"{self.name}.to_dense", min_total=8):
            stop = min(start + chunk_size, self.dim)
            E = unit_vectors(self.dim, torch.arange(start, stop), self.dtype, self.device)
            columns.append(self._matmat(E))
        return torch.cat(columns, dim=1)

    def to_scipy(self) -> LinearOperator:
        """A :class:`scipy.sparse.linalg.LinearOperator` (float64 NumPy) view."""

        def matmat(V: np.ndarray) -> np.ndarray:
            V = np.asarray(V)
            columns = torch.as_tensor(V.reshape(self.dim, -1), dtype=self.dtype)
            out = self._matmat(columns.to(self.device)).detach().cpu().double().numpy()
            return out.reshape(V.shape)

        return LinearOperator(
            self.shape, matvec=matmat, matmat=matmat, rmatvec=matmat, dtype=np.float64
        )

    def solve(
        self,
        v: Tensor,
        damping: float = 0.0,
        method: str = "auto",
        rtol: float = 1e-10,
        maxiter: int | None = None,
    ) -> Tensor:
        r"""Solve :math:`(A + \lambda I) x = v` for a vector or matrix of columns ``v``.

        Parameters
        ----------
        v : Tensor
            Right-hand side, ``(D,)`` or ``(D, k)``.
        damping : float
            :math:`\lambda \geq 0`.
        method : {"auto", "dense", "cg"}
            ``"dense"`` builds the matrix and uses :func:`torch.linalg.solve`; ``"cg"`` runs
            SciPy's conjugate gradients on :meth:`to_scipy` (``A + λI`` must be positive
            definite); ``"auto"`` picks dense for ``D <= dense_threshold``.
        rtol : float
            Relative residual tolerance of conjugate gradients.
        maxiter : int or None
            Iteration cap of conjugate gradients (default ``10 D``).

        Raises
        ------
        RuntimeError
            If conjugate gradients does not reach ``rtol``, or the damped matrix is singular.
        """
        damping = _check_damping(damping)
        if method not in ("auto", "dense", "cg"):
            raise ValueError(f"method must be 'auto', 'dense' or 'cg', got {method!r}")
        V, is_vector = self._as_columns(v)
        if method == "dense" or (method == "auto" and self.dim <= self.dense_threshold):
            A = self.to_dense()
            A.diagonal().add_(damping)
            try:
                X = torch.linalg.solve(A, V)
            except torch.linalg.LinAlgError as error:
                raise RuntimeError(
                    f"{self.name} + {damping}·I is singular; use a positive damping"
                ) from error
        else:
            X = self._solve_cg(V, damping, rtol, maxiter)
        return X[:, 0] if is_vector else X

    def _solve_cg(self, V: Tensor, damping: float, rtol: float, maxiter: int | None) -> Tensor:
        base = self.to_scipy()
        damped = LinearOperator(
            self.shape, matvec=lambda x: base.matvec(x) + damping * x, dtype=np.float64
        )
        columns = []
        for column in V.T:
            rhs = column.detach().cpu().double().numpy()
            solution, info = cg(damped, rhs, rtol=rtol, atol=0.0, maxiter=maxiter or 10 * self.dim)
            if info != 0:
                raise RuntimeError(
                    f"conjugate gradients on {self.name} + {damping}·I did not converge to "
                    f"rtol={rtol} (info={info}); increase damping or maxiter"
                )
            columns.append(torch.as_tensor(solution, dtype=self.dtype, device=self.device))
        return torch.stack(columns, dim=1)


class _BlockMatrix(_SquareMatrix):
    """Blocks plus the matrix-free views built on ``self @ V``.

    The base of :class:`~fisherlab.representations.kfac.KFAC` and
    :class:`~fisherlab.representations.blockdiag.BlockDiagonal`.
    """

    def __init__(
        self, blocks: list, dim: int, dtype: torch.dtype, device: torch.device, name: str
    ) -> None:
        super().__init__(dim, dtype, device, name)
        self.blocks = blocks

    def _operator(self, matmat: MatMat, name: str) -> CurvatureOperator:
        return CurvatureOperator(matmat, self.dim, self.dtype, self.device, name=name)

    def _dense_zeros(self) -> Tensor:
        """A zero ``(D, D)`` matrix for ``to_dense()``, after the memory check."""
        self._check_dense(
            "products (A @ v), solve(), diag() and trace(), which need no dense matrix"
        )
        return torch.zeros(self.dim, self.dim, dtype=self.dtype, device=self.device)

    def power(self, p: float, damping: float = 0.0) -> _SquareMatrix:
        r""":math:`(A + \lambda I)^p` matrix-free, through the subclass's ``power_operator``."""
        return self.power_operator(p, damping)
