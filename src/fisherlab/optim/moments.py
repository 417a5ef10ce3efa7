r"""Variance-adapted and momentum optimizers from "Dissecting Adam" (Balles 2021, ch. 5).

All methods keep exponential moving averages (EMAs) of the stochastic gradient ``g`` with a
single constant :math:`\beta` and bias-correct them as in Alg. 2-6 of the thesis. With
:math:`t = 0, 1, \dots` the iteration index,

.. math::

    \tilde m_t = \beta \tilde m_{t-1} + (1-\beta) g_t, \quad
    \tilde v_t = \beta \tilde v_{t-1} + (1-\beta) g_t^2, \quad
    m_t = \frac{\tilde m_t}{1-\beta^{t+1}}, \quad v_t = \frac{\tilde v_t}{1-\beta^{t+1}},

and the gradient variance is estimated by (Eq. 5.16)

.. math::

    s_t = \frac{v_t - m_t^2}{1 - \rho(\beta, t)}, \qquad
    \rho(\beta, t) = \frac{(1-\beta)(1+\beta^{t+1})}{(1+\beta)(1-\beta^{t+1})}
    \quad \text{(Eq. 5.15)},

with :math:`s_0 = 0` on the first step, where :math:`\rho = 1` (§5.4.4). All operations are
elementwise. The variance estimate is clamped at zero (rounding can make
:math:`v - m^2` slightly negative), which keeps every variance-adaptation factor in
``[0, 1]``; where a factor is 0/0 (:math:`m = 0` and no noise) it is set to 0, i.e. no
update in that coordinate, as in §5.4.4.

``eps`` (default 0, as in the thesis, which omits Adam's offset) is an optional constant
added to the denominator of the factor, :math:`m^2 / (m^2 + \dots + \varepsilon)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from . import _functional as F
from ._utils import GradientOptimizer, Params, as_tensor_list, evaluate_closure, split_by_step

__all__ = ["MSGD", "MSVAG", "SVAG", "AdamStar", "MinibatchMSVAG"]


class _MovingAverageVarianceOptimizer(GradientOptimizer):
    """Shared state handling of optimizers with EMAs of ``g`` and ``g**2``."""

    _buffers = ("exp_avg", "exp_avg_sq")
    _counts_steps = True

    def __init__(self, params: Params, lr: float, beta: float, eps: float) -> None:
        super().__init__(params, lr=lr, beta=beta, eps=eps)


class MSVAG(_MovingAverageVarianceOptimizer):
    r"""M-SVAG: momentum stochastic variance-adapted gradient (Balles 2021, Alg. 2).

    Applies elementwise variance adaptation to the momentum direction :math:`m_t`
    (§5.4.3, Eq. 5.19):

    .. math::

        \gamma_t = \frac{m_t^2}{m_t^2 + \rho(\beta, t)\, s_t + \varepsilon}, \qquad
        \theta_{t+1} = \theta_t - \alpha\, \gamma_t \odot m_t,

    with the EMA moments :math:`m_t, v_t`, the variance estimate :math:`s_t` (Eq. 5.16) and
    :math:`\rho(\beta, t)` (Eq. 5.15) defined in :mod:`fisherlab.optim.moments`.
    :math:`\rho(\beta,t)\,s_t` estimates the variance of :math:`m_t` itself, so
    :math:`\gamma_t` is the estimated optimal factor of Lemma 5.1 for the direction
    :math:`m_t`. The first step (:math:`s_0 = 0`) is a plain SGD step.

    Parameters
    ----------
    params : iterable of Tensor or dict
        Parameters or parameter groups; the update uses ``p.grad``.
    lr : float, default 0.1
        Step size :math:`\alpha \ge 0`.
    beta : float, default 0.9
        Moving-average constant :math:`\beta \in [0, 1)` of both moments.
        ``beta = 0`` gives plain SGD (:math:`\rho = 1`, no variance estimate).
    eps : float, default 0.0
        Non-negative offset in the denominator of :math:`\gamma`; the thesis uses none.

    Examples
    --------
    >>> opt = MSVAG(model.parameters(), lr=0.1, beta=0.9)  # doctest: +SKIP
    >>> loss_fn(model(X), y).backward(); opt.step(); opt.zero_grad()  # doctest: +SKIP
    """

    _update = staticmethod(F.msvag)

    def __init__(self, params: Params, lr: float = 0.1, beta: float = 0.9, eps: float = 0.0):
        super().__init__(params, lr=lr, beta=beta, eps=eps)


class SVAG(_MovingAverageVarianceOptimizer):
    r"""SVAG: stochastic variance-adapted gradient without momentum (Balles 2021, Alg. 4).

    Applies variance adaptation to the stochastic gradient itself (§5.3.2, Eq. 5.11 with
    the estimate Eq. 5.17):

    .. math::

        \gamma_t = \frac{m_t^2}{m_t^2 + s_t + \varepsilon}, \qquad
        \theta_{t+1} = \theta_t - \alpha\, \gamma_t \odot g_t,

    with :math:`m_t` and :math:`s_t` (Eq. 5.16) as in :mod:`fisherlab.optim.moments`; the
    EMAs serve only to estimate the factor. The first step is a plain SGD step.

    Parameters
    ----------
    params : iterable of Tensor or dict
        Parameters or parameter groups; the update uses ``p.grad``.
    lr : float, default 0.1
        Step size :math:`\alpha \ge 0`.
    beta : float, default 0.9
        Moving-average constant :math:`\beta \in [0, 1)`.
    eps : float, default 0.0
        Non-negative offset in the denominator of :math:`\gamma`; the thesis uses none.
    """

    _update = staticmethod(F.svag)

    def __init__(self, params: Params, lr: float = 0.1, beta: float = 0.9, eps: float = 0.0):
        super().__init__(params, lr=lr, beta=beta, eps=eps)


class AdamStar(_MovingAverageVarianceOptimizer):
    r"""ADAM*: Adam as variance-adapted momentum sign descent (Balles 2021, Alg. 5, §B.3.2).

    .. math::

        \gamma_t = \sqrt{\frac{m_t^2}{m_t^2 + \rho(\beta, t)\, s_t + \varepsilon}}, \qquad
        \theta_{t+1} = \theta_t - \alpha\, \gamma_t \odot \operatorname{sign}(m_t),

    with :math:`m_t`, :math:`s_t` (Eq. 5.16) and :math:`\rho` (Eq. 5.15) as in
    :mod:`fisherlab.optim.moments`. The factor :math:`(1 + \hat\eta^2)^{-1/2}` is the one
    Adam applies implicitly (Eq. 5.5-5.6), not the optimal :math:`\operatorname{erf}` factor
    of Eq. 5.10.

    How it differs from :class:`torch.optim.Adam`, whose update is
    :math:`m_t / (\sqrt{v_t} + \varepsilon) = \operatorname{sign}(m_t)\sqrt{m_t^2 /
    (m_t^2 + (v_t - m_t^2))}` for :math:`\varepsilon = 0` (Eq. 5.5):

    * one moving-average constant for both moments (:math:`\beta_1 = \beta_2 = \beta`);
    * the noise term :math:`v_t - m_t^2` is replaced by :math:`\rho(\beta,t)\, s_t =
      \rho/(1-\rho)\,(v_t - m_t^2)`: the bias-corrected gradient variance (Eq. 5.16) scaled to
      the variance of :math:`m_t` (§5.4.3);
    * no :math:`\varepsilon` is added to :math:`\sqrt{v_t}` (``eps`` here is an optional
      offset inside the ratio and defaults to 0);
    * no weight decay, AMSGrad or other options.

    Both methods take a step :math:`\alpha\operatorname{sign}(g_0)` first.

    Parameters
    ----------
    params : iterable of Tensor or dict
        Parameters or parameter groups; the update uses ``p.grad``.
    lr : float, default 1e-3
        Step size :math:`\alpha \ge 0`.
    beta : float, default 0.9
        Moving-average constant :math:`\beta \in [0, 1)` of both moments.
    eps : float, default 0.0
        Non-negative offset in the denominator of the ratio under the square root.
    """

    _update = staticmethod(F.adam_star)

    def __init__(self, params: Params, lr: float = 1e-3, beta: float = 0.9, eps: float = 0.0):
        super().__init__(params, lr=lr, beta=beta, eps=eps)


class MinibatchMSVAG(GradientOptimizer):
    r"""M-SVAG with minibatch gradient-variance estimates (Balles 2021, Alg. 6, §B.4).

    Instead of estimating the variance from moving averages, each step receives
    :math:`\hat s^{\mathrm{mb}}_t`, an estimate of the elementwise variance of the minibatch
    gradient :math:`g_t` computed from the minibatch's per-sample gradients (Eq. B.30-B.31):
    with the per-sample variance :math:`s` of Eq. 3.30,

    .. math::

        \hat s^{\mathrm{mb}} = \frac{s}{m} = \frac{1}{m(m-1)} \sum_{i=1}^m
        \left(\nabla f(\theta; \xi_i) - g\right)^2 .

    The update (Eq. B.34 and Alg. 6) is

    .. math::

        \tilde m_t &= \beta\tilde m_{t-1} + (1-\beta) g_t, \qquad
        \tilde r_t = \beta^2 \tilde r_{t-1} + (1-\beta^2)\, \hat s^{\mathrm{mb}}_t, \\
        m_t &= \frac{\tilde m_t}{1-\beta^{t+1}}, \qquad
        r_t = \frac{\tilde r_t}{1-\beta^{2(t+1)}}, \\
        \gamma_t &= \frac{m_t^2}{m_t^2 + \rho(\beta, t)\, r_t + \varepsilon}, \qquad
        \theta_{t+1} = \theta_t - \alpha\, \gamma_t \odot m_t,

    where :math:`\rho(\beta,t)\,r_t = \sum_{s \le t} c(\beta,t,s)^2\, \hat s^{\mathrm{mb}}_s`
    estimates the variance of :math:`m_t` (Eq. B.32-B.33) and :math:`\rho` is Eq. 5.15.
    Negative variance entries are clamped to zero, so :math:`\gamma_t \in [0, 1]`.

    Getting the variance: ``fisherlab.Curvature(model, likelihood, X, y).variance(form="diag")``
    on the current minibatch of size ``m`` returns the population (1/m) variance of the
    per-sample gradients as a flat vector, so ``variance=c.variance(form="diag") / (m - 1)``
    is :math:`\hat s^{\mathrm{mb}}` (as ``s = m/(m-1)`` times the population variance);
    equivalently ``c.variance(form="diag", unbiased=True) / m``.
    A flat vector is split over the optimizer's parameters with :func:`split_flat`.

    Parameters
    ----------
    params : iterable of Tensor or dict
        Parameters or parameter groups; the update uses ``p.grad``.
    lr : float, default 0.1
        Step size :math:`\alpha \ge 0`.
    beta : float, default 0.9
        Moving-average constant :math:`\beta \in [0, 1)`.
    eps : float, default 0.0
        Non-negative offset in the denominator of :math:`\gamma`; the thesis uses none.

    Examples
    --------
    >>> opt = MinibatchMSVAG(model.parameters(), lr=0.1)  # doctest: +SKIP
    >>> c = fisherlab.Curvature(model, likelihood, X, y)  # doctest: +SKIP
    >>> loss_fn(model(X), y).backward()  # doctest: +SKIP
    >>> opt.step(variance=c.variance(form="diag") / (len(X) - 1))  # doctest: +SKIP
    """

    _update = staticmethod(F.minibatch_msvag)
    _buffers = ("exp_avg", "exp_variance")
    _counts_steps = True

    def __init__(self, params: Params, lr: float = 0.1, beta: float = 0.9, eps: float = 0.0):
        super().__init__(params, lr=lr, beta=beta, eps=eps)

    @torch.no_grad()
    def step(
        self,
        closure: Callable[[], float] | None = None,
        *,
        variance: Tensor | Sequence[Tensor] | None = None,
    ) -> float | None:
        """Perform one optimization step.

        Parameters
        ----------
        closure : callable, optional
            Re-evaluates the model and returns the loss; evaluated before the update.
        variance : Tensor or sequence of Tensor
            Elementwise variance estimate of the minibatch gradient, one tensor per
            parameter of the optimizer (all groups, in order; entries of parameters whose
            ``grad`` is ``None`` are ignored), or one flat vector over all these
            parameters, split with :func:`split_flat`.

        Returns
        -------
        float or None
            The loss returned by ``closure``, if given.

        Raises
        ------
        ValueError
            If ``variance`` is missing, does not match the parameters, or is not finite.
        """
        if variance is None:
            raise ValueError(
                "MinibatchMSVAG.step requires variance=...: the elementwise variance of the "
                "minibatch gradient (e.g. Curvature(...).variance(form='diag') / (m - 1))."
            )
        all_params = [p for group in self.param_groups for p in group["params"]]
        variance_list = as_tensor_list(variance, all_params, "variance")
        for i, (p, v) in enumerate(zip(all_params, variance_list, strict=True)):
            if p.grad is not None and not torch.isfinite(v).all():
                raise ValueError(
                    f"variance (tensor {i}) contains NaN or inf: the variance estimate must be "
                    "finite"
                )
        variances = iter(variance_list)
        loss = evaluate_closure(closure)
        for group in self.param_groups:
            group_params = group["params"]
            p_variances = [next(variances) for _ in group_params]
            group_variances = [
                v for p, v in zip(group_params, p_variances, strict=True) if p.grad is not None
            ]
            params, grads, buffers, steps = self._group_tensors(group)
            hyperparameters = self._group_hyperparameters(group)
            for step, tensors in split_by_step(steps, params, grads, group_variances, *buffers):
                self._update(*tensors, step, **hyperparameters)
        return loss


class MSGD(GradientOptimizer):
    r"""M-SGD: momentum SGD in exponential-moving-average form (Balles 2021, Alg. 3, Eq. 3.25).

    .. math::

        \tilde m_t = \beta \tilde m_{t-1} + (1-\beta)\, g_t, \qquad
        \theta_{t+1} = \theta_t - \alpha\, \frac{\tilde m_t}{1-\beta^{t+1}} .

    The thesis' M-SGD uses :math:`(1-\beta)` dampening *and* Adam-style bias correction, so
    it is the non-variance-adapted counterpart of :class:`MSVAG` (Fig. 5.1). It is a
    rescaled heavy-ball method (Eq. 3.24): apart from the bias correction, it takes the steps
    of :class:`torch.optim.SGD` with ``momentum=beta, dampening=beta``, except that torch
    initialises its momentum buffer with the first gradient instead of :math:`(1-\beta)g_0`.

    Parameters
    ----------
    params : iterable of Tensor or dict
        Parameters or parameter groups; the update uses ``p.grad``.
    lr : float, default 0.1
        Step size :math:`\alpha \ge 0`.
    beta : float, default 0.9
        Momentum constant :math:`\beta \in [0, 1)`; ``beta = 0`` is plain SGD.
    """

    _update = staticmethod(F.msgd)
    _buffers = ("exp_avg",)
    _counts_steps = True

    def __init__(self, params: Params, lr: float = 0.1, beta: float = 0.9) -> None:
        super().__init__(params, lr=lr, beta=beta)
