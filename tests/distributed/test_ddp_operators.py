"""Matrix-free operators of a distributed Curvature on 2 gloo ranks (shards of 6 and 4).

``@`` sums the product over ranks, so Lanczos (own and ARPACK's), Hutchinson traces with
probe vectors shared through a seeded generator, stochastic Lanczos quadrature and CG
solves give the single-process numbers of the concatenated batch.
"""

from __future__ import annotations

import pytest
import torch

import fisherlab as fl
from ddp_spawn import small_problem, two_ranks

LIK = fl.Categorical()
SHARDS = (slice(0, 6), slice(6, 10))


def _problem():
    return small_problem(2, 3)


def _spectra(X, y) -> dict[str, object]:
    model = _problem()[0]
    c = fl.Curvature(model, LIK, X, y)
    H, G = c.hessian(form="operator"), c.ggn(form="operator")
    v0 = torch.linspace(-1.0, 1.0, c.num_params, dtype=torch.float64)
    alpha, beta = fl.linalg.lanczos(H, v0, 12)
    T = torch.diag(alpha) + torch.diag(beta, 1) + torch.diag(beta, -1)
    density = fl.linalg.spectral_density(G, 3, 8, generator=torch.Generator().manual_seed(1))
    return {
        "lanczos_top": torch.linalg.eigvalsh(T)[-1],
        "arpack_top": fl.linalg.top_eigenpairs(H, k=2, method="lanczos")[0],
        "hutchinson": torch.tensor(
            fl.linalg.hutchinson_trace(G, 40, torch.Generator().manual_seed(0)).value
        ),
        "slq_nodes": density.nodes,
        "slq_weights": density.weights,
        "cg": fl.linalg.solve(G, v0, damping=0.1, method="cg"),
    }


def _rank(rank: int, world_size: int, out_dir: str) -> dict[str, object]:
    _, X, y = _problem()
    return _spectra(X[SHARDS[rank]], y[SHARDS[rank]])


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    return two_ranks("test_ddp_operators", tmp_path_factory.mktemp("two_ranks"))


def test_spectra_traces_and_solves_are_those_of_the_concatenated_batch(ranks):
    _, X, y = _problem()
    expected = _spectra(X, y)
    shard = _spectra(X[SHARDS[0]], y[SHARDS[0]])  # one rank's own values differ
    for name, value in expected.items():
        assert not torch.allclose(shard[name], value, rtol=1e-3), name
        for rank, got in enumerate(ranks):
            torch.testing.assert_close(got[name], value, rtol=1e-9, atol=1e-11, msg=f"{rank}{name}")
