"""Shared helpers of :mod:`fisherlab.optim`: checks, vector splitting, a ``p.grad`` base class.

:class:`GradientOptimizer` holds the ``step`` loop shared by the gradient-moment and
sign-based optimizers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

__all__ = ["split_flat"]

Params = Iterable[Tensor] | Iterable[dict[str, Any]]


def as_float(value: Any, label: str) -> float:
    """``float(value)``, or a ``ValueError`` naming ``label`` if it is not a real number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if not (isinstance(value, Tensor) and value.numel() == 1):
            raise ValueError(
                f"Invalid {label}={value!r}: must be a real number, got {type(value).__name__}."
            )
    return float(value)


def _check_finite_nonnegative(value: float, label: str) -> float:
    value = as_float(value, label)
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"Invalid {label}={value}: must be a finite number >= 0.")
    return value


def check_lr(lr: float) -> float:
    """Return ``lr`` as a float after checking that it is finite and non-negative.

    Raises
    ------
    ValueError
        If ``lr`` is negative, NaN or infinite.
    """
    return _check_finite_nonnegative(lr, "learning rate lr")


def check_beta(beta: float, name: str = "beta") -> float:
    """Return ``beta`` as a float after checking that it lies in ``[0, 1)``.

    Raises
    ------
    ValueError
        If ``beta`` is outside ``[0, 1)`` or NaN.
    """
    beta = as_float(beta, name)
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"Invalid {name}={beta}: must lie in [0, 1).")
    return beta


def check_eps(eps: float) -> float:
    """Return ``eps`` as a float after checking that it is finite and non-negative.

    Raises
    ------
    ValueError
        If ``eps`` is negative, NaN or infinite.
    """
    return _check_finite_nonnegative(eps, "eps")


def evaluate_closure(closure: Callable[[], float] | None) -> float | None:
    """Evaluate an optimizer closure with gradients enabled (``None`` passes through)."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def dense_grad(p: Tensor, optimizer_name: str) -> Tensor:
    """Return ``p.grad`` after checking that it is a dense tensor.

    Raises
    ------
    RuntimeError
        If the gradient is sparse.
    """
    grad = p.grad
    if grad.is_sparse:
        raise RuntimeError(f"{optimizer_name} does not support sparse gradients.")
    return grad


_HYPERPARAMETER_CHECKS: dict[str, Callable[[float], float]] = {
    "lr": check_lr,
    "beta": check_beta,
    "eps": check_eps,
}


class GradientOptimizer(Optimizer):
    """Base of the optimizers that update from ``p.grad`` through a functional core.

    ``__init__`` checks the hyperparameters (``lr``, ``beta``, ``eps``; they become the
    defaults of the parameter groups). ``step`` evaluates the closure, then for every
    parameter group collects the parameters that have a gradient, their dense gradients
    and their state, and calls :attr:`_update` with these lists and the group's
    hyperparameters as keywords.

    Subclasses set :attr:`_update` (a function of :mod:`fisherlab.optim._functional`),
    :attr:`_buffers` (names of the per-parameter state tensors, zero-initialised, passed
    to ``_update`` in this order after the gradients) and :attr:`_counts_steps` (keep a
    per-parameter step count, incremented before the update; ``_update`` is then called
    once per distinct count, with the count after the buffers). A group whose parameters
    have no gradient is skipped.
    """

    _update: Callable[..., None]
    _buffers: tuple[str, ...] = ()
    _counts_steps: bool = False

    def __init__(self, params: Params, **hyperparameters: float) -> None:
        defaults = {k: _HYPERPARAMETER_CHECKS[k](v) for k, v in hyperparameters.items()}
        super().__init__(params, defaults)
        self._hyperparameter_names = tuple(defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a parameter group after checking its own hyperparameters (``lr``, ``beta``, ...).

        Also called by ``__init__`` for every group given as a dict.
        """
        if isinstance(param_group, dict):
            param_group = dict(param_group)
            for key, check in _HYPERPARAMETER_CHECKS.items():
                if key in param_group:
                    param_group[key] = check(param_group[key])
        super().add_param_group(param_group)

    def _state_keys(self) -> set[str]:
        return set(self._buffers) | ({"step"} if self._counts_steps else set())

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a ``state_dict`` after checking it was saved by this kind of optimizer.

        Raises
        ------
        ValueError
            If a parameter's saved state holds other buffers than this optimizer's (e.g.
            the state of another optimizer class), or a group misses a hyperparameter.
        """
        name = type(self).__name__
        expected = self._state_keys()
        for index, state in dict(state_dict.get("state", {})).items():
            if state and set(state) != expected:
                raise ValueError(
                    f"{name}.load_state_dict: the state of parameter {index} has entries "
                    f"{sorted(state)}, but {name} keeps {sorted(expected)}: the state_dict "
                    "comes from a different optimizer"
                )
        for group in state_dict.get("param_groups", []):
            missing = [k for k in self._hyperparameter_names if k not in group]
            if missing:
                raise ValueError(
                    f"{name}.load_state_dict: a parameter group lacks {missing}: the "
                    "state_dict comes from a different optimizer"
                )
        super().load_state_dict(state_dict)

    def _group_tensors(
        self, group: dict[str, Any]
    ) -> tuple[list[Tensor], list[Tensor], list[list[Tensor]], list[int]]:
        """Parameters with a gradient, their gradients, state buffers and step counts.

        All gradients are checked before any state is created or advanced.
        """
        name = type(self).__name__
        params = [p for p in group["params"] if p.grad is not None]
        grads = [dense_grad(p, name) for p in params]
        buffers: list[list[Tensor]] = [[] for _ in self._buffers]
        steps: list[int] = []
        for p in params:
            state = self.state[p]
            if not state:
                if self._counts_steps:
                    state["step"] = 0
                for key in self._buffers:
                    state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)
            for key, values in zip(self._buffers, buffers, strict=True):
                values.append(state[key])
            if self._counts_steps:
                state["step"] += 1
                steps.append(state["step"])
        return params, grads, buffers, steps

    def _group_hyperparameters(self, group: dict[str, Any]) -> dict[str, Any]:
        return {k: group[k] for k in self._hyperparameter_names}

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Perform one optimization step.

        Parameters
        ----------
        closure : callable, optional
            Re-evaluates the model and returns the loss.

        Returns
        -------
        float or None
            The loss returned by ``closure``, if given.
        """
        loss = evaluate_closure(closure)
        for group in self.param_groups:
            params, grads, buffers, steps = self._group_tensors(group)
            hyperparameters = self._group_hyperparameters(group)
            if not self._counts_steps:
                if params:
                    self._update(params, grads, *buffers, **hyperparameters)
                continue
            for step, tensors in split_by_step(steps, params, grads, *buffers):
                self._update(*tensors, step, **hyperparameters)
        return loss


def split_by_step(
    steps: list[int], *tensor_lists: list[Tensor]
) -> Iterator[tuple[int, tuple[list[Tensor], ...]]]:
    """Yield each distinct step count with the entries of ``tensor_lists`` that have it.

    Parameters get different counts when some of them had no gradient on some steps;
    usually all share one count, and the lists are then yielded whole. Nothing is
    yielded for empty lists.
    """
    distinct = list(dict.fromkeys(steps))
    if len(distinct) == 1:
        yield distinct[0], tensor_lists
        return
    for step in distinct:
        index = [i for i, count in enumerate(steps) if count == step]
        yield step, tuple([tensors[i] for i in index] for tensors in tensor_lists)


def trainable_parameters(
    model: torch.nn.Module, param_groups: Iterable[dict[str, Any]]
) -> list[Tensor]:
    """Return the trainable parameters of ``model`` after checking that they cover ``params``.

    For the optimizers that compute the gradient of ``model`` themselves.

    Raises
    ------
    ValueError
        If a parameter of ``param_groups`` is not a trainable parameter of ``model``.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    ids = {id(p) for p in trainable}
    for group in param_groups:
        for p in group["params"]:
            if id(p) not in ids:
                raise ValueError("every optimized parameter must be a trainable parameter of model")
    return trainable


def split_flat(vector: Tensor, params: Iterable[Tensor]) -> list[Tensor]:
    """Split a flat vector into views shaped like ``params``.

    The inverse of :func:`torch.nn.utils.parameters_to_vector`: the first
    ``params[0].numel()`` entries become a tensor of shape ``params[0].shape``, and so on.
    This is the layout of fisherlab's flat quantities (parameters with ``requires_grad``
    in ``model.parameters()`` order), so e.g.
    ``split_flat(curvature.variance(form="diag"), [p for p in model.parameters()
    if p.requires_grad])`` gives one variance tensor per parameter.

    Parameters
    ----------
    vector : Tensor
        One-dimensional tensor with ``sum(p.numel() for p in params)`` entries.
    params : iterable of Tensor
        Tensors whose shapes define the split.

    Returns
    -------
    list of Tensor
        Views into ``vector``, one per parameter, with the parameter's shape.

    Raises
    ------
    ValueError
        If ``vector`` is not one-dimensional or its length does not match.
    """
    params = list(params)
    if vector.dim() != 1:
        raise ValueError(f"vector must be one-dimensional, got shape {tuple(vector.shape)}.")
    sizes = [p.numel() for p in params]
    if vector.numel() != sum(sizes):
        raise ValueError(
            f"vector has {vector.numel()} entries but the parameters have {sum(sizes)} in total."
        )
    return [chunk.view_as(p) for chunk, p in zip(torch.split(vector, sizes), params, strict=True)]


def as_tensor_list(
    values: Tensor | Sequence[Tensor], params: Sequence[Tensor], name: str
) -> list[Tensor]:
    """Match ``values`` (a flat vector or one tensor per parameter) to ``params``.

    A flat vector is split over ``params`` with :func:`split_flat`; a sequence must have
    one tensor per parameter, each with that parameter's shape.

    Raises
    ------
    ValueError
        If the number of tensors or a shape does not match.
    """
    if isinstance(values, Tensor):
        try:
            return split_flat(values, params)
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
    values = list(values)
    if len(values) != len(params):
        raise ValueError(
            f"{name} has {len(values)} tensors but the optimizer has {len(params)} parameters."
        )
    for i, (value, p) in enumerate(zip(values, params, strict=True)):
        if value.shape != p.shape:
            raise ValueError(
                f"{name}[{i}] has shape {tuple(value.shape)}, expected {tuple(p.shape)}."
            )
    return values
