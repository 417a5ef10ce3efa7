"""Small classification problems shared by the ``balles-*`` training experiments.

The thesis trains CNNs on MNIST, Fashion-MNIST, SVHN and CIFAR; these reproductions use
problems that train in seconds on one CPU core: multilayer perceptrons on UCI ``digits``
(1438 training / 359 test images of 8x8 pixels) and on MNIST-1D (4000 / 1000 signals of
length 40), and a small convolutional network on the digits images (two 3x3 convolutions
with 8 and 16 channels, each followed by ReLU and 2x2 max-pooling, then two
fully-connected layers 64-32-10; a miniature of the thesis' P1 "vanilla CNN").
Everything is float32; the cross-entropy loss uses ``reduction="mean"``.
This module registers no experiment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

from fisherlab.experiments.common import evaluate, make_mlp, seeded

__all__ = [
    "PROBLEMS",
    "Problem",
    "grid_neighbor",
    "load_problem",
    "log10",
    "make_model",
    "mean_std",
    "measure",
]

#: name -> (data set, hidden layer widths); an empty tuple means the digits CNN
PROBLEMS: dict[str, tuple[str, tuple[int, ...]]] = {
    "digits-mlp": ("digits", (64,)),
    "digits-mlp-wide": ("digits", (256, 256)),
    "mnist1d-mlp": ("mnist1d", (128, 128)),
    "digits-cnn": ("digits", ()),
}


@dataclass
class Problem:
    """Training and test tensors of a classification problem.

    Attributes
    ----------
    name : str
        Problem name (a key of :data:`PROBLEMS`).
    X_train, y_train, X_test, y_test : Tensor
        float32 inputs ``(N, D)`` and int64 labels ``(N,)``.
    hidden : tuple of int
        Hidden layer widths of the MLP; empty for the digits CNN.
    """

    name: str
    X_train: Tensor
    y_train: Tensor
    X_test: Tensor
    y_test: Tensor
    hidden: tuple[int, ...]

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return int(self.y_train.max()) + 1


@lru_cache(maxsize=4)
def load_problem(name: str) -> Problem:
    """Load problem ``name`` (a key of :data:`PROBLEMS`) as float32 tensors.

    Cached per process; treat the returned tensors as read-only.
    """
    from fisherlab import datasets

    if name not in PROBLEMS:
        raise ValueError(f"unknown problem {name!r}; known: {', '.join(PROBLEMS)}")
    dataset, hidden = PROBLEMS[name]
    train = datasets.load(dataset, split="train")
    test = datasets.load(dataset, split="test")
    return Problem(
        name,
        train.X.float(),
        train.y.long(),
        test.X.float(),
        test.y.long(),
        hidden,
    )


def make_model(problem: Problem, seed: int) -> torch.nn.Sequential:
    """ReLU MLP (or the digits CNN) with PyTorch's default initialisation, seeded by ``seed``.

    The weights are drawn under :func:`fisherlab.experiments.common.seeded`.
    """
    if problem.hidden:
        widths = [problem.X_train.shape[1], *problem.hidden, problem.num_classes]
        return make_mlp(widths, torch.nn.ReLU, seed)
    if problem.X_train.shape[1] != 64:
        raise ValueError(f"the CNN needs 8x8 images, got {problem.X_train.shape[1]} inputs")
    return seeded(
        seed,
        lambda: torch.nn.Sequential(
            torch.nn.Unflatten(1, (1, 8, 8)),
            torch.nn.Conv2d(1, 8, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(8, 16, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Flatten(),
            torch.nn.Linear(64, 32),
            torch.nn.ReLU(),
            torch.nn.Linear(32, problem.num_classes),
        ),
    )


def measure(model: torch.nn.Module, problem: Problem) -> tuple[float, float]:
    """Full training loss (``+inf`` once it is not finite) and test accuracy of ``model``.

    The two numbers every evaluation of the training experiments records
    (:func:`fisherlab.experiments.common.evaluate` on the training and the test split).
    """
    loss, _ = evaluate(model, problem.X_train, problem.y_train)
    _, accuracy = evaluate(model, problem.X_test, problem.y_test)
    return (loss if math.isfinite(loss) else math.inf), accuracy


def log10(x: float) -> float:
    r""":math:`\log_{10} x`, and :math:`-\infty` for ``x <= 0`` (a loss that reached 0)."""
    return math.log10(x) if x > 0 else -math.inf


def mean_std(curves: list[list[float]]) -> tuple[list[float], list[float]]:
    """Pointwise mean and standard deviation (0 for a single curve) of equal-length curves."""
    t = torch.tensor(curves, dtype=torch.float64)
    std = t.std(0, correction=1) if t.shape[0] > 1 else torch.zeros(t.shape[1])
    return t.mean(0).tolist(), std.tolist()


def grid_neighbor(lr: float, up: bool) -> float:
    """The nearest value beyond ``lr`` of the sequence ..., 0.01, 0.03, 0.1, 0.3, 1, 3, ...

    Used to extend a step-size grid past the edge on which a selection landed; ``lr`` need
    not lie on the sequence (0.6 goes up to 1 and down to 0.3).
    """
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    k = math.floor(math.log10(lr))
    points = [float(f"{c * 10.0**e:.12g}") for e in range(k - 1, k + 2) for c in (1.0, 3.0)]
    if up:
        return min(p for p in points if p > lr * (1 + 1e-9))
    return max(p for p in points if p < lr * (1 - 1e-9))
