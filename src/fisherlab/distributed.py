"""Scale-out with :mod:`torch.distributed`: sums over samples are all-reduced.

Every quantity of :class:`fisherlab.Curvature` is a sum over samples divided by the total
number of samples (or not divided, for ``reduction="sum"``), so data-parallel ranks that
each hold a shard of the data compute the global quantity by summing their batch sums and
their sample counts with ``all_reduce`` (tested with the ``gloo`` backend on CPUs; the
counts are reduced as CPU tensors, which NCCL does not accept).

Every rank must call the same methods in the same order (they are collective
operations), and matrix-free operators must be applied on every rank alike.
Per-sample outputs (``per_sample_gradients``, ``per_sample_losses``) stay local to the
rank. Monte-Carlo labels are drawn by each rank from its own generator. ``form="blockdiag"``
and the ``structure="full"`` noise samplers of :mod:`fisherlab.noise` do not sum over
ranks and raise ``NotImplementedError``.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["is_active", "all_reduce_sum", "all_reduce_count"]


def is_active() -> bool:
    """Whether a default :mod:`torch.distributed` process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """Sum ``tensor`` over all ranks (in place) and return it."""
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_count(count: int) -> int:
    """Sum an integer over all ranks."""
    total = torch.tensor([count], dtype=torch.int64)
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return int(total.item())
