"""Shared helpers of :mod:`fisherlab.optim`: hyperparameter checks and vector splitting."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["split_flat"]

Params = Iterable[Tensor] | Iterable[dict[str, Any]]


def check_lr(lr: float) -> float:
    """Return ``lr`` as a float after checking that it is finite and non-negative.

    Raises
    ------
    ValueError
        If ``lr`` is negative, NaN or infinite.
    """
    lr = float(lr)
    if not (math.isfinite(lr) and lr >= 0.0):
        raise ValueError(f"Invalid learning rate lr={lr}: must be a finite number >= 0.")
    return lr


def check_beta(beta: float, name: str = "beta") -> float:
    """Return ``beta`` as a float after checking that it lies in ``[0, 1)``.

    Raises
    ------
    ValueError
        If ``beta`` is outside ``[0, 1)`` or NaN.
    """
    beta = float(beta)
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
    eps = float(eps)
    if not (math.isfinite(eps) and eps >= 0.0):
        raise ValueError(f"Invalid eps={eps}: must be a finite number >= 0.")
    return eps


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
