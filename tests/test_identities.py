"""Identities between the quantities and statistical properties of the Monte-Carlo Fisher."""

from __future__ import annotations

import pytest
import torch

import fisherlab as fl
from cases import COVERING_CASES, COVERING_IDS, QUANTITIES
from oracles import assert_close, relative_error

RTOL = 1e-10
GET = {
    **QUANTITIES,
    "fisher_mc": lambda c, form: c.fisher(
        form=form, mc_samples=2, generator=torch.Generator().manual_seed(4)
    ),
}


def test_fisher_equals_ggn(problem):
    """Kunstner et al. Prop. 1, for the three likelihoods, every model, both reductions."""
    c = problem.curvature()
    assert_close(c.fisher(), c.ggn(), 1e-12)
    assert_close(c.fisher(form="diag"), c.ggn(form="diag"), 1e-12)


@pytest.mark.parametrize("problem", COVERING_CASES, ids=COVERING_IDS, indirect=True)
@pytest.mark.parametrize("quantity", list(GET))
def test_forms_agree(problem, quantity):
    """diag(dense) = diag form; operator @ V = dense @ V; operator.to_dense() = dense."""
    c = problem.curvature()
    dense = GET[quantity](c, "dense")
    assert_close(GET[quantity](c, "diag"), torch.diagonal(dense).clone(), RTOL)
    op = GET[quantity](c, "operator")
    V = torch.randn(
        c.num_params, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    assert_close(op @ V, dense @ V, RTOL)
    assert_close(op @ V[:, 1], dense @ V[:, 1], RTOL)
    assert_close(op.to_dense(), dense, RTOL)


def test_covariance_decomposition(problem):
    """Mean: EF = Σ + ∇L∇Lᵀ (Balles Eq. 3.29). Sum: N·EF = Σ + ∇L∇Lᵀ (Kunstner Eq. 18)."""
    c = problem.curvature()
    N = problem.X.shape[0]
    g = c.gradient()
    EF, Sigma = c.empirical_fisher(), c.covariance()
    scale = 1.0 if problem.reduction == "mean" else N
    assert_close(Sigma + torch.outer(g, g), scale * EF, RTOL)
    assert_close(c.variance() + g**2, scale * c.empirical_fisher(form="diag"), RTOL)
    assert_close(c.covariance(unbiased=True), N / (N - 1) * Sigma, RTOL)
    assert_close(c.variance(unbiased=True), N / (N - 1) * c.variance(), RTOL)
    assert_close(c.variance(form="dense"), torch.diag(torch.diagonal(Sigma)), RTOL)
    # Σ is a covariance: positive semi-definite
    assert torch.linalg.eigvalsh(Sigma).min() >= -1e-12 * torch.linalg.norm(Sigma)


def test_mean_and_sum_reductions_differ_by_n(problem):
    c = problem.curvature()
    other = "sum" if problem.reduction == "mean" else "mean"
    d = fl.Curvature(problem.model, problem.likelihood, problem.X, problem.y, reduction=other)
    N = problem.X.shape[0]
    factor = N if problem.reduction == "mean" else 1.0 / N  # other / this
    for name in ("empirical_fisher", "fisher", "ggn", "hessian"):
        assert_close(GET[name](d, "dense"), factor * GET[name](c, "dense"), RTOL)
    assert_close(d.loss(), factor * c.loss(), RTOL)
    assert_close(d.gradient(), factor * c.gradient(), RTOL)
    # the covariance of the one-sample estimate scales like ∇L∇Lᵀ: by factor²
    assert_close(d.covariance(), factor**2 * c.covariance(), RTOL)


# -- Monte-Carlo Fisher -----------------------------------------------------------------------
def _mc_problem(likelihood: str):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)
    ).double()
    g = torch.Generator().manual_seed(1)
    X = torch.randn(6, 3, generator=g, dtype=torch.float64)
    lik, y = {
        "gaussian": (fl.Gaussian(sigma=0.5), torch.randn(6, 3, generator=g, dtype=torch.float64)),
        "categorical": (fl.Categorical(), torch.randint(0, 3, (6,), generator=g)),
        "bernoulli": (fl.Bernoulli(), torch.randint(0, 2, (6, 3), generator=g).double()),
    }[likelihood]
    return fl.Curvature(model, lik, X, y)


@pytest.mark.parametrize("likelihood", ["gaussian", "categorical", "bernoulli"])
def test_mc_fisher_error_decreases_like_one_over_sqrt_samples(likelihood):
    """Mean relative error over 24 seeds at S=4 and S=64 differ by √16 = 4, within [3, 5.3].

    The Monte-Carlo estimate is an average of S i.i.d. matrices, so its error is
    (to the CLT approximation) a fixed random matrix divided by √S; the mean over 24 seeds
    of its norm estimates the scale with a few percent of noise.
    """
    c = _mc_problem(likelihood)
    exact = c.fisher()
    errors = {}
    for S in (4, 64):
        errors[S] = (
            sum(
                relative_error(
                    c.fisher(mc_samples=S, generator=torch.Generator().manual_seed(seed)), exact
                )
                for seed in range(24)
            )
            / 24
        )
    ratio = errors[4] / errors[64]
    assert 3.0 <= ratio <= 16 / 3, (errors, ratio)
    # the diagonal form is the diagonal of the same estimate
    diag = c.fisher(form="diag", mc_samples=64, generator=torch.Generator().manual_seed(0))
    dense = c.fisher(mc_samples=64, generator=torch.Generator().manual_seed(0))
    assert_close(diag, torch.diagonal(dense).clone(), RTOL)


@pytest.mark.parametrize("likelihood", ["gaussian", "categorical", "bernoulli"])
def test_mc_fisher_is_unbiased(likelihood):
    """Average of 200 single-sample estimates (4000 draws) near the exact Fisher."""
    c = _mc_problem(likelihood)
    exact = c.fisher()
    estimate = c.fisher(mc_samples=4000, generator=torch.Generator().manual_seed(0))
    assert relative_error(estimate, exact) < 0.1


@pytest.mark.parametrize("form", ["dense", "diag", "operator"])
def test_mc_fisher_is_reproducible_with_a_generator(form):
    c = _mc_problem("categorical")

    def draw(seed):
        out = c.fisher(form=form, mc_samples=3, generator=torch.Generator().manual_seed(seed))
        return out.to_dense() if form == "operator" else out

    assert torch.equal(draw(7), draw(7))
    assert not torch.allclose(draw(7), draw(8))


def test_mc_fisher_operator_keeps_its_samples():
    """Repeated products of one operator use the same sampled labels: a fixed matrix."""
    c = _mc_problem("bernoulli")
    op = c.fisher(form="operator", mc_samples=2, generator=torch.Generator().manual_seed(3))
    v = torch.randn(c.num_params, dtype=torch.float64)
    assert torch.equal(op @ v, op @ v)
    dense = c.fisher(mc_samples=2, generator=torch.Generator().manual_seed(3))
    assert_close(op.to_dense(), dense, RTOL)


# -- Kunstner et al.: the empirical Fisher is not the Fisher ------------------------------------
def _newton_fit(c: fl.Curvature, steps: int = 30) -> None:
    """Fit the model's parameters to the MLE with Newton steps on the library's Hessian."""
    params = [p for p in c.model.parameters() if p.requires_grad]
    for _ in range(steps):
        step = torch.linalg.solve(c.hessian(), c.gradient())
        with torch.no_grad():
            offset = 0
            for p in params:
                p -= step[offset : offset + p.numel()].view_as(p)
                offset += p.numel()
        if step.norm() < 1e-12:
            break
    assert c.gradient().norm() < 1e-8


def _regression(likelihood: str, n: int, noise: float = 1.0):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, 2, generator=g, dtype=torch.float64)
    theta, bias = torch.tensor([1.5, -1.0], dtype=torch.float64), 0.3
    f = X @ theta + bias
    if likelihood == "bernoulli":
        y = torch.bernoulli(torch.sigmoid(f), generator=g)[:, None]
        lik = fl.Bernoulli()
    else:
        y = (f + noise * torch.randn(n, generator=g, dtype=torch.float64))[:, None]
        lik = fl.Gaussian(sigma=1.0)
    model = torch.nn.Linear(2, 1).double()
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
    return fl.Curvature(model, lik, X, y)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_empirical_fisher_approximates_fisher_only_at_a_well_specified_optimum(likelihood):
    """Well-specified model, N = 20000, at the MLE: ‖EF − F‖/‖F‖ < 0.05. Far away: > 0.5."""
    c = _regression(likelihood, 20_000)
    _newton_fit(c)
    near = relative_error(c.empirical_fisher(), c.fisher())
    assert near < 0.05, near
    with torch.no_grad():
        c.model.weight.mul_(-2.0).add_(2.0)
        c.model.bias.add_(2.0)
    far = relative_error(c.empirical_fisher(), c.fisher())
    assert far > 0.5, far


def test_empirical_fisher_differs_from_fisher_for_a_misspecified_model():
    """Noise σ_true = 2 but likelihood σ = 1: at the optimum EF ≈ σ_true²·F = 4F."""
    c = _regression("gaussian", 20_000, noise=2.0)
    _newton_fit(c)
    EF, F = c.empirical_fisher(), c.fisher()
    assert relative_error(EF, F) > 2.0
    assert relative_error(EF, 4.0 * F) < 0.1
    # for a linear model with a Gaussian likelihood, Fisher = GGN = Hessian
    assert_close(F, c.ggn(), 1e-12)
    assert_close(F, c.hessian(), 1e-10)
