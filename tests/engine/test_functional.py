"""The generic torch.func engine, piece by piece, against the brute-force oracle.

Batch sums (no reduction): the oracles are built with ``reduction="sum"``.
"""

from __future__ import annotations

import pytest
import torch

from cases import COVERING_CASES, COVERING_IDS, make_problem
from fisherlab.engine.functional import FunctionalModel
from oracles import BruteForce, assert_close, trainable_parameters

RTOL = 1e-10


@pytest.fixture(scope="module", params=COVERING_CASES, ids=COVERING_IDS)
def engine_case(request):
    model_case, likelihood_case, _ = request.param
    problem = make_problem(model_case, likelihood_case, "sum")
    fm = FunctionalModel(problem.model, problem.likelihood)
    y = problem.likelihood.flatten_targets(problem.y)
    oracle = BruteForce(problem.model, problem.likelihood, problem.X, problem.y, "sum")
    return fm, problem.X, y, oracle


def _probe(D, k=3):
    return torch.randn(D, k, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def test_parameter_plumbing(engine_case):
    fm, _, _, oracle = engine_case
    params = trainable_parameters(fm.model)
    flat = torch.nn.utils.parameters_to_vector(params)
    assert fm.num_params == oracle.D == flat.numel()
    assert torch.equal(fm.flat_params(), flat)
    unflat = fm.unflatten(flat)
    assert [unflat[name].shape for name in fm.names] == [p.shape for p in params]
    assert torch.equal(fm.flatten(unflat), flat)
    batched = {name: torch.stack([t, 2 * t]) for name, t in unflat.items()}
    assert torch.equal(fm.flatten(batched, batch_dims=1), torch.stack([flat, 2 * flat]))


def test_losses_and_gradient(engine_case):
    fm, X, y, oracle = engine_case
    assert_close(fm.losses(fm.params, X, y), oracle.losses, RTOL)
    assert_close(fm.loss_sum(X, y), oracle.losses.sum(), RTOL)
    assert_close(fm.gradient(X, y), oracle.gradient, RTOL)
    assert_close(fm.per_sample_gradients(X, y), oracle.per_sample_gradients, RTOL)


def test_jacobians(engine_case):
    fm, X, _, oracle = engine_case
    assert_close(fm.jacobians(X), oracle.jacobians, RTOL)


def test_sandwich_rows_with_fisher_factors(engine_case):
    fm, X, _, oracle = engine_case
    factors = torch.stack([_psd_sqrt(L) for L in oracle.output_fishers])
    rows = fm.sandwich_rows(X, factors)
    assert rows.shape == (X.shape[0], factors.shape[2], oracle.D)
    expected = torch.einsum("nck,ncd->nkd", factors, oracle.jacobians)
    assert_close(rows, expected, RTOL)
    B = rows.flatten(0, 1)
    assert_close(B.T @ B, oracle.fisher, RTOL)


def _psd_sqrt(matrix):
    eigvals, eigvecs = torch.linalg.eigh(matrix)
    return eigvecs * eigvals.clamp_min(0).sqrt()


def test_ggn_and_hessian(engine_case):
    fm, X, y, oracle = engine_case
    assert_close(fm.ggn_dense(X, y), oracle.ggn, RTOL)
    assert_close(fm.ggn_diag(X, y), torch.diagonal(oracle.ggn).clone(), RTOL)
    assert_close(fm.hessian_dense(X, y), oracle.hessian, RTOL)
    # chunks smaller than D exercise the block loop
    assert_close(fm.hessian_diag(X, y, chunk_size=7), torch.diagonal(oracle.hessian).clone(), RTOL)


@pytest.mark.parametrize("columns", [0, 1, 3])
def test_matrix_free_products(engine_case, columns):
    """Zero columns, one column (no vmap) and several (vmap over columns)."""
    fm, X, y, oracle = engine_case
    V = _probe(oracle.D, columns)
    assert_close(fm.hessian_matvec(X, y, V), oracle.hessian @ V, RTOL)
    assert_close(fm.gradient_outer_matvec(X, y, V), oracle.empirical_fisher @ V, RTOL)
    inner = torch.stack(oracle.output_hessians)
    assert_close(fm.sandwich_matvec(X, inner, V), oracle.ggn @ V, RTOL)


def test_frozen_parameters_and_buffers_are_constants():
    problem = make_problem(*COVERING_CASES[-1])  # BatchNorm in eval mode
    problem.model[0].weight.requires_grad_(False)
    fm = FunctionalModel(problem.model, problem.likelihood)
    assert "0.weight" not in fm.names and "0.weight" in fm.constants
    assert {"1.running_mean", "1.running_var"} <= set(fm.constants)
    with torch.no_grad():
        expected = problem.model(problem.X)
    assert_close(fm.outputs(fm.params, problem.X), expected, 1e-14)


def test_tied_parameter_appears_once():
    tied = next(case for case in COVERING_CASES if case[0].name == "tied")
    problem = make_problem(*tied)
    fm = FunctionalModel(problem.model, problem.likelihood)
    assert "first.weight" in fm.names and "second.weight" not in fm.names
    assert fm.num_params == 16 + 4 + 4 + 15


def test_no_trainable_parameters():
    model = torch.nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no parameters with requires_grad=True"):
        FunctionalModel(model, None)
