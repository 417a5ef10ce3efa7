r"""Helpers shared by the experiments of more than one paper.

- :func:`seeded`: build something (a model's initial weights) from torch's global
  generator seeded by ``seed``, leaving the global generator as it was;
- :func:`make_mlp`: a fully-connected network with PyTorch's default initialisation;
- :func:`evaluate`: mean cross-entropy and accuracy of a classifier;
- :func:`ellipse_points`: the contour of a positive definite 2x2 quadratic form.

Everything else random in the experiments draws from an explicit
:class:`torch.Generator` (or :class:`numpy.random.Generator`) seeded from the run's seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
from torch import Tensor

__all__ = ["ellipse_points", "evaluate", "make_mlp", "seeded"]

T = TypeVar("T")


def seeded(seed: int, build: Callable[[], T]) -> T:
    """Return ``build()`` run with torch's global generator seeded by ``seed``.

    PyTorch's layers draw their initial weights from the global generator; this runs
    ``build`` after ``torch.manual_seed(seed)`` inside :func:`torch.random.fork_rng`, so
    the weights depend on ``seed`` alone and the global generator's state afterwards is
    the state before (the run draws nothing else from it).

    Parameters
    ----------
    seed : int
        Seed of the global generator while ``build`` runs.
    build : callable
        Called once, without arguments.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def make_mlp(
    widths: Sequence[int], activation: Callable[[], torch.nn.Module], seed: int
) -> torch.nn.Sequential:
    r"""Fully-connected network ``widths[0] → widths[1] → … → widths[-1]``.

    :math:`f = W_L \circ a \circ W_{L-1} \circ \dots \circ a \circ W_1` with affine layers
    :math:`W_l` (:class:`torch.nn.Linear`, PyTorch's default initialisation) and the
    activation ``activation()`` between them (none after the last layer); the weights are
    drawn under :func:`seeded` with ``seed``. float32, like PyTorch's default.

    Parameters
    ----------
    widths : sequence of int
        Input width, hidden widths, output width; at least two entries, all positive.
    activation : callable
        Returns a new activation module, e.g. ``torch.nn.ReLU``.
    seed : int
        Seed of the initial weights.

    Raises
    ------
    ValueError
        If ``widths`` has fewer than two entries or one is not positive.
    """
    widths = [int(w) for w in widths]
    if len(widths) < 2 or min(widths) < 1:
        raise ValueError(f"widths must hold at least two positive widths, got {widths}")

    def build() -> torch.nn.Sequential:
        layers: list[torch.nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            if i > 0:
                layers.append(activation())
            layers.append(torch.nn.Linear(fan_in, fan_out))
        return torch.nn.Sequential(*layers)

    return seeded(seed, build)


@torch.no_grad()
def evaluate(model: torch.nn.Module, X: Tensor, y: Tensor) -> tuple[float, float]:
    r"""Mean cross-entropy and accuracy of the classifier ``model`` on ``(X, y)``.

    :math:`\frac1n\sum_i -\log \mathrm{softmax}(f(x_i))_{y_i}` and
    :math:`\frac1n\sum_i [\arg\max_k f(x_i)_k = y_i]` (the fraction in float64). The loss
    is NaN or infinite for a diverged model; its accuracy is then not meaningful, and the
    caller decides what to record.
    """
    out = model(X)
    loss = float(torch.nn.functional.cross_entropy(out, y))
    accuracy = float((out.argmax(1) == y).double().mean())
    return loss, accuracy


def ellipse_points(
    M: Tensor, level: float = 0.5, center: Tensor | None = None, num: int = 200
) -> Tensor:
    r"""``num`` points of the contour :math:`\tfrac12 (\theta - c)^\top M (\theta - c) = \ell`.

    With the Cholesky factor :math:`M = LL^\top`, :math:`\theta = c + \sqrt{2\ell}\,
    L^{-\top} u` for :math:`u` on the unit circle gives
    :math:`\tfrac12 (\theta - c)^\top M (\theta - c) = \ell`. The default ``level`` 1/2 is
    the contour :math:`\theta^\top M \theta = 1` around the origin.

    Parameters
    ----------
    M : Tensor
        Positive definite ``(2, 2)`` matrix (float64).
    level : float
        The level :math:`\ell > 0`.
    center : Tensor, optional
        The centre :math:`c`, shape ``(2,)``; the origin by default.
    num : int
        Number of points (the first and last coincide).

    Returns
    -------
    Tensor
        Shape ``(num, 2)``, float64.
    """
    if not level > 0:
        raise ValueError(f"level must be positive, got {level}")
    M = torch.as_tensor(M, dtype=torch.float64)
    if M.shape != (2, 2):
        raise ValueError(f"M must be a 2x2 matrix, got shape {tuple(M.shape)}")
    center = torch.zeros(2, dtype=torch.float64) if center is None else center
    angles = torch.linspace(0.0, 2 * math.pi, num, dtype=torch.float64)
    circle = torch.stack([angles.cos(), angles.sin()], dim=-1)
    L = torch.linalg.cholesky(M)
    d = torch.linalg.solve_triangular(L.T, circle.T, upper=True).T * math.sqrt(2 * level)
    return center + d
