"""Input checks shared by the engine and the optimizers: clear errors, nothing silently wrong."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "check_finite",
    "check_model",
    "check_batch",
    "check_mc_samples",
    "check_reduction",
]


def check_finite(tensor: Tensor, what: str) -> None:
    """Raise ``ValueError`` if a floating-point ``tensor`` holds NaN or inf."""
    if torch.is_floating_point(tensor) and not torch.isfinite(tensor).all():
        bad = int((~torch.isfinite(tensor)).sum())
        raise ValueError(f"{what} contains {bad} NaN or inf value(s)")


def check_model(model: torch.nn.Module) -> None:
    """Check the model's parameters are finite and no BatchNorm or Dropout layer is training.

    Per-sample quantities are undefined for BatchNorm in training mode, because each
    sample's output then depends on the other samples of the batch; Dropout in training
    mode (with ``p > 0``) makes every quantity a random draw instead of a function of the
    parameters.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.training:
            raise ValueError(
                f"BatchNorm layer {name or type(module).__name__!r} is in training mode: "
                "per-sample gradients and curvature are not defined when a sample's output "
                "depends on the rest of the batch; call model.eval() first"
            )
        if (
            isinstance(module, torch.nn.modules.dropout._DropoutNd)
            and module.training
            and module.p > 0
        ):
            raise ValueError(
                f"Dropout layer {name or type(module).__name__!r} is in training mode: "
                "the model's outputs are random, so gradients and curvature would be random "
                "draws; call model.eval() first"
            )
    for name, parameter in model.named_parameters():
        check_finite(parameter.detach(), f"parameter {name!r}")


def check_batch(X: Tensor, y: Tensor) -> None:
    """Check one batch: tensors, non-empty, finite, same number of samples."""
    if not isinstance(X, Tensor) or not isinstance(y, Tensor):
        raise TypeError(
            f"inputs and targets must be torch.Tensors, got {type(X).__name__} and "
            f"{type(y).__name__}"
        )
    if X.ndim == 0 or X.shape[0] == 0:
        raise ValueError("data is empty: the inputs hold no samples")
    if y.ndim == 0 or y.shape[0] != X.shape[0]:
        raise ValueError(
            f"inputs and targets disagree in the number of samples: X has shape "
            f"{tuple(X.shape)}, y has shape {tuple(y.shape)}"
        )
    check_finite(X, "input data X")
    check_finite(y, "targets y")


def check_mc_samples(mc_samples: int | None) -> None:
    """``mc_samples`` must be ``None`` or a positive integer."""
    if mc_samples is None:
        return
    if isinstance(mc_samples, bool) or not isinstance(mc_samples, int) or mc_samples < 1:
        raise ValueError(f"mc_samples must be a positive integer, got {mc_samples!r}")


def check_reduction(reduction: str) -> None:
    """``reduction`` must be ``"mean"`` or ``"sum"``."""
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
