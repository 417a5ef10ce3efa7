"""engine.kronecker.gram: the Gram matrix by BLAS syrk equals the matrix product."""

from __future__ import annotations

import pytest
import torch

from fisherlab.engine import kronecker
from fisherlab.engine.kronecker import gram

SHAPES = [(1, 1), (1, 5), (7, 1), (40, 9), (3, 30), (0, 4), (300, 260)]


@pytest.fixture(autouse=True, params=["syrk", "product"])
def route(request, monkeypatch):
    """Every case by both routes: BLAS syrk (no size threshold) and the matrix product."""
    monkeypatch.setattr(kronecker, "SYRK_MIN_WORK", 0 if request.param == "syrk" else 1 << 62)
    return request.param


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_gram_equals_the_product(shape, dtype, route):
    rows = torch.randn(*shape, generator=torch.Generator().manual_seed(0)).to(dtype)
    expected = (rows.double().T @ rows.double()).to(dtype)
    result = gram(rows)
    assert result.shape == (shape[1], shape[1]) and result.dtype == dtype
    tol = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 5e-2}[dtype]
    assert torch.allclose(result, expected, rtol=tol, atol=tol * shape[0])
    if route == "syrk" and dtype is not torch.bfloat16:
        assert torch.equal(result, result.T)  # one triangle, mirrored


def test_gram_of_a_non_contiguous_view():
    base = torch.randn(9, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    rows = base[:, ::2]  # strides (12, 2)
    assert torch.allclose(gram(rows), rows.T @ rows, rtol=1e-12, atol=1e-12)


def test_gram_of_rows_that_require_grad():
    rows = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    assert torch.allclose(gram(rows), (rows.T @ rows).detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("scale", [1.0, 0.125])
def test_gram_applies_the_scale(scale):
    rows = torch.randn(50, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(gram(rows, scale), scale * rows.T @ rows, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("weight, bias", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("rows_count", [3, 40], ids=["fewer-rows", "more-rows"])
def test_augmented_gram_equals_the_gram_of_the_rows_with_ones(rows_count, weight, bias):
    """Both routes (a column of ones appended, or the blocks filled in) against the
    Gram matrix of the explicitly augmented rows."""
    rows = torch.randn(rows_count, 6, dtype=torch.float64)
    parts = ([rows] if weight else []) + ([torch.ones(rows_count, 1)] if bias else [])
    augmented = torch.cat(parts, dim=1).double()
    expected = 0.5 * augmented.T @ augmented
    result = kronecker._augmented_gram(rows, weight, bias, 0.5)
    assert torch.allclose(result, expected, rtol=1e-12, atol=1e-12)
