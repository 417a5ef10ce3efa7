r"""``form="ekfac"``: eigenvalue-corrected K-FAC (EK-FAC, George et al. 2018).

K-FAC's block :math:`G \otimes A` of a layer has the eigenbasis :math:`Q_G \otimes Q_A`
(eigenvectors of the factors) and the eigenvalues :math:`g_i a_j`. EK-FAC keeps the basis
and replaces the eigenvalues by the second moments of the per-sample layer gradients in
it (George et al. 2018, Eq. 19),

.. math::
    s_{ij} = c \sum_n \sum_k \big((Q_G^\top \nabla_{nk} Q_A)_{ij}\big)^2, \qquad
    \nabla_{nk} = \sum_t g_{nk,t} \bar a_{n,t}^\top,

the diagonal of the exact layer block :math:`B` in that basis, so the block is
:math:`(Q_G \otimes Q_A)\,\mathrm{diag}(\mathrm{vec}\, s)\,(Q_G \otimes Q_A)^\top`. Among
the matrices diagonal in :math:`Q_G \otimes Q_A` it is the closest to :math:`B` in the
Frobenius norm, and K-FAC is one of them: EK-FAC is at least as close to the exact block
as K-FAC (George et al. 2018, §3.2). Functions of the matrix act on :math:`s`:
:math:`\phi(\cdot) v = \mathrm{vec}(Q_G[\phi(s) \odot (Q_G^\top V Q_A)] Q_A^\top)`, so
exactly damped powers stay in the structure. Layout as in
:mod:`fisherlab.representations.kfac` (augmented weight :math:`[W, \beta]`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from fisherlab.representations.kfac import KroneckerBlock
from fisherlab.representations.operator import (
    CurvatureOperator,
    _BlockMatrix,
    _check_damping,
    unit_vectors,
)

__all__ = ["EKFAC"]


class EKFAC(_BlockMatrix):
    r"""Block-diagonal matrix with one block :math:`Q\,\mathrm{diag}(s)\,Q^\top` per layer.

    Parameters
    ----------
    blocks : list of KroneckerBlock
        The layers with their K-FAC factors; the eigenbases are ``block.eig()``'s.
    scales : list of Tensor
        The eigenvalues :math:`s` of each layer, ``(out_features, in_features)``.
    dim : int
        ``D``.
    dtype, device
        Those of the factors and vectors.
    name : str
        Shown in ``repr``.
    """

    def __init__(
        self,
        blocks: list[KroneckerBlock],
        scales: list[Tensor],
        dim: int,
        dtype: torch.dtype,
        device: torch.device,
        name: str = "ekfac",
    ) -> None:
        super().__init__(blocks, dim, dtype, device, name)
        for block, s in zip(blocks, scales, strict=True):
            if tuple(s.shape) != (block.out_features, block.in_features):
                raise ValueError(
                    f"scales of layer {block.name!r} have shape {tuple(s.shape)}, expected "
                    f"{(block.out_features, block.in_features)}"
                )
        self.scales = list(scales)

    def __repr__(self) -> str:
        return f"EKFAC({self.name}, layers={len(self.blocks)}, shape={self.shape})"

    def bases(self, block: KroneckerBlock) -> tuple[Tensor, Tensor]:
        """``(Q_G, Q_A)`` of a layer."""
        _, QG, _, QA = block.eig()
        return QG, QA

    def _apply(self, v: Tensor, scales: list[Tensor]) -> Tensor:
        V, is_vector = self._as_columns(v)
        out = torch.zeros_like(V)
        for block, s in zip(self.blocks, scales, strict=True):
            QG, QA = self.bases(block)
            M = block.to_matrices(V)
            block.write(out, QG @ ((QG.T @ M @ QA) * s) @ QA.T)
        return out[:, 0] if is_vector else out

    def _derived(self, scales: list[Tensor], name: str) -> EKFAC:
        return EKFAC(self.blocks, scales, self.dim, self.dtype, self.device, name)

    def _damped(self, p: float, damping: float) -> list[Tensor]:
        damping = _check_damping(damping)
        scales = [s + damping for s in self.scales]
        if p < 0:
            for block, s in zip(self.blocks, scales, strict=True):
                if bool((s <= 0).any()):
                    raise RuntimeError(
                        f"{self.name}: layer {block.name!r} is singular; use a positive damping"
                    )
        return [s.pow(p) if p < 0 else s.clamp_min(0.0).pow(p) for s in scales]

    # -- products and functions -----------------------------------------------------------
    def __matmul__(self, v: Tensor) -> Tensor:
        r"""Per layer :math:`\mathrm{vec}(Q_G [s \odot (Q_G^\top V Q_A)] Q_A^\top)`."""
        return self._apply(v, self.scales)

    def apply_power(self, v: Tensor, power: float, damping: float = 0.0) -> Tensor:
        r""":math:`(F + \lambda I)^p v`; negative powers need positive damped eigenvalues."""
        return self._apply(v, self._damped(power, damping))

    def solve(self, v: Tensor, damping: float = 0.0) -> Tensor:
        r""":math:`x = (F + \lambda I)^{-1} v`, exactly, through the eigenvalues."""
        return self.apply_power(v, -1.0, damping)

    def power(self, p: float, damping: float = 0.0) -> EKFAC:
        r""":math:`(F + \lambda I)^p` as an :class:`EKFAC` (the same bases)."""
        return self._derived(self._damped(p, damping), f"{self.name}^{p}")

    def sqrt(self) -> EKFAC:
        r""":math:`F^{1/2}` (eigenvalues clamped at 0)."""
        return self.power(0.5)

    def inv_sqrt(self, damping: float = 0.0) -> EKFAC:
        r""":math:`(F + \lambda I)^{-1/2}`."""
        return self.power(-0.5, damping)

    def power_operator(self, p: float, damping: float = 0.0) -> CurvatureOperator:
        """``(F + λI)^p`` as a matrix-free :class:`CurvatureOperator`."""
        return self._operator(lambda V: self.apply_power(V, p, damping), f"{self.name}^{p}")

    # -- scalars -------------------------------------------------------------------------------
    def diag(self) -> Tensor:
        r"""Diagonal ``(D,)``: per layer :math:`(Q_G^{\odot 2}\, s\, Q_A^{\odot 2\top})`."""
        out = torch.zeros(self.dim, dtype=self.dtype, device=self.device)
        for block, s in zip(self.blocks, self.scales, strict=True):
            QG, QA = self.bases(block)
            out[block.flat_indices(self.device)] = (QG.square() @ s @ QA.square().T).reshape(-1)
        return out

    def trace(self) -> Tensor:
        r""":math:`\sum_l \sum_{ij} s_{l,ij}`."""
        return sum(s.sum() for s in self.scales)

    def frobenius_norm(self) -> Tensor:
        r""":math:`\sqrt{\sum_l \sum_{ij} s_{l,ij}^2}`."""
        return sum(s.square().sum() for s in self.scales).sqrt()

    def abs_sum(self, chunk_elements: int = 1 << 22) -> Tensor:
        r""":math:`\sum_{ij} |F_{ij}|`, per layer from its columns (chunks of unit matrices).

        The block is not Kronecker-factored, so each of its :math:`d_\text{out} d_\text{in}`
        columns is formed, about ``chunk_elements`` numbers at a time.
        """
        total = torch.zeros((), dtype=self.dtype, device=self.device)
        for block, s in zip(self.blocks, self.scales, strict=True):
            QG, QA = self.bases(block)
            m = block.numel
            step = max(1, chunk_elements // m)
            for start in range(0, m, step):
                idx = torch.arange(start, min(start + step, m), device=self.device)
                E = unit_vectors(m, idx, self.dtype, self.device).T
                M = E.reshape(-1, block.out_features, block.in_features)
                total += (QG @ ((QG.T @ M @ QA) * s) @ QA.T).abs().sum()
        return total

    def eigenvalues(self) -> Tensor:
        """All ``D`` eigenvalues :math:`s_{l,ij}`, ascending."""
        return torch.cat([s.reshape(-1) for s in self.scales]).sort().values

    # -- views -------------------------------------------------------------------------------
    def to_dense(self) -> Tensor:
        """Return the dense ``(D, D)`` matrix (the layer blocks on the diagonal); small ``D``."""
        out = self._dense_zeros()
        for block, s in zip(self.blocks, self.scales, strict=True):
            QG, QA = self.bases(block)
            Q = torch.kron(QG, QA)
            index = block.flat_indices(self.device)
            out[index.unsqueeze(1), index.unsqueeze(0)] = (Q * s.reshape(-1)) @ Q.T
        return out
