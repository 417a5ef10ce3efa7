"""Diagonals of :class:`fisherlab.Curvature` quantities by the fast per-layer engine.

:class:`fisherlab.Curvature` computes ``form="diag"`` of the empirical Fisher, the Fisher
(exact and Monte-Carlo), the GGN and the gradient variance with these batch sums when the
model is covered by the fast path (``engine="auto"`` or ``"hooks"``): one forward and one
backward pass with the √Λ columns or sampled-label gradients backpropagated, instead of
one vector-Jacobian product per sample and output. Monte-Carlo labels are drawn in the
same order as the generic engine, so both engines give the same numbers.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from fisherlab.engine.hooks.collector import (
    DIAGONAL_OF,
    Collector,
    FallbackWarning,
    Statistic,
    compute,
)
from fisherlab.likelihoods import Likelihood
from fisherlab.quantities import Quantity

__all__ = ["unsupported_reason", "batch_diagonal"]


def unsupported_reason(model: torch.nn.Module, likelihood: Likelihood) -> str | None:
    """Why the fast path does not cover ``model`` (``None`` if it does)."""
    return Collector(model, likelihood, (Statistic.GRADIENT,), reduction="sum").fallback_reason


def batch_diagonal(
    model: torch.nn.Module,
    likelihood: Likelihood,
    X: Tensor,
    y: Tensor,
    quantity: Quantity,
    mc_samples: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Unnormalised batch sum ``Σ_n diag(Q_n)`` of ``quantity`` on ``(X, y)``, shape ``(D,)``.

    Where a model turns out at run time to need the generic engine (e.g. a parameter used
    outside its layer), the collector computes the statistic with it; the warning it
    emits is silenced here because the result is the same.
    """
    statistic = DIAGONAL_OF[quantity]
    with warnings.catch_warnings(), torch.enable_grad():  # callers may run under no_grad
        warnings.simplefilter("ignore", FallbackWarning)
        stats = compute(
            model,
            likelihood,
            X,
            y,
            (statistic,),
            reduction="sum",
            mc_samples=mc_samples,
            generator=generator,
            distributed=False,  # a batch sum of this rank: Curvature sums over the ranks
        )
    return stats.flat(statistic)
