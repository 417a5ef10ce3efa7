"""The problems and helpers shared by the balles-* training experiments."""

import math

import pytest
import torch

from fisherlab.experiments.balles.training import Problem, log10, make_model, measure


def _problem(hidden=(5,)):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(12, 64, generator=g)
    y = torch.arange(12) % 3
    return Problem("toy", X, y, X[:6], y[:6], hidden)


def test_log10_is_minus_infinity_at_zero():
    assert log10(100.0) == pytest.approx(2.0)
    assert log10(0.0) == -math.inf


def test_measure_is_the_training_loss_and_the_test_accuracy():
    problem = _problem()
    model = make_model(problem, seed=0)
    loss, accuracy = measure(model, problem)
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy(model(problem.X_train), problem.y_train)
        correct = (model(problem.X_test).argmax(1) == problem.y_test).sum().item()
    assert loss == pytest.approx(float(expected))
    assert accuracy == correct / 6
    with torch.no_grad():
        model[-1].bias.fill_(math.inf)
    assert measure(model, problem)[0] == math.inf  # a loss that is not finite reads +inf


def test_make_model_is_seeded_and_leaves_the_global_generator_alone():
    state = torch.random.get_rng_state()
    a, b = make_model(_problem(()), seed=1), make_model(_problem(()), seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert [type(m).__name__ for m in make_model(_problem((5, 4)), 0)] == [
        "Linear", "ReLU", "Linear", "ReLU", "Linear"
    ]  # fmt: skip
