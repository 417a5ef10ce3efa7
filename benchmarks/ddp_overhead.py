r"""Overhead of summing ``collect()`` over DDP ranks: ``python -m benchmarks.ddp_overhead``.

Two (``--ranks``) CPU processes on the gloo backend train the benchmark MLP wrapped in
``DistributedDataParallel``, each on its own shard of ``--n`` samples. Three steps are timed
interleaved on every rank (median over repetitions; the ranks meet at a barrier before each
timed call, outside the timing):

- ``plain``: zero_grad, cross-entropy forward and backward through DDP, SGD step;
- ``local``: the same inside ``collect(..., FIRST_ORDER, distributed=False)`` (gradient,
  second moment, variance, per-sample L2 norms of the rank's shard; no extra communication);
- ``summed``: the same with ``distributed=True`` and the loss from ``col.loss``: DDP's
  all-reduced gradient is the global one, so one ``int64`` count (and one more in
  ``col.loss``) and one flat buffer of :math:`D` numbers (the second moment, :math:`D`
  parameters) are all-reduced per step, each after a 256-byte-per-rank agreement on the call;
- ``summed_own_loss``: ``distributed=True`` with the plain cross-entropy loss: the
  collector cannot use DDP's gradient and sums :math:`2D` numbers (gradient and second
  moment).

The overhead of the extra all-reduces is ``(summed - local) / plain``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import fisherlab as fl
from benchmarks.models import problem
from fisherlab.engine.hooks import FIRST_ORDER, collect


def _steps(n: int, rank: int) -> tuple[dict[str, Callable[[], None]], int]:
    _, X, y = problem("mlp", n, seed=rank)  # a different shard per rank
    model = problem("mlp", 1)[0]  # the same initial model on every rank
    ddp = DistributedDataParallel(model)
    lik = fl.likelihoods.Categorical()
    opt = torch.optim.SGD(model.parameters(), lr=1e-8)  # parameters barely move
    loss_fn = nn.CrossEntropyLoss()

    def plain() -> None:
        opt.zero_grad()
        loss_fn(ddp(X), y).backward()
        opt.step()

    def collected(distributed: bool, own_loss: bool) -> Callable[[], None]:
        def run() -> None:
            opt.zero_grad()
            with collect(ddp, lik, FIRST_ORDER, distributed=distributed) as col:
                loss = loss_fn(ddp(X), y) if own_loss else col.loss(ddp(X), y)
                loss.backward()
            opt.step()

        return run

    num_params = sum(p.numel() for p in model.parameters())
    steps = {
        "plain": plain,
        "local": collected(False, False),
        "summed": collected(True, False),
        "summed_own_loss": collected(True, True),
    }
    return steps, num_params


def _rank(rank: int, world_size: int, port: int, n: int, reps: int, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    timeout = datetime.timedelta(seconds=60)
    dist.init_process_group("gloo", rank=rank, world_size=world_size, timeout=timeout)
    try:
        steps, num_params = _steps(n, rank)
        times: dict[str, list[float]] = {k: [] for k in steps}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for run in steps.values():  # warm-up
                run()
            for _ in range(reps):
                for name, run in steps.items():
                    dist.barrier()
                    start = time.perf_counter()
                    run()
                    times[name].append(time.perf_counter() - start)
        median = {k: statistics.median(v) for k, v in times.items()}
        if rank == 0:
            result = {
                "ranks": world_size,
                "n_per_rank": n,
                "reps": reps,
                "num_params": num_params,
                "bytes_per_step": num_params * 4 + 16,
                "bytes_per_step_own_loss": 2 * num_params * 4 + 8,
                "ms": {k: 1e3 * v for k, v in median.items()},
                "ratios": {
                    "local": median["local"] / median["plain"],
                    "summed": median["summed"] / median["plain"],
                    "summed_own_loss": median["summed_own_loss"] / median["plain"],
                    "all_reduce_overhead": (median["summed"] - median["local"]) / median["plain"],
                    "all_reduce_overhead_own_loss": (median["summed_own_loss"] - median["local"])
                    / median["plain"],
                },
            }
            Path(out).write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def bench_ddp(n: int, reps: int, world_size: int, log: Callable[[str], None]) -> dict:
    """Spawn ``world_size`` gloo ranks and return rank 0's medians and ratios."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "ddp.json")
        mp.spawn(_rank, args=(world_size, port, n, reps, out), nprocs=world_size, join=True)
        result = json.loads(Path(out).read_text())
    log(f"  ddp: {json.dumps(result['ratios'])}")
    return result


def markdown(result: dict) -> str:
    """The DDP-overhead table."""
    r, ms = result["ratios"], result["ms"]
    return "\n".join(
        [
            f"## DDP: summing the first-order set over {result['ranks']} gloo ranks (mlp, "
            f"{result['n_per_rank']} samples per rank, D = {result['num_params']}, plain DDP "
            f"step: {ms['plain']:.2f} ms)",
            "",
            "Time of a DDP training step divided by a plain DDP step (zero_grad, forward, "
            "backward with DDP's gradient all-reduce, SGD step), on one machine's CPUs. "
            "With `col.loss` the gradient is DDP's and the sum sends "
            f"{result['bytes_per_step']} bytes per rank and step (second moment in float32, "
            "two counts); with the plain loss it sends "
            f"{result['bytes_per_step_own_loss']} (gradient too).",
            "",
            "| DDP step | ms | ratio |",
            "|---|---|---|",
            f"| plain | {ms['plain']:.2f} | 1.00× |",
            f"| `collect()` first-order set, kept local | {ms['local']:.2f} | {r['local']:.2f}× |",
            f"| `collect()` first-order set, summed over ranks, `col.loss` | "
            f"{ms['summed']:.2f} | {r['summed']:.2f}× |",
            f"| `collect()` first-order set, summed over ranks, plain loss | "
            f"{ms['summed_own_loss']:.2f} | {r['summed_own_loss']:.2f}× |",
            f"| overhead of the extra all-reduces, (summed − local) / plain | – | "
            f"{r['all_reduce_overhead']:.2f} (plain loss: "
            f"{r['all_reduce_overhead_own_loss']:.2f}) |",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="samples per rank")
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="write ddp.json here")
    args = parser.parse_args(argv)
    result = bench_ddp(args.n, args.reps, args.ranks, lambda m: print(m, file=sys.stderr))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "ddp.json").write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
