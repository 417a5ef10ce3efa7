r"""Functional cores of the gradient-moment and sign-based optimizers.

Every function updates a list of parameters in place from their gradients and their
optimizer state; the ``torch.optim.Optimizer`` classes of :mod:`fisherlab.optim` collect
these lists and call them in ``step``. They run under ``torch.no_grad()`` in that case.

Step counts ``k`` are 1-based: ``k = t + 1`` in the notation of Balles (2021), whose
algorithms count iterations from ``t = 0``. With that, the bias corrections read
:math:`1 - \beta^{k}` and the variance factor is :math:`\rho(\beta, t) = \rho(\beta, k-1)`.
"""

from __future__ import annotations

from collections.abc import Iterator

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
    grad: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor, beta: float, step: int
) -> tuple[Tensor, Tensor]:
    """Update the EMAs of g and g² in place; return the bias-corrected ``(m, v)``."""
    exp_avg.mul_(beta).add_(grad, alpha=1.0 - beta)
    exp_avg_sq.mul_(beta).addcmul_(grad, grad, value=1.0 - beta)
    bias_correction = 1.0 - beta**step
    return exp_avg / bias_correction, exp_avg_sq / bias_correction


def _moment_variance(m: Tensor, v: Tensor, rho: float) -> Tensor:
    r"""Bias-corrected gradient variance :math:`s = (v - m^2) / (1 - \rho)` (Eq. 5.16).

    ``s = 0`` when :math:`\rho = 1` (first step, or ``beta == 0``), as prescribed in §5.4.4.
    Rounding can make :math:`v - m^2` slightly negative; ``s`` is clamped at zero, which
    keeps the variance-adaptation factors in ``[0, 1]``.
    """
    if rho == 1.0:
        return m.new_zeros(m.shape)
    return (v - m * m).div_(1.0 - rho).clamp_(min=0.0)


def _moment_estimates(
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[int],
    beta: float,
) -> Iterator[tuple[Tensor, Tensor, float]]:
    r"""Update the EMAs of each parameter; yield its :math:`(m, s, \rho(\beta, t))`.

    :math:`m` is the bias-corrected mean and :math:`s` the variance estimate of Eq. 5.16
    (fresh tensors, free to modify in place).
    """
    for grad, exp_avg, exp_avg_sq, step in zip(grads, exp_avgs, exp_avg_sqs, steps, strict=True):
        m, v = _update_moments(grad, exp_avg, exp_avg_sq, beta, step)
        rho = momentum_variance_factor(beta, step)
        yield m, _moment_variance(m, v, rho), rho


def _adaptation_factor(m_sq: Tensor, noise: Tensor, eps: float) -> Tensor:
    r"""Return :math:`m^2 / (m^2 + \text{noise} + \varepsilon)`, and 0 where that is 0/0.

    With ``noise >= 0`` and ``eps >= 0`` the denominator vanishes only where ``m = 0``
    too; there the factor is 0 (the thesis performs no update in such coordinates).
    """
    denominator = m_sq + noise + eps
    return m_sq / denominator.masked_fill_(denominator == 0, 1.0)


def msvag(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[int],
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
    estimates = _moment_estimates(grads, exp_avgs, exp_avg_sqs, steps, beta)
    for p, (m, s, rho) in zip(params, estimates, strict=True):
        gamma = _adaptation_factor(m * m, s.mul_(rho), eps)
        p.add_(gamma.mul_(m), alpha=-lr)


def svag(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[int],
    *,
    lr: float,
    beta: float,
    eps: float,
) -> None:
    r"""SVAG update (Balles 2021, Alg. 4).

    :math:`\theta \leftarrow \theta - \alpha\,\gamma\odot g` with
    :math:`\gamma = m^2 / (m^2 + s + \varepsilon)` (Eq. 5.17), using :math:`s` of Eq. 5.16.
    """
    estimates = _moment_estimates(grads, exp_avgs, exp_avg_sqs, steps, beta)
    for p, grad, (m, s, _) in zip(params, grads, estimates, strict=True):
        gamma = _adaptation_factor(m * m, s, eps)
        p.add_(gamma.mul_(grad), alpha=-lr)


def adam_star(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[int],
    *,
    lr: float,
    beta: float,
    eps: float,
) -> None:
    r"""ADAM* update (Balles 2021, Alg. 5).

    :math:`\theta \leftarrow \theta - \alpha\,\gamma \odot \operatorname{sign}(m)` with
    :math:`\gamma = \sqrt{m^2 / (m^2 + \rho(\beta,t)\,s + \varepsilon)}`.
    """
    estimates = _moment_estimates(grads, exp_avgs, exp_avg_sqs, steps, beta)
    for p, (m, s, rho) in zip(params, estimates, strict=True):
        gamma = _adaptation_factor(m * m, s.mul_(rho), eps).sqrt_()
        p.add_(gamma.mul_(m.sign_()), alpha=-lr)


def minibatch_msvag(
    params: list[Tensor],
    grads: list[Tensor],
    variances: list[Tensor],
    exp_avgs: list[Tensor],
    exp_variances: list[Tensor],
    steps: list[int],
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
    for p, grad, variance, exp_avg, exp_variance, step in zip(
        params, grads, variances, exp_avgs, exp_variances, steps, strict=True
    ):
        exp_avg.mul_(beta).add_(grad, alpha=1.0 - beta)
        exp_variance.mul_(beta_sq).add_(variance.clamp(min=0.0), alpha=1.0 - beta_sq)
        m = exp_avg / (1.0 - beta**step)
        r = exp_variance / (1.0 - beta_sq**step)
        gamma = _adaptation_factor(m * m, r.mul_(momentum_variance_factor(beta, step)), eps)
        p.add_(gamma.mul_(m), alpha=-lr)


def msgd(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    steps: list[int],
    *,
    lr: float,
    beta: float,
) -> None:
    r"""M-SGD update (Balles 2021, Alg. 3, left).

    :math:`\tilde m \leftarrow \beta\tilde m + (1-\beta) g`,
    :math:`\theta \leftarrow \theta - \alpha\,\tilde m / (1-\beta^{t+1})`.
    """
    for p, grad, exp_avg, step in zip(params, grads, exp_avgs, steps, strict=True):
        exp_avg.mul_(beta).add_(grad, alpha=1.0 - beta)
        p.add_(exp_avg, alpha=-lr / (1.0 - beta**step))


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
    for p, grad, exp_avg in zip(params, grads, exp_avgs, strict=True):
        exp_avg.mul_(beta).add_(grad, alpha=1.0 - beta)
        p.add_(exp_avg.sign(), alpha=-lr)


def sign_descent(params: list[Tensor], grads: list[Tensor], *, lr: float) -> None:
    r"""Sign (stochastic) gradient descent, Balles (2021) Eq. 6.1.

    :math:`\theta \leftarrow \theta - \alpha \operatorname{sign}(g)`.
    """
    for p, grad in zip(params, grads, strict=True):
        p.add_(grad.sign(), alpha=-lr)


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
