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

__all__ = [
    "PROBLEMS",
    "Problem",
    "evaluate",
    "grid_neighbor",
    "load_problem",
    "make_model",
    "mean_std",
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
    """ReLU MLP (or the digits CNN) with PyTorch's default initialisation, seeded by ``seed``."""
    torch.manual_seed(seed)
    if not problem.hidden:
        if problem.X_train.shape[1] != 64:
            raise ValueError(f"the CNN needs 8x8 images, got {problem.X_train.shape[1]} inputs")
        return torch.nn.Sequential(
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
        )
    layers: list[torch.nn.Module] = []
    width = problem.X_train.shape[1]
    for h in problem.hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    layers.append(torch.nn.Linear(width, problem.num_classes))
    return torch.nn.Sequential(*layers)


@torch.no_grad()
def evaluate(model: torch.nn.Module, X: Tensor, y: Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``(X, y)``."""
    out = model(X)
    loss = torch.nn.functional.cross_entropy(out, y)
    acc = (out.argmax(1) == y).float().mean()
    return float(loss), float(acc)


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
