"""Fixtures: the problem cases of ``cases.py`` with their brute-force oracles."""

from __future__ import annotations

import os

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


def pytest_addoption(parser):
    """``--device``: where the tests that take the ``device`` fixture run."""
    parser.addoption(
        "--device",
        default=None,
        help="device for the tests that take the `device` fixture (cpu, cuda, cuda:1); "
        "default: $FISHERLAB_TEST_DEVICE, else cpu",
    )


@pytest.fixture(scope="session")
def device(request) -> torch.device:
    """The test device from ``--device`` or ``FISHERLAB_TEST_DEVICE`` (default ``cpu``);
    the test is skipped, with the reason, when that device is not present."""
    name = request.config.getoption("--device") or os.environ.get("FISHERLAB_TEST_DEVICE", "cpu")
    try:
        chosen = torch.device(name)
    except RuntimeError:
        raise pytest.UsageError(
            f"--device / FISHERLAB_TEST_DEVICE: unknown device {name!r}"
        ) from None
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            pytest.skip(
                f"device {name}: CUDA is not available (torch {torch.__version__}, "
                f"CUDA build {torch.version.cuda})"
            )
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            pytest.skip(f"device {name}: only {torch.cuda.device_count()} CUDA device(s)")
    elif chosen.type != "cpu":
        raise pytest.UsageError(f"--device / FISHERLAB_TEST_DEVICE: {name!r} is not cpu or cuda")
    return chosen


def pytest_configure(config):
    """Run torch single-threaded: the test problems are tiny, and thread start-up and
    oversubscription would otherwise dominate the run time (the suite targets one core)."""
    torch.set_num_threads(1)
