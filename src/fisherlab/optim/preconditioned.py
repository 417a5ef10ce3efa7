r"""Preconditioned gradient descent: GD, NGD, EF-preconditioned GD, damped Newton.

The update of Kunstner et al. (App. D, Eq. D.30-D.32; Balles' thesis Eq. D.30-D.32),

.. math::
    \theta_{t+1} = \theta_t - \gamma\,(B(\theta_t) + \lambda I)^{-1}\nabla L(\theta_t),

with :math:`B` the Fisher (NGD), the empirical Fisher (EFGD), the GGN, the Hessian (damped
Newton) or :math:`B = 0` (GD, no damping). With ``variance_adaptation=True`` the direction
is the variance-adapted gradient of Kunstner et al. Eq. 19,
:math:`M\nabla L = (\Sigma + \nabla L\nabla L^\top)^{-1}\nabla L\,\nabla L^\top\nabla L`,
where :math:`\Sigma + \nabla L \nabla L^\top` is the (mean-reduction) empirical Fisher; its
diagonal version is Balles & Hennig's factor :math:`[\nabla L]_i^2/(\Sigma_{ii} +
[\nabla L]_i^2)` (thesis §5.3).

The functional core (:func:`damped_direction`, :func:`preconditioned_update`) works on
batches of problems at once; :class:`PreconditionedGD` wraps it as a
:class:`torch.optim.Optimizer` that computes the curvature with :class:`fisherlab.Curvature`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from fisherlab.curvature import Curvature
from fisherlab.likelihoods import Likelihood

from ._utils import as_float, trainable_parameters


def _check_lr(lr: Any) -> float:
    value = as_float(lr, "lr")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"Invalid lr={lr!r}: must be a finite number > 0.")
    return value


def _check_damping(damping: Any) -> float:
    value = as_float(damping, "damping")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"Invalid damping={damping!r}: must be a finite number >= 0.")
    return value


__all__ = [
    "PRECONDITIONERS",
    "damped_direction",
    "preconditioned_update",
    "variance_adapted_direction",
    "PreconditionedGD",
]

PRECONDITIONERS = ("identity", "fisher", "empirical_fisher", "ggn", "hessian")


def damped_direction(preconditioner: Any, gradient: Tensor, damping: float | Tensor) -> Tensor:
    r"""Solve :math:`(B + \lambda I) d = g` for ``B`` in any form.

    Parameters
    ----------
    preconditioner : Tensor or object with ``solve(v, damping)``
        Dense ``(..., D, D)`` (batched), diagonal ``(D,)``, or an operator / KFAC object.
    gradient : Tensor
        ``(..., D)``.
    damping : float or Tensor
        :math:`\lambda \geq 0`; for a batch of dense problems also a tensor of the batch
        shape (one damping per problem).
    """
    if isinstance(damping, Tensor):
        if (damping < 0).any():
            raise ValueError("damping must be >= 0")
        if not isinstance(preconditioner, Tensor) or preconditioner.ndim < 2:
            raise ValueError("a tensor of dampings needs a batch of dense preconditioners")
    elif damping < 0:
        raise ValueError(f"damping must be >= 0, got {damping}")
    if isinstance(preconditioner, Tensor):
        if preconditioner.shape == gradient.shape[-1:] and preconditioner.ndim == 1:
            return gradient / (preconditioner + damping)
        eye = torch.eye(gradient.shape[-1], dtype=gradient.dtype, device=gradient.device)
        if isinstance(damping, Tensor):
            damping = damping[..., None, None]
        damped = preconditioner + damping * eye
        return torch.linalg.solve(damped, gradient.unsqueeze(-1)).squeeze(-1)
    if hasattr(preconditioner, "solve"):
        return preconditioner.solve(gradient, damping)
    raise TypeError(f"cannot solve with a preconditioner of type {type(preconditioner).__name__}")


def variance_adapted_direction(empirical_fisher: Any, gradient: Tensor, damping: float) -> Tensor:
    r"""Variance-adapted direction, Kunstner et al. Eq. 19 applied to the gradient.

    Dense: :math:`(\tilde F + \lambda I)^{-1} g\,(g^\top g)`; for a diagonal
    ``empirical_fisher`` the diagonal factors :math:`g_i^2 / (\tilde F_{ii} + \lambda)`
    times :math:`g_i`.
    """
    direction = damped_direction(empirical_fisher, gradient, damping)
    if isinstance(empirical_fisher, Tensor) and empirical_fisher.ndim == 1:
        return direction * gradient**2
    return direction * (gradient * gradient).sum(-1, keepdim=True)


def preconditioned_update(theta: Tensor, direction: Tensor, lr: float | Tensor) -> Tensor:
    r""":math:`\theta - \gamma d` (``lr`` may be a tensor broadcasting over a batch of runs)."""
    if isinstance(lr, Tensor):
        return theta - lr.unsqueeze(-1) * direction
    return theta - lr * direction


class PreconditionedGD(torch.optim.Optimizer):
    r"""Gradient descent preconditioned by a damped curvature matrix (NGD, EFGD, Newton).

    .. math::
        \theta_{t+1} = \theta_t - \gamma (B(\theta_t) + \lambda I)^{-1} \nabla L(\theta_t)

    Each :meth:`step` takes the batch, computes :math:`\nabla L` and :math:`B` on it with
    :class:`fisherlab.Curvature` and updates the parameters; no ``backward()`` is needed:

    >>> opt = PreconditionedGD(model.parameters(), model, lik, lr=1.0)  # doctest: +SKIP
    >>> for X, y in loader:  # doctest: +SKIP
    ...     loss = opt.step(X, y)

    Parameters
    ----------
    params : iterable of Tensor or dicts
        The parameters to update (a subset of ``model``'s trainable parameters); groups may
        set their own ``lr`` and ``damping``.
    model : torch.nn.Module
    likelihood : Likelihood
    lr : float
        Step size :math:`\gamma > 0`.
    damping : float
        :math:`\lambda \geq 0` (ignored for ``"identity"``).
    preconditioner : {"fisher", "empirical_fisher", "ggn", "hessian", "identity"}
        :math:`B`. ``"fisher"`` with ``mc_samples`` uses the Monte-Carlo Fisher.
    form : str
        ``"dense"``, ``"diag"``, ``"operator"`` (conjugate gradients) or any registered form
        whose object has ``solve(v, damping)`` (e.g. ``"kfac"``).
    mc_samples : int or None
        Sampled labels per input for the Monte-Carlo Fisher.
    generator : torch.Generator or None
        Randomness for the Monte-Carlo Fisher.
    variance_adaptation : bool
        Use Kunstner et al. Eq. 19 (requires ``preconditioner="empirical_fisher"``).
    reduction : {"mean", "sum"} or None
        Passed to :class:`fisherlab.Curvature`.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        model: torch.nn.Module,
        likelihood: Likelihood,
        lr: float = 1.0,
        damping: float = 0.0,
        preconditioner: str = "fisher",
        form: str = "dense",
        mc_samples: int | None = None,
        generator: torch.Generator | None = None,
        variance_adaptation: bool = False,
        reduction: str | None = None,
    ) -> None:
        lr = _check_lr(lr)
        damping = _check_damping(damping)
        if preconditioner not in PRECONDITIONERS:
            raise ValueError(
                f"preconditioner must be one of {', '.join(PRECONDITIONERS)}, got "
                f"{preconditioner!r}"
            )
        if variance_adaptation and preconditioner != "empirical_fisher":
            raise ValueError("variance_adaptation (Eq. 19) needs preconditioner='empirical_fisher'")
        if mc_samples is not None and preconditioner != "fisher":
            raise ValueError("mc_samples applies to preconditioner='fisher' only")
        if generator is not None and mc_samples is None:
            raise ValueError("generator only affects the Monte-Carlo Fisher: pass mc_samples")
        from fisherlab.forms import available_forms

        if not isinstance(form, str) or form not in available_forms():
            raise ValueError(f"form must be one of {', '.join(available_forms())}, got {form!r}")
        super().__init__(params, {"lr": lr, "damping": damping})
        self.model = model
        self.likelihood = likelihood
        self.preconditioner = preconditioner
        self.form = form
        self.mc_samples = mc_samples
        self.generator = generator
        self.variance_adaptation = variance_adaptation
        self.reduction = reduction
        offsets, start = {}, 0
        for p in trainable_parameters(model, self.param_groups):
            offsets[id(p)] = (start, start + p.numel())
            start += p.numel()
        self._offsets = offsets

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group after checking its ``lr`` and ``damping``."""
        if isinstance(param_group, dict):
            param_group = dict(param_group)
            if "lr" in param_group:
                param_group["lr"] = _check_lr(param_group["lr"])
            if "damping" in param_group:
                param_group["damping"] = _check_damping(param_group["damping"])
        super().add_param_group(param_group)

    def _matrix(self, curvature: Curvature) -> Any:
        if self.preconditioner == "fisher":
            return curvature.fisher(
                form=self.form, mc_samples=self.mc_samples, generator=self.generator
            )
        return getattr(curvature, self.preconditioner)(form=self.form)

    def _direction(
        self, curvature: Curvature, matrix: Any, gradient: Tensor, damping: float
    ) -> Tensor:
        if self.preconditioner == "identity":
            return gradient
        if self.variance_adaptation:
            # Eq. 19 needs Σ + ∇L∇Lᵀ = a Σ_n g_n g_nᵀ; the EF is c Σ_n g_n g_nᵀ, so the
            # matrix is (a/c)·EF: EF for mean reduction and N·EF for sum reduction (Eq. 18),
            # and ((a/c) EF + λI)⁻¹ = (c/a) (EF + (c/a) λ I)⁻¹.
            ratio = curvature.scaling.a / curvature.scaling.c
            return variance_adapted_direction(matrix, gradient, damping / ratio) / ratio
        return damped_direction(matrix, gradient, damping)

    @torch.no_grad()
    def step(self, X: Tensor, y: Tensor | None = None) -> Tensor:  # type: ignore[override]
        """Take one step on the batch ``(X, y)`` (or a DataLoader as ``X``); return the loss."""
        curvature = Curvature(self.model, self.likelihood, X, y, reduction=self.reduction)
        loss = curvature.loss()
        gradient = curvature.gradient()
        # one matrix per step, shared by all groups (one Monte-Carlo draw per step)
        matrix = None if self.preconditioner == "identity" else self._matrix(curvature)
        # every direction before any parameter moves: matrix-free forms evaluate lazily
        directions: dict[float, Tensor] = {}
        for group in self.param_groups:
            damping = group["damping"]
            if damping not in directions:
                directions[damping] = self._direction(curvature, matrix, gradient, damping)
        for group in self.param_groups:
            direction = directions[group["damping"]]
            for p in group["params"]:
                start, stop = self._offsets[id(p)]
                p.add_(direction[start:stop].view_as(p), alpha=-group["lr"])
        return loss

    def state_dict(self) -> dict[str, Any]:
        """Optimizer state plus the state of the Monte-Carlo ``generator`` (if any).

        Loading it into an optimizer with its own generator restores that generator's state,
        so a resumed run draws the same labels as an uninterrupted one.
        """
        state = super().state_dict()
        state["generator_state"] = None if self.generator is None else self.generator.get_state()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a :meth:`state_dict`, including the generator state."""
        state_dict = dict(state_dict)
        groups = state_dict.get("param_groups", [])
        if (
            "generator_state" not in state_dict
            or state_dict.get("state")
            or any("damping" not in group for group in groups)
        ):
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: this state_dict was not saved by "
                f"{type(self).__name__} (it has {sorted(state_dict)})"
            )
        generator_state = state_dict.pop("generator_state")
        super().load_state_dict(state_dict)
        if generator_state is not None:
            if self.generator is None:
                raise ValueError("the saved optimizer used a generator: pass one to continue")
            self.generator.set_state(generator_state)
