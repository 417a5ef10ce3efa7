"""Guarded collectives on 2 gloo ranks: disagreeing or lonely calls fail on time with a clear
error; an empty shard contributes zeros."""

from __future__ import annotations

import os
import time

import pytest
import torch

import fisherlab as fl
from ddp_spawn import spawn
from fisherlab.distributed import CollectiveError

DT = torch.float64


def _problem():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    X = torch.randn(6, 3, generator=g, dtype=DT)
    y = torch.randint(0, 2, (6,), generator=g)
    return model.to(DT), X, y


def _rank(rank: int, world_size: int, out_dir: str, scenario: str) -> object:
    if scenario == "alone":
        fl.distributed.set_timeout(3.0)
    result: object
    model, X, y = _problem()
    if scenario == "empty-shard":
        shard = slice(0, 6) if rank == 0 else slice(0, 0)
        c = fl.Curvature(model, fl.Categorical(), X[shard], y[shard])
        v = torch.ones(c.num_params, dtype=DT)
        result = {
            "n": c.num_samples,
            "gradient": c.gradient(),
            "variance": c.variance(),
            "ggn": c.ggn(form="dense"),
            "operator": c.ggn(form="operator") @ v,
            "kfac": c.ggn(form="kfac").to_dense(),
        }
    else:
        c = fl.Curvature(model, fl.Categorical(), X[rank::2], y[rank::2])
        try:
            if scenario == "different-calls":
                c.gradient() if rank == 0 else c.variance()
            elif rank == 0:  # "alone": rank 1 never joins
                c.gradient()
            else:
                deadline = time.monotonic() + 60
                while not os.path.exists(os.path.join(out_dir, "rank0.pt")):
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.1)
            result = "no error"
        except CollectiveError as error:
            result = f"CollectiveError: {error}"
    return result


def _run(scenario: str, tmp_path) -> list[object]:
    # "alone" leaves rank 0's collective unmatched on purpose: no exit barrier after it
    return spawn(_rank, 2, tmp_path, scenario, synchronise_exit=scenario != "alone")


def test_ranks_calling_different_quantities_both_get_a_clear_error(tmp_path):
    results = _run("different-calls", tmp_path)
    for result in results:
        assert isinstance(result, str) and result.startswith("CollectiveError")
        assert "different collective calls" in result
        assert "gradient" in result and "variance" in result


def test_a_rank_calling_a_collective_alone_gets_an_error_instead_of_a_hang(tmp_path):
    results = _run("alone", tmp_path)
    assert isinstance(results[0], str) and results[0].startswith("CollectiveError")
    assert "not every rank joined" in results[0]
    assert results[1] == "no error"


def test_an_empty_shard_contributes_zero(tmp_path):
    results = _run("empty-shard", tmp_path)
    model, X, y = _problem()
    c = fl.Curvature(model, fl.Categorical(), X, y)
    expected = {
        "n": 6,
        "gradient": c.gradient(),
        "variance": c.variance(),
        "ggn": c.ggn(form="dense"),
        "operator": c.ggn(form="operator") @ torch.ones(c.num_params, dtype=DT),
        "kfac": c.ggn(form="kfac").to_dense(),
    }
    for result in results:
        assert result["n"] == expected["n"]
        for key in ("gradient", "variance", "ggn", "operator", "kfac"):
            torch.testing.assert_close(result[key], expected[key], msg=key)


@pytest.mark.parametrize("value", [0, -1.0, "abc"])
def test_timeout_must_be_positive(value):
    with pytest.raises(ValueError, match="seconds"):
        fl.distributed.set_timeout(value)
