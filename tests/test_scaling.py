"""The reduction factors, defined once in fisherlab.scaling."""

from __future__ import annotations

import pytest
import torch

from fisherlab.scaling import Scaling

CASES = [  # reduction, N, c, a
    ("mean", 4, 0.25, 0.25),
    ("sum", 4, 1.0, 4.0),
    ("mean", 1, 1.0, 1.0),
    ("sum", 1, 1.0, 1.0),
]


@pytest.mark.parametrize("reduction, n, c, a", CASES)
def test_factors(reduction, n, c, a):
    s = Scaling(reduction, n)
    assert (s.c, s.a) == (c, a)
    assert s.normalize(torch.tensor(8.0)).item() == pytest.approx(8.0 * c)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_covariance_rule_is_the_sample_covariance_of_the_one_sample_estimate(reduction):
    g = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    s = Scaling(reduction, 6)
    grad = s.c * g.sum(0)
    # the one-sample estimate of ∇L: g_n (mean) or N g_n (sum)
    estimate = g if reduction == "mean" else 6 * g
    for unbiased, ddof in ((False, 0), (True, 1)):
        expected = torch.cov(estimate.T, correction=ddof)
        got = s.covariance(g.T @ g, torch.outer(grad, grad), unbiased)
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_unbiased_needs_two_samples_and_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="at least 2 samples"):
        Scaling("mean", 1).unbiased_factor(True)
    assert Scaling("mean", 1).unbiased_factor(False) == 1.0
    with pytest.raises(ValueError, match="reduction"):
        Scaling("avg", 3)
    with pytest.raises(TypeError, match="num_samples"):
        Scaling("mean", 3.0)
    with pytest.raises(ValueError, match="non-negative"):
        Scaling("sum", -1)


def test_the_old_scale_methods_of_curvature_warn_and_agree():
    import fisherlab as fl
    from fisherlab.quantities import Quantity, QuantitySpec

    model = torch.nn.Linear(2, 2).double()
    X, y = torch.randn(5, 2, dtype=torch.float64), torch.randint(0, 2, (5,))
    c = fl.Curvature(model, fl.Categorical(), X, y, reduction="sum")
    with pytest.warns(DeprecationWarning, match="scaling.a"):
        assert c.second_moment_scale() == 5.0
    with pytest.warns(DeprecationWarning, match="unbiased_factor"):
        assert c.covariance_scale(QuantitySpec(Quantity.COVARIANCE, unbiased=True)) == 5 / 4
