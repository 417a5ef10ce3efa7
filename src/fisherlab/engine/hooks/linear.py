r"""``torch.nn.Linear``: :math:`z_{n,t} = W a_{n,t} + \beta` over positions :math:`t`.

Per-sample gradients of a column :math:`b_{k,n}` (output gradient):

.. math::
    \nabla_W = \sum_t b_{k,n,t} a_{n,t}^\top, \qquad \nabla_\beta = \sum_t b_{k,n,t}.

Without positions (inputs ``(N, in)``) the sums of squares need no per-sample matrices,
:math:`\sum_{k,n} (\nabla_W)^{\odot 2} = (\sum_k b_{k}^{\odot 2})^\top a^{\odot 2}`, and the
squared norms factorise, :math:`\|\nabla_W\|^2 = \|b_n\|^2 \|a_n\|^2`. With positions the
norms use Gram matrices, :math:`\|\nabla_W\|^2 = \sum_{t,s} (b_t^\top b_s)(a_t^\top a_s)`,
when that is cheaper than forming :math:`\nabla_W`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fisherlab.engine.hooks.base import Grads, LayerRule, result_buffer, squares_and_norms_of

__all__ = ["LinearRule"]


class LinearRule(LayerRule):
    """Closed forms for :class:`torch.nn.Linear` (inputs ``(N, *, in)``)."""

    types = (torch.nn.Linear,)
    has_kron_factors = True
    stack_columns = True

    def prepare(self, module: torch.nn.Module, inp: Tensor) -> Tensor:
        """Reshape the input to ``(N, T, in)`` (``T = 1`` for plain ``(N, in)`` inputs)."""
        return inp.reshape(inp.shape[0], -1, inp.shape[-1])

    @staticmethod
    def _columns(ctx: Tensor, b: Tensor) -> Tensor:
        return b.reshape(b.shape[0], ctx.shape[0], ctx.shape[1], b.shape[-1])

    def per_sample(
        self, module: torch.nn.Module, ctx: Tensor, b: Tensor, out: Grads | None = None
    ) -> Grads:
        """``∇_W = Σ_t b aᵀ`` and ``∇_β = Σ_t b``, shapes ``(K, N, out, in)``, ``(K, N, out)``.

        The weight gradients are written into ``out["weight"]`` when given (allocated there
        on first use, reused while the shape stays).
        """
        b = self._columns(ctx, b)
        grads: Grads = {}
        shape = (b.shape[0], b.shape[1], b.shape[3], ctx.shape[2])
        weight = result_buffer(out, "weight", shape, b)
        if ctx.shape[1] == 1:
            torch.mul(b[:, :, 0, :, None], ctx[None, :, 0, None, :], out=weight)
        else:  # one batched product per column: Σ_t b_{k,n,t} a_{n,t}ᵀ
            for k in range(b.shape[0]):
                torch.bmm(b[k].transpose(1, 2), ctx, out=weight[k])
        grads["weight"] = weight
        if module.bias is not None:
            grads["bias"] = b.sum(2)
        return grads

    def sum_squares(self, module: torch.nn.Module, ctx: Tensor, b: Tensor) -> Grads:
        """``Σ_{k,n} ∇²``; a single matrix product for inputs without positions."""
        if ctx.shape[1] != 1:
            return super().sum_squares(module, ctx, b)
        return self._squares_without_positions(module, ctx, b)[0]

    def _squares_without_positions(
        self, module: torch.nn.Module, ctx: Tensor, b: Tensor
    ) -> tuple[Grads, Tensor, Tensor]:
        r"""``Σ_{k,n} ∇²`` of inputs ``(N, 1, in)`` and the squares it is formed from.

        :math:`\sum_{k,n} (\nabla_W)^{\odot 2} = (\sum_k b_k^{\odot 2})^\top a^{\odot 2}`;
        the squares ``(N, out)`` and ``(N, in)`` are returned for the norms.
        """
        b2 = self._columns(ctx, b)[:, :, 0].square()  # (K, N, out)
        b2 = b2[0] if b2.shape[0] == 1 else b2.sum(0)
        a2 = ctx[:, 0].square()
        sums: Grads = {"weight": b2.T @ a2}
        if module.bias is not None:
            sums["bias"] = b2.sum(0)
        return sums, b2, a2

    @staticmethod
    def _gram_is_cheaper(ctx: Tensor, b: Tensor) -> bool:
        """Whether ``‖∇_W‖²`` by ``T×T`` Gram matrices costs less than forming ``∇_W``."""
        _, t, d_in = ctx.shape
        d_out = b.shape[-1]
        return t * (d_in + d_out) < d_in * d_out

    def squares_and_norms(
        self, module: torch.nn.Module, ctx: Tensor, b: Tensor
    ) -> tuple[Grads, Grads]:
        r"""Both from one set of squares.

        Without positions: :math:`\sum_n (\nabla_W)^{\odot 2} = (b^{\odot 2})^\top
        a^{\odot 2}` and :math:`\|\nabla_W\|^2 = \|b_n\|^2\|a_n\|^2` share
        :math:`a^{\odot 2}` and :math:`b^{\odot 2}`; with positions, one set of per-sample
        gradients where each would form them.
        """
        if ctx.shape[1] == 1:
            sums, b2, a2 = self._squares_without_positions(module, ctx, b)
            b2_norms = b2.sum(1)
            norms: Grads = {"weight": b2_norms * a2.sum(1)}
            if module.bias is not None:
                norms["bias"] = b2_norms
            return sums, norms
        if self._gram_is_cheaper(ctx, b):
            return super().squares_and_norms(module, ctx, b)
        sums, norms = {}, {}
        for name, g in self.per_sample(module, ctx, b).items():
            sums[name], norms[name] = squares_and_norms_of(g[0])
        return sums, norms

    def squared_norms(self, module: torch.nn.Module, ctx: Tensor, b: Tensor) -> Grads:
        """``‖∇_W‖² = ‖b‖²‖a‖²`` (no positions) or via Gram matrices, ``(N,)``."""
        b = self._columns(ctx, b)[0]  # (N, T, out)
        t = ctx.shape[1]
        out: Grads = {}
        if t == 1:
            out["weight"] = b[:, 0].square().sum(1) * ctx[:, 0].square().sum(1)
        elif self._gram_is_cheaper(ctx, b):
            gram_b = b @ b.transpose(1, 2)
            gram_a = ctx @ ctx.transpose(1, 2)
            out["weight"] = (gram_b * gram_a).sum((1, 2))
        else:
            out["weight"] = torch.einsum("nto,nti->noi", b, ctx).square().sum((1, 2))
        if module.bias is not None:
            out["bias"] = b.sum(1).square().sum(1)
        return out

    def kron_inputs(self, module: torch.nn.Module, ctx: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        """Inputs ``(N, T, in)`` as prepared and the columns as ``(K, N, T, out)``."""
        return ctx, self._columns(ctx, b)
