r"""The interface of a layer rule: closed forms of one layer family's per-sample gradients.

A rule sees a layer's input :math:`a_n` (kept by a forward hook) and output-gradient
columns :math:`b_{k,n} = \partial(\cdot)/\partial z_n` (the gradient of the loss, or the
columns of a factor :math:`S_n` / sampled output gradients backpropagated to the layer's
output :math:`z_n`). Everything is linear in :math:`b`, so scalings are applied by the
collector, not here. For column stacks the leading dimension ``K`` indexes columns and
the second the samples; a rule's outputs keep these dimensions or sum them out:

- :meth:`LayerRule.per_sample`: :math:`\nabla_\theta (b_{k,n}^\top z_n)`, ``(K, N, *shape)``;
- :meth:`LayerRule.sum_squares`: :math:`\sum_{k,n} (\nabla_\theta b_{k,n}^\top z_n)^{\odot 2}`;
- :meth:`LayerRule.squared_norms`: :math:`\|\nabla_\theta b_{1,n}^\top z_n\|^2`, ``(N,)``;
- :meth:`LayerRule.squares_and_norms`: both of the last two from one pass (``K = 1``);
- :meth:`LayerRule.kron_factors`: the Kronecker factors :math:`(A, G)` of the augmented
  weight :math:`[W, \beta]`, K-FAC-expand or -reduce
  (:func:`fisherlab.engine.kronecker.kron_factors`; Linear and convolution only).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from fisherlab.engine.kronecker import kron_factors

__all__ = ["LayerRule", "result_buffer", "squares_and_norms_of", "sum_squares_from_per_sample"]

Grads = dict[str, Tensor]


class LayerRule:
    """Closed forms for one layer family; subclasses implement :meth:`per_sample`.

    ``supports(module)`` returns ``None`` if the module (with its current options) is
    supported, otherwise a short reason; unsupported modules send the collector to the
    generic engine.
    """

    #: module types this rule handles
    types: tuple[type[torch.nn.Module], ...] = ()
    #: the trainable parameters of a module the closed forms cover (others: fallback)
    param_names: tuple[str, ...] = ("weight", "bias")
    #: whether :meth:`kron_factors` is implemented
    has_kron_factors: bool = False
    #: whether :meth:`sum_squares` wants all columns at once (else one at a time)
    stack_columns: bool = False

    def supports(self, module: torch.nn.Module) -> str | None:
        """Return ``None`` if ``module`` is handled, else the reason why it is not."""
        return None

    def prepare(self, module: torch.nn.Module, inp: Tensor) -> Any:
        """Per-forward context computed from the layer input (e.g. an unfolded input)."""
        return inp

    def per_sample(
        self, module: torch.nn.Module, ctx: Any, b: Tensor, out: Grads | None = None
    ) -> Grads:
        """Per-column, per-sample parameter gradients ``(K, N, *param.shape)``.

        ``out`` is an optional dict of buffers a rule may write into (and fill). The results
        belong to the caller (fresh tensors or those buffers, never views of ``b`` or
        ``ctx``): the collector scales them in place.
        """
        raise NotImplementedError

    def sum_squares(self, module: torch.nn.Module, ctx: Any, b: Tensor) -> Grads:
        """``Σ_{k,n}`` of squared per-sample gradients, shaped like each parameter."""
        return sum_squares_from_per_sample(self, module, ctx, b)

    def squared_norms(self, module: torch.nn.Module, ctx: Any, b: Tensor) -> Grads:
        """Squared L2 norms of per-sample gradients for one column stack ``b`` (K=1): ``(N,)``."""
        grads = self.per_sample(module, ctx, b)
        return {name: g[0].flatten(1).pow(2).sum(1) for name, g in grads.items()}

    def squares_and_norms(
        self, module: torch.nn.Module, ctx: Any, b: Tensor
    ) -> tuple[Grads, Grads]:
        """:meth:`sum_squares` and :meth:`squared_norms` of one column stack ``b`` (K = 1).

        Rules that form per-sample gradients for both form them once here.
        """
        return self.sum_squares(module, ctx, b), self.squared_norms(module, ctx, b)

    @staticmethod
    def kron_parameters(module: torch.nn.Module) -> tuple[bool, bool]:
        """Whether the Kronecker block covers the weight and the bias (trainable ones)."""
        weight = getattr(module, "weight", None)
        bias = getattr(module, "bias", None)
        return (
            weight is not None and weight.requires_grad,
            bias is not None and bias.requires_grad,
        )

    def kron_inputs(self, module: torch.nn.Module, ctx: Any, b: Tensor) -> tuple[Tensor, Tensor]:
        """Unfolded inputs ``(N, T, d_in)`` and columns ``(K, N, T, d_out)`` of a layer."""
        raise NotImplementedError(
            f"Kronecker factors are not available for {type(module).__name__} layers"
        )

    def kron_factors(
        self, module: torch.nn.Module, ctx: Any, b: Tensor, approx: str = "expand"
    ) -> tuple[Tensor, Tensor]:
        """Kronecker factors ``(A, G)`` of ``[W, β]`` (see :mod:`fisherlab.engine.kronecker`)."""
        a, g = self.kron_inputs(module, ctx, b)
        return kron_factors(a, g, *self.kron_parameters(module), approx)


def squares_and_norms_of(grads: Tensor) -> tuple[Tensor, Tensor]:
    """``Σ_n g_n²`` and ``‖g_n‖²`` ``(N,)`` of per-sample gradients ``(N, ...)``.

    The first has the shape of one ``g_n``; both come from one elementwise square.
    """
    squares = grads.square()
    return squares.sum(0), squares.flatten(1).sum(1)


def result_buffer(out: Grads | None, name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
    """``out[name]`` when it has ``shape`` and ``like``'s dtype and device, else a new tensor.

    A new tensor is stored as ``out[name]`` when ``out`` is given, for the next call.
    """
    buffer = None if out is None else out.get(name)
    if (
        buffer is not None
        and buffer.shape == shape
        and buffer.dtype == like.dtype
        and buffer.device == like.device
    ):
        return buffer
    buffer = like.new_empty(shape)
    if out is not None:
        out[name] = buffer
    return buffer


def sum_squares_from_per_sample(
    rule: LayerRule, module: torch.nn.Module, ctx: Any, b: Tensor
) -> Grads:
    """``Σ_{k,n}`` of squared per-sample gradients, one column at a time (bounds memory)."""
    total: Grads = {}
    for k in range(b.shape[0]):
        for name, g in rule.per_sample(module, ctx, b[k : k + 1]).items():
            s = g.pow(2).sum((0, 1))
            total[name] = total[name] + s if name in total else s
    return total
