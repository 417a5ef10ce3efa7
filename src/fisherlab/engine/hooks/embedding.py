r"""``torch.nn.Embedding``: :math:`z_{n,t} = W_{i_{n,t}}` for indices :math:`i_{n,t}`.

The per-sample gradient of a column :math:`b_{k,n}` has rows
:math:`(\nabla_W)_v = \sum_{t: i_{n,t} = v} b_{k,n,t}`; rows of ``padding_idx`` are zero.
Sums of squares and norms scatter-add over the distinct (column, sample, index) triples,
never forming an ``(N, V, D)`` tensor.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fisherlab.engine.hooks.base import Grads, LayerRule

__all__ = ["EmbeddingRule"]


class EmbeddingRule(LayerRule):
    """Closed forms for :class:`torch.nn.Embedding` (dense gradients, no ``max_norm``)."""

    types = (torch.nn.Embedding,)

    def supports(self, module: torch.nn.Module) -> str | None:
        """No ``max_norm`` (it rescales the weight), ``sparse`` or ``scale_grad_by_freq``."""
        if module.max_norm is not None:  # type: ignore[attr-defined]
            return "max_norm is not supported"
        if module.sparse or module.scale_grad_by_freq:  # type: ignore[attr-defined]
            return "sparse / scale_grad_by_freq gradients are not supported"
        return None

    def prepare(self, module: torch.nn.Module, inp: Tensor) -> Tensor:
        """Reshape the indices to ``(N, T)``."""
        return inp.reshape(inp.shape[0], -1)

    @staticmethod
    def _segments(module: torch.nn.Module, idx: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        """Flat keys ``(k·N + n)·V + i`` and the matching ``(K·N·T, D)`` columns."""
        k, n, t = b.shape[0], idx.shape[0], idx.shape[1]
        num = module.num_embeddings  # type: ignore[attr-defined]
        rows = b.reshape(k * n * t, -1)
        padding = module.padding_idx  # type: ignore[attr-defined]
        if padding is not None:
            mask = (idx != padding).to(b.dtype).reshape(1, n * t, 1)
            rows = (rows.reshape(k, n * t, -1) * mask).reshape(k * n * t, -1)
        sample = torch.arange(k * n, device=idx.device).reshape(k, n, 1)
        keys = (sample * num + idx.unsqueeze(0)).reshape(-1)
        return keys, rows

    def per_sample(
        self, module: torch.nn.Module, ctx: Tensor, b: Tensor, out: Grads | None = None
    ) -> Grads:
        """Rows scattered into ``(K, N, V, D)``."""
        k, n = b.shape[0], ctx.shape[0]
        num, dim = module.weight.shape  # type: ignore[union-attr]
        keys, rows = self._segments(module, ctx, b)
        out = b.new_zeros(k * n * num, dim).index_add_(0, keys, rows)
        return {"weight": out.reshape(k, n, num, dim)}

    def _summed(self, module: torch.nn.Module, ctx: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        keys, rows = self._segments(module, ctx, b)
        unique, inverse = torch.unique(keys, return_inverse=True)
        sums = b.new_zeros(unique.shape[0], rows.shape[1]).index_add_(0, inverse, rows)
        return unique, sums

    def sum_squares(self, module: torch.nn.Module, ctx: Tensor, b: Tensor) -> Grads:
        """``Σ_{k,n} (∇_W)²`` by scatter-adds over distinct keys."""
        num = module.num_embeddings  # type: ignore[attr-defined]
        unique, sums = self._summed(module, ctx, b)
        out = b.new_zeros(module.weight.shape).index_add_(0, unique % num, sums.square())  # type: ignore[union-attr]
        return {"weight": out}

    def squared_norms(self, module: torch.nn.Module, ctx: Tensor, b: Tensor) -> Grads:
        """``‖∇_W‖²`` per sample, ``(N,)``."""
        unique, sums = self._summed(module, ctx, b[:1])
        return {"weight": self._norms(module, ctx, unique, sums.square())}

    def squares_and_norms(
        self, module: torch.nn.Module, ctx: Tensor, b: Tensor
    ) -> tuple[Grads, Grads]:
        """Both from one set of per-sample row sums (``K = 1``)."""
        num = module.num_embeddings  # type: ignore[attr-defined]
        unique, sums = self._summed(module, ctx, b)
        squares = sums.square()
        total = b.new_zeros(module.weight.shape).index_add_(0, unique % num, squares)  # type: ignore[union-attr]
        return {"weight": total}, {"weight": self._norms(module, ctx, unique, squares)}

    @staticmethod
    def _norms(module: torch.nn.Module, ctx: Tensor, unique: Tensor, squares: Tensor) -> Tensor:
        """Per-sample sums ``(N,)`` of the squared row sums of keys ``unique``."""
        num = module.num_embeddings  # type: ignore[attr-defined]
        return squares.new_zeros(ctx.shape[0]).index_add_(0, unique // num, squares.sum(1))
