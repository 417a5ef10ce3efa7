"""fl.Monitor under two gloo ranks with uneven shards.

The loss and the instruments built on ``collect()`` (variance trace, noise-to-signal ratio)
log the global batch, as ``collect()`` sums its statistics and its loss over the ranks; the
instruments that run their own products (Hessian eigenvalue, EF-vs-Fisher) log each rank's
shard. The ranks finish together: no collective is left waiting.
"""

import json
import os

import pytest

import fisherlab as fl
from ddp_spawn import small_problem, spawn
from fisherlab.monitor import EFvsFisher, HessianMaxEigenvalue, Monitor

TRACK = ("loss", "variance_trace", "noise_to_signal")


def _problem():
    return small_problem(0, 2)


def _instruments():
    return (*TRACK, HessianMaxEigenvalue(num_steps=30, every=1), EFvsFisher(every=1))


def _shard(rank):
    return slice(0, 6) if rank == 0 else slice(6, 10)


def _rank(rank, world_size, out_dir):
    model, X, y = _problem()
    s = _shard(rank)
    log = os.path.join(out_dir, f"rank{rank}.jsonl")
    with Monitor(model, fl.Categorical(), track=_instruments(), log=log) as mon:
        for _ in range(2):
            with mon.step(X[s], y[s]) as step:
                step.loss(model(X[s]), y[s]).backward()
    # spawn's exit barrier then shows both ranks got here: no collective was left waiting


def _single(X, y):
    model = _problem()[0]
    mon = Monitor(model, fl.Categorical(), track=_instruments())
    for _ in range(2):
        with mon.step(X, y) as step:
            step.loss(model(X), y).backward()
    return json.loads(json.dumps(mon.records))


def test_two_gloo_ranks_log_global_statistics_and_their_own_products(tmp_path):
    spawn(_rank, 2, tmp_path)
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
