"""Every quantity in every form against the brute-force oracle, float64, to 1e-10 relative.

Cases (conftest.py): 6 models (MLP tanh/ReLU, CNN with pooling, frozen parameter,
non-Sequential with a free parameter, tied weights, BatchNorm in eval mode) × 3
likelihoods × 2 reductions.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import fisherlab as fl
from cases import (
    COVERING_CASES,
    COVERING_IDS,
    LIKELIHOODS,
    MLP_CASES,
    MLP_IDS,
    MODELS,
    PROBLEM_CASES,
    PROBLEM_IDS,
    make_problem,
)
from cases import QUANTITIES as BASE_QUANTITIES
from oracles import BruteForce, assert_close, trainable_parameters

RTOL = 1e-10

QUANTITIES = {
    **BASE_QUANTITIES,
    "covariance_unbiased": lambda c, form: c.covariance(form=form, unbiased=True),
    "variance_unbiased": lambda c, form: c.variance(form=form, unbiased=True),
}


def _probe(D: int, k: int | None = None, seed: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (D,) if k is None else (D, k)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def _damping(matrix: torch.Tensor) -> float:
    """A damping that makes ``matrix + λI`` well conditioned and positive definite."""
    eig = torch.linalg.eigvalsh(matrix)
    return float(max(0.0, -eig.min()) + eig.abs().max() + 1e-3)


# -- first order ------------------------------------------------------------------------
def test_loss(problem, oracle):
    c = problem.curvature()
    loss = c.loss()
    assert loss.shape == ()
    assert_close(loss, oracle.loss, RTOL)
    assert_close(c.per_sample_losses(), oracle.losses, RTOL)


def test_gradient(problem, oracle):
    assert_close(problem.curvature().gradient(), oracle.gradient, RTOL)


def test_per_sample_gradients(problem, oracle):
    G = problem.curvature().per_sample_gradients()
    assert G.shape == (problem.X.shape[0], oracle.D)
    assert_close(G, oracle.per_sample_gradients, RTOL)


# -- forms ------------------------------------------------------------------------------
@pytest.mark.parametrize("quantity", list(QUANTITIES))
def test_dense(problem, oracle, quantity):
    dense = QUANTITIES[quantity](problem.curvature(), "dense")
    assert dense.shape == (oracle.D, oracle.D)
    assert_close(dense, oracle.dense(quantity), RTOL)


@pytest.mark.parametrize("quantity", list(QUANTITIES))
def test_diag(problem, oracle, quantity):
    diag = QUANTITIES[quantity](problem.curvature(), "diag")
    assert diag.shape == (oracle.D,)
    assert_close(diag, torch.diagonal(oracle.dense(quantity)).clone(), RTOL)


@pytest.mark.parametrize("quantity", list(QUANTITIES))
def test_operator(problem, oracle, quantity):
    op = QUANTITIES[quantity](problem.curvature(), "operator")
    expected = oracle.dense(quantity)
    D = oracle.D
    assert op.shape == (D, D)
    v, V = _probe(D), _probe(D, 4)
    assert_close(op @ v, expected @ v, RTOL)
    assert_close(op @ V, expected @ V, RTOL)
    assert_close(op.to_dense(), expected, RTOL)
    scipy_op = op.to_scipy()
    assert scipy_op.shape == (D, D)
    np.testing.assert_allclose(
        scipy_op @ v.numpy(),
        (expected @ v).numpy(),
        rtol=1e-9,
        atol=RTOL * float(expected.abs().max()),
    )
    np.testing.assert_allclose(
        scipy_op.matmat(V.numpy()),
        (expected @ V).numpy(),
        rtol=1e-9,
        atol=RTOL * float(expected.abs().max()),
    )
    np.testing.assert_allclose(
        scipy_op.rmatvec(v.numpy()),
        (expected.T @ v).numpy(),
        rtol=1e-9,
        atol=RTOL * float(expected.abs().max()),
    )


@pytest.mark.parametrize("quantity", list(QUANTITIES))
def test_operator_solve_dense(problem, oracle, quantity):
    _check_solve(problem, oracle, quantity, "dense")


# Conjugate gradients only sees the operator's products, which test_operator checks on every
# model; one model per likelihood and reduction suffices for the solver itself.
@pytest.mark.parametrize("problem", MLP_CASES, ids=MLP_IDS, indirect=True)
@pytest.mark.parametrize("quantity", list(QUANTITIES))
def test_operator_solve_cg(problem, oracle, quantity):
    _check_solve(problem, oracle, quantity, "cg")


# ... and conjugate gradients on the indefinite Hessian (damped) of every model
@pytest.mark.parametrize("problem", COVERING_CASES, ids=COVERING_IDS, indirect=True)
def test_operator_solve_cg_hessian_every_model(problem, oracle):
    _check_solve(problem, oracle, "hessian", "cg")


def _check_solve(problem, oracle, quantity, method):
    op = QUANTITIES[quantity](problem.curvature(), "operator")
    expected = oracle.dense(quantity)
    damping = _damping(expected)
    damped = expected + damping * torch.eye(oracle.D, dtype=expected.dtype)
    v, V = _probe(oracle.D), _probe(oracle.D, 2)
    kwargs = {"rtol": 1e-13} if method == "cg" else {}
    assert_close(op.solve(v, damping, method=method, **kwargs), torch.linalg.solve(damped, v), RTOL)
    assert_close(
        op.solve(V, damping=damping, method=method, **kwargs),
        torch.linalg.solve(damped, V),
        RTOL,
    )


# -- Monte-Carlo Fisher against the oracle with the same sampled labels ------------------
def _replay_labels(problem, oracle: BruteForce, mc_samples: int, seed: int, batch_size: int):
    """The labels the library draws: per batch, ``mc_samples`` draws from ``p(·|f)``."""
    g = torch.Generator().manual_seed(seed)
    labels = [[None] * oracle.N for _ in range(mc_samples)]
    for start in range(0, oracle.N, batch_size):
        f = oracle.outputs[start : start + batch_size]
        for s in range(mc_samples):
            drawn = problem.likelihood.sample(f, generator=g)
            for i in range(f.shape[0]):
                labels[s][start + i] = drawn[i]
    return labels


@pytest.mark.parametrize("batch_size", [None, 3])
@pytest.mark.parametrize("form", ["dense", "diag", "operator"])
def test_fisher_mc_matches_sampled_labels(problem, oracle, form, batch_size):
    mc_samples, seed = 3, 11
    labels = _replay_labels(problem, oracle, mc_samples, seed, batch_size or oracle.N)
    expected = oracle.fisher_mc(labels)
    g = torch.Generator().manual_seed(seed)
    result = problem.curvature(batch_size=batch_size).fisher(
        form=form, mc_samples=mc_samples, generator=g
    )
    if form == "diag":
        expected = torch.diagonal(expected).clone()
    elif form == "operator":
        result = result.to_dense()
    assert_close(result, expected, RTOL)


# -- relations to torch -------------------------------------------------------------------
TORCH_LOSSES = {
    "gaussian": torch.nn.MSELoss,
    "categorical": torch.nn.CrossEntropyLoss,
    "bernoulli": torch.nn.BCEWithLogitsLoss,
}


@pytest.mark.parametrize("num_outputs", [1, 3])
@pytest.mark.parametrize("torch_reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", list(TORCH_LOSSES))
def test_from_loss_matches_torch(name, torch_reduction, num_outputs):
    if name == "categorical" and num_outputs == 1:
        num_outputs = 2
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, num_outputs)
    ).double()
    X = torch.randn(9, 4, dtype=torch.float64)
    if name == "gaussian":
        y = torch.randn(9, num_outputs, dtype=torch.float64)
    elif name == "categorical":
        y = torch.randint(0, num_outputs, (9,))
    else:
        y = torch.rand(9, num_outputs, dtype=torch.float64)  # soft labels are allowed
    loss_fn = TORCH_LOSSES[name](reduction=torch_reduction)
    model.zero_grad()
    reference = loss_fn(model(X), y)
    reference.backward()
    reference_grad = torch.cat([p.grad.reshape(-1) for p in model.parameters()])

    c = fl.Curvature(model, fl.likelihoods.from_loss(loss_fn), X, y)
    assert c.reduction == torch_reduction
    assert_close(c.loss(), reference.detach(), 1e-12)
    assert_close(c.gradient(), reference_grad, 1e-12)
    G = c.per_sample_gradients()
    total = G.mean(0) if torch_reduction == "mean" else G.sum(0)
    assert_close(total, reference_grad, 1e-12)


def test_from_loss_mse_single_output_with_vector_targets():
    """MSELoss on ``(N, 1)`` outputs and ``(N,)`` targets broadcasts; targets ``(N, 1)`` don't."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1).double()
    X, y = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 1, dtype=torch.float64)
    loss_fn = torch.nn.MSELoss()
    c = fl.Curvature(model, fl.likelihoods.from_loss(loss_fn), X, y[:, 0])
    assert_close(c.loss(), loss_fn(model(X), y).detach(), 1e-12)


@pytest.mark.parametrize("lik", LIKELIHOODS, ids=[lik.name for lik in LIKELIHOODS])
@pytest.mark.parametrize("model_case", MODELS, ids=[m.name for m in MODELS])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_per_sample_gradients_reduce_to_backward_grad(model_case, lik, reduction):
    problem = make_problem(model_case, lik, reduction)
    model = problem.model
    c = problem.curvature()
    G = c.per_sample_gradients()
    loss_fn = {
        "gaussian": lambda f, y: ((f - y) ** 2).sum(1) / (2 * 0.8**2),
        "categorical": lambda f, y: torch.nn.functional.cross_entropy(f, y, reduction="none"),
        "bernoulli": lambda f, y: torch.nn.functional.binary_cross_entropy_with_logits(
            f, y, reduction="none"
        ).sum(1),
    }[lik.name]
    model.zero_grad()
    per_sample = loss_fn(model(problem.X).reshape(problem.X.shape[0], -1), problem.y)
    (per_sample.mean() if reduction == "mean" else per_sample.sum()).backward()
    reference = torch.cat([p.grad.reshape(-1) for p in trainable_parameters(model)])
    total = G.mean(0) if reduction == "mean" else G.sum(0)
    assert_close(total, reference, 1e-12)
    assert_close(c.gradient(), reference, 1e-12)


# -- data loaders and chunking --------------------------------------------------------------
def _all_quantities(c: fl.Curvature) -> dict[str, torch.Tensor]:
    """Every quantity (the unbiased variants differ only by a constant factor)."""
    out = {
        "loss": c.loss(),
        "gradient": c.gradient(),
        "per_sample_gradients": c.per_sample_gradients(),
        "per_sample_losses": c.per_sample_losses(),
    }
    probe = _probe(c.num_params, 2)
    for name in ("empirical_fisher", "fisher", "ggn", "hessian", "covariance", "variance"):
        get = QUANTITIES[name]
        out[f"{name}/dense"] = get(c, "dense")
        out[f"{name}/diag"] = get(c, "diag")
        out[f"{name}/operator"] = get(c, "operator") @ probe
    return out


_REFERENCES: dict[str, dict[str, torch.Tensor]] = {}


def _batched_curvature(problem, source: str) -> fl.Curvature:
    dataset = TensorDataset(problem.X, problem.y)
    if source == "loader-3":
        data = DataLoader(dataset, batch_size=3)
    elif source == "loader-2-shuffled":
        data = DataLoader(
            dataset, batch_size=2, shuffle=True, generator=torch.Generator().manual_seed(0)
        )
    elif source == "list":
        data = [(problem.X[i : i + 4], problem.y[i : i + 4]) for i in range(0, 7, 4)]
    else:
        return problem.curvature(batch_size=2)
    return fl.Curvature(problem.model, problem.likelihood, data, reduction=problem.reduction)


# Batching is independent of the model's layers: every model and likelihood, and each of
# them with both reductions (COVERING_CASES); the remaining sources on the MLP cases.
@pytest.mark.parametrize("problem", COVERING_CASES, ids=COVERING_IDS, indirect=True)
@pytest.mark.parametrize("source", ["loader-2-shuffled"])
def test_batched_data_equals_one_batch(request, problem, source):
    key = PROBLEM_IDS[PROBLEM_CASES.index(request.node.callspec.params["problem"])]
    if key not in _REFERENCES:
        _REFERENCES[key] = _all_quantities(problem.curvature())
    reference = _REFERENCES[key]
    c = _batched_curvature(problem, source)
    assert c.num_samples == problem.X.shape[0]
    result = _all_quantities(c)
    for key, expected in reference.items():
        if key.startswith("per_sample") and source == "loader-2-shuffled":
            # same samples, other order: compare as sets of rows
            order = lambda t: t[torch.argsort(t.reshape(t.shape[0], -1)[:, -1])]  # noqa: E731
            assert_close(order(result[key]), order(expected), RTOL)
            continue
        assert_close(result[key], expected, RTOL)


@pytest.mark.parametrize("problem", MLP_CASES, ids=MLP_IDS, indirect=True)
@pytest.mark.parametrize("source", ["loader-3", "list", "batch_size-2"])
def test_other_batch_sources_equal_one_batch(problem, source):
    reference = _all_quantities(problem.curvature())
    result = _all_quantities(_batched_curvature(problem, source))
    for key, expected in reference.items():
        assert_close(result[key], expected, RTOL)


def test_custom_batch_sampler_counts_by_iteration():
    problem = make_problem(MODELS[0], LIKELIHOODS[2], "mean")
    dataset = TensorDataset(problem.X, problem.y)
    loader = DataLoader(dataset, batch_sampler=[[0, 1], [4, 5, 6]])
    c = fl.Curvature(problem.model, problem.likelihood, loader)
    keep = [0, 1, 4, 5, 6]
    assert c.num_samples == len(keep)
    oracle = BruteForce(problem.model, problem.likelihood, problem.X[keep], problem.y[keep], "mean")
    assert_close(c.ggn(), oracle.ggn, RTOL)


def test_loader_with_subset_sampler_counts_the_samples_it_yields():
    """N is the number of samples the loader yields, not the dataset's length."""
    problem = make_problem(MODELS[0], LIKELIHOODS[1], "mean")
    dataset = TensorDataset(problem.X, problem.y)
    keep = [0, 2, 3, 6]
    loader = DataLoader(dataset, batch_size=3, sampler=keep)
    c = fl.Curvature(problem.model, problem.likelihood, loader)
    assert c.num_samples == len(keep)
    oracle = BruteForce(problem.model, problem.likelihood, problem.X[keep], problem.y[keep], "mean")
    assert_close(c.loss(), oracle.loss, RTOL)
    assert_close(c.gradient(), oracle.gradient, RTOL)
    assert_close(c.empirical_fisher(), oracle.empirical_fisher, RTOL)
    assert_close(c.covariance(), oracle.covariance(), RTOL)


def test_loader_with_drop_last_counts_the_samples_it_yields():
    problem = make_problem(MODELS[0], LIKELIHOODS[0], "mean")
    loader = DataLoader(TensorDataset(problem.X, problem.y), batch_size=3, drop_last=True)
    c = fl.Curvature(problem.model, problem.likelihood, loader)
    assert c.num_samples == 6
    oracle = BruteForce(problem.model, problem.likelihood, problem.X[:6], problem.y[:6], "mean")
    assert_close(c.fisher(), oracle.fisher, RTOL)


def test_float32_runs_and_agrees_roughly():
    problem = make_problem(MODELS[0], LIKELIHOODS[1], "mean")
    oracle = BruteForce(problem.model, problem.likelihood, problem.X, problem.y, "mean")
    names = ("fisher", "ggn", "hessian", "empirical_fisher", "covariance")
    expected = {name: oracle.dense(name) for name in names}
    model32 = problem.model.float()
    c = fl.Curvature(model32, problem.likelihood, problem.X.float(), problem.y)
    for name in names:
        dense = QUANTITIES[name](c, "dense")
        assert dense.dtype == torch.float32
        assert_close(dense.double(), expected[name], 1e-4)
    op = c.fisher(form="operator")
    ones = torch.ones(c.num_params)
    assert (op @ ones).dtype == torch.float32
    solution = op.solve(ones, damping=1.0, method="cg", rtol=1e-6)
    assert solution.dtype == torch.float32
    assert_close(
        solution.double(),
        torch.linalg.solve(expected["fisher"] + torch.eye(c.num_params), ones.double()),
        1e-4,
    )
