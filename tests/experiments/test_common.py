"""The helpers shared by the experiments of several papers (fisherlab.experiments.common)."""

import math

import pytest
import torch

from fisherlab.experiments.common import ellipse_points, evaluate, make_mlp, seeded


def test_seeded_draws_from_the_seed_and_restores_the_global_generator():
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a = seeded(7, lambda: torch.randn(5))
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.manual_seed(7)
    assert torch.equal(a, torch.randn(5))
    assert not torch.equal(seeded(8, lambda: torch.randn(5)), a)


def test_make_mlp_is_the_seeded_stack_of_linear_layers():
    model = make_mlp([4, 6, 5, 3], torch.nn.ReLU, seed=3)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert [(m.in_features, m.out_features) for m in model[::2]] == [(4, 6), (6, 5), (5, 3)]
    torch.manual_seed(3)  # the same draws as building the layers by hand after manual_seed
    by_hand = [torch.nn.Linear(4, 6), torch.nn.Linear(6, 5), torch.nn.Linear(5, 3)]
    for layer, reference in zip(model[::2], by_hand, strict=True):
        assert torch.equal(layer.weight, reference.weight)
        assert torch.equal(layer.bias, reference.bias)
    other = make_mlp([4, 6, 5, 3], torch.nn.ReLU, seed=4)
    assert not torch.equal(other[0].weight, model[0].weight)


@pytest.mark.parametrize("widths", [[3], [3, 0], []])
def test_make_mlp_refuses_bad_widths(widths):
    with pytest.raises(ValueError, match="widths"):
        make_mlp(widths, torch.nn.Tanh, seed=0)


def test_evaluate_against_brute_force():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(30, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (30,), generator=g)
    model = torch.nn.Linear(4, 3).double()
    loss, accuracy = evaluate(model, X, y)
    with torch.no_grad():
        logits = model(X)
    nll = [-(logits[i, y[i]] - torch.logsumexp(logits[i], 0)).item() for i in range(X.shape[0])]
    correct = sum(int(logits[i].argmax()) == int(y[i]) for i in range(X.shape[0]))
    assert loss == pytest.approx(sum(nll) / len(nll), rel=1e-12)
    assert accuracy == correct / X.shape[0]


@pytest.mark.parametrize("level", [0.5, 2.0])
def test_ellipse_points_lie_on_the_contour(level):
    M = torch.tensor([[3.0, 1.2], [1.2, 1.0]], dtype=torch.float64)
    c = torch.tensor([0.5, -1.0], dtype=torch.float64)
    pts = ellipse_points(M, level, c, num=50)
    assert pts.shape == (50, 2)
    d = pts - c
    assert torch.allclose(0.5 * ((d @ M) * d).sum(1), torch.full((50,), level, dtype=M.dtype))
    # the default is the contour θᵀMθ = 1 around the origin
    d = ellipse_points(M)
    assert torch.allclose(((d @ M) * d).sum(1), torch.ones(200, dtype=M.dtype))
    # the points go once around: the largest distance is the long half-axis 1/sqrt(λ_min)
    radius = d.norm(dim=1).max().item()
    assert radius == pytest.approx(1 / math.sqrt(torch.linalg.eigvalsh(M)[0].item()), rel=1e-3)


def test_ellipse_points_refuses_bad_arguments():
    with pytest.raises(ValueError, match="level"):
        ellipse_points(torch.eye(2, dtype=torch.float64), level=0.0)
    with pytest.raises(ValueError, match="2x2"):
        ellipse_points(torch.eye(3, dtype=torch.float64))
