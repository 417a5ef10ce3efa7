r"""Sign-based optimizers (Balles 2021, ch. 5 Alg. 3 and ch. 6).

``sign`` is elementwise with :math:`\operatorname{sign}(0) = 0` (as :func:`torch.sign`), so
coordinates with a zero (averaged) gradient are not moved.
"""

from __future__ import annotations

from . import _functional as F
from ._utils import GradientOptimizer, Params

__all__ = ["MSSD", "L1SignDescent", "SignDescent"]


class SignDescent(GradientOptimizer):
    r"""Sign (stochastic) gradient descent, SIGN-SGD (Balles 2021, Eq. 6.1).

    .. math::

        \theta_{t+1} = \theta_t - \alpha \operatorname{sign}(g_t).

    Stateless. See :class:`L1SignDescent` for the norm-scaled steepest-descent version.

    Parameters
    ----------
    params : iterable of Tensor or dict
        Parameters or parameter groups; the update uses ``p.grad``.
    lr : float, default 1e-3
        Step size :math:`\alpha \ge 0` (the per-coordinate step length).
    """

    _update = staticmethod(F.sign_descent)

    def __init__(self, params: Params, lr: float = 1e-3) -> None:
        super().__init__(params, lr=lr)


class L1SignDescent(GradientOptimizer):
    r"""Steepest descent w.r.t. the max-norm: :math:`\ell_1`-scaled sign descent (Eq. 6.10).

    .. math::

        \theta_{t+1} = \theta_t - \alpha\, \|g_t\|_1 \operatorname{sign}(g_t),

    the steepest-descent step of Eq. 6.9 for :math:`\|\cdot\|_\infty`, whose dual norm is
    :math:`\|\cdot\|_1` (Table 6.1, App. C.1.1); :math:`\alpha = 1/L_\infty` with the
    :math:`\ell_\infty`-smoothness constant :math:`L_\infty` gives the decrease guarantee of
    Lemma 6.2. Unlike :class:`SignDescent` it converges with a constant step size on smooth
    deterministic problems (§6.5).

    **Norm.** :math:`\|g_t\|_1` is summed over all parameters *of a parameter group* that
    have a gradient, so a single group (the default) is steepest descent w.r.t. the
    max-norm of the whole parameter vector. With several groups, each group takes its own
    steepest-descent step with its own norm and ``lr`` (one "block" per group).

    Parameters
    ----------
    params : iterable of Tensor or dict
        Parameters or parameter groups; the update uses ``p.grad``.
    lr : float
        Step size :math:`\alpha \ge 0`, ideally :math:`1/L_\infty`; no default, because its
        scale depends on the problem (the step length is :math:`\alpha\|g\|_1`).
    """

    _update = staticmethod(F.l1_sign_descent)

    def __init__(self, params: Params, lr: float) -> None:
        super().__init__(params, lr=lr)


class MSSD(GradientOptimizer):
    r"""M-SIGN-SGD (M-SSD): momentum sign descent (Balles 2021, Alg. 3, right column).

    .. math::

        \tilde m_t = \beta \tilde m_{t-1} + (1-\beta)\, g_t, \qquad
        \theta_{t+1} = \theta_t - \alpha \operatorname{sign}(\tilde m_t).

    Bias correction is omitted because it does not change the sign. This is Adam without
    variance adaptation (Fig. 5.1); :class:`AdamStar` adds it back.

    Parameters
    ----------
    params : iterable of Tensor or dict
        Parameters or parameter groups; the update uses ``p.grad``.
    lr : float, default 1e-3
        Step size :math:`\alpha \ge 0`.
    beta : float, default 0.9
        Momentum constant :math:`\beta \in [0, 1)`; ``beta = 0`` is :class:`SignDescent`.
    """

    _update = staticmethod(F.mssd)
    _buffers = ("exp_avg",)

    def __init__(self, params: Params, lr: float = 1e-3, beta: float = 0.9) -> None:
        super().__init__(params, lr=lr, beta=beta)
