"""Optimizers under DistributedDataParallel on 2 gloo ranks (uneven shards of 6 and 4).

Five steps of M-SVAG (DDP's gradient), minibatch M-SVAG (variance from ``collect()``) with
the CABS batch size of each step, ``PreconditionedGD`` with K-FAC (the curvature summed
over ranks) and covariance-noise SGD (diagonal Fisher summed over ranks; the noise drawn
from generators seeded alike, so that every replica adds the same noise) must follow the
single-process trajectory on the concatenated batch (float64).
"""

from __future__ import annotations

import pytest
import torch
from torch.nn.parallel import DistributedDataParallel as DDP

import fisherlab as fl
from ddp_spawn import small_problem, two_ranks
from fisherlab.engine.hooks import collect

LIK = fl.Categorical()
SHARDS = (slice(0, 6), slice(6, 10))
STEPS = 5
KINDS = ("msvag", "minibatch_msvag", "kfac", "noise")


def _problem():
    return small_problem(1, 3)


def _flat(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _train(kind: str, X, y, wrap) -> dict[str, list]:
    """``STEPS`` steps of optimizer ``kind``; ``wrap`` turns the model into what is called."""
    model = _problem()[0]
    out: dict[str, list] = {"params": [], "batch_size": [], "cabs": []}
    if kind in ("kfac", "noise"):
        if kind == "kfac":
            opt = fl.optim.PreconditionedGD(
                model.parameters(),
                model,
                LIK,
                lr=0.5,
                damping=0.1,
                preconditioner="ggn",
                form="kfac",
            )
        else:
            opt = fl.optim.CovarianceNoiseSGD(
                model.parameters(),
                model,
                LIK,
                lr=0.5,
                large_batch_size=10,
                small_batch_size=2,
                generator=torch.Generator().manual_seed(5),
            )
        for _ in range(STEPS):
            opt.step(X, y)
            out["params"].append(_flat(model))
        return out
    net = wrap(model)
    if kind == "msvag":
        opt = fl.optim.MSVAG(model.parameters(), lr=0.3, beta=0.5)
    else:
        opt = fl.optim.MinibatchMSVAG(model.parameters(), lr=0.3, beta=0.5)
    rule = fl.optim.CABS(lr=100.0, min_batch=1, max_batch=10**6)
    for _ in range(STEPS):
        opt.zero_grad()
        with collect(net, LIK, ("gradient", "variance")) as col:
            col.loss(net(X), y).backward()
        n = col.num_samples
        unbiased = col.flat("variance") * (n / (n - 1))
        if kind == "msvag":
            opt.step()
        else:
            opt.step(variance=unbiased / n)
        out["batch_size"].append(rule.update(loss=col.loss_value, variance=unbiased))
        out["cabs"].append((rule.variance_avg, rule.reference_avg))
        out["params"].append(_flat(model))
    return out


def _rank(rank: int, world_size: int, out_dir: str) -> dict[str, object]:
    _, X, y = _problem()
    s = SHARDS[rank]
    return {kind: _train(kind, X[s], y[s], DDP) for kind in KINDS}


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    return two_ranks("test_ddp_optim", tmp_path_factory.mktemp("two_ranks"))


@pytest.mark.parametrize("kind", KINDS)
def test_trajectory_equals_one_process_on_the_concatenated_batch(ranks, kind):
    _, X, y = _problem()
    expected = _train(kind, X, y, lambda model: model)
    start = _flat(_problem()[0])
    assert (expected["params"][-1] - start).norm() > 1e-2  # the parameters do move
    for rank, got in enumerate(ranks):
        for step, (a, b) in enumerate(zip(got[kind]["params"], expected["params"], strict=True)):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=f"rank {rank} {step}")
        assert got[kind]["batch_size"] == expected["batch_size"]
        for a, b in zip(got[kind]["cabs"], expected["cabs"], strict=True):
            assert a == pytest.approx(b, rel=1e-10)
    if kind in ("msvag", "minibatch_msvag"):
        assert len(set(expected["batch_size"])) > 1  # CABS changes the batch size
