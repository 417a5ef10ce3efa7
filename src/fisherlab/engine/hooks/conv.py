r"""``torch.nn.Conv1d/2d/3d`` with any stride, padding (any mode), dilation and groups.

With the unfolded input :math:`U_n \in \mathbb{R}^{(C_{in}/G)\,k \times T}` of group
:math:`g` (patches of :math:`k` kernel elements at :math:`T` output positions) the layer
is :math:`Z_{n,g} = W_g U_{n,g} + \beta_g`, so for an output-gradient column
:math:`B_{k,n,g} \in \mathbb{R}^{C_{out}/G \times T}`

.. math::
    \nabla_{W_g} = B_{k,n,g} U_{n,g}^\top, \qquad \nabla_\beta = \sum_t B_{k,n,:,t}.

The per-sample weight gradients are computed without unfolding, by convolutions: either
the weight gradient of one convolution with the samples as ``N·G`` groups
(``convolution_backward``), or, for few input channels, the correlation of the input
(channels as the batch, samples as groups) with the output gradients as the kernel (the
layer's stride becomes the dilation and vice versa). They are squared afterwards, so the
positions are summed before squaring. Padding other than symmetric zeros (``"same"`` with an
even kernel, ``padding_mode="reflect"`` etc.) is applied to the input first. Kronecker
factors come from the patches of :func:`fisherlab.engine.kronecker.unfold_input`
(K-FAC-expand or -reduce, :func:`fisherlab.engine.kronecker.kron_factors`; groups = 1).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from fisherlab.engine.hooks.base import Grads, LayerRule, result_buffer, squares_and_norms_of
from fisherlab.engine.kronecker import pad_input, unfold_input, unfold_output

__all__ = ["ConvRule"]

_Conv = torch.nn.Conv1d | torch.nn.Conv2d | torch.nn.Conv3d


#: below this many input channels (and without groups) the input-as-batch correlation is used
SMALL_INPUT_CHANNELS = 8
#: per-sample weight gradients are formed for chunks of samples of about this many numbers
CHUNK_ELEMENTS = 1 << 20

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _padded(module: _Conv, x: Tensor) -> tuple[Tensor, list[int]]:
    """Input padded explicitly (asymmetric or non-zero padding), and the remaining padding."""
    dims = x.ndim - 2
    if not isinstance(module.padding, str) and module.padding_mode == "zeros":
        return x, [int(p) for p in module.padding]
    return pad_input(module, x), [0] * dims


def per_sample_weight_gradients(module: _Conv, x: Tensor, b: Tensor) -> Tensor:
    """Per-sample weight gradients ``(N, C_out, C_in/G, *k)`` of output gradients ``b``.

    ``x`` is the layer input ``(N, C_in, *H)`` and ``b`` the output gradient
    ``(N, C_out, *H_out)``.
    """
    n, c = x.shape[:2]
    o = b.shape[1]
    dims = x.ndim - 2
    groups = module.groups
    kernel = module.kernel_size
    x, padding = _padded(module, x)
    if groups == 1 and c <= SMALL_INPUT_CHANNELS:
        # G_n[o, c, κ] = Σ_t b_n[o, t] x_n[c, s t + d κ]: a grouped correlation with the
        # channels as the batch and the output gradients as N·C_out kernels
        if any(padding):
            x = F.pad(x, [p for p in reversed(padding) for _ in range(2)])
        weight = b.reshape(n * o, 1, *b.shape[2:])
        out = _CONV[dims](
            x.transpose(0, 1), weight, stride=module.dilation, dilation=module.stride, groups=n
        )
        out = out[(Ellipsis, *(slice(0, k) for k in kernel))]
        out = out.reshape(c, n, o, *kernel).movedim(0, 2)
        return out
    shape = (n * o, c // groups, *kernel)
    placeholder = x.new_empty(shape)
    _, grad_weight, _ = torch.ops.aten.convolution_backward(
        b.reshape(1, n * o, *b.shape[2:]),
        x.reshape(1, n * c, *x.shape[2:]),
        placeholder,
        None,
        list(module.stride),
        padding,
        list(module.dilation),
        False,
        [0] * dims,
        n * groups,
        [False, True, False],
    )
    return grad_weight.reshape(n, o, c // groups, *kernel)


class ConvRule(LayerRule):
    """Closed forms for :class:`torch.nn.Conv1d`, ``Conv2d`` and ``Conv3d``."""

    types = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    has_kron_factors = True

    @staticmethod
    def _chunks(module: torch.nn.Module, n: int) -> list[slice]:
        """Sample chunks whose per-sample weight gradients hold about ``CHUNK_ELEMENTS``."""
        size = max(1, CHUNK_ELEMENTS // module.weight.numel())  # type: ignore[union-attr]
        return [slice(start, min(start + size, n)) for start in range(0, n, size)]

    def _weight_chunks(self, module: torch.nn.Module, x: Tensor, b: Tensor):  # noqa: ANN202
        for part in self._chunks(module, x.shape[0]):
            yield part, per_sample_weight_gradients(module, x[part], b[part])  # type: ignore[arg-type]

    def per_sample(
        self, module: torch.nn.Module, ctx: Tensor, b: Tensor, out: Grads | None = None
    ) -> Grads:
        """``∇_W = B Uᵀ`` per group (computed by convolutions) and ``∇_β = Σ_t B``.

        The weight gradients are written into ``out["weight"]`` when given (reused while
        the shape stays).
        """
        k, n = b.shape[:2]
        weight = result_buffer(out, "weight", (k, n, *module.weight.shape), b)  # type: ignore[union-attr]
        for j in range(k):
            for part, grads in self._weight_chunks(module, ctx, b[j]):
                weight[j, part] = grads
        result: Grads = {"weight": weight}
        if module.bias is not None:
            result["bias"] = b.flatten(3).sum(-1)
        return result

    def sum_squares(self, module: torch.nn.Module, ctx: Tensor, b: Tensor) -> Grads:
        """``Σ_{k,n} ∇²`` accumulated over sample chunks (no ``(N, *W)`` tensor)."""
        total = b.new_zeros(module.weight.shape)  # type: ignore[union-attr]
        for j in range(b.shape[0]):
            for _, grads in self._weight_chunks(module, ctx, b[j]):
                total += grads.square().sum(0)
        result: Grads = {"weight": total}
        if module.bias is not None:
            result["bias"] = b.flatten(3).sum(-1).square().sum((0, 1))
        return result

    def squared_norms(self, module: torch.nn.Module, ctx: Tensor, b: Tensor) -> Grads:
        """``‖∇_W‖²`` per sample from sample chunks, ``(N,)``."""
        norms = [g.flatten(1).square().sum(1) for _, g in self._weight_chunks(module, ctx, b[0])]
        result: Grads = {"weight": torch.cat(norms)}
        if module.bias is not None:
            result["bias"] = b[0].flatten(2).sum(-1).square().sum(1)
        return result

    def squares_and_norms(
        self, module: torch.nn.Module, ctx: Tensor, b: Tensor
    ) -> tuple[Grads, Grads]:
        """``Σ_n ∇²`` and ``‖∇‖²`` per sample from one set of per-sample weight gradients."""
        total = b.new_zeros(module.weight.shape)  # type: ignore[union-attr]
        norms = []
        for _, grads in self._weight_chunks(module, ctx, b[0]):
            chunk_sum, chunk_norms = squares_and_norms_of(grads)
            total += chunk_sum
            norms.append(chunk_norms)
        sums: Grads = {"weight": total}
        sample_norms: Grads = {"weight": torch.cat(norms)}
        if module.bias is not None:
            bias_squares = b[0].flatten(2).sum(-1).square()
            sums["bias"] = bias_squares.sum(0)
            sample_norms["bias"] = bias_squares.sum(1)
        return sums, sample_norms

    def kron_inputs(self, module: torch.nn.Module, ctx: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        """Patches ``(N, T, C_in·∏k)`` of the input and the columns as ``(K, N, T, C_out)``."""
        a = unfold_input(module, ctx)
        g = unfold_output(module, b.flatten(0, 1)).reshape(b.shape[0], *a.shape[:2], -1)
        return a, g
