"""Helpers shared by the wen-* classifier experiments."""

import math

import pytest
import torch

from fisherlab.experiments.wen.common import gap_fraction, loss_and_accuracy, make_cnn


def test_gap_fraction_is_zero_at_lb_one_at_sb():
    values = {"SB": [10.0, 12.0], "LB": [2.0, 4.0], "mid": [6.0, 8.0], "above": [19.0, 19.0]}
    assert gap_fraction(values, "LB") == 0.0
    assert gap_fraction(values, "SB") == 1.0
    assert gap_fraction(values, "mid") == pytest.approx(0.5)
    assert gap_fraction(values, "above") == pytest.approx(2.0)
    assert math.isnan(gap_fraction({"SB": [1.0], "LB": [1.0], "x": [2.0]}, "x"))


def test_loss_and_accuracy_counts_a_diverged_model_as_accuracy_zero():
    X, y = torch.zeros(4, 2), torch.tensor([0, 0, 0, 1])
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.tensor([1.0, 0.0]))
    loss, accuracy = loss_and_accuracy(model, X, y)
    assert accuracy == 0.75 and math.isfinite(loss)
    with torch.no_grad():
        model.bias.fill_(math.nan)
    loss, accuracy = loss_and_accuracy(model, X, y)
    assert math.isnan(loss) and accuracy == 0.0


def test_make_cnn_is_seeded_and_leaves_the_global_generator_alone():
    state = torch.random.get_rng_state()
    a, b, c = make_cnn(4, 10, seed=2), make_cnn(4, 10, seed=2), make_cnn(4, 10, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a[0].weight, c[0].weight)
    assert not a[-1].weight.any()  # the zero read-out layer
