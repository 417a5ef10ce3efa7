"""Input checks shared by the engine and the optimizers: clear errors, nothing silently wrong."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor

__all__ = [
    "all_finite",
    "check_all_finite",
    "check_finite",
    "check_model",
    "check_normalization",
    "check_batch",
    "check_mc_samples",
    "check_reduction",
    "memory_limit",
    "check_memory",
    "MEMORY_ENV",
]

#: environment variable overriding :func:`memory_limit` (bytes)
MEMORY_ENV = "FISHERLAB_MAX_BYTES"
#: fraction of the available memory a single dense result may take
MEMORY_FRACTION = 0.5


def check_finite(tensor: Tensor, what: str) -> None:
    """Raise ``ValueError`` if a floating-point ``tensor`` holds NaN or inf.

    The sum of a tensor is finite only if no entry is NaN or inf, so one reduction decides
    the common case; only a non-finite sum (which large finite entries can also produce)
    is followed by the entry-wise check.
    """
    if not torch.is_floating_point(tensor) or bool(torch.isfinite(tensor.sum())):
        return
    finite = torch.isfinite(tensor)
    if not finite.all():
        bad = int((~finite).sum())
        raise ValueError(f"{what} contains {bad} NaN or inf value(s)")


def all_finite(tensors: Iterable[Tensor]) -> bool:
    """Whether no floating-point tensor of ``tensors`` holds NaN or inf.

    The common case (all finite) is decided with one synchronisation: the sums of the
    tensors, stacked and summed, are finite only if no entry is NaN or inf. A non-finite
    total (which large finite entries can also produce) is followed by the entry-wise check
    of each tensor.
    """
    floating = [t for t in tensors if torch.is_floating_point(t)]
    if not floating:
        return True
    first = floating[0]
    if bool(torch.isfinite(torch.stack([t.sum().to(first) for t in floating]).sum())):
        return True
    return all(bool(torch.isfinite(t).all()) for t in floating)


def check_all_finite(tensors: Mapping[str, Tensor]) -> None:
    """:func:`check_finite` of every tensor of ``{what: tensor}``, decided by :func:`all_finite`.

    Only when some tensor holds NaN or inf is each one checked, to name the first of them.
    """
    if all_finite(tensors.values()):
        return
    for what, tensor in tensors.items():
        check_finite(tensor, what)


def check_normalization(model: torch.nn.Module) -> None:
    """Refuse BatchNorm layers that normalise with the statistics of the batch.

    That is the case in training mode and, in evaluation mode too, without running
    statistics (``track_running_stats=False``): each sample's output then depends on the
    other samples of the batch, so per-sample gradients and curvature are not defined.
    """
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            continue
        label = name or type(module).__name__
        if module.training:
            raise ValueError(
                f"BatchNorm layer {label!r} is in training mode: per-sample gradients and "
                "curvature are not defined when a sample's output depends on the rest of "
                "the batch; call model.eval() first"
            )
        if module.running_mean is None or module.running_var is None:
            raise ValueError(
                f"BatchNorm layer {label!r} has no running statistics "
                "(track_running_stats=False), so it normalises with the statistics of the "
                "batch even in evaluation mode: per-sample gradients and curvature are not "
                "defined; use running statistics or a per-sample normalisation (LayerNorm, "
                "GroupNorm)"
            )


def check_model(model: torch.nn.Module) -> None:
    """Check the model's parameters are finite and no layer mixes samples or is random.

    Per-sample quantities are undefined for BatchNorm normalising with batch statistics
    (:func:`check_normalization`), because each sample's output then depends on the other
    samples of the batch; Dropout in training mode (with ``p > 0``) makes every quantity a
    random draw instead of a function of the parameters.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_normalization(model)
    for name, module in model.named_modules():
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


def check_likelihood(likelihood: object) -> None:
    """Raise ``TypeError`` unless ``likelihood`` is a :class:`fisherlab.likelihoods.Likelihood`."""
    from fisherlab.likelihoods import Likelihood

    if not isinstance(likelihood, Likelihood):
        raise TypeError(
            f"likelihood must be a fisherlab Likelihood, got {type(likelihood).__name__}; "
            "for a torch loss use fisherlab.likelihoods.from_loss(loss_fn)"
        )


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


def memory_limit(device: torch.device | str | None = None) -> int:
    """Bytes one dense result may take: ``$FISHERLAB_MAX_BYTES``, else half the free memory.

    The free memory is that of the CUDA ``device`` (``torch.cuda.mem_get_info``) for a
    CUDA device, else ``MemAvailable`` of ``/proc/meminfo`` (Linux); where it cannot be
    read the limit is 8 GiB.
    """
    env = os.environ.get(MEMORY_ENV)
    if env:
        try:
            value = int(float(env))
        except ValueError:
            raise ValueError(f"${MEMORY_ENV} must be a number of bytes, got {env!r}") from None
        if value <= 0:
            raise ValueError(f"${MEMORY_ENV} must be positive, got {env!r}")
        return value
    if device is not None and torch.device(device).type == "cuda":
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free * MEMORY_FRACTION)
    available = _available_memory()
    return 8 << 30 if available is None else int(available * MEMORY_FRACTION)


def _available_memory() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes, or ``None`` where it cannot be read."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(
    numel: int,
    dtype: torch.dtype,
    what: str,
    cheaper: str,
    max_bytes: int | None = None,
    device: torch.device | str | None = None,
) -> None:
    """Refuse to allocate ``numel`` elements of ``dtype`` above the memory limit.

    Parameters
    ----------
    numel : int
        Number of elements of the result about to be built.
    dtype : torch.dtype
        Its dtype.
    what : str
        What the result is, e.g. ``"a dense (D, D) matrix"``.
    cheaper : str
        The cheaper forms that would fit, named in the error.
    max_bytes : int or None
        The limit; default :func:`memory_limit` of ``device``.
    device : torch.device, str or None
        Where the result would live (CUDA: the GPU's free memory counts).

    Raises
    ------
    MemoryError
        With the estimate, the limit and the cheaper forms.
    """
    limit = memory_limit(device) if max_bytes is None else max_bytes
    need = numel * torch.empty((), dtype=dtype).element_size()
    if need > limit:
        raise MemoryError(
            f"{what} would take {need / 2**20:.1f} MiB, above the limit of "
            f"{limit / 2**20:.1f} MiB (set ${MEMORY_ENV} or max_bytes= to change it); "
            f"cheaper: {cheaper}"
        )
