r"""``torch.nn.LayerNorm`` and ``torch.nn.BatchNorm1d/2d/3d`` in evaluation mode.

Both are :math:`z = \hat x \odot \gamma + \beta` with the normalised input :math:`\hat x`
(over the trailing ``normalized_shape`` for LayerNorm; with the running statistics,
per channel, for BatchNorm in evaluation mode, where samples do not interact). For an
output-gradient column :math:`b_{k,n}`, summing over the positions :math:`t` that share
an affine parameter,

.. math::
    \nabla_\gamma = \sum_t b_{k,n,t} \odot \hat x_{n,t}, \qquad \nabla_\beta = \sum_t b_{k,n,t}.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

from fisherlab.engine.hooks.base import Grads, LayerRule

__all__ = ["LayerNormRule", "BatchNormRule"]


class LayerNormRule(LayerRule):
    """Closed forms for :class:`torch.nn.LayerNorm` with elementwise affine parameters."""

    types = (torch.nn.LayerNorm,)

    def prepare(self, module: torch.nn.Module, inp: Tensor) -> Tensor:
        """``x̂`` as ``(N, T, P)`` with ``P = ∏ normalized_shape``."""
        shape = module.normalized_shape  # type: ignore[attr-defined]
        xhat = F.layer_norm(inp, shape, None, None, module.eps)  # type: ignore[arg-type]
        return xhat.reshape(inp.shape[0], -1, math.prod(shape))

    def per_sample(
        self, module: torch.nn.Module, ctx: Tensor, b: Tensor, out: Grads | None = None
    ) -> Grads:
        """``∇_γ = Σ_t b ⊙ x̂``, ``∇_β = Σ_t b``, shapes ``(K, N, *normalized_shape)``."""
        k, n = b.shape[:2]
        shape = module.normalized_shape  # type: ignore[attr-defined]
        cols = b.reshape(k, n, ctx.shape[1], ctx.shape[2])
        out: Grads = {}
        if module.weight is not None:
            out["weight"] = (cols * ctx).sum(2).reshape(k, n, *shape)
        if module.bias is not None:
            out["bias"] = cols.sum(2).reshape(k, n, *shape)
        return out


class BatchNormRule(LayerRule):
    """Closed forms for :class:`torch.nn.BatchNorm1d/2d/3d` in evaluation mode."""

    types = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)

    def supports(self, module: torch.nn.Module) -> str | None:
        """Require running statistics (otherwise samples interact even in eval mode)."""
        if module.running_mean is None or module.running_var is None:  # type: ignore[attr-defined]
            return "BatchNorm without running statistics normalises with batch statistics"
        return None

    def prepare(self, module: torch.nn.Module, inp: Tensor) -> Tensor:
        """``x̂ = (x − μ)/√(σ² + ε)`` with running statistics, as ``(N, C, T)``."""
        xhat = F.batch_norm(
            inp,
            module.running_mean,  # type: ignore[arg-type]
            module.running_var,  # type: ignore[arg-type]
            None,
            None,
            False,
            0.0,
            module.eps,  # type: ignore[arg-type]
        )
        return xhat.reshape(inp.shape[0], inp.shape[1], -1)

    def per_sample(
        self, module: torch.nn.Module, ctx: Tensor, b: Tensor, out: Grads | None = None
    ) -> Grads:
        """``∇_γ = Σ_t b ⊙ x̂``, ``∇_β = Σ_t b`` per channel, shapes ``(K, N, C)``."""
        k, n = b.shape[:2]
        cols = b.reshape(k, n, ctx.shape[1], ctx.shape[2])
        out: Grads = {}
        if module.weight is not None:
            out["weight"] = (cols * ctx).sum(-1)
        if module.bias is not None:
            out["bias"] = cols.sum(-1)
        return out
