"""Noise samplers: covariance of 20k draws matches C; draws reproducible from a seed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import fisherlab as fl
from fisherlab import noise

DT = torch.float64
NUM_DRAWS = 20_000
# Stated tolerance: relative Frobenius error of the empirical covariance of 20k draws.
# For Gaussian draws its standard deviation is about sqrt((1 + r)/n) with r the ratio
# tr(C)²/‖C‖_F² (≤ 3 here), so ~0.015; 0.05 is > 3 standard deviations.
TOL = 0.05


def _problem(likelihood: str = "categorical"):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    X = torch.randn(6, 3, dtype=DT)
    if likelihood == "categorical":
        return model, fl.Categorical(), X, torch.randint(0, 3, (6,))
    return model, fl.Gaussian(sigma=0.8), X, torch.randn(6, 3, dtype=DT)


CASES = [
    (noise.EmpiricalFisherNoise, {}, "full", "empirical_fisher"),
    (noise.EmpiricalFisherNoise, {"weights": "gaussian"}, "full", "empirical_fisher"),
    (noise.GradientCovarianceNoise, {}, "full", "covariance"),
    (noise.GradientCovarianceNoise, {"unbiased": True}, "full", "covariance"),
    (noise.FisherNoise, {}, "full", "fisher"),
    (noise.FisherNoise, {"method": "sampled_labels"}, "full", "fisher"),
    (noise.GGNNoise, {}, "full", "ggn"),
    (noise.FisherNoise, {}, "diag", "fisher"),
    (noise.EmpiricalFisherNoise, {}, "diag", "empirical_fisher"),
    (noise.GradientCovarianceNoise, {}, "diag", "covariance"),
    (noise.GGNNoise, {}, "diag", "ggn"),
    (noise.FisherNoise, {}, "kfac", "fisher"),
    (noise.EmpiricalFisherNoise, {}, "kfac", "empirical_fisher"),
    (noise.GGNNoise, {}, "kfac", "ggn"),
    (noise.FisherNoise, {}, "blockdiag", "fisher"),
    (noise.GradientCovarianceNoise, {}, "blockdiag", "covariance"),
    (noise.FisherNoise, {}, "trace", "fisher"),
    (noise.GradientCovarianceNoise, {}, "trace", "covariance"),
]


def _expected(c: fl.Curvature, quantity: str, structure: str, kwargs) -> torch.Tensor:
    extra = {"unbiased": True} if kwargs.get("unbiased") else {}
    dense = getattr(c, quantity)(form="dense", **extra)
    if structure == "full":
        return dense
    if structure == "diag":
        return torch.diag(dense.diagonal())
    if structure == "trace":
        return dense.trace() / dense.shape[0] * torch.eye(dense.shape[0], dtype=DT)
    return getattr(c, quantity)(form=structure, **extra).to_dense()


@pytest.mark.parametrize(
    ("cls", "kwargs", "structure", "quantity"),
    CASES,
    ids=[
        f"{c.__name__}-{s}-{'-'.join(k.values()) or 'default'}"
        for c, k, s, _ in [(a, {k: str(v) for k, v in b.items()}, s, q) for a, b, s, q in CASES]
    ],
)
def test_covariance_of_draws(cls, kwargs, structure, quantity):
    model, lik, X, y = _problem()
    reduction = "sum" if kwargs.get("weights") == "gaussian" else "mean"
    sampler = cls(
        model, lik, X, y, structure=structure, reduction=reduction, batch_size=4, **kwargs
    )
    c = fl.Curvature(model, lik, X, y, reduction=reduction)
    C = _expected(c, quantity, structure, kwargs)
    torch.testing.assert_close(sampler.covariance(), C, rtol=1e-10, atol=1e-12)
    xi = sampler.sample(torch.Generator().manual_seed(1), num_samples=NUM_DRAWS)
    assert xi.shape == (NUM_DRAWS, sampler.dim)
    emp = xi.T @ xi / NUM_DRAWS
    err = float((emp - C).norm() / C.norm())
    assert err < TOL, err
    # zero mean: each coordinate's mean within 5 standard errors
    se = C.diagonal().clamp_min(1e-300).sqrt() / NUM_DRAWS**0.5
    assert bool((xi.mean(0).abs() <= 5 * se + 1e-12).all())
    # reproducible from a seed, and a single draw is a flat (D,) vector
    a = sampler.sample(torch.Generator().manual_seed(7))
    b = sampler.sample(torch.Generator().manual_seed(7))
    assert a.shape == (sampler.dim,) and torch.equal(a, b)
    assert not torch.equal(a, sampler.sample(torch.Generator().manual_seed(8)))


def test_gaussian_likelihood_full_fisher_and_sum_reduction():
    model, lik, X, y = _problem("gaussian")
    sampler = noise.FisherNoise(model, lik, X, y, reduction="sum", method="sampled_labels")
    C = fl.Curvature(model, lik, X, y, reduction="sum").fisher("dense")
    xi = sampler.sample(torch.Generator().manual_seed(0), NUM_DRAWS)
    assert float((xi.T @ xi / NUM_DRAWS - C).norm() / C.norm()) < TOL


def test_multiplicative_noise():
    model, lik, X, y = _problem()
    sampler = noise.MultiplicativeNoise(model, lik, X, y, std=0.3)
    grad = fl.Curvature(model, lik, X, y).gradient()
    torch.testing.assert_close(sampler.covariance(), torch.diag(0.09 * grad**2))
    xi = sampler.sample(torch.Generator().manual_seed(0), NUM_DRAWS)
    ratio = xi / grad  # ε ~ N(0, 0.3²) per coordinate
    assert abs(float(ratio.std()) - 0.3) < 0.01
    with pytest.raises(ValueError, match="structure"):
        noise.MultiplicativeNoise(model, lik, X, y, structure="full")


def test_unflatten_update_and_errors():
    model, lik, X, y = _problem()
    sampler = noise.FisherNoise(model, lik, X, y, structure="diag")
    xi = sampler.sample(torch.Generator().manual_seed(0))
    parts = sampler.unflatten(xi)
    assert [p.shape for p in parts] == [p.shape for p in model.parameters()]
    torch.testing.assert_close(torch.cat([p.reshape(-1) for p in parts]), xi)
    assert [p.shape[1:] for p in sampler.unflatten(xi.expand(3, -1))] == [
        p.shape for p in model.parameters()
    ]
    before = sampler.covariance().clone()
    with torch.no_grad():
        model[2].weight.mul_(2.0)
    sampler.update()  # recomputed at the new parameters
    assert not torch.allclose(sampler.covariance(), before)
    with pytest.raises(ValueError, match="structure"):
        noise.GradientCovarianceNoise(model, lik, X, y, structure="kfac")
    with pytest.raises(ValueError, match="method"):
        noise.FisherNoise(model, lik, X, y, method="bogus")
    with pytest.raises(ValueError, match="num_samples"):
        sampler.sample(torch.Generator(), num_samples=0)


def test_empirical_fisher_full_uses_one_backward_per_draw():
    # ξ = √c Σ r_n g_n equals the gradient of √c Σ r_n l_n, computed independently
    model, lik, X, y = _problem()
    sampler = noise.EmpiricalFisherNoise(model, lik, X, y)
    xi = sampler.sample(torch.Generator().manual_seed(3))
    r = 2.0 * torch.randint(0, 2, (1, 6), generator=torch.Generator().manual_seed(3)) - 1.0
    model.zero_grad()
    losses = lik.nll(model(X), y)
    ((r[0].to(DT) * losses).sum() / 6**0.5).backward()
    expected = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    torch.testing.assert_close(xi, expected)
