"""The batched GD/NGD/EFGD runner of the Kunstner experiments, against a plain loop."""

import math

import pytest
import torch

import fisherlab as fl
from fisherlab.engine.glm import LinearModel
from fisherlab.experiments.kunstner.preconditioning import (
    gradient_resolved,
    log10_grid,
    optimum,
    run_batch,
    select,
)


def _model():
    g = torch.Generator().manual_seed(3)
    X = torch.cat([torch.randn(20, 2, generator=g, dtype=torch.float64), torch.ones(20, 1)], 1)
    y = X @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) + 0.3 * torch.randn(
        20, generator=g, dtype=torch.float64
    )
    return X, y, LinearModel(X, y, fl.Gaussian())


@pytest.mark.parametrize("method", ["GD", "NGD", "EFGD"])
def test_run_batch_matches_a_plain_loop(method):
    X, y, model = _model()
    log10_lrs, log10_damping = torch.tensor([-2.0, -1.0, -0.5], dtype=torch.float64), -3.0
    trajectory = run_batch(
        model, method, log10_lrs, None if method == "GD" else log10_damping, 15, keep_thetas=True
    )
    N = X.shape[0]
    for r, log10_lr in enumerate(log10_lrs.tolist()):
        theta = torch.zeros(3, dtype=torch.float64)
        for t in range(15):
            residual = X @ theta - y
            gradient = X.T @ residual / N
            if method == "GD":
                direction = gradient
            else:
                weights = torch.ones(N, dtype=torch.float64) if method == "NGD" else residual**2
                B = (X.T * weights) @ X / N + 10**log10_damping * torch.eye(3, dtype=torch.float64)
                direction = torch.linalg.solve(B, gradient)
            theta = theta - 10**log10_lr * direction
            torch.testing.assert_close(trajectory.thetas[t + 1, r], theta, rtol=1e-12, atol=1e-12)
        loss = 0.5 * ((X @ theta - y) ** 2).mean()
        torch.testing.assert_close(trajectory.losses[-1, r], loss, rtol=1e-12, atol=0)


def test_diverging_runs_stop_and_report_inf():
    _, _, model = _model()
    trajectory = run_batch(model, "GD", torch.tensor([-1.0, 2.0], dtype=torch.float64), None, 30)
    assert math.isfinite(trajectory.losses[-1, 0])
    assert math.isinf(trajectory.losses[-1, 1])
    first_inf = int(torch.isinf(trajectory.losses[:, 1]).nonzero()[0])
    assert trajectory.losses[first_inf - 1, 1] <= 100 * trajectory.losses[0, 1]
    assert torch.isinf(trajectory.losses[first_inf:, 1]).all()


def test_log10_grid_reproduces_numpy_logspace_exponents():
    grid = log10_grid(-20, 10, 241)
    assert len(grid) == 241 and grid[0] == -20 and grid[-1] == 10
    assert grid[1] == -19.875 and -5.625 in grid and 0.125 in grid


def test_select_picks_lowest_and_lists_ties():
    cells = {(0.0, -1.0): 1.0, (0.5, -1.0): 1.0 + 1e-9, (1.0, -2.0): 2.0, (1.5, -1.0): math.inf}
    best_key, best, ties = select(cells, tie_rtol=1e-6)
    assert best_key == (0.0, -1.0) and best == 1.0
    assert ties == [(0.0, -1.0), (0.5, -1.0)]
    with pytest.raises(ValueError, match="diverged"):
        select({(0.0, None): math.inf}, 1e-6)


def test_optimum_is_the_least_squares_solution_and_refuses_other_likelihoods():
    X, y, model = _model()
    theta = optimum(model)
    torch.testing.assert_close(theta, torch.linalg.solve(X.T @ X, X.T @ y))
    with pytest.raises(ValueError, match="Gaussian"):
        optimum(LinearModel(X, (y > 0).double(), fl.Bernoulli()))


def test_gradient_resolved_separates_round_off_from_a_real_gradient():
    X, y, model = _model()
    theta = optimum(model)
    far = theta + torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    # at the least-squares solution the gradient is cancellation noise
    assert model.gradient(theta).norm() < 1e-12
    assert gradient_resolved(model, torch.stack([theta, far])).tolist() == [False, True]


@pytest.mark.parametrize("method", ["NGD", "EFGD"])
def test_run_batch_matches_a_plain_loop_for_logistic_regression(method):
    X, y, _ = _model()
    labels = (y > y.median()).double()
    model = LinearModel(X, labels, fl.Bernoulli())
    log10_lrs, log10_damping = torch.tensor([-1.0, 0.0], dtype=torch.float64), -2.0
    trajectory = run_batch(model, method, log10_lrs, log10_damping, 10, keep_thetas=True)
    N = X.shape[0]
    for r, log10_lr in enumerate(log10_lrs.tolist()):
        theta = torch.zeros(3, dtype=torch.float64)
        for t in range(10):
            p = torch.sigmoid(X @ theta)
            gradient = X.T @ (p - labels) / N
            weights = p * (1 - p) if method == "NGD" else (p - labels) ** 2
            B = (X.T * weights) @ X / N + 10**log10_damping * torch.eye(3, dtype=torch.float64)
            theta = theta - 10**log10_lr * torch.linalg.solve(B, gradient)
            torch.testing.assert_close(trajectory.thetas[t + 1, r], theta, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("method", ["GD", "NGD", "EFGD"])
def test_run_batch_after_every_run_stopped_keeps_inf_losses_and_the_last_parameters(method):
    _, _, model = _model()
    log10_lrs = torch.tensor([3.0, 4.0], dtype=torch.float64)
    damping = None if method == "GD" else -8.0
    trajectory = run_batch(model, method, log10_lrs, damping, 12, keep_thetas=True)
    assert trajectory.losses.shape == (13, 2) and trajectory.thetas.shape == (13, 2, 3)
    stopped = int(torch.isinf(trajectory.losses).all(1).nonzero()[0])
    assert stopped < 12 and torch.isinf(trajectory.losses[stopped:]).all()
    assert (trajectory.thetas[stopped:] == trajectory.thetas[stopped]).all()
    longer = run_batch(model, method, log10_lrs, damping, 20, keep_thetas=True)
    assert torch.equal(longer.losses[:13], trajectory.losses)


@pytest.mark.parametrize("method", ["GD", "NGD", "EFGD"])
def test_runs_that_stop_leave_the_others_as_if_run_alone(method):
    # step sizes from converging to diverging at different iterations; per-run dampings
    _, _, model = _model()
    log10_lrs = torch.tensor([-1.0, 0.9, -0.5, 0.6, 0.4, 1.5], dtype=torch.float64)
    dampings = None if method == "GD" else torch.tensor([-3.0, -2.0, -1.0, -3.0, -2.0, -1.0])
    batch = run_batch(model, method, log10_lrs, dampings, 25, keep_thetas=True)
    stops = torch.isinf(batch.losses).long().argmax(0)  # 0: never stops
    assert (stops == 0).any() and (stops > 0).any()
    # EF systems are ill-conditioned: batched and single solves round apart (≈1e-7 here)
    rtol = 1e-6 if method == "EFGD" else 1e-12
    for r in range(len(log10_lrs)):
        alone = run_batch(
            model, method, log10_lrs[r : r + 1], None if dampings is None else dampings[r : r + 1],
            25, keep_thetas=True,
        )  # fmt: skip
        torch.testing.assert_close(batch.losses[:, r], alone.losses[:, 0], rtol=rtol, atol=0)
        torch.testing.assert_close(batch.thetas[:, r], alone.thetas[:, 0], rtol=rtol, atol=1e-12)
