"""The fast engine against BackPACK where both compute the same quantity."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import fisherlab as fl
from fisherlab.engine.hooks import compute

backpack = pytest.importorskip("backpack")
extensions = pytest.importorskip("backpack.extensions")

DT = torch.float64
N = 6


def _mlp():
    return nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))


def _cnn():
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(3, 4, 2, padding=1, dilation=2),
        nn.Sigmoid(),
        nn.Flatten(),
        nn.Linear(4 * 1 * 1, 3),
    )


CASES = [
    ("mlp", _mlp, (5,), nn.CrossEntropyLoss()),
    ("mlp-mse-sum", _mlp, (5,), nn.MSELoss(reduction="sum")),
    ("cnn", _cnn, (2, 6, 6), nn.CrossEntropyLoss(reduction="sum")),
    ("cnn-mse", _cnn, (2, 6, 6), nn.MSELoss()),
]


@pytest.mark.parametrize("name, build, in_shape, loss_fn", CASES, ids=[c[0] for c in CASES])
def test_same_numbers_as_backpack(name, build, in_shape, loss_fn):
    torch.manual_seed(0)
    model = build().to(DT)
    X = torch.randn(N, *in_shape, dtype=DT)
    if isinstance(loss_fn, nn.CrossEntropyLoss):
        y = torch.randint(0, 3, (N,))
    else:
        y = torch.randn(N, 3, dtype=DT)
    likelihood = fl.likelihoods.from_loss(loss_fn)
    stats = compute(
        model,
        likelihood,
        X,
        y,
        (
            "gradient",
            "per_sample_gradients",
            "second_moment",
            "variance",
            "l2_norm",
            "ggn_diag",
            "kflr",
        ),
    )
    c = 1.0 / N if loss_fn.reduction == "mean" else 1.0
    reduced = compute(model, likelihood, X, y, ("kflr",), kfac_approx="reduce")
    positions = {}
    handles = [
        m.register_forward_hook(
            lambda m, args, out: positions.__setitem__(m.weight, out[0].numel() // out.shape[1])
        )
        for m in model.modules()
        if isinstance(m, (nn.Linear, nn.Conv2d))
    ]
    with torch.no_grad():
        model(X)
    for handle in handles:
        handle.remove()

    bp_model = backpack.extend(build().to(DT))
    bp_model.load_state_dict(model.state_dict())
    bp_loss = backpack.extend(type(loss_fn)(reduction=loss_fn.reduction))
    exts = [
        extensions.BatchGrad(),
        extensions.SumGradSquared(),
        extensions.Variance(),
        extensions.BatchL2Grad(),
        extensions.DiagGGNExact(),
        extensions.KFLR(),
    ]
    with backpack.backpack(*exts):
        bp_loss(bp_model(X), y).backward()

    def close(a, b, what):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13, msg=what)

    for p, q in zip(model.parameters(), bp_model.parameters(), strict=True):
        close(stats["gradient"][p], q.grad, "gradient")
        close(c * stats["per_sample_gradients"][p], q.grad_batch, "BatchGrad")
        close(c * stats["second_moment"][p], q.sum_grad_squared, "SumGradSquared")
        # BackPACK's Variance is the variance of its scaled per-sample gradients c g_n
        # around their mean: Σ/N² in both reductions
        close(stats["variance"][p] / N**2, q.variance, "Variance")
        close((c * stats["l2_norm"][p]) ** 2, q.batch_l2, "BatchL2Grad")
        close(stats["ggn_diag"][p], q.diag_ggn_exact, "DiagGGNExact")
        if p.ndim > 1 and isinstance(q, nn.Parameter):
            # BackPACK's KFLR of a weight-shared layer is (G_reduce, T · A_expand) without
            # the bias column (T positions; T = 1 for these Linear layers)
            G_bp, A_bp = q.kflr
            close(reduced["kflr"][p][0], G_bp, "KFLR G = reduce G")
            close(positions[p] * stats["kflr"][p][1], A_bp, "KFLR A = T · expand A")
