"""The data, network, training loop, sharpness and temperature fit of the wen-* classifiers."""

from __future__ import annotations

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


def test_warmup_schedule():
    """The step size grows linearly over the warm-up: one update of a linear model."""
    from fisherlab.experiments.wen.common import Data, Regime, train

    X = torch.randn(8, 1, 3)
    data = Data(X, torch.zeros(8, dtype=torch.int64), X, torch.zeros(8, dtype=torch.int64))
    seen = []

    class Probe(torch.optim.SGD):
        def step(self, closure=None):
            seen.append(self.param_groups[0]["lr"])
            return super().step(closure)

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3, 2))
    original = torch.optim.SGD
    torch.optim.SGD = Probe
    try:
        train(
            model, data, Regime("LB", 4, None, 0.8, warmup_fraction=0.5),
            small_batch_size=2, large_batch_size=4, fisher="empirical", seed=0, updates=8,
        )  # fmt: skip
    finally:
        torch.optim.SGD = original
    assert seen == pytest.approx([0.2, 0.4, 0.6, 0.8, 0.8, 0.8, 0.8, 0.8])


def test_sharpness_against_dense_hessian():
    """λ_max by Lanczos equals the top eigenvalue of the dense tempered Hessian (float64)."""
    from fisherlab import Curvature
    from fisherlab.experiments.wen.common import Data, _Tempered, fit_temperature, sharpness
    from fisherlab.likelihoods import Categorical

    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.Conv1d(1, 2, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(10, 3),
    )  # fmt: skip
    X, y = torch.randn(20, 1, 5), torch.randint(0, 3, (20,))
    Xt, yt = torch.randn(30, 1, 5), torch.randint(0, 3, (30,))
    data = Data(X, y, Xt, yt)
    out = sharpness(model, data, samples=12, tol=1e-10)
    net = model.double()
    T = fit_temperature(net, Xt.double(), yt)
    assert out["temperature"] == pytest.approx(T)
    H = Curvature(_Tempered(net, T), Categorical(), X[:12].double(), y[:12]).hessian(form="dense")
    assert out["lambda_max"] == pytest.approx(float(torch.linalg.eigvalsh(H)[-1]), rel=1e-8)


def test_fit_temperature_minimises_the_loss():
    from fisherlab.experiments.wen.common import fit_temperature

    torch.manual_seed(0)
    logits = 5.0 * torch.randn(200, 4, dtype=torch.float64)
    y = torch.where(torch.rand(200) < 0.6, logits.argmax(1), torch.randint(0, 4, (200,)))
    model = torch.nn.Identity()
    T = fit_temperature(model, logits, y)
    grid = torch.logspace(-2, 2, 4001, dtype=torch.float64)
    losses = [float(torch.nn.functional.cross_entropy(logits / t, y)) for t in grid]
    best = float(grid[min(range(len(losses)), key=losses.__getitem__)])
    assert T == pytest.approx(best, rel=5e-3)
