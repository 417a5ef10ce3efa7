r"""``torch.nn.Conv1d/2d/3d`` with any stride, padding, dilation and groups (zero padding).

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
positions are summed before squaring. Kronecker factors follow KFC with BackPACK's
scaling: :math:`A = \frac1N \sum_{n} U_n U_n^\top` from the unfolded input and :math:`G` from
the position-summed columns (groups = 1 only).
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


#: below this many input channels (and without groups) the input-as-batch correlation is used
SMALL_INPUT_CHANNELS = 8
#: per-sample weight gradients are formed for chunks of samples of about this many numbers
CHUNK_ELEMENTS = 1 << 20

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _padded(module: _Conv, x: Tensor) -> tuple[Tensor, list[int]]:
    """Input padded explicitly when the padding is asymmetric, and the remaining padding."""
    dims = x.ndim - 2
    pads = _pads(module, dims)
    if all(left == right for left, right in pads):
        return x, [left for left, _ in pads]
    return F.pad(x, [p for pair in reversed(pads) for p in pair]), [0] * dims


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

    def supports(self, module: torch.nn.Module) -> str | None:
        """Zero padding only (``padding_mode="zeros"``)."""
        if getattr(module, "padding_mode", "zeros") != "zeros":
            return f"padding_mode={module.padding_mode!r} is not supported"
        return None

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
        """``∇_W = B Uᵀ`` per group (computed by convolutions) and ``∇_β = Σ_t B``."""
        k, n = b.shape[:2]
        weight = b.new_empty(k, n, *module.weight.shape)  # type: ignore[union-attr]
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

    def kron_factors(
        self, module: torch.nn.Module, ctx: Tensor, b: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Return ``A = (1/N) Σ_n U_n U_nᵀ`` and ``G = Σ_{k,n} b̄ b̄ᵀ``, ``b̄ = Σ_t B`` (groups 1)."""
        if module.groups != 1:  # type: ignore[attr-defined]
            raise NotImplementedError(
                f"Kronecker factors of grouped convolutions (groups={module.groups}) are not "
                "implemented"
            )
        U = unfold_input(module, ctx)  # type: ignore[arg-type]
        n = U.shape[0]
        U = U[:, 0].transpose(1, 2).reshape(-1, U.shape[2])
        A = (U.T @ U) / n
        bbar = b.flatten(3).sum(-1).reshape(-1, b.shape[2])
        return A, bbar.T @ bbar
