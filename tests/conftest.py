"""Fixtures: the problem cases of ``cases.py`` with their brute-force oracles."""

from __future__ import annotations

import pytest
import torch

from cases import LIKELIHOODS, MODELS, PROBLEM_CASES, PROBLEM_IDS, make_problem
from oracles import BruteForce

_ORACLES: dict[str, BruteForce] = {}


@pytest.fixture(params=PROBLEM_CASES, ids=PROBLEM_IDS)
def problem(request):
    """A fresh problem: model × likelihood × reduction."""
    return make_problem(*request.param)


@pytest.fixture
def oracle(request, problem):
    """The brute-force oracle of ``problem``, computed once per case for the session."""
    key = _problem_key(request)
    if key not in _ORACLES:
        _ORACLES[key] = BruteForce(
            problem.model, problem.likelihood, problem.X, problem.y, problem.reduction
        )
    cached = _ORACLES[key]
    # the cached oracle belongs to an identical, separately built problem
    assert torch.equal(cached.X, problem.X)
    return cached


def _problem_key(request) -> str:
    return PROBLEM_IDS[PROBLEM_CASES.index(request.node.callspec.params["problem"])]


@pytest.fixture(params=MODELS, ids=[m.name for m in MODELS])
def model_case(request):
    return request.param


@pytest.fixture(params=LIKELIHOODS, ids=[lik.name for lik in LIKELIHOODS])
def likelihood_case(request):
    return request.param


@pytest.fixture(params=["mean", "sum"])
def reduction(request):
    return request.param


def pytest_configure(config):
    """Run torch single-threaded: the test problems are tiny, and thread start-up and
    oversubscription would otherwise dominate the run time (the suite targets one core)."""
    torch.set_num_threads(1)
