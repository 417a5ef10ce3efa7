r"""The reduction factors of a loss over :math:`N` samples, defined once.

With per-sample losses :math:`l_n` and gradients :math:`g_n = \nabla l_n` the objective is
:math:`L = c \sum_n l_n` with

- :math:`c = 1/N` for ``reduction="mean"`` and :math:`c = 1` for ``"sum"``: every
  quantity that is a sum over samples (gradient, empirical Fisher, Fisher, GGN, Hessian)
  is :math:`c` times its batch sum;
- the gradient covariance (the covariance of the one-sample estimate of :math:`\nabla L`:
  :math:`g_n` for the mean, :math:`N g_n` for the sum) is

  .. math::
      \Sigma = u \,\bigl(a \sum_n g_n g_n^\top - \nabla L \nabla L^\top\bigr),
      \qquad a = 1/N \text{ (mean)}, \; a = N \text{ (sum)},

  with :math:`u = N/(N-1)` for the unbiased estimate and :math:`u = 1` otherwise
  (Balles et al. Eq. 3.29 for the mean, Kunstner et al. Eq. 18 for the sum:
  :math:`N \tilde F = \Sigma + \nabla L \nabla L^\top`).

:class:`Scaling` is the only place these factors are derived; :class:`fisherlab.Curvature`,
the hooks engine and the monitor all ask it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from torch import Tensor

from fisherlab.validation import check_reduction

__all__ = ["Scaling"]

T = TypeVar("T", Tensor, float)


@dataclass(frozen=True)
class Scaling:
    """Reduction factors of a loss ``c Σ_n l_n`` over ``num_samples`` samples.

    Parameters
    ----------
    reduction : {"mean", "sum"}
        ``L = (1/N) Σ l_n`` or ``Σ l_n``.
    num_samples : int
        ``N`` (the global number under :mod:`torch.distributed`).

    Examples
    --------
    >>> s = Scaling("mean", 4)
    >>> s.c, s.a
    (0.25, 0.25)
    >>> Scaling("sum", 4).a
    4.0
    """

    reduction: str
    num_samples: int

    def __post_init__(self) -> None:
        check_reduction(self.reduction)
        if isinstance(self.num_samples, bool) or not isinstance(self.num_samples, int):
            raise TypeError(f"num_samples must be an int, got {self.num_samples!r}")
        if self.num_samples < 0:
            raise ValueError(f"num_samples must be non-negative, got {self.num_samples}")

    @property
    def c(self) -> float:
        """``c``: ``1/N`` (mean) or ``1`` (sum); ``1`` for ``N = 0``."""
        if self.reduction == "mean" and self.num_samples:
            return 1.0 / self.num_samples
        return 1.0

    @property
    def a(self) -> float:
        """``a`` of ``Σ = a Σ_n g_n g_nᵀ − ∇L∇Lᵀ``: ``1/N`` (mean) or ``N`` (sum)."""
        n = self.num_samples
        if self.reduction == "mean":
            return 1.0 / n if n else 1.0
        return float(n)

    def normalize(self, total: T) -> T:
        """Apply the reduction to a sum over samples: ``total / N`` (mean) or ``total``."""
        if self.reduction == "mean" and self.num_samples:
            return total / self.num_samples
        return total

    def unbiased_factor(self, unbiased: bool) -> float:
        """``u``: ``N/(N − 1)`` for the unbiased covariance estimate, else ``1``."""
        if not unbiased:
            return 1.0
        if self.num_samples < 2:
            raise ValueError("the unbiased covariance estimate needs at least 2 samples")
        return self.num_samples / (self.num_samples - 1)

    def covariance(self, second_moment_sum: T, gradient_outer: T, unbiased: bool = False) -> T:
        r"""``Σ = u (a S − ∇L∇Lᵀ)`` from the batch sum ``S = Σ_n g_n g_nᵀ`` (any form).

        ``second_moment_sum`` and ``gradient_outer`` are the same structure of
        :math:`\sum_n g_n g_n^\top` and :math:`\nabla L \nabla L^\top`: dense matrices,
        their diagonals (:math:`\sum_n g_n^{\odot 2}` and :math:`(\nabla L)^{\odot 2}`:
        the variance) or products with a matrix :math:`V`.
        """
        u = self.unbiased_factor(unbiased)
        value = self.a * second_moment_sum - gradient_outer
        return value if u == 1.0 else u * value
