"""fisherlab.linalg on dense, diagonal, operator, K-FAC and block-diagonal inputs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import fisherlab as fl
from fisherlab import linalg

DT = torch.float64


@pytest.fixture(scope="module")
def curvature():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    X = torch.randn(20, 4, dtype=DT)
    y = torch.randint(0, 3, (20,))
    return fl.Curvature(model, fl.Categorical(), X, y)


@pytest.fixture(scope="module")
def forms(curvature):
    """The same matrices (GGN) in every form, with their dense equivalents."""
    dense = curvature.ggn("dense")
    kfac = curvature.ggn("kfac")
    block = curvature.ggn("blockdiag")
    diag = curvature.ggn("diag")
    op = curvature.ggn("operator")
    return {
        "dense": (dense, dense),
        "diag": (diag, torch.diag(diag)),
        "operator": (op, dense),
        "kfac": (kfac, kfac.to_dense()),
        "blockdiag": (block, block.to_dense()),
    }


NAMES = ["dense", "diag", "operator", "kfac", "blockdiag"]


@pytest.mark.parametrize("name", NAMES)
def test_solve_inverts_product(forms, name):
    M, F = forms[name]
    v = torch.randn(F.shape[0], dtype=DT)
    for damping in (1e-3, 1.0):
        x = linalg.solve(M, v, damping)
        torch.testing.assert_close(F @ x + damping * x, v, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", ["dense", "diag", "kfac", "blockdiag"])
def test_sqrt_and_inverse_sqrt(forms, name):
    M, F = forms[name]
    eye = torch.eye(F.shape[0], dtype=DT)
    S = linalg.sqrtm(M)
    S = torch.diag(S) if name == "diag" else (S if name == "dense" else S.to_dense())
    torch.testing.assert_close(S @ S, F, rtol=0, atol=1e-10)
    torch.testing.assert_close(S, S.T)
    R = linalg.inv_sqrtm(M, damping=0.1)
    R = torch.diag(R) if name == "diag" else (R if name == "dense" else R.to_dense())
    torch.testing.assert_close(R @ (F + 0.1 * eye) @ R, eye, rtol=0, atol=1e-10)


def test_sqrt_of_operator_raises(forms):
    with pytest.raises(TypeError, match="matrix-free"):
        linalg.sqrtm(forms["operator"][0])
    with pytest.raises(TypeError, match="CurvatureOperator"):
        linalg.trace([[1.0]])


@pytest.mark.parametrize("name", NAMES)
def test_exact_trace_and_frobenius(forms, name):
    M, F = forms[name]
    t = linalg.trace(M, method="exact")
    assert t.std_error == 0.0
    assert math.isclose(t.value, float(F.trace()), rel_tol=1e-12)
    f = linalg.frobenius_norm(M, method="exact")
    assert math.isclose(f.value, float(F.norm()), rel_tol=1e-12)


@pytest.mark.parametrize("name", ["operator", "kfac"])
def test_hutchinson_is_unbiased(forms, name):
    # mean over many seeds within 3 standard errors of the exact value (the operator is a
    # matrix-free view of the dense GGN, so that 2000 probes stay cheap)
    M, F = forms[name]
    if name == "operator":
        M = linalg.as_operator(F)
        assert isinstance(M, fl.CurvatureOperator)
    exact_trace, exact_fro2 = float(F.trace()), float(F.square().sum())
    traces, fros = [], []
    for seed in range(100):
        g = torch.Generator().manual_seed(seed)
        traces.append(linalg.hutchinson_trace(M, num_probes=5, generator=g).value)
        fros.append(linalg.hutchinson_frobenius_norm(M, 5, g, squared=True).value)
    for values, exact in ((traces, exact_trace), (fros, exact_fro2)):
        values = torch.tensor(values, dtype=DT)
        se = values.std() / math.sqrt(values.numel())
        assert abs(values.mean() - exact) < 3 * se, (float(values.mean()), exact, float(se))
        assert se > 0


def test_hutchinson_standard_error_and_auto(forms):
    M, F = forms["operator"]  # the matrix-free GGN of the model
    est = linalg.trace(M, num_probes=200, generator=torch.Generator().manual_seed(0))
    assert est.num_probes == 200 and 0 < est.std_error < 0.2 * abs(est.value)
    assert abs(est.value - float(F.trace())) < 4 * est.std_error
    # the reported standard error matches the spread over repetitions
    view = linalg.as_operator(F)
    reps = torch.tensor(
        [
            linalg.hutchinson_trace(view, 20, torch.Generator().manual_seed(s)).value
            for s in range(100, 160)
        ]
    )
    se20 = linalg.hutchinson_trace(view, 20, torch.Generator().manual_seed(1)).std_error
    assert 0.5 < float(reps.std()) / se20 < 2.0
    norm = linalg.frobenius_norm(view, num_probes=400, generator=torch.Generator().manual_seed(2))
    assert abs(norm.value - float(F.norm())) < 4 * norm.std_error
    # the same generator gives the same estimate
    a = linalg.trace(M, num_probes=10, generator=torch.Generator().manual_seed(3))
    b = linalg.trace(M, num_probes=10, generator=torch.Generator().manual_seed(3))
    assert a == b


@pytest.mark.parametrize("name", NAMES)
def test_lanczos_top5_match_eigvalsh(forms, name):
    M, F = forms[name]
    lam, V = linalg.top_eigenpairs(M, k=5, method="lanczos" if name != "diag" else "auto")
    exact = torch.linalg.eigvalsh(F).flip(0)[:5]
    torch.testing.assert_close(lam, exact, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(F @ V, V * lam, rtol=0, atol=1e-8)


def test_lanczos_recurrence_and_slq(forms):
    M, F = forms["dense"]
    D = F.shape[0]
    z = torch.randn(D, dtype=DT, generator=torch.Generator().manual_seed(0))
    alpha, beta = linalg.lanczos(M, z, 10)
    T = torch.diag(alpha) + torch.diag(beta, 1) + torch.diag(beta, -1)
    # Ritz values interlace: the largest is below and close to λ_max
    assert T.shape == (10, 10)
    assert float(torch.linalg.eigvalsh(T)[-1]) <= float(torch.linalg.eigvalsh(F)[-1]) + 1e-10
    sd = linalg.spectral_density(
        M, num_probes=30, num_steps=20, generator=torch.Generator().manual_seed(1)
    )
    torch.testing.assert_close(sd.weights.sum(1), torch.ones(30, dtype=DT))
    # Gauss quadrature is exact for degree < 2m polynomials: per probe the quadrature of
    # f(t) = t and t^2 equals zᵀMz/‖z‖² and ‖Mz‖²/‖z‖²; the mean estimates tr/D
    mean_1 = float((sd.weights * sd.nodes).sum(1).mean())
    mean_2 = float((sd.weights * sd.nodes**2).sum(1).mean())
    assert abs(mean_1 - float(F.trace()) / D) < 0.15 * float(F.trace()) / D
    assert abs(mean_2 - float(F.square().sum()) / D) < 0.3 * float(F.square().sum()) / D
    step = float(sd.grid[1] - sd.grid[0])
    assert abs(float(sd.density.sum()) * step - 1.0) < 1e-3


def test_slq_quadrature_is_exact_per_probe():
    torch.manual_seed(2)
    Q, _ = torch.linalg.qr(torch.randn(12, 12, dtype=DT))
    A = Q @ torch.diag(torch.linspace(0, 5, 12, dtype=DT)) @ Q.T
    g = torch.Generator().manual_seed(0)
    sd = linalg.spectral_density(A, num_probes=1, num_steps=4, generator=g)
    z = 2 * torch.randint(0, 2, (12, 1), generator=torch.Generator().manual_seed(0)) - 1
    z = z[:, 0].to(DT)
    for p in range(1, 8):  # degree < 2·4
        quad = float((sd.weights * sd.nodes**p).sum())
        exact = float(z @ torch.linalg.matrix_power(A, p) @ z) / 12
        assert math.isclose(quad, exact, rel_tol=1e-8)


def test_inf_one_norm_and_bounds(forms):
    # 2×2 closed forms (Balles App. C.2): H = diag(λ1, λ2) rotated by ω
    for omega in (0.0, 0.3, math.pi / 4):
        c, s = math.cos(omega), math.sin(omega)
        R = torch.tensor([[c, -s], [s, c]], dtype=DT)
        H = R @ torch.diag(torch.tensor([10.0, 1.0], dtype=DT)) @ R.T
        exact = linalg.inf_one_norm(H)
        bounds = linalg.inf_one_norm_bounds(H)
        assert bounds.lower - 1e-12 <= exact <= bounds.upper + 1e-12
        assert (
            math.isclose(
                exact,
                float((H @ torch.tensor([1.0, 1.0], dtype=DT)).abs().sum()) if omega > 0 else 11.0,
                rel_tol=1e-12,
            )
            or omega == 0.3
        )
    # Prop. 6.4 for a random PSD matrix, and ρ_diag ∈ [1/D, 1]
    torch.manual_seed(3)
    B = torch.randn(8, 8, dtype=DT)
    H = B @ B.T
    rho = linalg.diagonal_concentration(H)
    assert 1 / 8 <= rho <= 1
    exact = linalg.inf_one_norm(H)
    assert exact <= float(torch.linalg.eigvalsh(H).sum()) / rho + 1e-10
    bounds = linalg.inf_one_norm_bounds(H)
    assert bounds.lower <= exact + 1e-10 <= bounds.upper + 2e-10
    assert math.isclose(linalg.diagonal_concentration(torch.diag(H)), 1.0)
    # structured forms agree with their dense matrices
    for name in NAMES:
        M, F = forms[name]
        assert math.isclose(
            linalg.diagonal_concentration(M),
            float(F.diagonal().abs().sum() / F.abs().sum()),
            rel_tol=1e-10,
        )
        b = linalg.inf_one_norm_bounds(M)
        assert b.lower <= b.upper + 1e-10
        assert (
            math.isclose(
                b.upper if name != "dense" else float(F.abs().sum()),
                float(F.abs().sum()),
                rel_tol=1e-10,
            )
            or b.upper <= F.abs().sum()
        )
        assert b.lower >= float(torch.linalg.eigvalsh(F)[-1]) - 1e-8  # ≥ λ_max (Eq. 6.22)
