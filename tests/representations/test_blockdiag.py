"""Block-diagonal form: blocks equal the dense quantity's diagonal blocks; linear algebra."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import fisherlab as fl
from fisherlab.forms.blockdiag import compute_blockdiag
from fisherlab.quantities import Quantity, QuantitySpec
from fisherlab.representations.blockdiag import BlockDiagonal

DT = torch.float64


def _curvature(reduction="mean", n=7, batch_size=3):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    X = torch.randn(n, 3, dtype=DT)
    y = torch.randint(0, 3, (n,))
    return fl.Curvature(model, fl.Categorical(), X, y, reduction=reduction, batch_size=batch_size)


def _mask(blocks: BlockDiagonal) -> torch.Tensor:
    mask = torch.zeros(blocks.shape, dtype=torch.bool)
    for block in blocks.blocks:
        mask[block.index.unsqueeze(1), block.index.unsqueeze(0)] = True
    return mask


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize(
    "method", ["fisher", "ggn", "empirical_fisher", "hessian", "covariance", "covariance-unbiased"]
)
def test_blocks_equal_dense_blocks(method, reduction):
    c = _curvature(reduction)
    if method == "covariance-unbiased":
        B, dense = c.covariance("blockdiag", unbiased=True), c.covariance("dense", unbiased=True)
    else:
        B, dense = getattr(c, method)(form="blockdiag"), getattr(c, method)(form="dense")
    assert isinstance(B, BlockDiagonal) and len(B.blocks) == 2
    mask = _mask(B)
    torch.testing.assert_close(B.to_dense(), torch.where(mask, dense, 0.0), rtol=1e-10, atol=1e-12)


def test_monte_carlo_blocks_match_dense_mc_with_same_seed():
    c = _curvature()
    B = c.fisher("blockdiag", mc_samples=2, generator=torch.Generator().manual_seed(1))
    dense = c.fisher("dense", mc_samples=2, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(B.to_dense(), torch.where(_mask(B), dense, 0.0))


def test_parameter_grouping_and_factor_storage():
    c = _curvature(n=2, batch_size=2)
    B = compute_blockdiag(c, QuantitySpec(Quantity.EMPIRICAL_FISHER), grouping="parameter")
    assert [b.name for b in B.blocks] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    # 2 rows: weights (12 and 12 columns) stay factored, biases (4, 3 columns) too ... until
    # there are at least as many rows as columns
    assert [b.factor is not None for b in B.blocks] == [True, True, True, True]
    dense = c.empirical_fisher("dense")
    torch.testing.assert_close(B.to_dense(), torch.where(_mask(B), dense, 0.0))
    with pytest.raises(ValueError, match="grouping"):
        compute_blockdiag(c, QuantitySpec(Quantity.GGN), grouping="module")
    with pytest.raises(ValueError, match="diag"):
        c.variance(form="blockdiag")


@pytest.mark.parametrize("n", [2, 40])  # factored blocks (2 rows) and dense blocks (40 rows)
def test_linear_algebra(n):
    c = _curvature(n=n, batch_size=n)
    B = c.empirical_fisher("blockdiag")
    assert any(b.factor is not None for b in B.blocks) == (n == 2)
    F = B.to_dense()
    v = torch.randn(B.dim, 2, dtype=DT)
    torch.testing.assert_close(B @ v, F @ v)
    for damping in (1e-4, 1.0):
        x = B.solve(v, damping)
        torch.testing.assert_close(F @ x + damping * x, v, rtol=0, atol=1e-10)
    S = B.sqrt().to_dense()
    torch.testing.assert_close(S @ S, F, rtol=0, atol=1e-10)
    R = B.inv_sqrt(0.2).to_dense()
    eye = torch.eye(B.dim, dtype=DT)
    torch.testing.assert_close(R @ (F + 0.2 * eye) @ R, eye, rtol=0, atol=1e-10)
    torch.testing.assert_close(B.trace(), F.trace())
    torch.testing.assert_close(B.frobenius_norm(), torch.linalg.matrix_norm(F))
    torch.testing.assert_close(B.abs_sum(chunk_size=5), F.abs().sum())
    torch.testing.assert_close(B.diag(), F.diagonal())
    torch.testing.assert_close(B.eigenvalues(), torch.linalg.eigvalsh(F), rtol=0, atol=1e-10)
    if n == 2:
        with pytest.raises(RuntimeError, match="damping"):
            B.solve(v)


def test_sampling_covariance_and_reproducibility():
    c = _curvature(n=3, batch_size=3)
    B = c.fisher("blockdiag")
    a = B.sample(torch.Generator().manual_seed(0), num_samples=3)
    assert torch.equal(a, B.sample(torch.Generator().manual_seed(0), num_samples=3))
    assert B.sample(torch.Generator().manual_seed(0)).shape == (B.dim,)
    xi = B.sample(torch.Generator().manual_seed(1), num_samples=20000)
    F = B.to_dense()
    assert (xi.T @ xi / xi.shape[0] - F).norm() / F.norm() < 0.05
