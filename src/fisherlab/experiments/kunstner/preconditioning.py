r"""Shared protocol of the Kunstner et al. optimization experiments (App. D.3).

Runs of GD, NGD and EF-preconditioned GD (Eq. D.30-D.32) on a linear model, many at once:

.. math::
    \theta_{t+1} = \theta_t - \gamma\,(B(\theta_t) + \lambda I)^{-1}\nabla L(\theta_t),
    \quad B \in \{0, F, \tilde F\},

with all quantities from :class:`fisherlab.engine.glm.LinearModel` and the update from
:mod:`fisherlab.optim.preconditioned`. A run stops (its final loss is recorded as
``inf``) as soon as its loss exceeds ``divergence_factor`` times the initial loss or is
not finite — the early-stopping rule of the paper's grid search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from fisherlab.engine.glm import LinearModel, LinearModelPoint
from fisherlab.optim.preconditioned import preconditioned_update

__all__ = [
    "METHODS",
    "Trajectory",
    "gradient_resolved",
    "linear_problem",
    "optimum",
    "run_batch",
    "preconditioner",
    "log10_grid",
    "select",
]

METHODS = ("GD", "NGD", "EFGD")


def linear_problem(name: str, add_bias: bool = True) -> tuple[LinearModel, Any]:
    """The linear model of the protocol on data set ``name`` and the data set itself.

    Least squares (Gaussian, σ = 1) for regression, logistic regression (Bernoulli) for
    binary classification; raw features, a column of ones appended last if ``add_bias``.
    """
    from fisherlab import datasets
    from fisherlab.likelihoods import Bernoulli, Gaussian

    data = datasets.load(name, add_bias=add_bias)
    likelihood = Gaussian() if data.task == "regression" else Bernoulli()
    return LinearModel(data.X, data.y.to(data.X.dtype), likelihood), data


def optimum(model: LinearModel) -> Tensor:
    r"""The least-squares minimiser :math:`\theta^*` of a Gaussian linear model.

    :math:`\theta^* = \arg\min_\theta \|X\theta - y\|^2` (``torch.linalg.lstsq``), the
    minimiser of the loss for any :math:`\sigma`. Other likelihoods have no closed form
    (and on separable data no minimiser) and are refused.
    """
    from fisherlab.likelihoods import Gaussian

    if not isinstance(model.likelihood, Gaussian):
        raise ValueError(
            f"optimum needs a Gaussian likelihood, got {type(model.likelihood).__name__}"
        )
    return torch.linalg.lstsq(model.X, model.y).solution[:, 0]


def gradient_resolved(model: LinearModel, theta: Tensor, rtol: float = 1e-8) -> Tensor:
    r"""Whether :math:`\nabla L(\theta)` is resolved above floating-point cancellation.

    :math:`\nabla L = \frac1N\sum_n g_n` is a sum of per-sample gradients; when it is
    small against the summands its computed value is dominated by round-off. The gradient
    counts as resolved when :math:`\|\nabla L\| > \mathrm{rtol}\cdot\frac1N\sum_n
    \|g_n\|` (``rtol = 1e-8`` keeps eight of the sixteen float64 digits). Batched over
    ``theta``'s leading dimensions.
    """
    summands = model.per_sample_gradients(theta).norm(dim=-1).mean(-1)
    return model.gradient(theta).norm(dim=-1) > rtol * summands


def log10_grid(start: float, stop: float, num: int) -> list[float]:
    """Exponents of ``numpy.logspace(start, stop, num)``, rounded to 1e-9 (exact keys)."""
    if num == 1:
        return [float(start)]
    step = (stop - start) / (num - 1)
    return [round(start + i * step, 9) for i in range(num)]


def preconditioner(
    model: LinearModel | LinearModelPoint, method: str, theta: Tensor | None = None
) -> Tensor | None:
    """``B(θ)`` of ``method`` (``None`` for GD), batched over ``theta``'s leading dims.

    ``model`` is a :class:`LinearModel` with ``theta``, or a point of one
    (:meth:`LinearModel.at`), whose quantities it reuses.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    if method == "GD":
        return None
    if theta is None and not isinstance(model, LinearModelPoint):
        raise ValueError("preconditioner needs theta with a LinearModel")
    point = model if theta is None else model.at(theta)
    return point.fisher if method == "NGD" else point.empirical_fisher


@dataclass
class Trajectory:
    """Losses (``(T + 1, R)``) and parameters (``(T + 1, R, D)``) of a batch of runs."""

    losses: Tensor
    thetas: Tensor | None


def run_batch(
    model: LinearModel,
    method: str,
    log10_lrs: Tensor,
    log10_damping: float | Tensor | None,
    iterations: int,
    theta0: Tensor | None = None,
    divergence_factor: float = 100.0,
    keep_thetas: bool = False,
) -> Trajectory:
    """Run ``R = len(log10_lrs)`` preconditioned-GD runs side by side.

    Parameters
    ----------
    model : LinearModel
        The problem.
    method : {"GD", "NGD", "EFGD"}
        Preconditioner: none, Fisher or empirical Fisher.
    log10_lrs : Tensor
        ``(R,)`` step-size exponents.
    log10_damping : float, Tensor or None
        Damping exponent, one for all runs or ``(R,)`` (``None`` for GD).
    iterations : int
        Number of updates.
    theta0 : Tensor, optional
        ``(D,)`` or ``(R, D)`` start (default: zero).
    divergence_factor : float
        Runs whose loss exceeds this multiple of the initial loss are stopped, and their
        subsequent losses are ``inf``.
    keep_thetas : bool
        Record the parameters at every iteration.
    """
    dtype = model.X.dtype
    lrs = (10.0**log10_lrs).to(dtype)
    R, D = lrs.shape[0], model.num_params
    theta = torch.zeros(R, D, dtype=dtype) if theta0 is None else theta0.expand(R, D).clone()
    if log10_damping is None:
        damping = torch.zeros(R, dtype=dtype)
    else:
        damping = (10.0 ** torch.as_tensor(log10_damping, dtype=dtype)).expand(R)
    point = model.at(theta)
    initial = point.loss
    # the runs still going, by index (None: all of them); iterations compute on their rows
    going_rows = None
    finite = torch.isfinite(initial)
    if not finite.all():
        going_rows = finite.nonzero().squeeze(1)
        point = model.at(theta[going_rows])
    losses, thetas = [initial.clone()], [theta.clone()]
    eye = torch.eye(D, dtype=dtype)
    # NGD on a Gaussian model: F, hence (F + λI) and its LU factors, are the same at every
    # iterate; the factors of runs that stop are dropped with their rows.
    constant = method == "NGD" and model.fisher_is_constant
    factors = None

    def rows(values: Tensor) -> Tensor:
        """The rows of ``values`` of the runs still going (read at each call)."""
        return values if going_rows is None else values[going_rows]

    for _ in range(iterations):
        if going_rows is not None and going_rows.numel() == 0:
            # every run has stopped: the remaining losses are inf and the parameters stay
            remaining = iterations + 1 - len(losses)
            losses.extend([torch.full_like(initial, math.inf)] * remaining)
            if keep_thetas:
                thetas.extend([theta] * remaining)
            break
        gradient = point.gradient
        if method == "GD":
            direction = gradient
        else:
            if factors is None:
                lu = torch.linalg.lu_factor(
                    preconditioner(point, method) + rows(damping)[:, None, None] * eye
                )
                factors = lu if constant else None
            else:
                lu = factors
            direction = torch.linalg.lu_solve(*lu, gradient.unsqueeze(-1)).squeeze(-1)
        moved = preconditioned_update(rows(theta), direction, rows(lrs))
        if going_rows is None:
            theta = moved
        else:
            theta.index_copy_(0, going_rows, moved)
        point = model.at(moved)
        loss = point.loss
        going = torch.isfinite(loss) & (loss <= divergence_factor * rows(initial))
        if going_rows is None and bool(going.all()):
            losses.append(loss)
        else:
            if going_rows is None:
                going_rows = torch.arange(R)
            losses.append(
                torch.full_like(initial, math.inf).index_put_((going_rows[going],), loss[going])
            )
            kept = going.nonzero().squeeze(1)
            if kept.numel() < going_rows.numel():
                going_rows = going_rows[kept]
                point = model.at(moved[kept])
                if factors is not None:
                    factors = (factors[0][kept], factors[1][kept])
        if keep_thetas:
            thetas.append(theta.clone())
    return Trajectory(torch.stack(losses), torch.stack(thetas) if keep_thetas else None)


def select(
    final_losses: dict[tuple[float, float | None], float], tie_rtol: float
) -> tuple[tuple[float, float | None], float, list[tuple[float, float | None]]]:
    """Pick the grid cell with the lowest final loss; also return all cells tying with it.

    The selection is the cell with the exactly lowest final loss (the authors' ``argmin``;
    equal values are broken by grid order: increasing step size, then damping). Ties are
    the cells whose final loss lies within ``tie_rtol`` (relative) of that minimum.
    """
    finite = {key: value for key, value in final_losses.items() if math.isfinite(value)}
    if not finite:
        raise ValueError("every run of the grid diverged")
    best_key = min(finite, key=lambda k: (finite[k], k[0], -math.inf if k[1] is None else k[1]))
    best = finite[best_key]
    ties = [k for k, v in finite.items() if abs(v - best) <= tie_rtol * abs(best)]
    return best_key, best, sorted(ties, key=lambda k: (k[0], k[1] or 0.0))
