r"""``form="blockdiag"``: one block per layer (or per parameter tensor), off-block entries zero.

A block :math:`B_b` is the quantity restricted to the indices :math:`I_b` of one layer's
parameters (``grouping="layer"``, the default of ``form="blockdiag"``: all trainable
parameters of one module, e.g. weight and bias of a ``Linear``) or of one parameter tensor
(``grouping="parameter"``, through :func:`compute_blockdiag`).

Every quantity except the Hessian is a sum of outer products of rows (scaled as in
:class:`fisherlab.Curvature`, :math:`c = 1/N` or 1):

===================  =================================================================
quantity              rows :math:`u` with :math:`B = \sum u_{I_b} u_{I_b}^\top`
===================  =================================================================
empirical Fisher      :math:`\sqrt c\, g_n`
Fisher / MC / GGN     :math:`\sqrt c\, B_{n,k} = \sqrt c\, s_{nk}^\top J_n` (factor columns)
covariance            :math:`\sqrt{a}\,(g_n - \bar g)`, :math:`a = 1/N` (mean) or
                      :math:`N` (sum), times :math:`N/(N-1)` if unbiased (Balles Eq. 3.29,
                      Kunstner et al. Eq. 18)
===================  =================================================================

A block is stored as its factor :math:`U_b` (``M × |I_b|``, :math:`B_b = U_b^\top U_b`)
while there are fewer rows than columns, and as a dense ``|I_b| × |I_b|`` matrix
otherwise — so memory is :math:`O(\sum_b \min(M, |I_b|)\,|I_b|)`, never
:math:`D \times D`. Hessian blocks are dense, from Hessian-vector products with the block's
unit vectors (:math:`|I_b|` products per block).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fisherlab.representations.operator import CurvatureOperator, _BlockMatrix, _check_damping

__all__ = ["Block", "BlockDiagonal"]


@dataclass
class Block:
    r"""One diagonal block: flat indices and either a dense matrix or a row factor.

    Attributes
    ----------
    name : str
        Module name (``"layer"`` grouping) or parameter name.
    index : Tensor
        Flat-vector indices :math:`I_b` (``long``).
    dense : Tensor or None
        ``(|I_b|, |I_b|)`` block, or ``None`` if stored as a factor.
    factor : Tensor or None
        ``(M, |I_b|)`` rows :math:`U_b` with :math:`B_b = U_b^\top U_b`.
    """

    name: str
    index: Tensor
    dense: Tensor | None = None
    factor: Tensor | None = None

    @property
    def size(self) -> int:
        """``|I_b|``."""
        return self.index.numel()

    def add_rows(self, rows: Tensor) -> None:
        r"""Add :math:`\sum_m u_m u_m^\top` for rows ``(m, |I_b|)``; densify when cheaper."""
        if self.dense is not None:
            self.dense += rows.T @ rows
            return
        self.factor = rows if self.factor is None else torch.cat([self.factor, rows])
        if self.factor.shape[0] >= self.size:
            self.dense = self.factor.T @ self.factor
            self.factor = None

    def matrix(self) -> Tensor:
        """Return the dense block."""
        return self.dense if self.dense is not None else self.factor.T @ self.factor

    def spectrum(self) -> tuple[Tensor, Tensor]:
        r"""Return ``(λ, V)``: eigenvalues and orthonormal eigenvectors of the block's range.

        Dense: all ``|I_b|`` eigenpairs (``eigh``); factor: the ``min(M, |I_b|)`` pairs of
        the thin SVD :math:`U = W S V^\top`, :math:`\lambda = s^2` (the rest are 0).
        """
        if self.dense is not None:
            return torch.linalg.eigh(self.dense)
        _, s, Vh = torch.linalg.svd(self.factor, full_matrices=False)
        return s.square(), Vh.T

    def apply_power(self, V: Tensor, power: float, damping: float) -> Tensor:
        """``(B + λI)^p V`` for columns ``V`` ``(|I_b|, k)``."""
        lam, Q = self.spectrum()
        if self.dense is not None:
            lam = lam.clamp_min(0.0) + damping
            if power < 0 and bool((lam <= 0).any()):
                raise RuntimeError(f"block {self.name!r} is singular; use a positive damping")
            return Q @ (lam.pow(power).unsqueeze(1) * (Q.T @ V))
        full_rank = lam.numel() == self.size and bool((lam > 0).all())
        if power < 0 and damping <= 0.0 and not full_rank:
            raise RuntimeError(
                f"block {self.name!r} has rank {lam.numel()} < {self.size}; use a positive damping"
            )
        base = damping**power if damping > 0 else 0.0
        coeff = (lam + damping).pow(power) - base
        return base * V + Q @ (coeff.unsqueeze(1) * (Q.T @ V))


# -- the object ----------------------------------------------------------------------------
class BlockDiagonal(_BlockMatrix):
    r"""A symmetric block-diagonal ``D × D`` matrix :math:`\oplus_b B_b`.

    Products, solves and powers act block by block; a block stored as a factor
    :math:`U_b` uses the thin SVD, :math:`(U^\top U + \lambda I)^p v = \lambda^p v +
    V[(s^2 + \lambda)^p - \lambda^p] V^\top v`.

    Parameters
    ----------
    blocks : list of Block
        Disjoint index sets covering ``0..D-1``.
    dim : int
        ``D``.
    dtype, device
        Those of the vectors.
    name : str
        Shown in ``repr``.
    """

    def __init__(
        self,
        blocks: list[Block],
        dim: int,
        dtype: torch.dtype,
        device: torch.device,
        name: str = "blockdiag",
    ) -> None:
        super().__init__(blocks, dim, dtype, device, name)

    def __repr__(self) -> str:
        return f"BlockDiagonal({self.name}, blocks={len(self.blocks)}, shape={self.shape})"

    def _apply(self, v: Tensor, blockwise) -> Tensor:
        V, is_vector = self._as_columns(v)
        out = torch.zeros_like(V)
        for block in self.blocks:
            out[block.index] = blockwise(block, V[block.index])
        return out[:, 0] if is_vector else out

    def __matmul__(self, v: Tensor) -> Tensor:
        """``B v`` for ``(D,)`` or ``(D, k)``."""

        def blockwise(block: Block, V: Tensor) -> Tensor:
            if block.dense is not None:
                return block.dense @ V
            return block.factor.T @ (block.factor @ V)

        return self._apply(v, blockwise)

    def apply_power(self, v: Tensor, power: float, damping: float = 0.0) -> Tensor:
        r""":math:`(B + \lambda I)^p v` blockwise, through eigendecompositions."""
        damping = _check_damping(damping)
        return self._apply(v, lambda block, V: block.apply_power(V, power, damping))

    def solve(self, v: Tensor, damping: float = 0.0) -> Tensor:
        r"""Solve :math:`(B + \lambda I) x = v` (exact damping, blockwise)."""
        return self.apply_power(v, -1.0, damping)

    def power_operator(self, p: float, damping: float = 0.0) -> CurvatureOperator:
        """``(B + λI)^p`` as a matrix-free :class:`CurvatureOperator`."""
        return self._operator(lambda V: self.apply_power(V, p, damping), f"{self.name}^{p}")

    def sqrt(self) -> BlockDiagonal:
        r"""Return :math:`B^{1/2}` blockwise.

        Dense blocks by ``eigh``; a factor :math:`U = W S V^\top` becomes the factor
        :math:`S^{1/2} V^\top` (so :math:`(U^\top U)^{1/2} = V S V^\top`).
        """
        blocks = []
        for block in self.blocks:
            lam, Q = block.spectrum()
            lam = lam.clamp_min(0.0)
            if block.dense is not None:
                blocks.append(Block(block.name, block.index, dense=(Q * lam.sqrt()) @ Q.T))
            else:
                blocks.append(Block(block.name, block.index, factor=lam.pow(0.25)[:, None] * Q.T))
        return BlockDiagonal(blocks, self.dim, self.dtype, self.device, f"{self.name}^0.5")

    def inv_sqrt(self, damping: float = 0.0) -> CurvatureOperator:
        r""":math:`(B + \lambda I)^{-1/2}` matrix-free."""
        return self.power_operator(-0.5, damping)

    def sample(self, generator: torch.Generator | None = None, num_samples: int | None = None):
        r"""Draw vectors with covariance :math:`B`.

        Per block :math:`U_b^\top z` (factor) or :math:`B_b^{1/2} z` (dense),
        :math:`z \sim \mathcal N(0, I)`.

        Returns ``(D,)``, or ``(num_samples, D)``.
        """
        k = 1 if num_samples is None else num_samples
        out = torch.zeros(self.dim, k, dtype=self.dtype, device=self.device)
        for block in self.blocks:
            if block.dense is not None:
                z = torch.randn(block.size, k, generator=generator, dtype=self.dtype)
                out[block.index] = block.apply_power(z.to(self.device), 0.5, 0.0)
            else:
                rows = block.factor.shape[0]
                z = torch.randn(rows, k, generator=generator, dtype=self.dtype)
                out[block.index] = block.factor.T @ z.to(self.device)
        return out[:, 0] if num_samples is None else out.T

    # -- scalars -------------------------------------------------------------------------------
    def diag(self) -> Tensor:
        """Return the diagonal ``(D,)``."""
        out = torch.zeros(self.dim, dtype=self.dtype, device=self.device)
        for block in self.blocks:
            if block.dense is not None:
                out[block.index] = block.dense.diagonal()
            else:
                out[block.index] = block.factor.square().sum(0)
        return out

    def trace(self) -> Tensor:
        """Exact trace: ``Σ_b tr B_b`` (``‖U_b‖_F²`` for factors)."""
        return self.diag().sum()

    def frobenius_norm(self) -> Tensor:
        r"""Exact :math:`\|B\|_F`; a factor uses :math:`\|U^\top U\|_F = \|U U^\top\|_F`."""
        total = torch.zeros((), dtype=self.dtype, device=self.device)
        for block in self.blocks:
            if block.dense is not None:
                total = total + block.dense.square().sum()
            else:
                total = total + (block.factor @ block.factor.T).square().sum()
        return total.sqrt()

    def abs_sum(self, chunk_size: int = 1024) -> Tensor:
        r""":math:`\sum_{ij} |B_{ij}|`, column chunk by column chunk (no dense block)."""
        total = torch.zeros((), dtype=self.dtype, device=self.device)
        for block in self.blocks:
            if block.dense is not None:
                total = total + block.dense.abs().sum()
                continue
            for start in range(0, block.size, chunk_size):
                cols = block.factor[:, start : start + chunk_size]
                total = total + (block.factor.T @ cols).abs().sum()
        return total

    def eigenvalues(self) -> Tensor:
        """All ``D`` eigenvalues, ascending (the blocks' spectra, zeros for low-rank blocks)."""
        values = []
        for block in self.blocks:
            lam, _ = block.spectrum()
            values.append(lam)
            if lam.numel() < block.size:
                values.append(lam.new_zeros(block.size - lam.numel()))
        return torch.cat(values).sort().values

    # -- views ---------------------------------------------------------------------------------
    def to_dense(self) -> Tensor:
        """Return the dense ``(D, D)`` matrix; small ``D`` only."""
        out = self._dense_zeros()
        for block in self.blocks:
            out[block.index.unsqueeze(1), block.index.unsqueeze(0)] = block.matrix()
        return out
