r"""What is computed: the quantities, as batch sums in each basic structure.

Each :class:`Quantity` is a sum over samples :math:`\sum_n Q_n` (the reduction is applied
by :class:`fisherlab.Curvature`):

===================  ==================================================================
quantity              per-sample term :math:`Q_n`
===================  ==================================================================
``EMPIRICAL_FISHER``  :math:`g_n g_n^\top`, :math:`g_n = \nabla_\theta l_n` (Kunstner Eq. 3)
``FISHER``            :math:`J_n^\top \Lambda(f_n) J_n` (Kunstner Eq. 2 / Prop. 1), via the
                      factor :math:`S_n S_n^\top = \Lambda(f_n)`
``FISHER_MC``         :math:`\frac1S \sum_s J_n^\top q_{s,n} q_{s,n}^\top J_n` with sampled
                      labels :math:`\hat y_{s,n} \sim p(\cdot|f_n)`
``GGN``               :math:`J_n^\top \nabla_f^2 l_n J_n` (Kunstner Eq. 10, canonical split)
``HESSIAN``           :math:`\nabla_\theta^2 l_n`
===================  ==================================================================

The functions here take one batch and return the batch sum in dense ``(D, D)``, diagonal
``(D,)`` or matrix-product form. The covariance and variance are derived from the
empirical Fisher and the gradient in :mod:`fisherlab.curvature`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import torch
from torch import Tensor

from fisherlab.engine.functional import FunctionalModel

__all__ = ["Quantity", "QuantitySpec", "batch_dense", "batch_diag", "batch_matvec"]


class Quantity(str, Enum):
    """The curvature and noise quantities fisherlab computes."""

    EMPIRICAL_FISHER = "empirical_fisher"
    FISHER = "fisher"
    FISHER_MC = "fisher_mc"
    GGN = "ggn"
    HESSIAN = "hessian"
    COVARIANCE = "covariance"
    VARIANCE = "variance"


@dataclass(frozen=True)
class QuantitySpec:
    """A quantity together with its options.

    Parameters
    ----------
    kind : Quantity
        Which quantity.
    mc_samples : int or None
        Number of sampled labels per input for ``FISHER_MC``.
    generator : torch.Generator or None
        Source of randomness for sampled labels.
    unbiased : bool
        For ``COVARIANCE``/``VARIANCE``: use the ``1/(N − 1)`` per-example estimate.
    """

    kind: Quantity
    mc_samples: int | None = None
    generator: torch.Generator | None = None
    unbiased: bool = False


def mc_factors(
    fm: FunctionalModel, X: Tensor, mc_samples: int, generator: torch.Generator | None
) -> Tensor:
    r"""Monte-Carlo factors :math:`Q_n = [q_{1,n}, …, q_{S,n}]/\sqrt S`, shape ``(N, C, S)``."""
    with torch.no_grad():
        f = fm.outputs(fm.params, X)
    q = fm.likelihood.sampled_output_gradient(f, mc_samples, generator)
    return q.permute(1, 2, 0) / math.sqrt(mc_samples)


def exact_factors(fm: FunctionalModel, X: Tensor) -> Tensor:
    r"""Closed-form factors :math:`S_n` with :math:`S_n S_n^\top = \Lambda(f_n)`, ``(N, C, K)``."""
    with torch.no_grad():
        f = fm.outputs(fm.params, X)
    return fm.likelihood.sqrt_fisher_output(f)


def _factors(fm: FunctionalModel, X: Tensor, spec: QuantitySpec) -> Tensor:
    if spec.kind is Quantity.FISHER:
        return exact_factors(fm, X)
    return mc_factors(fm, X, spec.mc_samples or 1, spec.generator)


def batch_dense(fm: FunctionalModel, X: Tensor, y: Tensor, spec: QuantitySpec) -> Tensor:
    """``Σ_n Q_n`` over one batch as a dense ``(D, D)`` matrix."""
    kind = spec.kind
    if kind is Quantity.EMPIRICAL_FISHER:
        G = fm.per_sample_gradients(X, y)
        return G.T @ G
    if kind in (Quantity.FISHER, Quantity.FISHER_MC):
        rows = fm.sandwich_rows(X, _factors(fm, X, spec)).flatten(0, 1)
        return rows.T @ rows
    if kind is Quantity.GGN:
        return fm.ggn_dense(X, y)
    if kind is Quantity.HESSIAN:
        return fm.hessian_dense(X, y)
    raise ValueError(f"no batch-sum dense form for {kind.value}")


def batch_diag(fm: FunctionalModel, X: Tensor, y: Tensor, spec: QuantitySpec) -> Tensor:
    """Diagonal of ``Σ_n Q_n`` over one batch, ``(D,)``, without a ``(D, D)`` matrix."""
    kind = spec.kind
    if kind is Quantity.EMPIRICAL_FISHER:
        return (fm.per_sample_gradients(X, y) ** 2).sum(0)
    if kind in (Quantity.FISHER, Quantity.FISHER_MC):
        return (fm.sandwich_rows(X, _factors(fm, X, spec)) ** 2).sum((0, 1))
    if kind is Quantity.GGN:
        return fm.ggn_diag(X, y)
    if kind is Quantity.HESSIAN:
        return fm.hessian_diag(X, y)
    raise ValueError(f"no batch-sum diagonal form for {kind.value}")


def batch_matvec(
    fm: FunctionalModel,
    X: Tensor,
    y: Tensor,
    spec: QuantitySpec,
    V: Tensor,
    mc_factor: Tensor | None = None,
) -> Tensor:
    """``(Σ_n Q_n) V`` over one batch for ``V`` of shape ``(D, k)``, matrix-free.

    For ``FISHER_MC`` the sampled factors of the batch must be passed as ``mc_factor``
    (``(N, C, S)``) so that repeated products use the same samples.
    """
    kind = spec.kind
    if kind is Quantity.EMPIRICAL_FISHER:
        return fm.gradient_outer_matvec(X, y, V)
    if kind is Quantity.HESSIAN:
        return fm.hessian_matvec(X, y, V)
    if kind is Quantity.FISHER:
        inner = fm.likelihood.fisher_output
    elif kind is Quantity.GGN:
        inner = lambda f: fm.likelihood.output_hessian(f, y)  # noqa: E731
    elif kind is Quantity.FISHER_MC:
        if mc_factor is None:
            raise ValueError("FISHER_MC products need the batch's sampled factors")
        inner = mc_factor @ mc_factor.transpose(1, 2)
    else:
        raise ValueError(f"no batch-sum product for {kind.value}")
    return fm.sandwich_matvec(X, inner, V)
