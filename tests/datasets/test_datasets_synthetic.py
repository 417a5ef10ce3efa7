from __future__ import annotations

import math

import pytest
import torch

from fisherlab import datasets
from fisherlab.datasets.synthetic import LOGISTIC_CLASSES

SYNTHETIC = [name for name in datasets.available() if name.startswith("kunstner-")]
BIG = 200_000


@pytest.mark.parametrize("name", SYNTHETIC)
def test_shapes_dtypes_tasks(name):
    data = datasets.load(name, seed=0)
    assert data.name == name and data.N == 1000 and data.D == 2
    assert data.X.dtype == torch.float64 and data.y.dtype == torch.float64
    assert data.task == ("binary" if "logistic" in name else "regression")
    assert datasets.load(name, seed=0, n=7).N == 7


@pytest.mark.parametrize("name", SYNTHETIC)
def test_same_seed_same_data_other_seed_other_data(name):
    a, b, c = (datasets.load(name, seed=s) for s in (5, 5, 6))
    assert torch.equal(a.X, b.X) and torch.equal(a.y, b.y)
    assert not torch.equal(a.X, c.X)
    assert not torch.equal(a.y, c.y) or "logistic" in name  # labels may coincide


def test_generator_argument_and_global_state():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    from_int = datasets.load("kunstner-fig1", seed=9)
    gen = torch.Generator().manual_seed(9)
    from_gen = datasets.load("kunstner-fig1", seed=gen)
    assert torch.equal(from_int.X, from_gen.X)
    assert not torch.equal(datasets.load("kunstner-fig1", seed=gen).X, from_gen.X)  # advanced
    assert torch.equal(torch.get_rng_state(), state), "global RNG must not be used"


def test_seed_is_required_and_typed():
    with pytest.raises(TypeError, match="seed"):
        datasets.load("kunstner-fig1")
    with pytest.raises(TypeError, match="seed must be"):
        datasets.load("kunstner-fig1", seed=1.5)
    with pytest.raises(ValueError, match="n must be positive"):
        datasets.load("kunstner-fig2-linear-correct", seed=0, n=0)


def _within(estimate: float, target: float, se: float, k: float = 5.0) -> bool:
    return abs(estimate - target) <= k * se


def test_fig1_distribution():
    data = datasets.load("kunstner-fig1", seed=0, n=BIG)
    assert torch.equal(data.X[:, 0], torch.ones(BIG, dtype=torch.float64))
    log_x = data.X[:, 1].log()
    assert _within(log_x.mean().item(), 0.0, 0.75 / math.sqrt(BIG))
    assert _within(log_x.std().item(), 0.75, 0.75 / math.sqrt(2 * BIG))
    theta = torch.linalg.lstsq(data.X, data.y.unsqueeze(1)).solution.squeeze(1)
    torch.testing.assert_close(
        theta, torch.tensor([2.0, 2.0], dtype=torch.float64), atol=0.02, rtol=0
    )
    residual = data.y - data.X @ theta
    assert _within(residual.std().item(), 1.0, 1.0 / math.sqrt(2 * BIG))


@pytest.mark.parametrize("variant", sorted(LOGISTIC_CLASSES))
def test_fig2_logistic_class_moments_match_table_d1(variant):
    data = datasets.load(f"kunstner-fig2-logistic-{variant}", seed=1, n=BIG, reading="literal")
    assert set(data.y.unique().tolist()) == {0.0, 1.0}
    for label, (mean, cov) in enumerate(LOGISTIC_CLASSES[variant]):
        x = data.X[data.y == label]
        assert x.shape[0] == BIG // 2
        cov = torch.tensor(cov, dtype=torch.float64)
        se = (cov.diagonal() / x.shape[0]).sqrt()
        assert (x.mean(0) - torch.tensor(mean, dtype=torch.float64)).abs().le(5 * se).all()
        # entries of a sample covariance have sd <= sqrt(2/n) * max variance
        tol = 5 * math.sqrt(2 / x.shape[0]) * cov.diagonal().max().item()
        assert (torch.cov(x.T) - cov).abs().max().item() <= tol


def test_fig2_logistic_is_shuffled():
    y = datasets.load("kunstner-fig2-logistic-correct", seed=2).y
    assert 0 < y[:500].sum().item() < 500


@pytest.mark.parametrize(
    ("variant", "noise_std", "quadratic"),
    [("correct", 1.0, 0.0), ("misspecified-a", 2.0, 0.0), ("misspecified-b", 1.0, 0.5)],
)
def test_fig2_linear_matches_table_d2(variant, noise_std, quadratic):
    data = datasets.load(f"kunstner-fig2-linear-{variant}", seed=3, n=BIG)
    assert torch.equal(data.X[:, 0], torch.ones(BIG, dtype=torch.float64))
    x = data.X[:, 1]
    assert _within(x.mean().item(), 0.0, 1 / math.sqrt(BIG))
    assert _within(x.std().item(), 1.0, 1 / math.sqrt(2 * BIG))
    eps = data.y - x - quadratic * x**2
    assert _within(eps.mean().item(), 0.0, noise_std / math.sqrt(BIG))
    assert _within(eps.std().item(), noise_std, noise_std / math.sqrt(2 * BIG))
    assert abs(torch.corrcoef(torch.stack([eps, x]))[0, 1].item()) < 5 / math.sqrt(BIG)
