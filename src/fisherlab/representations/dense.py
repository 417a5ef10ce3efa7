r"""``form="dense"`` and ``form="diag"`` as representations: wrappers of a plain tensor.

The forms themselves return plain tensors, ``(D, D)`` and ``(D,)``;
:func:`fisherlab.linalg.as_matrix` wraps them in :class:`DenseMatrix` and
:class:`DiagonalMatrix` so that :mod:`fisherlab.linalg` works on one interface. Matrix
functions of a symmetric :math:`A = Q \mathrm{diag}(\lambda) Q^\top` use the eigenvalues
clamped at zero (round-off makes a positive semi-definite matrix slightly indefinite),
:math:`(A + \delta I)^p = Q \mathrm{diag}((\max(\lambda, 0) + \delta)^p) Q^\top`; negative
powers of a singular damped matrix are refused.
"""

from __future__ import annotations

import torch
from scipy.sparse.linalg import LinearOperator, aslinearoperator
from torch import Tensor

from fisherlab.representations.operator import _check_damping, _SquareMatrix

__all__ = ["DenseMatrix", "DiagonalMatrix"]


def _sym_power(A: Tensor, power: float, damping: float) -> Tensor:
    lam, Q = torch.linalg.eigh(A)
    lam = lam.clamp_min(0.0) + damping
    if power < 0 and bool((lam <= 0).any()):
        raise RuntimeError("the matrix is singular; use a positive damping")
    return (Q * lam.pow(power)) @ Q.T


class DenseMatrix(_SquareMatrix):
    """A symmetric matrix stored as a dense ``(D, D)`` tensor (``form="dense"``).

    Parameters
    ----------
    tensor : Tensor
        The ``(D, D)`` matrix; kept as is (not copied).
    name : str
        Shown in ``repr`` and error messages.
    """

    explicit = True

    def __init__(self, tensor: Tensor, name: str = "dense") -> None:
        if not isinstance(tensor, Tensor) or tensor.ndim != 2 or tensor.shape[0] != tensor.shape[1]:
            shape = tuple(tensor.shape) if isinstance(tensor, Tensor) else type(tensor).__name__
            raise ValueError(f"DenseMatrix: tensor must be a (D, D) matrix, got {shape}")
        super().__init__(tensor.shape[0], tensor.dtype, tensor.device, name)
        self.tensor = tensor

    def __repr__(self) -> str:
        return f"DenseMatrix({self.name}, shape={self.shape}, dtype={self.dtype})"

    def __matmul__(self, v: Tensor) -> Tensor:
        """``A v`` for ``(D,)`` or ``A V`` for ``(D, k)``."""
        V, is_vector = self._as_columns(v)
        return self.tensor @ (V[:, 0] if is_vector else V)

    def solve(self, v: Tensor, damping: float = 0.0) -> Tensor:
        r"""Solve :math:`(A + \lambda I) x = v` with :func:`torch.linalg.solve`.

        Raises :class:`torch.linalg.LinAlgError` if the damped matrix is singular.
        """
        damping = _check_damping(damping)
        A = self.tensor + damping * torch.eye(self.dim, dtype=self.dtype, device=self.device)
        return torch.linalg.solve(A, v)

    def power(self, p: float, damping: float = 0.0) -> DenseMatrix:
        r""":math:`(A + \lambda I)^p` by ``eigh`` (eigenvalues clamped at 0, then damped)."""
        damping = _check_damping(damping)
        return DenseMatrix(_sym_power(self.tensor, p, damping), f"{self.name}^{p}")

    def sqrt(self) -> DenseMatrix:
        r""":math:`A^{1/2}` by ``eigh``, negative round-off eigenvalues clamped to 0."""
        return DenseMatrix(_sym_power(self.tensor, 0.5, 0.0), f"{self.name}^0.5")

    def inv_sqrt(self, damping: float = 0.0) -> DenseMatrix:
        r""":math:`(A + \lambda I)^{-1/2}` by ``eigh``; refused if the damped matrix is singular."""
        damping = _check_damping(damping)
        return DenseMatrix(_sym_power(self.tensor, -0.5, damping), f"{self.name}^-0.5")

    def diag(self) -> Tensor:
        """Return the diagonal ``(D,)`` (a view)."""
        return self.tensor.diagonal()

    def trace(self) -> Tensor:
        r""":math:`\sum_i A_{ii}`."""
        return self.tensor.trace()

    def frobenius_norm(self) -> Tensor:
        r""":math:`\|A\|_F`."""
        return self.tensor.norm()

    def abs_sum(self) -> Tensor:
        r""":math:`\sum_{ij} |A_{ij}|`."""
        return self.tensor.abs().sum()

    def eigenvalues(self) -> Tensor:
        """All ``D`` eigenvalues, ascending (:func:`torch.linalg.eigvalsh`)."""
        return torch.linalg.eigvalsh(self.tensor)

    def to_dense(self) -> Tensor:
        """Return the stored tensor itself."""
        return self.tensor

    def to_scipy(self) -> LinearOperator:
        """A float64 :class:`scipy.sparse.linalg.LinearOperator` of a NumPy copy."""
        return aslinearoperator(self.tensor.detach().cpu().double().numpy())


class DiagonalMatrix(_SquareMatrix):
    r"""A diagonal matrix :math:`\mathrm{diag}(d)`, stored as ``d`` ``(D,)`` (``form="diag"``).

    Parameters
    ----------
    tensor : Tensor
        The diagonal :math:`d`, ``(D,)``; kept as is (not copied).
    name : str
        Shown in ``repr`` and error messages.
    """

    explicit = True

    def __init__(self, tensor: Tensor, name: str = "diag") -> None:
        if not isinstance(tensor, Tensor) or tensor.ndim != 1:
            shape = tuple(tensor.shape) if isinstance(tensor, Tensor) else type(tensor).__name__
            raise ValueError(f"DiagonalMatrix: tensor must be a (D,) diagonal, got {shape}")
        super().__init__(tensor.shape[0], tensor.dtype, tensor.device, name)
        self.tensor = tensor

    def __repr__(self) -> str:
        return f"DiagonalMatrix({self.name}, shape={self.shape}, dtype={self.dtype})"

    def __matmul__(self, v: Tensor) -> Tensor:
        r""":math:`d \odot v` for ``(D,)``, row scaling of ``(D, k)``."""
        V, is_vector = self._as_columns(v)
        return self.tensor * V[:, 0] if is_vector else self.tensor.unsqueeze(1) * V

    def solve(self, v: Tensor, damping: float = 0.0) -> Tensor:
        r""":math:`x_i = v_i / (d_i + \lambda)`; refused if a damped entry is zero."""
        damping = _check_damping(damping)
        d = self.tensor + damping
        if bool((d == 0).any()):
            raise RuntimeError("diagonal + damping has zero entries; use a positive damping")
        return v / (d if v.ndim == 1 else d.unsqueeze(1))

    def _clamped(self, damping: float, negative_power: bool) -> Tensor:
        r""":math:`\max(d, 0) + \lambda`, refused for negative powers if an entry is 0."""
        d = self.tensor.clamp_min(0.0) + damping
        if negative_power and bool((d <= 0).any()):
            raise RuntimeError("diagonal + damping has zero entries; use a positive damping")
        return d

    def power(self, p: float, damping: float = 0.0) -> DiagonalMatrix:
        r""":math:`(\max(d, 0) + \lambda)^p` elementwise."""
        damping = _check_damping(damping)
        return DiagonalMatrix(self._clamped(damping, p < 0).pow(p), f"{self.name}^{p}")

    def sqrt(self) -> DiagonalMatrix:
        r""":math:`\max(d, 0)^{1/2}` elementwise."""
        return DiagonalMatrix(self.tensor.clamp_min(0.0).sqrt(), f"{self.name}^0.5")

    def inv_sqrt(self, damping: float = 0.0) -> DiagonalMatrix:
        r""":math:`(\max(d, 0) + \lambda)^{-1/2}` elementwise."""
        damping = _check_damping(damping)
        return DiagonalMatrix(self._clamped(damping, True).rsqrt(), f"{self.name}^-0.5")

    def diag(self) -> Tensor:
        """Return the stored diagonal itself."""
        return self.tensor

    def trace(self) -> Tensor:
        r""":math:`\sum_i d_i`."""
        return self.tensor.sum()

    def frobenius_norm(self) -> Tensor:
        r""":math:`\|d\|_2`."""
        return self.tensor.norm()

    def abs_sum(self) -> Tensor:
        r""":math:`\sum_i |d_i|`."""
        return self.tensor.abs().sum()

    def eigenvalues(self) -> Tensor:
        """The entries of ``d``, ascending."""
        return self.tensor.sort().values

    def to_dense(self) -> Tensor:
        r""":math:`\mathrm{diag}(d)`, ``(D, D)``; small ``D`` only."""
        self._check_dense(
            "products (A @ v), solve(), diag() and trace(), which need no dense matrix"
        )
        return torch.diag(self.tensor)
