r"""``form="kfac"``: Kronecker-factored approximate curvature (K-FAC, KFC).

For a layer with weight :math:`W \in \mathbb{R}^{d_\text{out} \times d_\text{in}}` and bias
:math:`b`, write the augmented weight :math:`\bar W = [W, b]` and the augmented input
:math:`\bar a = [a; 1]`. The per-sample rows of the curvature restricted to the layer are
:math:`\bar g \otimes \bar a` (row-major :math:`\mathrm{vec}` of :math:`\bar g \bar a^\top`,
the order of ``W.flatten()``), where :math:`\bar g` is a vector backpropagated to the layer's
output. K-FAC (Martens & Grosse 2015, Eq. 1-3; Wen et al. 2020, App. D) keeps only the
per-layer blocks and treats inputs and output-gradients as independent:

.. math::
    c \sum_n \sum_k (g_{nk} g_{nk}^\top) \otimes (\bar a_n \bar a_n^\top)
    \;\approx\; G \otimes A, \qquad
    A = \frac1N \sum_n \bar a_n \bar a_n^\top, \quad
    G = c \sum_n \sum_k g_{nk} g_{nk}^\top,

with :math:`c = 1/N` (``reduction="mean"``) or 1 (``"sum"``), so that the scaling of
the approximated quantity is that of :class:`fisherlab.Curvature`. The vectors
:math:`g_{nk} = J_{z_n}^\top s_{nk}` are the output-gradients of the layer for

- ``fisher`` (exact): the columns :math:`s_{nk}` of :math:`S_n`, :math:`S_n S_n^\top =
  \Lambda(f_n)` (``K = C`` backward passes; "KFAC" of Martens & Grosse with the exact
  expectation, called type-2 in curvlinops);
- ``fisher(mc_samples=S)``: sampled-label output gradients
  :math:`q_{s,n}/\sqrt S` (:func:`fisherlab.quantities.output_factor`, the same draws as
  the dense Monte-Carlo Fisher for the same generator);
- ``ggn``: the columns of a factor of :math:`\nabla_f^2 l_n` (KFLR of Botev et al. 2017);
- ``empirical_fisher``: the true-label output gradient :math:`\nabla_f l_n` (one column).

**Weight sharing (Conv1d/2d/3d, Linear on inputs with extra dimensions)** uses by default
the *expand* convention of Grosse & Martens (2016, KFC) in the form of Eschenhagen et al.
(2023, "KFAC-expand"; ``approx="reduce"`` gives their K-FAC-reduce, see
:mod:`fisherlab.engine.kronecker`, which computes both): each of the :math:`T` output
locations (spatial positions, or sequence positions for ``Linear``) is treated like a
separate sample. With the unfolded
input patches :math:`\bar a_{n,t}` (``im2col``, columns ordered like
``weight.reshape(C_out, -1)``) and output gradients :math:`g_{nk,t}`,

.. math::
    A = \frac{1}{N T} \sum_{n,t} \bar a_{n,t} \bar a_{n,t}^\top, \qquad
    G = c \sum_{n,k,t} g_{nk,t} g_{nk,t}^\top,

which is KFC's :math:`\Omega \otimes \Gamma` (spatially homogeneous, spatially
uncorrelated derivatives) and equals the factorisation of curvlinops'
``KFACLinearOperator(kfac_approx="expand", separate_weight_and_bias=False)``. For
``T = 1`` it reduces to the Linear case above.

**Where K-FAC is exact.** For a single sample (``N = 1``) and ``T = 1`` every per-layer
block equals the exact block. For a Gaussian likelihood, :math:`g_{nk}` does not depend on
``n`` in a deep *linear* network (no nonlinearities), so every per-layer block of the
Fisher/GGN is exact for any ``N``.

**Damping.** :meth:`KFAC.solve` applies either the exact damping
:math:`(G \otimes A + \lambda I)^{-1}` through the factors' eigendecompositions, or the
factored Tikhonov ("π") damping of Martens & Grosse (2015, §6.3),
:math:`(G + \pi\sqrt\lambda I)^{-1} \otimes (A + \pi^{-1}\sqrt\lambda I)^{-1}` with
:math:`\pi = \sqrt{(\mathrm{tr} A / \dim A) / (\mathrm{tr} G / \dim G)}`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from fisherlab.representations.operator import CurvatureOperator, _BlockMatrix, _check_damping

__all__ = ["KFAC", "KroneckerBlock", "DAMPING_MODES"]

DAMPING_MODES = ("exact", "pi")


# -- parameter layout -----------------------------------------------------------------------
@dataclass
class KroneckerBlock:
    r"""One layer's Kronecker block :math:`G \otimes A` and where it sits in the flat vector.

    Attributes
    ----------
    name : str
        The module's name in ``model.named_modules()``.
    out_features : int
        :math:`d_\text{out}` (rows of :math:`G`).
    weight_columns : int
        Columns of ``weight.reshape(d_out, -1)``, 0 if the weight is frozen.
    has_bias : bool
        Whether a trainable bias adds the constant column of :math:`\bar a`.
    weight_offset, bias_offset : int or None
        Start of the weight / bias in the flat parameter vector.
    A, G : Tensor
        Input factor ``(weight_columns + has_bias,) * 2`` and output-gradient factor
        ``(out_features, out_features)``.
    """

    name: str
    out_features: int
    weight_columns: int
    has_bias: bool
    weight_offset: int | None
    bias_offset: int | None
    A: Tensor | None = None
    G: Tensor | None = None
    _eig: tuple[Tensor, Tensor, Tensor, Tensor] | None = field(default=None, repr=False)

    @property
    def in_features(self) -> int:
        """Columns of the augmented weight ``[W, b]``."""
        return self.weight_columns + int(self.has_bias)

    @property
    def numel(self) -> int:
        """Number of parameters the block covers."""
        return self.out_features * self.in_features

    def flat_indices(self, device: torch.device | None = None) -> Tensor:
        """Flat-vector index of every entry of ``[W, b]`` (row-major), ``(d_out * d_in,)``."""
        rows = torch.arange(self.out_features, device=device).unsqueeze(1)
        parts = []
        if self.weight_columns:
            cols = torch.arange(self.weight_columns, device=device).unsqueeze(0)
            parts.append(self.weight_offset + rows * self.weight_columns + cols)
        if self.has_bias:
            parts.append(self.bias_offset + rows)
        return torch.cat(parts, dim=1).reshape(-1)

    def to_matrices(self, V: Tensor) -> Tensor:
        """Columns ``V`` ``(D, k)`` → augmented weight matrices ``(k, d_out, d_in)``."""
        parts = []
        if self.weight_columns:
            stop = self.weight_offset + self.out_features * self.weight_columns
            w = V[self.weight_offset : stop].T
            parts.append(w.reshape(-1, self.out_features, self.weight_columns))
        if self.has_bias:
            b = V[self.bias_offset : self.bias_offset + self.out_features].T
            parts.append(b.unsqueeze(2))
        return torch.cat(parts, dim=2)

    def write(self, out: Tensor, M: Tensor) -> None:
        """Write matrices ``M`` ``(k, d_out, d_in)`` into the block's rows of ``out`` ``(D, k)``."""
        if self.weight_columns:
            stop = self.weight_offset + self.out_features * self.weight_columns
            w = M[:, :, : self.weight_columns].reshape(M.shape[0], -1)
            out[self.weight_offset : stop] = w.T
        if self.has_bias:
            out[self.bias_offset : self.bias_offset + self.out_features] = M[:, :, -1].T

    def eig(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(g, Q_G, a, Q_A)``: eigenvalues (clamped at 0) and eigenvectors of ``G`` and ``A``."""
        if self._eig is None:
            g, QG = torch.linalg.eigh(self.G)
            a, QA = torch.linalg.eigh(self.A)
            self._eig = (g.clamp_min(0.0), QG, a.clamp_min(0.0), QA)
        return self._eig

    def pi(self) -> float:
        r"""Return π of the factored damping.

        :math:`\pi = \sqrt{(\mathrm{tr}A/\dim A)/(\mathrm{tr}G/\dim G)}`.
        """
        mean_a = float(self.A.diagonal().mean())
        mean_g = float(self.G.diagonal().mean())
        if mean_a <= 0.0 or mean_g <= 0.0:
            return 1.0
        return math.sqrt(mean_a / mean_g)


# -- the Kronecker-factored object ------------------------------------------------------------
class KFAC(_BlockMatrix):
    r"""Block-diagonal matrix with one Kronecker-factored block :math:`G_l \otimes A_l` per layer.

    Vectors are flat parameter vectors ``(D,)`` or columns ``(D, k)`` in the order of
    :class:`fisherlab.engine.functional.FunctionalModel`. Functions of the matrix act on
    the factors: with :math:`G = Q_G \mathrm{diag}(g) Q_G^\top`,
    :math:`A = Q_A \mathrm{diag}(a) Q_A^\top`, the eigenvalues of :math:`G \otimes A` are
    :math:`g_i a_j` with eigenvectors :math:`q_{G,i} \otimes q_{A,j}`, so
    :math:`\phi(G\otimes A) v = \mathrm{vec}(Q_G[\phi(g a^\top) \odot (Q_G^\top V Q_A)]
    Q_A^\top)` for :math:`v = \mathrm{vec}(V)`. Nothing of size :math:`D \times D` is
    built except by :meth:`to_dense`.

    Parameters
    ----------
    blocks : list of KroneckerBlock
        The layers with their factors.
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
        dim: int,
        dtype: torch.dtype,
        device: torch.device,
        name: str = "kfac",
    ) -> None:
        super().__init__(blocks, dim, dtype, device, name)

    @property
    def factors(self) -> dict[str, tuple[Tensor, Tensor]]:
        """``{module name: (A, G)}``: input factor and output-gradient factor of each layer."""
        return {block.name: (block.A, block.G) for block in self.blocks}

    def __repr__(self) -> str:
        return f"KFAC({self.name}, layers={len(self.blocks)}, shape={self.shape})"

    def state(self) -> dict[str, Any]:
        """The factors and layout as tensors, numbers and strings only.

        The result can be saved with :func:`torch.save` and read back with
        ``torch.load(..., weights_only=True)``; :meth:`from_state` rebuilds the object.
        """
        fields = ("name", "out_features", "weight_columns", "has_bias")
        blocks = [
            {
                **{key: getattr(b, key) for key in fields},
                "weight_offset": -1 if b.weight_offset is None else b.weight_offset,
                "bias_offset": -1 if b.bias_offset is None else b.bias_offset,
                "A": b.A,
                "G": b.G,
            }
            for b in self.blocks
        ]
        return {"kind": "kfac", "dim": self.dim, "name": self.name, "blocks": blocks}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> KFAC:
        """Rebuild a :class:`KFAC` from :meth:`state`."""
        if not isinstance(state, dict) or state.get("kind") != "kfac":
            raise ValueError("not a KFAC state: expected the dict of KFAC.state()")
        blocks = []
        for b in state["blocks"]:
            blocks.append(
                KroneckerBlock(
                    b["name"],
                    int(b["out_features"]),
                    int(b["weight_columns"]),
                    bool(b["has_bias"]),
                    None if b["weight_offset"] < 0 else int(b["weight_offset"]),
                    None if b["bias_offset"] < 0 else int(b["bias_offset"]),
                    A=b["A"],
                    G=b["G"],
                )
            )
        reference = blocks[0].G if blocks else torch.empty(0)
        return cls(blocks, int(state["dim"]), reference.dtype, reference.device, state["name"])

    # -- helpers -----------------------------------------------------------------------
    def _apply(self, v: Tensor, blockwise) -> Tensor:
        V, is_vector = self._as_columns(v)
        out = torch.zeros_like(V)
        for block in self.blocks:
            block.write(out, blockwise(block, block.to_matrices(V)))
        return out[:, 0] if is_vector else out

    def _derived(self, factors: list[tuple[Tensor, Tensor]], name: str) -> KFAC:
        blocks = [
            KroneckerBlock(
                b.name,
                b.out_features,
                b.weight_columns,
                b.has_bias,
                b.weight_offset,
                b.bias_offset,
                A=A,
                G=G,
            )
            for b, (A, G) in zip(self.blocks, factors, strict=True)
        ]
        return KFAC(blocks, self.dim, self.dtype, self.device, name=name)

    @staticmethod
    def _damped_eigs(
        block: KroneckerBlock, damping: float, damping_mode: str
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Eigenbases and the eigenvalue grid ``(d_out, d_in)`` of the damped block."""
        g, QG, a, QA = block.eig()
        if damping_mode == "exact":
            grid = g.unsqueeze(1) * a.unsqueeze(0) + damping
        elif damping_mode == "pi":
            pi = block.pi()
            root = math.sqrt(damping)
            grid = (g + pi * root).unsqueeze(1) * (a + root / pi).unsqueeze(0)
        else:
            raise ValueError(f"damping_mode must be one of {DAMPING_MODES}, got {damping_mode!r}")
        return g, QG, a, QA, grid

    # -- products and functions -----------------------------------------------------------
    def __matmul__(self, v: Tensor) -> Tensor:
        r"""``(⊕_l G_l ⊗ A_l) v``: per layer :math:`\mathrm{vec}(G V A)`."""
        return self._apply(v, lambda b, M: b.G @ M @ b.A)

    def apply_power(
        self, v: Tensor, power: float, damping: float = 0.0, damping_mode: str = "exact"
    ) -> Tensor:
        r"""``(F + λI)^p v`` (exact damping) or the π-damped factored version, see module doc.

        Negative powers require all damped eigenvalues to be positive.
        """
        damping = _check_damping(damping)

        def blockwise(block: KroneckerBlock, M: Tensor) -> Tensor:
            _, QG, _, QA, grid = self._damped_eigs(block, damping, damping_mode)
            if power < 0 and bool((grid <= 0).any()):
                raise RuntimeError(
                    f"{self.name}: layer {block.name!r} is singular; use a positive damping"
                )
            return QG @ ((QG.T @ M @ QA) * grid.pow(power)) @ QA.T

        return self._apply(v, blockwise)

    def solve(self, v: Tensor, damping: float = 0.0, damping_mode: str = "exact") -> Tensor:
        r"""Solve the damped system through the factors' eigendecompositions.

        ``damping_mode="exact"``: :math:`x = (G \otimes A + \lambda I)^{-1} v` exactly;
        ``"pi"``: :math:`x = [(G + \pi\sqrt\lambda I)^{-1} \otimes (A + \pi^{-1}\sqrt\lambda
        I)^{-1}] v` (Martens & Grosse 2015, §6.3), per layer.
        """
        return self.apply_power(v, -1.0, damping, damping_mode)

    def power(self, p: float, damping: float = 0.0, damping_mode: str = "pi") -> KFAC:
        r"""``(G ⊗ A)^p`` as a :class:`KFAC` (factors :math:`G^p, A^p`).

        With ``damping > 0`` only the factored ("π") damping stays Kronecker-factored; for
        exact damping use :meth:`apply_power` or :meth:`power_operator`.
        """
        damping = _check_damping(damping)
        if damping > 0.0 and damping_mode != "pi":
            raise ValueError(
                "exactly damped powers are not Kronecker-factored: use damping_mode='pi' or "
                "power_operator()"
            )
        factors = []
        for block in self.blocks:
            g, QG, a, QA = block.eig()
            pi = block.pi() if damping > 0 else 1.0
            root = math.sqrt(damping)
            gd, ad = g + pi * root, a + root / pi
            if p < 0 and (bool((gd <= 0).any()) or bool((ad <= 0).any())):
                raise RuntimeError(
                    f"{self.name}: layer {block.name!r} has a singular factor; use a positive "
                    "damping"
                )
            factors.append(((QA * ad.pow(p)) @ QA.T, (QG * gd.pow(p)) @ QG.T))
        return self._derived(factors, f"{self.name}^{p}")

    def power_operator(
        self, p: float, damping: float = 0.0, damping_mode: str = "exact"
    ) -> CurvatureOperator:
        """``(F + λI)^p`` as a matrix-free :class:`CurvatureOperator` (see :meth:`apply_power`)."""
        return self._operator(
            lambda V: self.apply_power(V, p, damping, damping_mode), f"{self.name}^{p}"
        )

    def sqrt(self) -> KFAC:
        r""":math:`(G \otimes A)^{1/2} = G^{1/2} \otimes A^{1/2}` per layer."""
        return self.power(0.5)

    def inv_sqrt(self, damping: float = 0.0, damping_mode: str = "exact") -> CurvatureOperator:
        r""":math:`(F + \lambda I)^{-1/2}` matrix-free (exact or π damping)."""
        return self.power_operator(-0.5, damping, damping_mode)

    def sample(self, generator: torch.Generator | None = None, num_samples: int | None = None):
        r"""Draws :math:`\xi = F^{1/2} z`, :math:`z \sim \mathcal N(0, I)`: covariance ``F``.

        Returns ``(D,)``, or ``(num_samples, D)``.
        """
        k = 1 if num_samples is None else num_samples
        z = torch.randn(self.dim, k, generator=generator, dtype=self.dtype)
        xi = self.apply_power(z.to(self.device), 0.5).T
        return xi[0] if num_samples is None else xi

    # -- scalars -------------------------------------------------------------------------------
    def diag(self) -> Tensor:
        r"""Diagonal ``(D,)``: :math:`\mathrm{diag}(G) \otimes \mathrm{diag}(A)` per layer."""
        out = torch.zeros(self.dim, dtype=self.dtype, device=self.device)
        for block in self.blocks:
            out[block.flat_indices(self.device)] = torch.outer(
                block.G.diagonal(), block.A.diagonal()
            ).reshape(-1)
        return out

    def trace(self) -> Tensor:
        r""":math:`\sum_l \mathrm{tr}(G_l)\,\mathrm{tr}(A_l)`."""
        return sum(b.G.trace() * b.A.trace() for b in self.blocks)

    def frobenius_norm(self) -> Tensor:
        r""":math:`\sqrt{\sum_l \|G_l\|_F^2 \|A_l\|_F^2}`."""
        total = sum(b.G.square().sum() * b.A.square().sum() for b in self.blocks)
        return total.sqrt()

    def abs_sum(self) -> Tensor:
        r""":math:`\sum_{ij} |F_{ij}| = \sum_l (\sum |G_l|)(\sum |A_l|)`."""
        return sum(b.G.abs().sum() * b.A.abs().sum() for b in self.blocks)

    def eigenvalues(self) -> Tensor:
        """All ``D`` eigenvalues :math:`g_i a_j`, ascending."""
        values = [torch.outer(b.eig()[0], b.eig()[2]).reshape(-1) for b in self.blocks]
        return torch.cat(values).sort().values

    # -- views -------------------------------------------------------------------------------
    def to_dense(self) -> Tensor:
        """Return the dense ``(D, D)`` matrix (Kronecker blocks on the diagonal); small ``D``."""
        out = self._dense_zeros()
        for block in self.blocks:
            index = block.flat_indices(self.device)
            out[index.unsqueeze(1), index.unsqueeze(0)] = torch.kron(block.G, block.A)
        return out
