"""Behaviour shared by all optimizers: state_dict round trips, validation, groups, None grads."""

from __future__ import annotations

import io
import math

import pytest
import torch

import fisherlab.optim as fo

OPTIMIZERS = [
    (fo.MSVAG, {"lr": 0.1, "beta": 0.9}),
    (fo.SVAG, {"lr": 0.1, "beta": 0.7}),
    (fo.AdamStar, {"lr": 0.05, "beta": 0.8, "eps": 1e-8}),
    (fo.MinibatchMSVAG, {"lr": 0.1, "beta": 0.9}),
    (fo.MSGD, {"lr": 0.1, "beta": 0.9}),
    (fo.MSSD, {"lr": 0.05, "beta": 0.9}),
    (fo.SignDescent, {"lr": 0.05}),
    (fo.L1SignDescent, {"lr": 0.01}),
]
IDS = [cls.__name__ for cls, _ in OPTIMIZERS]


def step(optimizer, problem, params, t):
    problem.set_grads(params, t)
    if isinstance(optimizer, fo.MinibatchMSVAG):
        optimizer.step(variance=problem.variance_list(params, t))
    else:
        optimizer.step()


def save_load(obj_state):
    buffer = io.BytesIO()
    torch.save(obj_state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize(("cls", "kwargs"), OPTIMIZERS, ids=IDS)
def test_state_dict_round_trip_is_bit_identical(problem, cls, kwargs):
    params = problem.make_params()
    uninterrupted = cls(params, **kwargs)
    for t in range(problem.steps):
        step(uninterrupted, problem, params, t)

    first = problem.make_params()
    optimizer = cls(first, **kwargs)
    for t in range(5):
        step(optimizer, problem, first, t)
    saved = save_load(optimizer.state_dict())

    resumed_params = [torch.nn.Parameter(p.detach().clone()) for p in first]
    resumed = cls(resumed_params, **{k: 1e-7 if k == "lr" else v for k, v in kwargs.items()})
    resumed.load_state_dict(saved)
    for t in range(5, problem.steps):
        step(resumed, problem, resumed_params, t)
    for a, b in zip(resumed_params, params, strict=True):
        assert torch.equal(a, b)


BAD_HYPERPARAMETERS = (
    [
        (cls, {**kwargs, name: value}, name)
        for cls, kwargs in OPTIMIZERS
        for name, value in [("lr", -0.1), ("lr", math.nan), ("lr", math.inf)]
    ]
    + [
        (cls, {**kwargs, "beta": value}, "beta")
        for cls, kwargs in OPTIMIZERS
        if "beta" in kwargs
        for value in (-0.1, 1.0, 1.5, math.nan)
    ]
    + [
        (cls, {**kwargs, "eps": value}, "eps")
        for cls, kwargs in OPTIMIZERS
        if cls in (fo.MSVAG, fo.SVAG, fo.AdamStar, fo.MinibatchMSVAG)
        for value in (-1e-8, math.inf)
    ]
)


@pytest.mark.parametrize(
    ("cls", "kwargs", "name"),
    BAD_HYPERPARAMETERS,
    ids=[f"{c.__name__}-{n}={k[n]}" for c, k, n in BAD_HYPERPARAMETERS],
)
def test_bad_hyperparameters_raise_value_error_naming_argument(cls, kwargs, name):
    p = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        cls([p], **kwargs)


@pytest.mark.parametrize(("cls", "kwargs"), OPTIMIZERS, ids=IDS)
def test_parameter_groups_use_their_own_lr(problem, cls, kwargs):
    lrs = (kwargs["lr"], 3 * kwargs["lr"])
    params = problem.make_params()
    grouped = cls(
        [{"params": [params[0]], "lr": lrs[0]}, {"params": [params[1]], "lr": lrs[1]}], **kwargs
    )
    separate_params = problem.make_params()
    separate = [
        cls([p], **{**kwargs, "lr": lr}) for p, lr in zip(separate_params, lrs, strict=True)
    ]
    same_lr_params = problem.make_params()
    same_lr = cls(same_lr_params, **kwargs)
    for t in range(problem.steps):
        problem.set_grads(params, t)
        problem.set_grads(separate_params, t)
        problem.set_grads(same_lr_params, t)
        variances = problem.variance_list(params, t)
        if cls is fo.MinibatchMSVAG:
            grouped.step(variance=variances)
            same_lr.step(variance=variances)
            for optimizer, variance in zip(separate, variances, strict=True):
                optimizer.step(variance=[variance])
        else:
            grouped.step()
            same_lr.step()
            for optimizer in separate:
                optimizer.step()
    for a, b in zip(params, separate_params, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(params[1], same_lr_params[1])


@pytest.mark.parametrize(("cls", "kwargs"), OPTIMIZERS, ids=IDS)
def test_parameters_without_grad_are_skipped(problem, cls, kwargs):
    params = problem.make_params()
    frozen = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    optimizer = cls([params[0], frozen, params[1]], **kwargs)
    reference_params = problem.make_params()
    reference = cls(reference_params, **kwargs)
    for t in range(4):
        problem.set_grads(params, t)
        problem.set_grads(reference_params, t)
        frozen.grad = None
        if cls is fo.MinibatchMSVAG:
            v = problem.variance_list(params, t)
            optimizer.step(variance=[v[0], torch.full((3,), math.nan, dtype=torch.float64), v[1]])
            reference.step(variance=v)
        else:
            optimizer.step()
            reference.step()
    assert torch.equal(frozen, torch.ones(3, dtype=torch.float64))
    assert frozen not in optimizer.state
    for a, b in zip(params, reference_params, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(("cls", "kwargs"), OPTIMIZERS, ids=IDS)
def test_closure_is_evaluated_and_returned(cls, kwargs):
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = cls([p], **kwargs)

    def closure():
        optimizer.zero_grad()
        loss = (p**2).sum()
        loss.backward()
        return loss

    extra = {"variance": [torch.ones(2)]} if cls is fo.MinibatchMSVAG else {}
    loss = optimizer.step(closure, **extra)
    assert loss.item() == 5.0
    assert p.grad is not None and p[0].item() < 1.0


def test_minibatch_msvag_variance_argument(problem):
    params = problem.make_params()
    optimizer = fo.MinibatchMSVAG(params)
    problem.set_grads(params, 0)
    with pytest.raises(ValueError, match="variance"):
        optimizer.step()
    with pytest.raises(ValueError, match="variance"):
        optimizer.step(variance=[torch.ones(6, dtype=torch.float64)])
    with pytest.raises(ValueError, match=r"variance\[1\]"):
        optimizer.step(variance=[torch.ones(2, 3), torch.ones(3)])
    with pytest.raises(ValueError, match="variance"):
        optimizer.step(variance=torch.ones(7, dtype=torch.float64))
    assert not optimizer.state  # nothing was updated by the failed calls

    flat_params = problem.make_params()
    flat_optimizer = fo.MinibatchMSVAG(flat_params)
    for t in range(3):
        problem.set_grads(params, t)
        problem.set_grads(flat_params, t)
        optimizer.step(variance=problem.variance_list(params, t))
        flat_optimizer.step(variance=problem.variances[t].clone())
    for a, b in zip(params, flat_params, strict=True):
        assert torch.equal(a, b)


def test_split_flat_inverts_parameters_to_vector():
    params = [torch.randn(2, 3), torch.randn(4), torch.randn(1, 1, 2)]
    vector = torch.nn.utils.parameters_to_vector(params)
    parts = fo.split_flat(vector, params)
    assert all(torch.equal(a, b) for a, b in zip(parts, params, strict=True))
    with pytest.raises(ValueError, match="entries"):
        fo.split_flat(vector[:-1], params)
    with pytest.raises(ValueError, match="one-dimensional"):
        fo.split_flat(vector.reshape(2, -1), params)


def test_sparse_gradients_are_rejected():
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.zeros(3).to_sparse()
    with pytest.raises(RuntimeError, match="sparse"):
        fo.MSVAG([p]).step()


def test_contract_signature():
    p = torch.nn.Parameter(torch.zeros(2))
    optimizer = fo.MSVAG([p], lr=0.1, beta=0.9)
    assert isinstance(optimizer, torch.optim.Optimizer)
    assert optimizer.defaults == {"lr": 0.1, "beta": 0.9, "eps": 0.0}
    assert set(fo.__all__) >= {
        "MSVAG",
        "SVAG",
        "MinibatchMSVAG",
        "MSGD",
        "MSSD",
        "SignDescent",
        "L1SignDescent",
        "AdamStar",
        "CABS",
        "NormTest",
        "AdaptiveBatchSampler",
    }
