"""Small classification problems shared by the ``balles-*`` training experiments.

The thesis trains CNNs on MNIST, Fashion-MNIST, SVHN and CIFAR; these reproductions use
problems that train in seconds on one CPU core: multilayer perceptrons on UCI ``digits``
(1437 training / 360 test images of 8x8 pixels) and on MNIST-1D (4000 / 1000 signals of
length 40). Everything is float32; the cross-entropy loss uses ``reduction="mean"``.
This module registers no experiment.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

__all__ = ["PROBLEMS", "Problem", "evaluate", "load_problem", "make_model", "mean_std"]

#: name -> (data set, hidden layer widths)
PROBLEMS: dict[str, tuple[str, tuple[int, ...]]] = {
    "digits-mlp": ("digits", (64,)),
    "mnist1d-mlp": ("mnist1d", (128, 128)),
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
        Hidden layer widths of the MLP.
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
    """Load problem ``name`` (``"digits-mlp"`` or ``"mnist1d-mlp"``) as float32 tensors.

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
    """ReLU MLP with PyTorch's default initialisation, seeded by ``seed``."""
    torch.manual_seed(seed)
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
