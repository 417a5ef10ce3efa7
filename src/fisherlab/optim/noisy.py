r"""Large-batch SGD with covariance noise (Wen et al. 2020, Algorithm 1) and BatchChange.

Wen et al. (2020), Eq. 2 and Algorithm 1: with the large-batch gradient
:math:`\nabla L_{M_L}(\theta_k) = \frac{1}{M_L}\sum_{i \in B_L} \nabla l_i(\theta_k)`,

.. math::
    \xi_k &\sim \mathcal N(0, I_d), \\
    \epsilon_k &= \alpha_k \sqrt{\frac{M_L - M_S}{M_L M_S}}\; C(\theta_k)^{1/2}\, \xi_k, \\
    \theta_{k+1} &= \theta_k - \alpha_k \nabla L_{M_L}(\theta_k) + \epsilon_k .

The learning rate :math:`\alpha_k` multiplies the noise as well as the gradient (Eq. 2:
:math:`+\alpha_k C(\theta_k)\xi_k`), and :math:`C(\theta_k)` is evaluated at the current
iterate, i.e. recomputed at every step (``update_every=1``, the default). The factor
:math:`\frac{M_L - M_S}{M_L M_S} = \frac1{M_S} - \frac1{M_L}` turns the per-example
covariance :math:`C` (mean reduction, :math:`c = 1/N`) into the difference of the
covariances of a small- and a large-batch gradient (Eq. 3-5), so the noise sampler is
always built with ``reduction="mean"`` on the large batch.

Choices of :math:`C` (:class:`NoiseType`; the draws come from :mod:`fisherlab.noise`):

====================  ======================================================================
``"diag"``            :math:`\mathrm{diag}(F)` — Algorithm 1, the paper's proposal (default)
``"full"``            :math:`F` — Eq. 5; with ``fisher="exact"`` drawn with sampled labels
                      (App. F, "sampling true Fisher random vector"), with
                      ``fisher="empirical"`` as the Rademacher combination
                      :math:`\sum_i \sigma_i \nabla l_i` (App. F, empirical Fisher)
``"kfac"``            K-FAC of :math:`F` (App. D, E.2)
``"trace"``           :math:`\frac{\mathrm{tr} F}{D} I`: isotropic noise whose covariance has
                      the trace of :math:`F` (App. E.2 "Fisher trace"; taking the text's
                      :math:`C = \sqrt{\mathrm{tr} F}\, I` literally would multiply the total
                      variance by :math:`D`)
``"multiplicative"``  :math:`\sigma^2 \mathrm{diag}(\nabla L_{M_L})^2`: the gradient times
                      :math:`1 + \varepsilon` (App. E.2, after Hoffer et al. 2017)
====================  ======================================================================

**Which Fisher.** The paper states that "all mentions of Fisher matrix refer to the
empirical Fisher" (Sec. 2.2, Eq. 4), although its analysis (Sec. 4) and its full-Fisher
sampler (App. F) use the true Fisher. ``fisher`` selects :math:`F`: ``"exact"`` (default,
the Fisher :math:`\frac1N\sum_n J_n^\top \Lambda_n J_n`) or ``"empirical"`` (the EF
:math:`\frac1N\sum_n g_n g_n^\top`, the text's literal reading).

**Noise termination.** The paper injects noise only during the first quarter of training
(Sec. 5.4 and App. E.1: noise for the first 50 of 200 epochs, then plain large-batch SGD);
``total_steps=K, noise_fraction=0.25`` reproduces this, ``noise_steps`` gives the count
directly, and by default the noise is never switched off.

**BatchChange** (App. E.2, after Smith et al. 2017): small batches :math:`M_S` for the first
part of training (50 of 200 epochs), then :math:`M_L`, with plain SGD —
:class:`BatchChangeSampler`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from enum import Enum
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Sampler

from fisherlab.curvature import Curvature
from fisherlab.likelihoods import Likelihood
from fisherlab.noise import EmpiricalFisherNoise, FisherNoise, MultiplicativeNoise, NoiseSampler
from fisherlab.quantities import FisherType
from fisherlab.representations.kfac import KFAC

from ._utils import Params, check_lr, trainable_parameters

__all__ = [
    "BatchChangeSampler",
    "CovarianceNoiseSGD",
    "NoiseType",
    "noise_scale",
    "noisy_sgd_update",
    "switch_step",
]


class NoiseType(str, Enum):
    """Covariance structure of the injected noise (Wen et al. 2020, Sec. 2.2, App. E.2)."""

    DIAG = "diag"
    FULL = "full"
    KFAC = "kfac"
    TRACE = "trace"
    MULTIPLICATIVE = "multiplicative"


def _enum(value: Any, enum: type[Enum], name: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in enum)  # type: ignore[attr-defined]
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}") from None


def noise_scale(large_batch_size: int, small_batch_size: int) -> float:
    r"""Return :math:`\sqrt{(M_L - M_S) / (M_L M_S)}` (Wen et al. Eq. 5, Algorithm 1).

    Raises
    ------
    ValueError
        If a batch size is not a positive integer or ``small_batch_size > large_batch_size``.
    """
    for name, value in (
        ("large_batch_size", large_batch_size),
        ("small_batch_size", small_batch_size),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if small_batch_size > large_batch_size:
        raise ValueError(
            f"small_batch_size (M_S={small_batch_size}) must not exceed large_batch_size "
            f"(M_L={large_batch_size})"
        )
    return math.sqrt((large_batch_size - small_batch_size) / (large_batch_size * small_batch_size))


def switch_step(
    total: int | None, fraction: float | None, count: int | None, name: str = "noise"
) -> int | None:
    """Number of initial steps (or epochs) of a phase: ``count``, or ``round(fraction·total)``.

    Returns ``None`` (the phase never ends) when neither is given.
    """
    if count is not None and fraction is not None:
        raise ValueError(f"give either {name}_steps or {name}_fraction, not both")
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"{name}_steps must be an integer >= 0, got {count!r}")
        return count
    if fraction is None:
        return None
    if not (isinstance(fraction, (int, float)) and 0.0 <= fraction <= 1.0):
        raise ValueError(f"{name}_fraction must lie in [0, 1], got {fraction!r}")
    if total is None:
        raise ValueError(f"{name}_fraction needs total_steps (the length of training)")
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise ValueError(f"total_steps must be an integer >= 0, got {total!r}")
    return round(fraction * total)


def noisy_sgd_update(
    params: list[Tensor], grads: list[Tensor], noise: list[Tensor] | None, lr: float, scale: float
) -> None:
    r"""Algorithm 1's update in place: :math:`\theta \leftarrow \theta - \alpha g + \alpha s\,\xi`.

    ``noise=None`` is a plain SGD step (noise switched off).
    """
    for i, p in enumerate(params):
        p.add_(grads[i], alpha=-lr)
        if noise is not None:
            p.add_(noise[i], alpha=lr * scale)


class CovarianceNoiseSGD(torch.optim.Optimizer):
    r"""Large-batch SGD with covariance noise: Wen et al. (2020), Algorithm 1 and variants.

    .. math::
        \theta_{k+1} = \theta_k - \alpha\,\nabla L_{M_L}(\theta_k)
        + \alpha \sqrt{\tfrac{M_L - M_S}{M_L M_S}}\; C(\theta_k)^{1/2}\xi_k,
        \qquad \xi_k \sim \mathcal N(0, I)

    (see :mod:`fisherlab.optim.noisy` for the choices of :math:`C`). Each :meth:`step` takes
    the large batch :math:`B_L`; it computes the gradient on it (``gradient="batch"``, no
    ``backward()`` needed) or uses ``p.grad`` (``gradient="grad"``: call
    ``loss.backward()`` first, e.g. to add a regulariser), and draws the noise from a
    :mod:`fisherlab.noise` sampler built on the same batch with ``reduction="mean"``::

        opt = CovarianceNoiseSGD(model.parameters(), model, lik, lr=0.1,
                                 large_batch_size=4096, small_batch_size=128,
                                 total_steps=K, noise_fraction=0.25, generator=g)
        for X, y in large_batches:
            loss = opt.step(X, y)

    Parameters
    ----------
    params : iterable of Tensor or dicts
        Trainable parameters of ``model`` (groups may set their own ``lr``).
    model : torch.nn.Module
    likelihood : Likelihood
    lr : float
        :math:`\alpha \ge 0`; it multiplies both the gradient and the noise (Eq. 2).
    large_batch_size, small_batch_size : int
        :math:`M_L \ge M_S \ge 1`, giving the factor :math:`\sqrt{(M_L - M_S)/(M_L M_S)}`.
        ``large_batch_size`` is the nominal :math:`M_L`; the batch passed to :meth:`step`
        defines the gradient and :math:`C`.
    noise : NoiseType or str
        ``"diag"`` (default, Algorithm 1), ``"full"``, ``"kfac"``, ``"trace"``,
        ``"multiplicative"``.
    fisher : FisherType or str
        ``"exact"`` (default) or ``"empirical"``: the matrix :math:`F` behind ``C``
        (ignored for ``"multiplicative"``). The Monte-Carlo Fisher is not offered: the exact
        diagonal costs as much, and ``"full"`` noise already uses sampled labels.
    multiplicative_std : float
        :math:`\sigma` of the multiplicative noise.
    total_steps, noise_fraction, noise_steps
        Noise is added during the first ``noise_steps`` steps, or the first
        ``round(noise_fraction · total_steps)``; the paper uses ``noise_fraction=0.25``.
        Default: never switched off.
    update_every : int
        Recompute the structured covariance (``"diag"``, ``"kfac"``, ``"trace"``,
        ``"multiplicative"``) every ``update_every`` steps on that step's batch and keep it
        in between (the draws are fresh every step). Algorithm 1 evaluates
        :math:`C(\theta_k)` at every step: ``update_every=1`` (default). ``"full"`` noise has
        no stored statistics: each draw backpropagates at the current parameters and batch.
    generator : torch.Generator or None
        Source of all randomness; its state is part of :meth:`state_dict`.
    gradient : {"batch", "grad"}
        Where the gradient comes from (see above).
    """

    def __init__(
        self,
        params: Params,
        model: torch.nn.Module,
        likelihood: Likelihood,
        lr: float = 0.1,
        large_batch_size: int = 4096,
        small_batch_size: int = 128,
        noise: NoiseType | str = NoiseType.DIAG,
        fisher: FisherType | str = FisherType.EXACT,
        multiplicative_std: float = 1.0,
        total_steps: int | None = None,
        noise_fraction: float | None = None,
        noise_steps: int | None = None,
        update_every: int = 1,
        generator: torch.Generator | None = None,
        gradient: str = "batch",
    ) -> None:
        lr = check_lr(lr)
        self.scale = noise_scale(large_batch_size, small_batch_size)
        self.noise = _enum(noise, NoiseType, "noise")
        self.fisher = _enum(fisher, FisherType, "fisher")
        if self.fisher is FisherType.MC:
            raise ValueError(
                "fisher='mc' is not offered for covariance noise: use 'exact' (the 'full' "
                "noise already draws sampled labels) or 'empirical'"
            )
        if not (
            isinstance(multiplicative_std, (int, float))
            and math.isfinite(multiplicative_std)
            and multiplicative_std >= 0
        ):
            raise ValueError(
                f"multiplicative_std must be a finite number >= 0, got {multiplicative_std!r}"
            )
        self.noise_steps = switch_step(total_steps, noise_fraction, noise_steps)
        if isinstance(update_every, bool) or not isinstance(update_every, int) or update_every < 1:
            raise ValueError(f"update_every must be a positive integer, got {update_every!r}")
        if gradient not in ("batch", "grad"):
            raise ValueError(f"gradient must be 'batch' or 'grad', got {gradient!r}")
        super().__init__(params, {"lr": lr})
        self.model = model
        self.likelihood = likelihood
        self.large_batch_size = large_batch_size
        self.small_batch_size = small_batch_size
        self.multiplicative_std = float(multiplicative_std)
        self.update_every = update_every
        self.generator = generator
        self.gradient = gradient
        self.steps = 0
        self._sampler: NoiseSampler | None = None
        self._restored_matrix: Any = None
        self._trainable = trainable_parameters(model, self.param_groups)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group after checking its ``lr``."""
        if "lr" in param_group:
            param_group["lr"] = check_lr(param_group["lr"])
        super().add_param_group(param_group)

    # -- noise ---------------------------------------------------------------------------
    def noise_active(self, step: int | None = None) -> bool:
        """Whether the noise is added at 0-based step ``step`` (default: the next step)."""
        step = self.steps if step is None else step
        return self.noise_steps is None or step < self.noise_steps

    def make_sampler(self, X: Any, y: Tensor | None = None) -> NoiseSampler:
        """Build the :mod:`fisherlab.noise` sampler of :math:`C` on the batch ``(X, y)``."""
        args = (self.model, self.likelihood, X, y)
        if self.noise is NoiseType.MULTIPLICATIVE:
            return MultiplicativeNoise(*args, std=self.multiplicative_std, reduction="mean")
        structure = self.noise.value
        if self.fisher is FisherType.EMPIRICAL:
            return EmpiricalFisherNoise(*args, structure=structure, reduction="mean")
        method = "sampled_labels" if self.noise is NoiseType.FULL else "exact"
        return FisherNoise(*args, structure=structure, method=method, reduction="mean")

    def _draw(self, X: Any, y: Tensor | None) -> Tensor:
        refresh = self.noise is NoiseType.FULL or self.steps % self.update_every == 0
        if refresh or self._sampler is None:
            self._sampler = self.make_sampler(X, y)
            if not refresh:  # resumed between two refreshes: keep the stored covariance
                self._sampler._matrix = self._restored_matrix
        self._restored_matrix = None
        return self._sampler.sample(self.generator)

    # -- step ----------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, X: Any, y: Tensor | None = None) -> Tensor | None:  # type: ignore[override]
        """One step of Algorithm 1 on the large batch ``(X, y)`` (or a DataLoader as ``X``).

        Returns the large-batch loss (``gradient="batch"``) or ``None`` (``"grad"``).
        """
        loss: Tensor | None = None
        if self.gradient == "batch":
            curvature = Curvature(self.model, self.likelihood, X, y, reduction="mean")
            loss = curvature.loss()
            flat_grad = curvature.gradient()
            grads = list(flat_grad.split([p.numel() for p in self._trainable]))
            grad_of = {id(p): g.view_as(p) for p, g in zip(self._trainable, grads, strict=True)}
        else:
            grad_of = {id(p): p.grad for p in self._trainable if p.grad is not None}
        noise_of: dict[int, Tensor] | None = None
        if self.noise_active():
            xi = self._draw(X, y)
            noise_of = {
                id(p): n.view_as(p)
                for p, n in zip(
                    self._trainable, xi.split([p.numel() for p in self._trainable]), strict=True
                )
            }
        else:
            self._sampler = None
        for group in self.param_groups:
            params = [p for p in group["params"] if grad_of.get(id(p)) is not None]
            grads = [grad_of[id(p)] for p in params]
            noise = None if noise_of is None else [noise_of[id(p)] for p in params]
            noisy_sgd_update(params, grads, noise, group["lr"], self.scale)
        self.steps += 1
        return loss

    # -- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Optimizer state plus the step count, the generator state and a kept covariance."""
        state = super().state_dict()
        kept = None
        if self._sampler is not None and self.noise is not NoiseType.FULL:
            kept = self._sampler._matrix
        elif self._restored_matrix is not None:
            kept = self._restored_matrix
        if isinstance(kept, KFAC):  # plain tensors: loadable with weights_only=True
            kept = kept.state()
        state["noisy_sgd"] = {
            "steps": self.steps,
            "generator_state": None if self.generator is None else self.generator.get_state(),
            "covariance": kept,
        }
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a :meth:`state_dict`; the generator (if any) continues from the saved state."""
        state_dict = dict(state_dict)
        extra = state_dict.pop("noisy_sgd", None)
        if extra is None or state_dict.get("state"):
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: this state_dict was not saved by "
                f"{type(self).__name__} (it has {sorted(state_dict)})"
            )
        covariance = extra["covariance"]
        if isinstance(covariance, dict):
            covariance = KFAC.from_state(covariance)
        super().load_state_dict(state_dict)
        self.steps = int(extra["steps"])
        if extra["generator_state"] is not None:
            if self.generator is None:
                raise ValueError("the saved optimizer used a generator: pass one to continue")
            self.generator.set_state(extra["generator_state"])
        self._sampler = None
        self._restored_matrix = covariance


class BatchChangeSampler(Sampler[list[int]]):
    r"""BatchChange baseline (Wen et al. 2020, App. E.2): :math:`M_S` first, then :math:`M_L`.

    "We use SB for the first 50 epochs and then use LB for the remainder" (of 200 epochs,
    i.e. the first quarter; after Smith et al. 2017). A batch sampler for
    ``DataLoader(dataset, batch_sampler=...)``: each epoch is a fresh random permutation
    (drawn from ``generator``) cut into batches of :meth:`batch_size_at` ``(epoch)``; call
    :meth:`set_epoch` before each epoch (as with ``DistributedSampler``).

    Parameters
    ----------
    num_samples : int
        Size of the training set.
    small_batch_size, large_batch_size : int
        :math:`M_S \le M_L`.
    total_epochs, switch_fraction, switch_epoch
        Small batches during the first ``switch_epoch`` epochs, or the first
        ``round(switch_fraction · total_epochs)`` (the paper: 0.25 of 200 epochs).
    generator : torch.Generator or None
    drop_last : bool
        Drop the last incomplete batch of an epoch.
    """

    def __init__(
        self,
        num_samples: int,
        small_batch_size: int,
        large_batch_size: int,
        total_epochs: int | None = None,
        switch_fraction: float | None = None,
        switch_epoch: int | None = None,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ) -> None:
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
        noise_scale(large_batch_size, small_batch_size)  # validates the batch sizes
        switch = switch_step(total_epochs, switch_fraction, switch_epoch, name="switch")
        if switch is None:
            raise ValueError("give switch_epoch, or switch_fraction with total_epochs")
        self.num_samples = num_samples
        self.small_batch_size = small_batch_size
        self.large_batch_size = large_batch_size
        self.switch_epoch = switch
        self.generator = generator
        self.drop_last = drop_last
        self.epoch = 0

    def batch_size_at(self, epoch: int) -> int:
        """:math:`M_S` before ``switch_epoch``, :math:`M_L` from then on."""
        return self.small_batch_size if epoch < self.switch_epoch else self.large_batch_size

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batch size :meth:`__iter__` uses."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        """Yield index batches of the current epoch."""
        size = self.batch_size_at(self.epoch)
        order = torch.randperm(self.num_samples, generator=self.generator).tolist()
        for start in range(0, self.num_samples, size):
            batch = order[start : start + size]
            if len(batch) < size and self.drop_last:
                return
            yield batch

    def __len__(self) -> int:
        """Number of batches in the current epoch."""
        size = self.batch_size_at(self.epoch)
        if self.drop_last:
            return self.num_samples // size
        return math.ceil(self.num_samples / size)
