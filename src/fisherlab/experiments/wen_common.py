"""Shared pieces of the Wen et al. 2020 classifier experiments (``wen-fig2-3``, ``wen-tables``).

A small MLP on MNIST-1D (:func:`fisherlab.datasets.load`, 4000 training and 1000 test
signals), trained by plain mini-batch SGD (SB, LB, BatchChange) or by
:class:`fisherlab.optim.CovarianceNoiseSGD` (Algorithm 1 and its variants). This module is
not an experiment; it registers nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Data", "Regime", "evaluate", "load_data", "make_mlp", "make_noisy_optimizer", "train"]


@dataclass(frozen=True)
class Data:
    """Training and test tensors (float32 inputs, int64 labels)."""

    X: torch.Tensor
    y: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor


@dataclass(frozen=True)
class Regime:
    """How one training run draws its batches and noise.

    Attributes
    ----------
    name : str
        Label in tables and plots.
    batch_size : int
        Batch size after ``switch_epoch`` (and before, unless ``early_batch_size``).
    noise : str or None
        ``None`` (plain SGD) or a :class:`fisherlab.optim.NoiseType` value.
    lr : float
        Step size.
    early_batch_size : int or None
        BatchChange: this batch size during the first ``switch_fraction`` of the epochs.
    """

    name: str
    batch_size: int
    noise: str | None
    lr: float
    early_batch_size: int | None = None


def load_data(num_samples: int = 5000, data_seed: int = 0) -> Data:
    """MNIST-1D with ``num_samples`` signals (80 % train / 20 % test), as float32."""
    from fisherlab import datasets

    train = datasets.load("mnist1d", split="train", num_samples=num_samples, seed=data_seed)
    test = datasets.load("mnist1d", split="test", num_samples=num_samples, seed=data_seed)
    return Data(train.X.float(), train.y, test.X.float(), test.y)


def make_mlp(in_features: int, hidden: int, classes: int, seed: int) -> torch.nn.Module:
    """Two hidden ReLU layers, PyTorch's default initialisation seeded by ``seed``."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(in_features, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, classes),
    )


@torch.no_grad()
def evaluate(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Return (mean cross-entropy, error rate) of ``model`` on ``(X, y)``."""
    out = model(X)
    loss = float(torch.nn.functional.cross_entropy(out, y))
    error = float((out.argmax(1) != y).double().mean())
    return loss, error


def make_noisy_optimizer(
    model: torch.nn.Module,
    noise: str,
    lr: float,
    large_batch_size: int,
    small_batch_size: int,
    fisher: str,
    generator: torch.Generator,
    total_steps: int | None = None,
    noise_fraction: float | None = None,
    multiplicative_std: float = 1.0,
) -> Any:
    """Algorithm 1 (or a variant) as :class:`fisherlab.optim.CovarianceNoiseSGD`."""
    from fisherlab.likelihoods import Categorical
    from fisherlab.optim import CovarianceNoiseSGD

    return CovarianceNoiseSGD(
        model.parameters(),
        model,
        Categorical(),
        lr=lr,
        large_batch_size=large_batch_size,
        small_batch_size=small_batch_size,
        noise=noise,
        fisher=fisher,
        multiplicative_std=multiplicative_std,
        total_steps=total_steps,
        noise_fraction=noise_fraction,
        generator=generator,
    )


def train(
    model: torch.nn.Module,
    data: Data,
    regime: Regime,
    *,
    small_batch_size: int,
    large_batch_size: int,
    fisher: str,
    seed: int,
    epochs: int | None = None,
    updates: int | None = None,
    noise_fraction: float | None = None,
    switch_fraction: float = 0.25,
    multiplicative_std: float = 1.0,
    callback: Callable[[int, torch.nn.Module], None] | None = None,
) -> int:
    """Train ``model`` in place for ``epochs`` epochs or ``updates`` parameter updates.

    Plain SGD for ``regime.noise is None``; otherwise :class:`CovarianceNoiseSGD` with the
    noise on during the first ``noise_fraction`` of the updates (``None``: always).
    ``callback(update, model)`` runs before the first update and after every update.
    Returns the number of updates made.
    """
    from fisherlab.optim import BatchChangeSampler

    if (epochs is None) == (updates is None):
        raise ValueError("give exactly one of epochs and updates")
    N = data.X.shape[0]
    g = torch.Generator().manual_seed(seed)
    noise_g = torch.Generator().manual_seed(seed + 7919)
    early = regime.early_batch_size
    if early is not None:
        sampler = BatchChangeSampler(
            N, early, regime.batch_size, total_epochs=epochs, switch_fraction=switch_fraction,
            generator=g, drop_last=True,
        )  # fmt: skip
        batch_size_at = sampler.batch_size_at
    else:

        def batch_size_at(epoch: int) -> int:
            return regime.batch_size

    if epochs is not None:
        total = sum(N // batch_size_at(e) for e in range(epochs))
    else:
        total = int(updates)
    if regime.noise is None:
        opt = torch.optim.SGD(model.parameters(), lr=regime.lr)
    else:
        opt = make_noisy_optimizer(
            model, regime.noise, regime.lr, large_batch_size, small_batch_size, fisher,
            noise_g, total_steps=total if noise_fraction is not None else None,
            noise_fraction=noise_fraction, multiplicative_std=multiplicative_std,
        )  # fmt: skip
    step = 0
    if callback is not None:
        callback(0, model)
    epoch = 0
    while step < total:
        if early is not None:
            sampler.set_epoch(epoch)
            batches = list(sampler)
        else:
            order = torch.randperm(N, generator=g)
            size = regime.batch_size
            batches = [order[i : i + size] for i in range(0, N - size + 1, size)]
        for idx in batches:
            Xb, yb = data.X[idx], data.y[idx]
            if regime.noise is None:
                opt.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(model(Xb), yb).backward()
                opt.step()
            else:
                opt.step(Xb, yb)
            step += 1
            if callback is not None:
                callback(step, model)
            if step >= total:
                break
        epoch += 1
    return step
