"""fl.Monitor under two gloo ranks: it runs, adds no collective of its own, logs per rank."""

import json
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import fisherlab as fl
from fisherlab.monitor import EFvsFisher, HessianMaxEigenvalue, Monitor

TRACK = ("loss", "variance_trace", "noise_to_signal")


def _problem():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)
    ).double()
    X = torch.randn(10, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (10,), generator=g)
    return model, X, y


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


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_log_their_own_shard(tmp_path):
    mp.spawn(_rank, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        model, X, y = _problem()
        s = _shard(rank)
        mon = Monitor(model, fl.Categorical(), track=_instruments())
        for _ in range(2):
            with mon.step(X[s], y[s]) as step:
                step.loss(model(X[s]), y[s]).backward()
        logged = fl.monitor.read_log(tmp_path / f"rank{rank}.jsonl")
        assert logged == json.loads(json.dumps(mon.records))
    # the shards differ, so the per-rank values do
    first = [fl.monitor.read_log(tmp_path / f"rank{r}.jsonl")[0] for r in range(2)]
    assert first[0]["variance_trace"] != first[1]["variance_trace"]
