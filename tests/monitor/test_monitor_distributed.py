"""fl.Monitor under two gloo ranks with uneven shards.

The loss and the instruments built on ``collect()`` (variance trace, noise-to-signal ratio)
log the global batch, as ``collect()`` sums its statistics and its loss over the ranks; the
instruments that run their own products (Hessian eigenvalue, EF-vs-Fisher) log each rank's
shard. The ranks finish together: no collective is left waiting.
"""

import json
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import fisherlab as fl
from ddp_spawn import free_port, small_problem
from fisherlab.monitor import EFvsFisher, HessianMaxEigenvalue, Monitor

TRACK = ("loss", "variance_trace", "noise_to_signal")


def _problem():
    return small_problem(0, 2)


def _instruments():
    return (*TRACK, HessianMaxEigenvalue(num_steps=30, every=1), EFvsFisher(every=1))


def _shard(rank):
    return slice(0, 6) if rank == 0 else slice(6, 10)


def _rank(rank, world_size, port, out_dir):
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        model, X, y = _problem()
        s = _shard(rank)
        log = os.path.join(out_dir, f"rank{rank}.jsonl")
        with Monitor(model, fl.Categorical(), track=_instruments(), log=log) as mon:
            for _ in range(2):
                with mon.step(X[s], y[s]) as step:
                    step.loss(model(X[s]), y[s]).backward()
        dist.barrier()  # both ranks reach here: no collective was left waiting
    finally:
        dist.destroy_process_group()


def _single(X, y):
    model = _problem()[0]
    mon = Monitor(model, fl.Categorical(), track=_instruments())
    for _ in range(2):
        with mon.step(X, y) as step:
            step.loss(model(X), y).backward()
    return json.loads(json.dumps(mon.records))


def test_two_gloo_ranks_log_global_statistics_and_their_own_products(tmp_path):
    mp.spawn(_rank, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    _, X, y = _problem()
    whole = _single(X, y)
    for rank in range(2):
        own = _single(X[_shard(rank)], y[_shard(rank)])
        logged = fl.monitor.read_log(tmp_path / f"rank{rank}.jsonl")
        assert len(logged) == 2
        for got, glob, local in zip(logged, whole, own, strict=True):
            assert set(got) == set(local)
            for key, value in got.items():
                expected = glob[key] if key in TRACK else local[key]
                assert value == pytest.approx(expected, rel=1e-10), (rank, key)
    # the shards differ, so the per-rank products do; the collected statistics do not
    first = [fl.monitor.read_log(tmp_path / f"rank{r}.jsonl")[0] for r in range(2)]
    assert first[0]["hessian_max_eigenvalue"] != first[1]["hessian_max_eigenvalue"]
    assert first[0]["loss"] == pytest.approx(first[1]["loss"], rel=1e-12)
    assert first[0]["variance_trace"] == pytest.approx(first[1]["variance_trace"], rel=1e-12)
    assert first[0]["variance_trace"] != _single(X[:6], y[:6])[0]["variance_trace"]
