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

The generic engine (:mod:`fisherlab.engine.generic`) computes their batch sums in dense,
diagonal and matrix-product form; the covariance and variance are derived from the
empirical Fisher and the gradient by the one rule of :class:`fisherlab.scaling.Scaling`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import torch
from torch import Tensor

from fisherlab.likelihoods import Likelihood

__all__ = ["FisherType", "Quantity", "QuantitySpec", "output_factor"]


class Quantity(str, Enum):
    """The curvature and noise quantities fisherlab computes."""

    EMPIRICAL_FISHER = "empirical_fisher"
    FISHER = "fisher"
    FISHER_MC = "fisher_mc"
    GGN = "ggn"
    HESSIAN = "hessian"
    COVARIANCE = "covariance"
    VARIANCE = "variance"


class FisherType(str, Enum):
    """Which Fisher: exact (closed form), Monte-Carlo (sampled labels) or empirical."""

    EXACT = "exact"
    MC = "mc"
    EMPIRICAL = "empirical"

    @property
    def quantity(self) -> Quantity:
        """The :class:`Quantity` this Fisher is."""
        return _FISHER_QUANTITY[self]


_FISHER_QUANTITY = {
    FisherType.EXACT: Quantity.FISHER,
    FisherType.MC: Quantity.FISHER_MC,
    FisherType.EMPIRICAL: Quantity.EMPIRICAL_FISHER,
}


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
    approx : {"expand", "reduce"}
        For ``form="kfac"``/``"ekfac"``: K-FAC-expand or K-FAC-reduce of weight-shared
        layers (Eschenhagen et al. 2023; :mod:`fisherlab.engine.kronecker`).
    """

    kind: Quantity
    mc_samples: int | None = None
    generator: torch.Generator | None = None
    unbiased: bool = False
    approx: str = "expand"


def output_factor(
    likelihood: Likelihood, f: Tensor, y: Tensor | None, spec: QuantitySpec
) -> Tensor:
    r"""The output factor :math:`S_n` of ``spec``'s quantity, ``(N, C, K)``: the one choice.

    The quantity's per-sample term is :math:`J_n^\top S_n S_n^\top J_n` with

    - ``FISHER``, ``GGN``: :math:`S_n S_n^\top = \Lambda(f_n) = \nabla_f^2 l_n` (the
      likelihoods are canonical-link, so the Fisher's square root is the output Hessian's);
    - ``FISHER_MC``: :math:`[q_{1,n}, …, q_{S,n}]/\sqrt S`, sampled-label gradients
      (``likelihood.sampled_output_gradient(f, S, generator)``);
    - ``EMPIRICAL_FISHER``: the residual :math:`\nabla_f l_n` (needs the targets ``y``).
    """
    f = f.detach()
    if spec.kind in (Quantity.FISHER, Quantity.GGN):
        return likelihood.sqrt_fisher_output(f)
    if spec.kind is Quantity.FISHER_MC:
        samples = spec.mc_samples or 1
        q = likelihood.sampled_output_gradient(f, samples, spec.generator)
        return q.permute(1, 2, 0) / math.sqrt(samples)
    if spec.kind is Quantity.EMPIRICAL_FISHER:
        if y is None:
            raise ValueError("the empirical Fisher's output factor needs the targets y")
        return likelihood.output_gradient(f, y).unsqueeze(2)
    raise ValueError(
        f"no output factor of {spec.kind.value}; supported: fisher (exact and Monte-Carlo), "
        "ggn, empirical_fisher"
    )
