r"""``torch.nn.Conv1d/2d/3d`` with any stride, padding, dilation and groups (zero padding).

With the unfolded input :math:`U_n \in \mathbb{R}^{(C_{in}/G)\,k \times T}` of group
:math:`g` (patches of :math:`k` kernel elements at :math:`T` output positions) the layer
is :math:`Z_{n,g} = W_g U_{n,g} + \beta_g`, so for an output-gradient column
:math:`B_{k,n,g} \in \mathbb{R}^{C_{out}/G \times T}`

.. math::
    \nabla_{W_g} = B_{k,n,g} U_{n,g}^\top, \qquad \nabla_\beta = \sum_t B_{k,n,:,t}.

The per-sample weight gradients are formed (one batched matrix product, the same work as
the ordinary weight gradient) and squared; the positions are summed before squaring.
Kronecker factors follow KFC with BackPACK's scaling:
:math:`A = \frac1N \sum_{n} U_n U_n^\top` and :math:`G` from the position-summed columns
(groups = 1 only).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

from fisherlab.engine.hooks.base import Grads, LayerRule

__all__ = ["ConvRule", "unfold_input"]

_Conv = torch.nn.Conv1d | torch.nn.Conv2d | torch.nn.Conv3d


def _pads(module: _Conv, dims: int) -> list[tuple[int, int]]:
    if isinstance(module.padding, str):
        if module.padding == "valid":
            return [(0, 0)] * dims
        pads = []  # "same": torch puts the odd element on the right
        for k, d in zip(module.kernel_size, module.dilation, strict=True):
            total = d * (k - 1)
            pads.append((total // 2, total - total // 2))
        return pads
    return [(int(p), int(p)) for p in module.padding]


def unfold_input(module: _Conv, x: Tensor) -> Tensor:
    """Unfolded input ``(N, G, (C_in/G)·∏k, T)`` (im2col), channel-major like the weight."""
    n, c = x.shape[:2]
    dims = x.ndim - 2
    kernel, stride, dilation = module.kernel_size, module.stride, module.dilation
    pads = _pads(module, dims)
    symmetric = all(left == right for left, right in pads)
    if dims == 2 and symmetric:
        U = F.unfold(x, kernel, dilation=dilation, padding=[p[0] for p in pads], stride=stride)
    else:
        flat_pads = [p for pair in reversed(pads) for p in pair]
        if any(flat_pads):
            x = F.pad(x, flat_pads)
        for i in range(dims):
            x = x.unfold(2 + i, dilation[i] * (kernel[i] - 1) + 1, stride[i])
        if any(d != 1 for d in dilation):
            x = x[(Ellipsis, *(slice(None, None, d) for d in dilation))]
        perm = [0, 1, *range(2 + dims, 2 + 2 * dims), *range(2, 2 + dims)]
        U = x.permute(perm).reshape(n, c * math.prod(kernel), -1)
    groups = module.groups
    return U.reshape(n, groups, U.shape[1] // groups, U.shape[2])


class ConvRule(LayerRule):
    """Closed forms for :class:`torch.nn.Conv1d`, ``Conv2d`` and ``Conv3d``."""

    types = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    has_kron_factors = True

    def supports(self, module: torch.nn.Module) -> str | None:
        """Zero padding only (``padding_mode="zeros"``)."""
        if getattr(module, "padding_mode", "zeros") != "zeros":
            return f"padding_mode={module.padding_mode!r} is not supported"
        return None

    def prepare(self, module: torch.nn.Module, inp: Tensor) -> Tensor:
        """Unfold the input to ``(N, G, (C_in/G)·∏k, T)``."""
        return unfold_input(module, inp)  # type: ignore[arg-type]

    @staticmethod
    def _columns(module: torch.nn.Module, ctx: Tensor, b: Tensor) -> Tensor:
        k, n = b.shape[:2]
        groups = module.groups  # type: ignore[attr-defined]
        return b.reshape(k, n, groups, b.shape[2] // groups, ctx.shape[-1])

    def per_sample(self, module: torch.nn.Module, ctx: Tensor, b: Tensor) -> Grads:
        """``∇_W = B Uᵀ`` per group and ``∇_β = Σ_t B``."""
        k, n = b.shape[:2]
        cols = self._columns(module, ctx, b)
        if k == 1:
            weight = torch.matmul(cols[0], ctx.transpose(2, 3)).unsqueeze(0)
        else:
            weight = torch.matmul(cols, ctx.transpose(2, 3).unsqueeze(0))
        out: Grads = {"weight": weight.reshape(k, n, *module.weight.shape)}  # type: ignore[union-attr]
        if module.bias is not None:
            out["bias"] = cols.sum(-1).reshape(k, n, -1)
        return out

    def kron_factors(
        self, module: torch.nn.Module, ctx: Tensor, b: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Return ``A = (1/N) Σ_n U_n U_nᵀ`` and ``G = Σ_{k,n} b̄ b̄ᵀ``, ``b̄ = Σ_t B`` (groups 1)."""
        if module.groups != 1:  # type: ignore[attr-defined]
            raise NotImplementedError(
                f"Kronecker factors of grouped convolutions (groups={module.groups}) are not "
                "implemented"
            )
        n = ctx.shape[0]
        U = ctx[:, 0].transpose(1, 2).reshape(-1, ctx.shape[2])
        A = (U.T @ U) / n
        bbar = b.flatten(3).sum(-1).reshape(-1, b.shape[2])
        return A, bbar.T @ bbar
