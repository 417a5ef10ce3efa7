"""Two CPU ranks on the gloo backend see the quantities of the whole data set."""

import pytest
import torch

import fisherlab as fl
from ddp_spawn import small_problem, spawn


def _problem():
    return small_problem(0, 2)


def _quantities(c):
    return {
        "loss": c.loss(),
        "gradient": c.gradient(),
        "fisher": c.fisher(),
        "ef_diag": c.empirical_fisher(form="diag"),
        "hessian_op": c.hessian(form="operator") @ torch.ones(c.num_params, dtype=torch.float64),
        "covariance": c.covariance(),
        "variance": c.variance(unbiased=True),
    }


def _rank(rank, world_size, out_dir, reduction):
    model, X, y = _problem()
    shard = slice(0, 6) if rank == 0 else slice(6, 10)  # unequal shards
    c = fl.Curvature(model, fl.Categorical(), X[shard], y[shard], reduction=reduction)
    assert c.distributed and c.num_samples == 10
    return _quantities(c)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_two_gloo_ranks_match_one_process(tmp_path, reduction):
    ranks = spawn(_rank, 2, tmp_path, reduction)
    model, X, y = _problem()
    expected = _quantities(fl.Curvature(model, fl.Categorical(), X, y, reduction=reduction))
    for got in ranks:
        for name, value in expected.items():
            torch.testing.assert_close(got[name], value, rtol=1e-12, atol=1e-14, msg=name)


def _structured_rank(rank, world_size, out_dir):
    model, X, y = _problem()
    shard = slice(0, 6) if rank == 0 else slice(6, 10)
    c = fl.Curvature(model, fl.Categorical(), X[shard], y[shard])
    v = torch.ones(c.num_params, dtype=torch.float64)
    mc = {"form": "operator", "mc_samples": 3, "generator": torch.Generator().manual_seed(1)}
    mc_dense = {"form": "dense", "mc_samples": 3, "generator": torch.Generator().manual_seed(1)}
    out = {
        "kfac": c.fisher(form="kfac").to_dense(),
        "ekfac": c.fisher(form="ekfac").to_dense(),
        "kfac_reduce": c.ggn(form="kfac", approx="reduce").to_dense(),
        "mc_operator": c.fisher(**mc) @ v,
        "mc_dense": c.fisher(**mc_dense) @ v,
    }
    for name, call in {
        "blockdiag": lambda: c.fisher(form="blockdiag"),
        "noise_full": lambda: fl.noise.FisherNoise(
            model, fl.Categorical(), X[shard], y[shard]
        ).sample(torch.Generator().manual_seed(0)),
    }.items():
        try:
            call()
            out[name] = "no error"
        except NotImplementedError as error:
            out[name] = str(error)
    return out


def test_structured_forms_sum_over_ranks_or_refuse(tmp_path):
    ranks = spawn(_structured_rank, 2, tmp_path)
    model, X, y = _problem()
    whole = fl.Curvature(model, fl.Categorical(), X, y)
    expected = {
        "kfac": whole.fisher(form="kfac").to_dense(),
        "ekfac": whole.fisher(form="ekfac").to_dense(),
        "kfac_reduce": whole.ggn(form="kfac", approx="reduce").to_dense(),
    }
    for got in ranks:
        for name, value in expected.items():
            torch.testing.assert_close(got[name], value, rtol=1e-10, atol=1e-13, msg=name)
        # the same draws on each rank: the operator sums over ranks like the dense form
        torch.testing.assert_close(got["mc_operator"], got["mc_dense"], rtol=1e-12, atol=1e-14)
        for name in ("blockdiag", "noise_full"):
            assert "torch.distributed" in got[name], (name, got[name])


def test_distributed_true_without_a_group_is_an_error():
    model, X, y = _problem()
    with pytest.raises(ValueError, match="torch.distributed"):
        fl.Curvature(model, fl.Categorical(), X, y, distributed=True)
