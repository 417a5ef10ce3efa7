"""EK-FAC against its definition on brute-force per-sample gradients (float64).

With the exact layer block ``B = c Σ_n Σ_k v_{nk} v_{nk}ᵀ`` (``v`` per-sample, per-column
gradients of the layer) and ``Q = Q_G ⊗ Q_A`` the eigenbasis of K-FAC's factors, the
definition ``s_ij = c Σ_{n,k} ((Q_Gᵀ ∇_{nk} Q_A)_ij)²`` is ``diag(Qᵀ B Q)``. ``B`` comes from
:mod:`oracles` (explicit loops over samples), not from fisherlab.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import fisherlab as fl
import oracles
from fisherlab.representations.ekfac import EKFAC

DT = torch.float64
N = 6


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 2, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(2 * 3 * 3, 3)
    )


def _sequence() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 4, 3))


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))


MODELS = {"conv2d+linear": (_cnn, (2, 3, 3)), "sequence": (_sequence, (4, 3)), "mlp": (_mlp, (4,))}
#: method of Curvature → the oracle's dense matrix
QUANTITIES = {"ggn": "ggn", "fisher": "fisher", "empirical_fisher": "empirical_fisher"}


def _problem(model_name: str, lik_name: str, reduction: str):
    build, shape = MODELS[model_name]
    torch.manual_seed(3)
    model = build().to(DT)
    g = torch.Generator().manual_seed(4)
    X = torch.randn(N, *shape, generator=g, dtype=DT)
    if lik_name == "categorical":
        lik, y = fl.likelihoods.Categorical(), torch.randint(0, 3, (N,), generator=g)
    else:
        lik, y = fl.likelihoods.Gaussian(sigma=0.7), torch.randn(N, 3, generator=g, dtype=DT)
    curv = fl.Curvature(model, lik, X, y, reduction=reduction)
    return curv, oracles.BruteForce(model, lik, X, y, reduction)


def _block(matrix: torch.Tensor, block) -> torch.Tensor:
    index = block.flat_indices()
    return matrix[index][:, index]


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("lik_name", ["categorical", "gaussian"])
@pytest.mark.parametrize("method", list(QUANTITIES))
@pytest.mark.parametrize("model_name", list(MODELS))
def test_eigenvalues_are_the_exact_block_in_the_kfac_eigenbasis(
    model_name, method, lik_name, reduction
):
    curv, brute = _problem(model_name, lik_name, reduction)
    E = getattr(curv, method)(form="ekfac")
    K = getattr(curv, method)(form="kfac")
    exact = getattr(brute, QUANTITIES[method])
    assert isinstance(E, EKFAC)
    dense = E.to_dense()
    for block, kblock, s in zip(E.blocks, K.blocks, E.scales, strict=True):
        # the same eigenbasis as K-FAC's factors
        torch.testing.assert_close(block.A, kblock.A, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(block.G, kblock.G, rtol=1e-10, atol=1e-12)
        QG, QA = E.bases(block)
        Q = torch.kron(QG, QA)
        B = _block(exact, block)
        expected = torch.diagonal(Q.T @ B @ Q).reshape(s.shape)
        torch.testing.assert_close(s, expected, rtol=1e-9, atol=1e-12)
        # George et al.'s motivation: at least as close to the exact block as K-FAC
        err_ekfac = (_block(dense, block) - B).norm()
        err_kfac = (torch.kron(kblock.G, kblock.A) - B).norm()
        # (both are at round-off where K-FAC is exact, e.g. the Gaussian's last layer)
        slack = 1e-12 * B.norm()
        assert err_ekfac <= err_kfac + slack, (block.name, float(err_ekfac), float(err_kfac))
    # EK-FAC keeps the trace of every exact block
    traces = sum(_block(exact, b).trace() for b in E.blocks)
    torch.testing.assert_close(E.trace(), traces, rtol=1e-10, atol=1e-12)


def test_ekfac_is_strictly_better_where_kfac_is_not_exact():
    curv, brute = _problem("conv2d+linear", "categorical", "mean")
    E, K = curv.ggn(form="ekfac"), curv.ggn(form="kfac")
    block = E.blocks[0]
    B = _block(brute.ggn, block)
    err_ekfac = float((_block(E.to_dense(), block) - B).norm())
    err_kfac = float((torch.kron(K.blocks[0].G, K.blocks[0].A) - B).norm())
    assert err_ekfac < 0.99 * err_kfac


def test_interface_against_the_dense_matrix():
    curv, _ = _problem("conv2d+linear", "categorical", "sum")
    E = curv.ggn(form="ekfac", approx="reduce")
    M = E.to_dense()
    D = curv.num_params
    g = torch.Generator().manual_seed(0)
    v = torch.randn(D, generator=g, dtype=DT)
    V = torch.randn(D, 3, generator=g, dtype=DT)
    close = dict(rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(E @ v, M @ v, **close)
    torch.testing.assert_close(E @ V, M @ V, **close)
    eye = torch.eye(D, dtype=DT)
    torch.testing.assert_close(E.solve(v, damping=0.1), torch.linalg.solve(M + 0.1 * eye, v))
    root = E.sqrt().to_dense()
    torch.testing.assert_close(root @ root, M, **close)
    torch.testing.assert_close(E.power(2.0).to_dense(), M @ M, **close)
    inv_root = E.inv_sqrt(damping=0.2).to_dense()
    torch.testing.assert_close(inv_root @ (M + 0.2 * eye) @ inv_root, eye, **close)
    torch.testing.assert_close(E.diag(), M.diagonal(), **close)
    torch.testing.assert_close(E.trace(), M.trace(), **close)
    torch.testing.assert_close(E.frobenius_norm(), M.norm(), **close)
    torch.testing.assert_close(E.abs_sum(), M.abs().sum(), **close)
    torch.testing.assert_close(E.abs_sum(chunk_elements=1), M.abs().sum(), **close)
    assert fl.linalg.abs_sum(E) == pytest.approx(float(M.abs().sum()), rel=1e-10)
    torch.testing.assert_close(fl.linalg.solve(E, v, damping=0.1), E.solve(v, damping=0.1))
    torch.testing.assert_close(E.eigenvalues(), torch.linalg.eigvalsh(M), **close)
    torch.testing.assert_close(torch.from_numpy(E.to_scipy() @ v.numpy()), M @ v, **close)
    torch.testing.assert_close(E.to_operator() @ V, M @ V, **close)
    first = E.blocks[0].numel  # the first layer's weight and bias lead the flat vector
    assert M[:first, first:].abs().max() == 0


def test_singular_solve_without_damping_raises_and_shapes_are_checked():
    curv, _ = _problem("mlp", "categorical", "mean")
    E = curv.ggn(form="ekfac")
    zero = [torch.zeros_like(s) for s in E.scales]
    singular = EKFAC(E.blocks, zero, E.dim, E.dtype, E.device)
    v = torch.ones(curv.num_params, dtype=DT)
    with pytest.raises(RuntimeError, match="singular"):
        singular.solve(v)
    torch.testing.assert_close(singular.solve(v, damping=2.0), v / 2.0)
    with pytest.raises(ValueError, match="expected"):
        EKFAC(E.blocks, [s.T for s in E.scales], E.dim, E.dtype, E.device)
    with pytest.raises(ValueError, match="kfac"):
        curv.hessian(form="ekfac")
