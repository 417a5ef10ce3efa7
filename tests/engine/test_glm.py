"""The batched linear-model closed forms against the generic engine."""

import pytest
import torch

import fisherlab as fl
from fisherlab.engine.glm import LinearModel


def _problem(likelihood_name, n=9, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    if likelihood_name == "gaussian":
        return X, torch.randn(n, generator=g, dtype=torch.float64), fl.Gaussian(sigma=0.7)
    return X, torch.randint(0, 2, (n,), generator=g).double(), fl.Bernoulli()


@pytest.mark.parametrize("likelihood_name", ["gaussian", "bernoulli"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_linear_model_matches_curvature(likelihood_name, reduction):
    X, y, likelihood = _problem(likelihood_name)
    glm = LinearModel(X, y, likelihood, reduction=reduction)
    thetas = torch.randn(
        3, X.shape[1], dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    batched = {
        "loss": glm.loss(thetas),
        "gradient": glm.gradient(thetas),
        "fisher": glm.fisher(thetas),
        "empirical_fisher": glm.empirical_fisher(thetas),
        "hessian": glm.hessian(thetas),
        "covariance": glm.covariance(thetas),
        "per_sample_gradients": glm.per_sample_gradients(thetas),
    }
    for i, theta in enumerate(thetas):
        model = torch.nn.Linear(X.shape[1], 1, bias=False).double()
        with torch.no_grad():
            model.weight.copy_(theta.unsqueeze(0))
        c = fl.Curvature(model, likelihood, X, y.unsqueeze(1), reduction=reduction)
        expected = {
            "loss": c.loss(),
            "gradient": c.gradient(),
            "fisher": c.fisher(),
            "empirical_fisher": c.empirical_fisher(),
            "hessian": c.hessian(),
            "covariance": c.covariance(),
            "per_sample_gradients": c.per_sample_gradients(),
        }
        for name, value in expected.items():
            torch.testing.assert_close(batched[name][i], value, rtol=1e-10, atol=1e-12, msg=name)


def test_linear_model_rejects_categorical_and_bad_shapes():
    X, y, _ = _problem("gaussian")
    with pytest.raises(ValueError, match="one output"):
        LinearModel(X, y.long(), fl.Categorical())
    glm = LinearModel(X, y, fl.Gaussian())
    with pytest.raises(ValueError, match="last dimension 4"):
        glm.loss(torch.zeros(3))
    with pytest.raises(ValueError, match="disagree in the number of samples"):
        LinearModel(X, y[:-1], fl.Gaussian())


@pytest.mark.parametrize("likelihood_name", ["gaussian", "bernoulli"])
def test_point_computes_each_quantity_once_and_equals_the_methods(likelihood_name):
    X, y, likelihood = _problem(likelihood_name)
    glm = LinearModel(X, y, likelihood)
    thetas = torch.randn(
        2, 5, X.shape[1], dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    point = glm.at(thetas)
    for name in ("loss", "gradient", "fisher", "empirical_fisher", "hessian", "covariance"):
        value = getattr(point, name)
        assert getattr(point, name) is value
        assert torch.equal(value, getattr(glm, name)(thetas)), name
    assert point.fisher.shape == (2, 5, X.shape[1], X.shape[1])
    with pytest.raises(ValueError, match="last dimension 4"):
        glm.at(torch.zeros(2, 3))


def test_fisher_is_constant_only_for_the_gaussian():
    thetas = torch.randn(2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for likelihood_name, constant in (("gaussian", True), ("bernoulli", False)):
        X, y, likelihood = _problem(likelihood_name)
        glm = LinearModel(X, y, likelihood)
        F = glm.fisher(thetas)
        assert glm.fisher_is_constant is constant
        assert torch.allclose(F[0], F[1], rtol=1e-12, atol=0) is constant
