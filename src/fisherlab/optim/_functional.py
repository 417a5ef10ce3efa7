r"""Functional cores of the gradient-moment and sign-based optimizers.

Every function updates a list of parameters in place from their gradients and their
optimizer state; the ``torch.optim.Optimizer`` classes of :mod:`fisherlab.optim` collect
these lists and call them in ``step``. They run under ``torch.no_grad()`` in that case.
Each arithmetic step is one ``torch._foreach_*`` call over all the tensors of the list
(the same elementwise kernels as one call per tensor, without a Python loop over them).

The step count ``k`` is shared by the tensors of one call (the optimizers call once per
distinct count) and 1-based: ``k = t + 1`` in the notation of Balles (2021), whose
algorithms count iterations from ``t = 0``. With that, the bias corrections read
:math:`1 - \beta^{k}` and the variance factor is :math:`\rho(\beta, t) = \rho(\beta, k-1)`.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "adam_star",
    "l1_sign_descent",
    "minibatch_msvag",
    "momentum_variance_factor",
    "msgd",
    "msvag",
    "mssd",
    "sign_descent",
    "svag",
]


def momentum_variance_factor(beta: float, step: int) -> float:
    r"""Return :math:`\rho(\beta, t)` of Balles (2021), Eq. 5.15, for ``step = t + 1``.

    .. math::

        \rho(\beta, t) = \sum_{s=0}^{t} c(\beta, t, s)^2
        = \frac{(1-\beta)(1+\beta^{t+1})}{(1+\beta)(1-\beta^{t+1})}

    with the bias-corrected EMA weights :math:`c(\beta,t,s) = (1-\beta)\beta^{t-s} /
    (1-\beta^{t+1})` (Eq. B.23, B.26). If the gradients entering the moving average are
    independent with common variance :math:`\sigma^2`, the bias-corrected average has
    variance :math:`\rho\,\sigma^2`. It equals 1 exactly on the first step and for
    ``beta == 0`` (the average is then a single gradient).

    Parameters
    ----------
    beta : float
        Moving-average constant in ``[0, 1)``.
    step : int
        Number of gradients averaged so far, ``t + 1 >= 1``.

    Returns
    -------
    float
        :math:`\rho(\beta, t) \in ((1-\beta)/(1+\beta), 1]`.
    """
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}.")
    if step == 1 or beta == 0.0:
        return 1.0
    power = beta**step
    return (1.0 - beta) * (1.0 + power) / ((1.0 + beta) * (1.0 - power))


def _update_moments(
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    beta: float,
    step: int,
) -> tuple[list[Tensor], list[Tensor]]:
    """Update the EMAs of g and g² in place; return the bias-corrected ``(m, v)``."""
    torch._foreach_mul_(exp_avgs, beta)
    torch._foreach_add_(exp_avgs, grads, alpha=1.0 - beta)
    torch._foreach_mul_(exp_avg_sqs, beta)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1.0 - beta)
    bias_correction = 1.0 - beta**step
    return torch._foreach_div(exp_avgs, bias_correction), torch._foreach_div(
        exp_avg_sqs, bias_correction
    )


def _moment_estimates(
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    step: int,
    beta: float,
) -> tuple[list[Tensor], list[Tensor], list[Tensor], float]:
    r"""Update the EMAs; return :math:`m`, :math:`m^2`, :math:`s` and :math:`\rho(\beta, t)`.

    :math:`m` is the bias-corrected mean and :math:`s = (v - m^2) / (1 - \rho)` the
    bias-corrected variance estimate of Eq. 5.16 (fresh tensors, free to modify in place).
    ``s = 0`` when :math:`\rho = 1` (first step, or ``beta == 0``), as prescribed in §5.4.4.
    Rounding can make :math:`v - m^2` slightly negative; ``s`` is clamped at zero, which
    keeps the variance-adaptation factors in ``[0, 1]``.
    """
    m, v = _update_moments(grads, exp_avgs, exp_avg_sqs, beta, step)
    m_sq = torch._foreach_mul(m, m)
    rho = momentum_variance_factor(beta, step)
    if rho == 1.0:
        return m, m_sq, [x.new_zeros(x.shape) for x in m], rho
    s = torch._foreach_sub(v, m_sq)
    torch._foreach_div_(s, 1.0 - rho)
    torch._foreach_clamp_min_(s, 0.0)
    return m, m_sq, s, rho


def _adaptation_factors(m_sq: list[Tensor], noise: list[Tensor], eps: float) -> list[Tensor]:
    r"""Return :math:`m^2 / (m^2 + \text{noise} + \varepsilon)`, and 0 where that is 0/0.

    With ``noise >= 0`` and ``eps >= 0`` the denominator vanishes only where ``m = 0``
    too; there the factor is 0 (the thesis performs no update in such coordinates).
    """
    denominators = torch._foreach_add(m_sq, noise)
    if eps:
        torch._foreach_add_(denominators, eps)
    for denominator in denominators:
        denominator.masked_fill_(denominator == 0, 1.0)
    return torch._foreach_div(m_sq, denominators)


def msvag(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    step: int,
    *,
    lr: float,
    beta: float,
    eps: float,
) -> None:
    r"""M-SVAG update (Balles 2021, Alg. 2).

    :math:`\theta \leftarrow \theta - \alpha\,\gamma\odot m` with
    :math:`\gamma = m^2 / (m^2 + \rho(\beta,t)\,s + \varepsilon)`, using the moving-average
    variance estimate :math:`s` of Eq. 5.16 (Eq. 5.19 for the factor).
    """
    m, m_sq, s, rho = _moment_estimates(grads, exp_avgs, exp_avg_sqs, step, beta)
    torch._foreach_mul_(s, rho)
    gamma = _adaptation_factors(m_sq, s, eps)
    torch._foreach_mul_(gamma, m)
    torch._foreach_add_(params, gamma, alpha=-lr)


def svag(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    step: int,
    *,
    lr: float,
    beta: float,
    eps: float,
) -> None:
    r"""SVAG update (Balles 2021, Alg. 4).

    :math:`\theta \leftarrow \theta - \alpha\,\gamma\odot g` with
    :math:`\gamma = m^2 / (m^2 + s + \varepsilon)` (Eq. 5.17), using :math:`s` of Eq. 5.16.
    """
    _, m_sq, s, _ = _moment_estimates(grads, exp_avgs, exp_avg_sqs, step, beta)
    gamma = _adaptation_factors(m_sq, s, eps)
    torch._foreach_mul_(gamma, grads)
    torch._foreach_add_(params, gamma, alpha=-lr)


def adam_star(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    step: int,
    *,
    lr: float,
    beta: float,
    eps: float,
) -> None:
    r"""ADAM* update (Balles 2021, Alg. 5).

    :math:`\theta \leftarrow \theta - \alpha\,\gamma \odot \operatorname{sign}(m)` with
    :math:`\gamma = \sqrt{m^2 / (m^2 + \rho(\beta,t)\,s + \varepsilon)}`.
    """
    m, m_sq, s, rho = _moment_estimates(grads, exp_avgs, exp_avg_sqs, step, beta)
    torch._foreach_mul_(s, rho)
    gamma = _adaptation_factors(m_sq, s, eps)
    torch._foreach_sqrt_(gamma)
    torch._foreach_sign_(m)
    torch._foreach_mul_(gamma, m)
    torch._foreach_add_(params, gamma, alpha=-lr)


def minibatch_msvag(
    params: list[Tensor],
    grads: list[Tensor],
    variances: list[Tensor],
    exp_avgs: list[Tensor],
    exp_variances: list[Tensor],
    step: int,
    *,
    lr: float,
    beta: float,
    eps: float,
) -> None:
    r"""M-SVAG with minibatch variance estimates (Balles 2021, Alg. 6, Eq. B.34).

    .. math::

        \tilde m &\leftarrow \beta\tilde m + (1-\beta) g, \quad
        \tilde r \leftarrow \beta^2 \tilde r + (1-\beta^2)\,\hat s^{\mathrm{mb}}, \\
        m &= \tilde m / (1-\beta^{t+1}), \quad r = \tilde r / (1-\beta^{2(t+1)}), \\
        \theta &\leftarrow \theta - \alpha\,\frac{m^2}{m^2 + \rho(\beta,t)\,r + \varepsilon}
        \odot m.

    Negative entries of :math:`\hat s^{\mathrm{mb}}` are clamped to zero before averaging.
    """
    beta_sq = beta * beta
    torch._foreach_mul_(exp_avgs, beta)
    torch._foreach_add_(exp_avgs, grads, alpha=1.0 - beta)
    torch._foreach_mul_(exp_variances, beta_sq)
    clamped = torch._foreach_clamp_min(variances, 0.0)
    torch._foreach_add_(exp_variances, clamped, alpha=1.0 - beta_sq)
    m = torch._foreach_div(exp_avgs, 1.0 - beta**step)
    r = torch._foreach_div(exp_variances, 1.0 - beta_sq**step)
    torch._foreach_mul_(r, momentum_variance_factor(beta, step))
    gamma = _adaptation_factors(torch._foreach_mul(m, m), r, eps)
    torch._foreach_mul_(gamma, m)
    torch._foreach_add_(params, gamma, alpha=-lr)


def msgd(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    step: int,
    *,
    lr: float,
    beta: float,
) -> None:
    r"""M-SGD update (Balles 2021, Alg. 3, left).

    :math:`\tilde m \leftarrow \beta\tilde m + (1-\beta) g`,
    :math:`\theta \leftarrow \theta - \alpha\,\tilde m / (1-\beta^{t+1})`.
    """
    torch._foreach_mul_(exp_avgs, beta)
    torch._foreach_add_(exp_avgs, grads, alpha=1.0 - beta)
    torch._foreach_add_(params, exp_avgs, alpha=-lr / (1.0 - beta**step))


def mssd(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    *,
    lr: float,
    beta: float,
) -> None:
    r"""M-SIGN-SGD update (Balles 2021, Alg. 3, right).

    :math:`\tilde m \leftarrow \beta\tilde m + (1-\beta) g`,
    :math:`\theta \leftarrow \theta - \alpha \operatorname{sign}(\tilde m)`.
    """
    torch._foreach_mul_(exp_avgs, beta)
    torch._foreach_add_(exp_avgs, grads, alpha=1.0 - beta)
    torch._foreach_add_(params, torch._foreach_sign(exp_avgs), alpha=-lr)


def sign_descent(params: list[Tensor], grads: list[Tensor], *, lr: float) -> None:
    r"""Sign (stochastic) gradient descent, Balles (2021) Eq. 6.1.

    :math:`\theta \leftarrow \theta - \alpha \operatorname{sign}(g)`.
    """
    torch._foreach_add_(params, torch._foreach_sign(grads), alpha=-lr)


def l1_sign_descent(params: list[Tensor], grads: list[Tensor], *, lr: float) -> None:
    r"""Steepest descent w.r.t. the max-norm, Balles (2021) Eq. 6.10.

    :math:`\theta \leftarrow \theta - \alpha \|g\|_1 \operatorname{sign}(g)`, where
    :math:`\|g\|_1` sums over all entries of all ``grads``.
    """
    if not grads:
        return
    l1_norm = sum(grad.abs().sum() for grad in grads)
    for p, grad in zip(params, grads, strict=True):
        p.add_(grad.sign().mul_(l1_norm), alpha=-lr)
