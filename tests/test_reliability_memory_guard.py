"""The memory guard: dense (D, D) results and (N, D) per-sample gradients above a limit are
refused with the estimate and the cheaper forms."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import fisherlab as fl
from fisherlab.engine.hooks import collect
from fisherlab.validation import MEMORY_ENV, check_memory, memory_limit

DT = torch.float64


def _setup(max_bytes=None):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).to(DT)  # D = 26
    X, y = torch.randn(5, 3, dtype=DT), torch.randint(0, 2, (5,))
    return model, fl.Curvature(model, fl.likelihoods.Categorical(), X, y, max_bytes=max_bytes)


def test_dense_forms_above_the_limit_are_refused_with_estimate_and_alternatives():
    _, c = _setup(max_bytes=26 * 26 * 8 - 1)
    for call in (lambda: c.fisher(form="dense"), lambda: c.hessian(), lambda: c.covariance()):
        with pytest.raises(MemoryError, match=r"\(26, 26\).*0\.0 MiB.*form='diag'"):
            call()
    # what fits is computed: the same numbers as without a limit
    torch.testing.assert_close(c.fisher(form="diag"), _setup()[1].fisher(form="diag"))


def test_dense_form_at_the_limit_is_built():
    _, c = _setup(max_bytes=26 * 26 * 8)
    assert c.ggn(form="dense").shape == (26, 26)


def test_per_sample_gradients_above_the_limit_are_refused():
    model, c = _setup(max_bytes=5 * 26 * 8 - 1)
    with pytest.raises(MemoryError, match=r"per-sample gradients \(N, D\) = \(5, 26\)"):
        c.per_sample_gradients()
    X, y = torch.randn(5, 3, dtype=DT), torch.randint(0, 2, (5,))
    lik = fl.likelihoods.Categorical()
    with collect(model, lik, ("per_sample_gradients",), max_bytes=5 * 26 * 8 - 1) as col:
        with pytest.raises(MemoryError, match="per-sample gradients"):
            col.loss(model(X), y).backward()
    with collect(model, lik, ("variance",), max_bytes=1) as col:  # needs no (N, D) storage
        col.loss(model(X), y).backward()
    assert col.flat("variance").shape == (26,)


def test_to_dense_of_operators_obeys_the_environment_limit(monkeypatch):
    _, c = _setup()
    op, kfac = c.ggn(form="operator"), c.ggn(form="kfac")
    monkeypatch.setenv(MEMORY_ENV, str(26 * 26 * 8 - 1))
    assert memory_limit() == 26 * 26 * 8 - 1
    for matrix in (op, kfac):
        with pytest.raises(MemoryError, match="to_dense"):
            matrix.to_dense()
    monkeypatch.setenv(MEMORY_ENV, "lots")
    with pytest.raises(ValueError, match=MEMORY_ENV):
        memory_limit()


def test_default_limit_is_a_fraction_of_available_memory(monkeypatch):
    import fisherlab.validation as validation

    monkeypatch.delenv(MEMORY_ENV, raising=False)
    assert memory_limit() > 0  # the machine's own reading
    monkeypatch.setattr(validation, "_available_memory", lambda: 10**9)
    limit = memory_limit()
    assert limit == int(10**9 * validation.MEMORY_FRACTION)
    with pytest.raises(MemoryError, match="cheaper: x"):
        check_memory(limit + 1, torch.uint8, "y", "x")
    check_memory(limit, torch.uint8, "y", "x")
    monkeypatch.setattr(validation, "_available_memory", lambda: None)
    assert memory_limit() == 8 << 30


def test_cuda_results_are_measured_against_the_gpu_memory(monkeypatch):
    monkeypatch.delenv(MEMORY_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (4000, 10**9))
    assert memory_limit("cuda") == 2000
    with pytest.raises(MemoryError, match="limit of 0.0 MiB"):
        check_memory(2001, torch.uint8, "y", "x", device="cuda")
    check_memory(2000, torch.uint8, "y", "x", device="cuda")
