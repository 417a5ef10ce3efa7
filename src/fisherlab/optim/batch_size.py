r"""Variance-based batch-size rules (Balles 2021, ch. 4) and a batch sampler that follows them.

A rule observes, after each optimization step, the minibatch loss, gradient and
per-sample gradient-variance estimate and proposes the batch size of the *next* step
(the "predictive" realisation of §4.4.3). Both rules smooth their inputs with exponential
moving averages, round to the nearest integer and clip to ``[min_batch, max_batch]``,
exactly as Alg. 1 does:

.. math::

    \hat\sigma^2 \leftarrow \mu\hat\sigma^2 + (1-\mu)\|s\|_1, \qquad
    m \leftarrow \operatorname{ROUND\_CLIP}(\text{rule}, m_{\min}, m_{\max}).

The variance input is the per-sample estimate :math:`s` of Eq. 3.30,

.. math::

    s = \frac{1}{m-1}\sum_{i=1}^m \left(\nabla f(\theta;\xi_i) - g\right)^2,
    \qquad \|s\|_1 \approx \operatorname{tr}\Sigma,

the variance of a *single* sample's gradient (not of the minibatch mean). With fisherlab's
``Curvature(model, likelihood, X, y).variance(form="diag")`` (population variance, 1/m) on
the current minibatch of size ``m``, pass ``variance=c.variance(form="diag") * m / (m - 1)``
or, equivalently, ``variance=c.variance(form="diag", unbiased=True)``.

Both EMAs start at zero without bias correction, as in Alg. 1; since the rules use the
ratio of two EMAs with the same constant, bias correction would cancel.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Sampler

from ._utils import check_beta, check_lr

__all__ = ["CABS", "AdaptiveBatchSampler", "BatchSizeRule", "NormTest"]

TensorOrTensors = Tensor | Sequence[Tensor]


def _check_int(value: int, name: str, minimum: int) -> None:
    """Raise ``ValueError`` unless ``value`` is an ``int`` (not a bool) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"Invalid {name}={value!r}: must be an integer >= {minimum}.")


def _l1_norm(variance: float | TensorOrTensors) -> float:
    """Return ``||s||_1`` of a variance given as a number, tensor or sequence of tensors."""
    if isinstance(variance, int | float):
        total = float(variance)
        if total < 0:
            raise ValueError(f"variance (as a trace) must be >= 0, got {total}.")
    elif isinstance(variance, Tensor):
        total = variance.abs().sum().item()
    else:
        total = sum(v.abs().sum().item() for v in variance)
    if not math.isfinite(total):
        raise ValueError(f"variance must be finite, got a total of {total}.")
    return total


def _squared_norm(gradient: TensorOrTensors) -> float:
    """Return ``||g||_2^2`` of a gradient given as a tensor or a sequence of tensors."""
    if isinstance(gradient, Tensor):
        total = gradient.square().sum().item()
    else:
        total = sum(g.square().sum().item() for g in gradient)
    if not math.isfinite(total):
        raise ValueError(f"gradient must be finite, got a squared norm of {total}.")
    return total


class BatchSizeRule:
    r"""Base class of smoothed, rounded and clipped batch-size rules (Alg. 1 mechanics).

    Subclasses define which second quantity (besides the variance) is averaged and the
    raw batch size computed from both averages.

    Parameters
    ----------
    min_batch : int
        Smallest batch size :math:`m_{\min} \ge 1`; also the first batch size.
    max_batch : int
        Largest batch size :math:`m_{\max} \ge m_{\min}`.
    mu : float, default 0.9
        Running-average constant :math:`\mu \in [0, 1)` (the thesis gives no value).
    """

    _reference_key: str

    def __init__(self, *, min_batch: int, max_batch: int, mu: float = 0.9) -> None:
        _check_int(min_batch, "min_batch", 1)
        _check_int(max_batch, "max_batch", 1)
        if min_batch > max_batch:
            raise ValueError(
                f"Invalid min_batch={min_batch} > max_batch={max_batch}: "
                "min_batch must not exceed max_batch."
            )
        self.min_batch = min_batch
        self.max_batch = max_batch
        self.mu = check_beta(mu, "mu")
        self.num_updates = 0
        self.variance_avg = 0.0
        self.reference_avg = 0.0
        self._batch_size = min_batch

    @property
    def next_batch_size(self) -> int:
        """Batch size to use for the next step (``min_batch`` before the first update)."""
        return self._batch_size

    def _reference(self, loss: float | Tensor | None, gradient: TensorOrTensors | None) -> float:
        raise NotImplementedError

    def _raw_batch_size(self) -> float:
        """The unrounded rule; called only while ``reference_avg > 0``."""
        raise NotImplementedError

    def update(
        self,
        *,
        variance: float | TensorOrTensors,
        loss: float | Tensor | None = None,
        gradient: TensorOrTensors | None = None,
    ) -> int:
        r"""Observe one step's statistics and return the next batch size.

        Parameters
        ----------
        variance : float, Tensor or sequence of Tensor
            Per-sample gradient-variance estimate :math:`s` (Eq. 3.30), elementwise (its
            :math:`\ell_1` norm is used) or already summed to :math:`\|s\|_1`.
        loss : float or Tensor, optional
            Minibatch loss estimate; required by :class:`CABS`.
        gradient : Tensor or sequence of Tensor, optional
            Minibatch gradient; required by :class:`NormTest`.

        Returns
        -------
        int
            The new value of :attr:`next_batch_size`.
        """
        trace = _l1_norm(variance)
        reference = self._reference(loss, gradient)
        self.variance_avg = self.mu * self.variance_avg + (1.0 - self.mu) * trace
        self.reference_avg = self.mu * self.reference_avg + (1.0 - self.mu) * reference
        self.num_updates += 1
        raw = math.inf if self.reference_avg <= 0.0 else self._raw_batch_size()
        self._batch_size = self._round_clip(raw)
        return self._batch_size

    def _round_clip(self, size: float) -> int:
        """Round half up to an integer and clip to ``[min_batch, max_batch]``."""
        if size >= self.max_batch:
            return self.max_batch
        return max(self.min_batch, math.floor(size + 0.5))

    def _hyperparameters(self) -> dict[str, Any]:
        return {"min_batch": self.min_batch, "max_batch": self.max_batch, "mu": self.mu}

    def state_dict(self) -> dict[str, Any]:
        """Return hyperparameters and running state as a plain dictionary."""
        return {
            **self._hyperparameters(),
            "num_updates": self.num_updates,
            "variance_avg": self.variance_avg,
            self._reference_key: self.reference_avg,
            "batch_size": self._batch_size,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyperparameters and running state from :meth:`state_dict` output.

        Raises
        ------
        ValueError
            If keys are missing or unexpected, or a hyperparameter is invalid.
        """
        expected = set(self.state_dict())
        if set(state_dict) != expected:
            raise ValueError(
                f"state_dict keys {sorted(state_dict)} do not match {sorted(expected)}."
            )
        hyperparameters = {k: state_dict[k] for k in self._hyperparameters()}
        type(self).__init__(self, **hyperparameters)
        self.num_updates = int(state_dict["num_updates"])
        self.variance_avg = float(state_dict["variance_avg"])
        self.reference_avg = float(state_dict[self._reference_key])
        self._batch_size = int(state_dict["batch_size"])

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._hyperparameters().items())
        return f"{type(self).__name__}({args})"


class CABS(BatchSizeRule):
    r"""Coupled Adaptive Batch Size (Balles 2021, Eq. 4.20 and Alg. 1).

    Couples the batch size to the learning rate :math:`\alpha` of SGD,

    .. math::

        m = \alpha\,\frac{\operatorname{tr}\Sigma}{f}, \qquad \text{realised as} \qquad
        m_{\text{next}} = \operatorname{ROUND\_CLIP}\!\left(
        \alpha\,\frac{\hat\sigma^2}{f_{\text{avg}}}, m_{\min}, m_{\max}\right),

    with :math:`\hat\sigma^2 \leftarrow \mu\hat\sigma^2 + (1-\mu)\|s\|_1` and
    :math:`f_{\text{avg}} \leftarrow \mu f_{\text{avg}} + (1-\mu) f`, both starting at 0.
    The rule is the optimal batch size :math:`m_* = 2\operatorname{tr}\Sigma/\|\nabla f\|^2`
    (Eq. 4.19) for :math:`f = \tfrac{h}{2}\|\theta-\theta_*\|^2` with :math:`\alpha = 1/h`
    (Eq. 4.21-4.22); it assumes :math:`f \ge 0` with minimum near 0. If
    :math:`f_{\text{avg}} \le 0` the rule returns ``max_batch``.

    Rounding is to the nearest integer with halves rounded up.

    Parameters
    ----------
    lr : float
        The SGD learning rate :math:`\alpha > 0` the batch size is coupled to; update the
        attribute ``lr`` if a schedule changes it.
    min_batch : int
        Smallest batch size :math:`m_{\min} \ge 1`; also the first batch size.
    max_batch : int
        Largest batch size :math:`m_{\max} \ge m_{\min}`.
    mu : float, default 0.9
        Running-average constant :math:`\mu \in [0, 1)` (the thesis gives no value).

    Examples
    --------
    >>> rule = CABS(lr=0.1, min_batch=16, max_batch=4096)
    >>> rule.update(loss=0.5, variance=torch.full((10,), 40.0))
    80
    """

    _reference_key = "loss_avg"

    def __init__(self, lr: float, *, min_batch: int, max_batch: int, mu: float = 0.9) -> None:
        lr = check_lr(lr)
        if lr == 0.0:
            raise ValueError("Invalid lr=0.0: CABS needs a learning rate > 0.")
        super().__init__(min_batch=min_batch, max_batch=max_batch, mu=mu)
        self.lr = lr

    def _hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr, **super()._hyperparameters()}

    def _reference(self, loss: float | Tensor | None, gradient: TensorOrTensors | None) -> float:
        if loss is None:
            raise ValueError("CABS.update requires loss=... (the minibatch loss estimate).")
        loss = float(loss)
        if not math.isfinite(loss):
            raise ValueError(f"loss must be finite, got {loss}.")
        return loss

    def _raw_batch_size(self) -> float:
        return self.lr * self.variance_avg / self.reference_avg


class NormTest(BatchSizeRule):
    r"""Norm-test batch size (Byrd et al. 2012, De et al. 2017; Balles 2021, Eq. 4.18).

    The "Competitor" of §4.4.4: the criterion

    .. math::

        m = \frac{1}{\theta^2}\,\frac{\operatorname{tr}\Sigma}{\|g\|^2}

    realised with the same predictive update, EMA smoothing, rounding and clipping as
    :class:`CABS`:

    .. math::

        m_{\text{next}} = \operatorname{ROUND\_CLIP}\!\left(
        \frac{\hat\sigma^2}{\theta^2\, \overline{\|g\|^2}}, m_{\min}, m_{\max}\right),

    with :math:`\overline{\|g\|^2} \leftarrow \mu\overline{\|g\|^2} + (1-\mu)\|g\|^2`. If that
    average is 0 the rule returns ``max_batch``. It derives from the condition
    :math:`\|g - \nabla f\| \le \theta\|g\|` for :math:`-g` to be a descent direction
    (Eq. 4.17).

    Parameters
    ----------
    theta : float, default 1.0
        Noise tolerance :math:`\theta \in (0, 1]` (the thesis tried 0.6, 0.8, 1.0).
    min_batch : int
        Smallest batch size :math:`m_{\min} \ge 1`; also the first batch size.
    max_batch : int
        Largest batch size :math:`m_{\max} \ge m_{\min}`.
    mu : float, default 0.9
        Running-average constant :math:`\mu \in [0, 1)`.
    """

    _reference_key = "grad_norm_sq_avg"

    def __init__(
        self, theta: float = 1.0, *, min_batch: int, max_batch: int, mu: float = 0.9
    ) -> None:
        theta = float(theta)
        if not 0.0 < theta <= 1.0:
            raise ValueError(f"Invalid theta={theta}: must lie in (0, 1].")
        super().__init__(min_batch=min_batch, max_batch=max_batch, mu=mu)
        self.theta = theta

    def _hyperparameters(self) -> dict[str, Any]:
        return {"theta": self.theta, **super()._hyperparameters()}

    def _reference(self, loss: float | Tensor | None, gradient: TensorOrTensors | None) -> float:
        if gradient is None:
            raise ValueError("NormTest.update requires gradient=... (the minibatch gradient).")
        return _squared_norm(gradient)

    def _raw_batch_size(self) -> float:
        return self.variance_avg / (self.theta**2 * self.reference_avg)


class AdaptiveBatchSampler(Sampler[list[int]]):
    """Batch sampler whose batch sizes follow a batch-size rule.

    Each batch has ``min(rule.next_batch_size, num_samples)`` indices, read when the
    batch is requested, so a loop that calls ``rule.update(...)`` after each step gets
    the new size for the next batch. Indices are drawn without replacement from a random
    permutation of ``range(num_samples)``; when fewer indices than the batch size remain,
    they are dropped and a new permutation (a new epoch) starts. A batch never contains
    an index twice.

    Use it as ``DataLoader(dataset, batch_sampler=sampler)`` with ``num_workers=0``:
    worker processes prefetch batches, which would use stale batch sizes.

    Parameters
    ----------
    num_samples : int
        Size of the data set.
    rule : BatchSizeRule
        Any object with a ``next_batch_size`` attribute, e.g. :class:`CABS`.
    num_batches : int
        Number of batches per iteration over the sampler (optimization steps).
    generator : torch.Generator
        Source of randomness for the permutations.

    Examples
    --------
    >>> rule = CABS(lr=0.1, min_batch=2, max_batch=8)
    >>> sampler = AdaptiveBatchSampler(
    ...     10, rule, num_batches=3, generator=torch.Generator().manual_seed(0)
    ... )
    >>> [len(batch) for batch in sampler]
    [2, 2, 2]
    """

    def __init__(
        self,
        num_samples: int,
        rule: BatchSizeRule,
        num_batches: int,
        *,
        generator: torch.Generator,
    ) -> None:
        _check_int(num_samples, "num_samples", 1)
        _check_int(num_batches, "num_batches", 0)
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator)}.")
        self.num_samples = num_samples
        self.rule = rule
        self.num_batches = num_batches
        self.generator = generator

    def __iter__(self) -> Iterator[list[int]]:
        permutation = torch.randperm(self.num_samples, generator=self.generator)
        position = 0
        for _ in range(self.num_batches):
            size = min(int(self.rule.next_batch_size), self.num_samples)
            if position + size > self.num_samples:
                permutation = torch.randperm(self.num_samples, generator=self.generator)
                position = 0
            yield permutation[position : position + size].tolist()
            position += size

    def __len__(self) -> int:
        return self.num_batches
