"""Spawn CPU ranks on the gloo backend (127.0.0.1, a free port) and collect their results."""

from __future__ import annotations

import datetime
import importlib
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor

import fisherlab as fl

#: seconds a spawned test may take before its ranks are stopped
JOIN_TIMEOUT = 60.0


def small_problem(seed: int, classes: int) -> tuple[torch.nn.Module, Tensor, Tensor]:
    """A float64 3-4-``classes`` tanh MLP and 10 samples, the same in every process."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the same initial model on every rank
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, classes)
    ).double()
    X = torch.randn(10, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (10,), generator=g)
    return model, X, y


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(
    rank: int,
    world_size: int,
    port: int,
    out_dir: str,
    fn: Callable,
    args: tuple,
    synchronise_exit: bool,
) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    timeout = datetime.timedelta(seconds=JOIN_TIMEOUT)
    dist.init_process_group("gloo", rank=rank, world_size=world_size, timeout=timeout)
    fl.distributed.set_timeout(30.0)
    try:
        result = fn(rank, world_size, out_dir, *args)
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
        if synchronise_exit:
            dist.barrier()  # no rank tears down while another is still in a collective
    finally:
        fl.distributed.set_timeout(None)
        dist.destroy_process_group()
    # Leave without interpreter finalisation: gloo's worker threads may still hold finished
    # work objects whose destruction during finalisation aborts the process (SIGABRT).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def spawn(
    fn: Callable, world_size: int, out_dir: Path, *args: Any, synchronise_exit: bool = True
) -> list[Any]:
    """Run ``fn(rank, world_size, out_dir, *args)`` on ``world_size`` ranks; their returns.

    Each rank runs with a 30 s collective timeout (``fn`` may set another) and, unless
    ``synchronise_exit`` is false (for tests that leave a collective unmatched on purpose),
    waits at a barrier for the others before it tears its process group down. The ranks are
    stopped (and the test fails) if they do not finish within :data:`JOIN_TIMEOUT` seconds.
    """
    context = mp.spawn(
        _rank,
        args=(world_size, free_port(), str(out_dir), fn, args, synchronise_exit),
        nprocs=world_size,
        join=False,
    )
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=JOIN_TIMEOUT)
    while not context.join(timeout=1.0):
        if datetime.datetime.now() > deadline:
            for process in context.processes:
                process.kill()
            raise TimeoutError(f"the {world_size} ranks did not finish in {JOIN_TIMEOUT:g} s")
    return [torch.load(out_dir / f"rank{r}.pt", weights_only=False) for r in range(world_size)]


#: test modules whose ``_rank(rank, world_size, out_dir)`` share one spawn of 2 ranks
TWO_RANK_MODULES = ("test_ddp_optim", "test_ddp_operators")
_TWO_RANK_RESULTS: dict[str, list[Any]] = {}


def _two_rank_jobs(rank: int, world_size: int, out_dir: str) -> dict[str, Any]:
    return {
        name: importlib.import_module(name)._rank(rank, world_size, out_dir)
        for name in TWO_RANK_MODULES
    }


def two_ranks(module: str, out_dir: Path) -> list[Any]:
    """Per-rank results of ``module._rank`` on 2 ranks; one spawn serves every module."""
    if not _TWO_RANK_RESULTS:
        results = spawn(_two_rank_jobs, 2, out_dir)
        _TWO_RANK_RESULTS.update({m: [r[m] for r in results] for m in TWO_RANK_MODULES})
    return _TWO_RANK_RESULTS[module]
