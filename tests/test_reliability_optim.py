"""Optimizers: hyper-parameters checked in every group, state dicts that load safely."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

import fisherlab as fl
from fisherlab.optim import (
    MSGD,
    MSSD,
    MSVAG,
    SVAG,
    AdamStar,
    CovarianceNoiseSGD,
    L1SignDescent,
    MinibatchMSVAG,
    PreconditionedGD,
    SignDescent,
)

DT = torch.float64


def _params() -> list[nn.Parameter]:
    return [nn.Parameter(torch.randn(2, 3, dtype=DT)), nn.Parameter(torch.randn(3, dtype=DT))]


MOMENT_OPTIMIZERS = [MSVAG, SVAG, AdamStar, MinibatchMSVAG, MSGD, MSSD]
BAD_GROUP_VALUES = [
    ("lr", -0.1, "lr"),
    ("lr", float("nan"), "lr"),
    ("lr", "abc", "lr='abc'"),
    ("beta", 1.0, "beta"),
    ("beta", -0.5, "beta"),
]


@pytest.mark.parametrize(("key", "value", "phrase"), BAD_GROUP_VALUES)
@pytest.mark.parametrize("cls", MOMENT_OPTIMIZERS)
def test_group_hyperparameters_are_checked(cls, key, value, phrase):
    a, b = _params()
    with pytest.raises(ValueError, match=phrase):
        cls([{"params": [a]}, {"params": [b], key: value}])
    opt = cls([a])
    with pytest.raises(ValueError, match=phrase):
        opt.add_param_group({"params": [b], key: value})
    with pytest.raises(ValueError, match=phrase):
        cls([a], **{key: value})


@pytest.mark.parametrize("cls", [SignDescent, L1SignDescent])
def test_sign_descent_group_lr_is_checked(cls):
    a, b = _params()
    opt = cls([a], lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        opt.add_param_group({"params": [b], "lr": -1.0})


def test_minibatch_msvag_refuses_a_nan_variance():
    (a,) = _params()[:1]
    a.grad = torch.ones_like(a)
    opt = MinibatchMSVAG([a], lr=0.1)
    variance = torch.ones_like(a)
    variance[0, 1] = float("nan")
    before = a.detach().clone()
    with pytest.raises(ValueError, match="NaN or inf"):
        opt.step(variance=[variance])
    assert torch.equal(a.detach(), before)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).to(DT)


@pytest.mark.parametrize(
    ("kwargs", "phrase"),
    [
        ({"damping": float("inf")}, "damping"),
        ({"damping": float("nan")}, "damping"),
        ({"lr": "abc"}, "lr='abc'"),
        ({"lr": float("inf")}, "lr"),
    ],
)
def test_preconditioned_gd_checks_lr_and_damping(kwargs, phrase):
    model = _model()
    lik = fl.likelihoods.Categorical()
    with pytest.raises(ValueError, match=phrase):
        PreconditionedGD(model.parameters(), model, lik, **kwargs)
    opt = PreconditionedGD(list(model.parameters())[:2], model, lik)
    key, value = next(iter(kwargs.items()))
    with pytest.raises(ValueError, match=phrase):
        opt.add_param_group({"params": list(model.parameters())[2:], key: value})


def test_cross_type_state_dict_is_refused_when_loading():
    a, b = _params()
    a.grad, b.grad = torch.ones_like(a), torch.ones_like(b)
    source = MSGD([a, b], lr=0.1)
    source.step()
    target = MSVAG([a, b], lr=0.1)
    with pytest.raises(ValueError, match="different optimizer"):
        target.load_state_dict(source.state_dict())
    model = _model()
    lik = fl.likelihoods.Categorical()
    pgd = PreconditionedGD(model.parameters(), model, lik)
    noisy = CovarianceNoiseSGD(
        model.parameters(), model, lik, large_batch_size=8, small_batch_size=2
    )
    with pytest.raises(ValueError, match="not saved by PreconditionedGD"):
        pgd.load_state_dict(noisy.state_dict())
    with pytest.raises(ValueError, match="not saved by CovarianceNoiseSGD"):
        noisy.load_state_dict(pgd.state_dict())


def test_kfac_noise_state_dict_loads_with_weights_only():
    model = _model()
    lik = fl.likelihoods.Categorical()
    X, y = torch.randn(8, 3, dtype=DT), torch.randint(0, 2, (8,))

    def make() -> CovarianceNoiseSGD:
        return CovarianceNoiseSGD(
            model.parameters(),
            model,
            lik,
            lr=0.1,
            large_batch_size=8,
            small_batch_size=2,
            noise="kfac",
            update_every=3,
            generator=torch.Generator().manual_seed(0),
        )

    opt = make()
    opt.step(X, y)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    opt.step(X, y)
    expected = [p.detach().clone() for p in model.parameters()]
    model.load_state_dict(saved)
    resumed = make()
    resumed.load_state_dict(state)
    resumed.step(X, y)  # between two refreshes: uses the restored K-FAC covariance
    for p, q in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(p.detach(), q, rtol=0, atol=0)
