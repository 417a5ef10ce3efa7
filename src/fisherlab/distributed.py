"""Scale-out with :mod:`torch.distributed`: sums over samples are all-reduced.

Every quantity of :class:`fisherlab.Curvature` is a sum over samples divided by the total
number of samples (or not divided, for ``reduction="sum"``), so data-parallel ranks that
each hold a shard of the data compute the global quantity by summing their batch sums and
their sample counts with ``all_reduce`` (tested with the ``gloo`` backend on CPUs). Counts
and call signatures travel on the device of the summed tensors, or, when a call has no
tensor, on :func:`comm_device` (the current CUDA device under NCCL; not run here, as the
tests have CPUs only). :func:`fisherlab.engine.hooks.collect` sums the statistics of a
``DistributedDataParallel`` training step the same way
(:mod:`fisherlab.engine.hooks.reduction`); ``docs/distributed.md`` is the user guide.

Every rank must call the same methods in the same order (they are collective
operations), and matrix-free operators must be applied on every rank alike. Each
collective is guarded: the ranks first exchange the signature of the call (what is
summed, its dtype and shape), so ranks that call different quantities, or in a different
order, get a :class:`CollectiveError` naming every rank's call instead of silently
summing unrelated numbers; a rank that waits longer than :func:`timeout` seconds for the
others (one rank calling a quantity alone) gets a :class:`CollectiveError` too, instead
of waiting forever. A rank whose shard is empty contributes zeros of the agreed shape.

Per-sample outputs (``per_sample_gradients``, ``per_sample_losses``) stay local to the
rank (the collector's :meth:`~fisherlab.engine.hooks.Collector.gather` concatenates them).
Monte-Carlo labels are drawn by each rank from its own generator. ``form="blockdiag"`` and
the ``structure="full"`` noise samplers of :mod:`fisherlab.noise` do not sum over
ranks and raise ``NotImplementedError``.
"""

from __future__ import annotations

import ast
import datetime
import os
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "CollectiveError",
    "TIMEOUT_ENV",
    "is_active",
    "timeout",
    "set_timeout",
    "agree",
    "all_reduce_sum",
    "all_reduce_tensors",
    "all_reduce_max",
    "all_reduce_count",
    "all_gather",
    "comm_device",
]

#: environment variable with the collective timeout in seconds
TIMEOUT_ENV = "FISHERLAB_COLLECTIVE_TIMEOUT"
_DEFAULT_TIMEOUT = 300.0
_SIGNATURE_BYTES = 256
_timeout: float | None = None


class CollectiveError(RuntimeError):
    """Ranks disagree on a collective call, or not all of them joined it in time."""


def is_active() -> bool:
    """Whether a default :mod:`torch.distributed` process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def timeout() -> float:
    """Seconds a rank waits for the others in a collective.

    :func:`set_timeout`, else ``$FISHERLAB_COLLECTIVE_TIMEOUT``, else 300.
    """
    if _timeout is not None:
        return _timeout
    env = os.environ.get(TIMEOUT_ENV)
    if env:
        try:
            value = float(env)
        except ValueError:
            raise ValueError(f"${TIMEOUT_ENV} must be a number of seconds, got {env!r}") from None
        if not value > 0:
            raise ValueError(f"${TIMEOUT_ENV} must be positive, got {env!r}")
        return value
    return _DEFAULT_TIMEOUT


def set_timeout(seconds: float | None) -> None:
    """Set the collective timeout in seconds (``None``: back to the default)."""
    global _timeout
    if seconds is not None and not (isinstance(seconds, (int, float)) and seconds > 0):
        raise ValueError(f"seconds must be a positive number or None, got {seconds!r}")
    _timeout = None if seconds is None else float(seconds)


def _wait(work: dist.Work, what: str) -> None:
    seconds = timeout()
    try:
        work.wait(datetime.timedelta(seconds=seconds))
    except RuntimeError as error:
        raise CollectiveError(
            f"{what}: not every rank joined this collective within {seconds:g} s (rank "
            f"{dist.get_rank()} of {dist.get_world_size()}); every rank must call the same "
            "fisherlab quantities in the same order (set the limit with "
            f"fisherlab.distributed.set_timeout or ${TIMEOUT_ENV})"
        ) from error


def comm_device(device: torch.device | None = None) -> torch.device:
    """Device for a collective's small tensors: ``device``, else CUDA under NCCL, else CPU."""
    if device is not None:
        return torch.device(device)
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _signature(label: str, tensor: Tensor | None) -> str:
    if tensor is None:
        return f"{label}|empty|"
    return f"{label}|{str(tensor.dtype).removeprefix('torch.')}|{tuple(tensor.shape)}"


def agree(
    label: str, tensor: Tensor | None, device: torch.device | None = None
) -> tuple[tuple[int, ...], torch.dtype] | None:
    """Check that every rank makes the same call; return its agreed ``(shape, dtype)``.

    Parameters
    ----------
    label : str
        What the call computes (the same string on every rank for the same call).
    tensor : Tensor or None
        This rank's contribution, or ``None`` for a rank without samples.
    device : torch.device or None
        Where the signature travels when ``tensor`` is ``None`` (default
        :func:`comm_device`); otherwise it travels on ``tensor``'s device.

    Returns
    -------
    tuple or None
        Shape and dtype of the contributions (``None`` if every rank passed ``None``).

    Raises
    ------
    CollectiveError
        If the ranks' labels, shapes or dtypes differ, or a rank does not join in time.
    """
    signature = _signature(label, tensor)
    raw = signature.encode()[:_SIGNATURE_BYTES]
    payload = torch.zeros(_SIGNATURE_BYTES, dtype=torch.uint8)
    payload[: len(raw)] = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    payload = payload.to(tensor.device if tensor is not None else comm_device(device))
    gathered = [torch.empty_like(payload) for _ in range(dist.get_world_size())]
    _wait(dist.all_gather(gathered, payload, async_op=True), label)
    calls = [bytes(g.tolist()).rstrip(b"\0").decode(errors="replace") for g in gathered]
    labels = {c.split("|")[0] for c in calls}
    shapes = {c.split("|", 1)[1] for c in calls if "|empty|" not in c}
    if len(labels) > 1 or len(shapes) > 1:
        listing = "; ".join(f"rank {r}: {c}" for r, c in enumerate(calls))
        raise CollectiveError(
            f"the ranks make different collective calls ({listing}); every rank must call "
            "the same fisherlab quantities in the same order"
        )
    if not shapes:
        return None
    dtype_name, shape = shapes.pop().split("|")
    return tuple(ast.literal_eval(shape)), getattr(torch, dtype_name)


def _all_reduce(
    tensor: Tensor | None, label: str, op: dist.ReduceOp, device: torch.device | None
) -> Tensor | None:
    agreed = agree(label, tensor, device)
    if agreed is None:
        return None
    if tensor is None:  # an empty shard contributes zeros
        shape, dtype = agreed
        tensor = torch.zeros(shape, dtype=dtype, device=comm_device(device))
    _wait(dist.all_reduce(tensor, op=op, async_op=True), label)
    return tensor


def all_reduce_sum(
    tensor: Tensor | None, label: str = "sum", device: torch.device | None = None
) -> Tensor | None:
    """Sum ``tensor`` over all ranks (in place) and return it; ``None``: this rank adds 0.

    ``label`` names the call in the agreement and in errors; ``device`` places the zeros
    of an empty shard. Returns ``None`` only if every rank passed ``None``.
    """
    return _all_reduce(tensor, label, dist.ReduceOp.SUM, device)


def all_reduce_tensors(
    tensors: Sequence[Tensor], label: str, device: torch.device | None = None
) -> list[Tensor]:
    """Sum each of several tensors over all ranks in one flat all-reduce; new tensors.

    The tensors (the same shapes and dtype on every rank) travel concatenated, so the
    ranks make one collective call however many tensors there are.
    """
    if not tensors:
        return []
    flat = torch.cat([t.reshape(-1) for t in tensors])
    reduced = all_reduce_sum(flat, label, device)
    assert reduced is not None
    pieces = reduced.split([t.numel() for t in tensors])
    return [piece.reshape(t.shape) for piece, t in zip(pieces, tensors, strict=True)]


def all_reduce_max(
    tensor: Tensor | None, label: str = "max", device: torch.device | None = None
) -> Tensor | None:
    """Elementwise maximum of ``tensor`` over all ranks (in place); ``None`` counts as 0."""
    return _all_reduce(tensor, label, dist.ReduceOp.MAX, device)


def all_reduce_count(
    count: int, label: str = "number of samples", device: torch.device | None = None
) -> int:
    """Sum an integer over all ranks (exchanged on ``device``, default :func:`comm_device`)."""
    local = torch.tensor([count], dtype=torch.int64, device=comm_device(device))
    total = _all_reduce(local, label, dist.ReduceOp.SUM, None)
    assert total is not None
    return int(total.item())


def all_gather(tensor: Tensor, label: str = "gather") -> list[Tensor]:
    """Every rank's ``tensor`` (the same shape and dtype on every rank), in rank order."""
    agree(label, tensor)
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    _wait(dist.all_gather(parts, tensor, async_op=True), label)
    return parts
