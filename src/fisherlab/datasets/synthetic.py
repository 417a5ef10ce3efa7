"""Synthetic problems of Kunstner et al. (2019), Figs. 1 and 2 (Balles 2021, App. D.3).

Every generator draws from an explicit seed or :class:`torch.Generator` (never
the global random state) and returns float64 data.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from fisherlab.datasets.dataset import Dataset

Seed = int | torch.Generator
Variant = Literal["correct", "misspecified-a", "misspecified-b"]
VARIANTS: tuple[str, ...] = ("correct", "misspecified-a", "misspecified-b")
Reading = Literal["authors", "literal"]
#: Readings of Tables D.1/D.2: the authors' generator (default) or the tables' literal text.
READINGS: tuple[str, ...] = ("authors", "literal")

_F64 = torch.float64

# Table D.1: (mean, matrix) of p(x | y=0) and of p(x | y=1); the matrix is the
# covariance's square root (authors' reading) or the covariance (literal reading).
LOGISTIC_CLASSES: dict[str, tuple[tuple[list[float], list[list[float]]], ...]] = {
    "correct": (
        ([1.0, 1.0], [[2.0, 0.0], [0.0, 2.0]]),
        ([-1.0, -1.0], [[2.0, 0.0], [0.0, 2.0]]),
    ),
    "misspecified-a": (
        ([1.5, 1.5], [[3.0, 0.0], [0.0, 3.0]]),
        ([-1.5, -1.5], [[1.0, 0.0], [0.0, 1.0]]),
    ),
    "misspecified-b": (
        ([-1.0, -1.0], [[1.5, -0.9], [-0.9, 1.5]]),
        ([1.0, 1.0], [[1.5, 0.9], [0.9, 1.5]]),
    ),
}


def as_generator(seed: Seed) -> torch.Generator:
    """Turn a seed into a CPU :class:`torch.Generator`; pass generators through.

    Parameters
    ----------
    seed : int or torch.Generator
        An integer seed, or a generator that is used (and advanced) as is.

    Returns
    -------
    torch.Generator
        The generator to draw from.
    """
    if isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int or a torch.Generator, got {type(seed).__name__}")
    return torch.Generator().manual_seed(seed)


def _check_n(n: int) -> None:
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")


def _check(variant: str, n: int, reading: str = "authors") -> None:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if reading not in READINGS:
        raise ValueError(f"reading must be one of {READINGS}, got {reading!r}")
    _check_n(n)


def _intercept_design(x: torch.Tensor) -> torch.Tensor:
    """The design matrix ``[1, x]`` (ones FIRST): ``theta = (intercept, slope)``."""
    return torch.stack([torch.ones(x.shape[0], dtype=_F64), x], dim=1)


def kunstner_fig1(*, seed: Seed, n: int = 1000) -> Dataset:
    """Linear regression problem of the vector-field figure (Kunstner et al., Fig. 1).

    Eq. (D.29): ``x ~ Lognormal(0, 3/4)``, ``y = 2 + 2 x + eps``, ``eps ~ N(0, 1)``.
    ``Lognormal(0, 3/4)`` is read as ``log x ~ N(0, 0.75**2)``, i.e. mean 0 and
    standard deviation 3/4 of the underlying normal.

    The design matrix is ``[1, x]`` (ones FIRST), so that a linear model
    ``X @ theta`` has ``theta = (intercept, slope)``, the 2-D space in which the
    paper's starting points (2, 4.5), (1, 0), (4.5, 3), (-0.5, 3) are given; the
    true parameter is (2, 2).

    Parameters
    ----------
    seed : int or torch.Generator
        Source of randomness.
    n : int, default 1000
        Number of samples.

    Returns
    -------
    Dataset
        ``X`` of shape (n, 2) = ``[1, x]``, ``y`` of shape (n,); task ``"regression"``.
    """
    _check_n(n)
    gen = as_generator(seed)
    x = torch.exp(0.75 * torch.randn(n, generator=gen, dtype=_F64))
    y = 2.0 + 2.0 * x + torch.randn(n, generator=gen, dtype=_F64)
    X = _intercept_design(x)
    return Dataset(
        X,
        y,
        "kunstner-fig1",
        "regression",
        f"x ~ Lognormal(0, 3/4), y = 2 + 2x + N(0,1), X = [1, x], N={n}; "
        "source: Kunstner et al. 2019, Eq. D.29",
    )


def kunstner_fig2_logistic(
    variant: Variant, *, seed: Seed, n: int = 1000, reading: Reading = "authors"
) -> Dataset:
    """Two-Gaussian classification problems of Kunstner et al., Fig. 2 (Table D.1).

    ``p(y=0) = p(y=1) = 1/2``; ``x | y`` is Gaussian with the mean of Table D.1
    and a covariance given by the table's matrix ``A`` (symmetric positive
    definite). The classes are balanced exactly (``n // 2`` samples of class 0,
    the rest of class 1) and the samples are shuffled. ``X`` has no bias column:
    the model of the figure is ``sigmoid(x @ theta)`` with ``theta`` in 2-D.

    - ``reading="authors"`` (default): ``x = mean + A z``, so the covariance is
      ``A²`` (the table lists its square root). This is the authors' released
      generator, which produced the published figure and its caption's
      accuracies (73 % for the correct model);
    - ``reading="literal"``: ``x = mean + L z`` with ``L`` the Cholesky factor
      of ``A``, so the covariance is ``A`` as the table says.

    Parameters
    ----------
    variant : {"correct", "misspecified-a", "misspecified-b"}
        Row of Table D.1.
    seed : int or torch.Generator
        Source of randomness.
    n : int, default 1000
        Number of samples.
    reading : {"authors", "literal"}, default "authors"
        How the table's matrices are read (see above).

    Returns
    -------
    Dataset
        ``X`` of shape (n, 2), ``y`` in {0., 1.} of shape (n,); task ``"binary"``.
    """
    _check(variant, n, reading)
    gen = as_generator(seed)
    counts = (n // 2, n - n // 2)
    parts = []
    for (mean, matrix), count in zip(LOGISTIC_CLASSES[variant], counts, strict=True):
        factor = torch.tensor(matrix, dtype=_F64)
        if reading == "literal":
            factor = torch.linalg.cholesky(factor)
        z = torch.randn(count, 2, generator=gen, dtype=_F64)
        parts.append(torch.tensor(mean, dtype=_F64) + z @ factor.T)
    X = torch.cat(parts)
    y = torch.cat([torch.zeros(counts[0], dtype=_F64), torch.ones(counts[1], dtype=_F64)])
    perm = torch.randperm(n, generator=gen)
    return Dataset(
        X[perm],
        y[perm],
        f"kunstner-fig2-logistic-{variant}",
        "binary",
        f"two Gaussian classes, Table D.1 '{variant}' ({reading} reading), N={n}; "
        "source: Kunstner et al. 2019, Fig. 2",
    )


def kunstner_fig2_linear(
    variant: Variant, *, seed: Seed, n: int = 1000, reading: Reading = "authors"
) -> Dataset:
    """Linear regression problems of Kunstner et al., Fig. 2 (Table D.2).

    ``x ~ N(0, 1)`` and

    - ``"correct"``: ``y = x + eps``, ``eps ~ N(0, 1)``;
    - ``"misspecified-a"``: ``y = x + eps``, ``eps ~ N(0, 2)``: with
      ``reading="authors"`` (default, the authors' released generator) the 2 is
      the standard deviation (variance 4); with ``reading="literal"`` it is the
      variance (standard deviation sqrt(2));
    - ``"misspecified-b"``: ``y = x + x**2 / 2 + eps``, ``eps ~ N(0, 1)``.

    The design matrix is ``[1, x]`` as in :func:`kunstner_fig1`, so that
    ``theta = (intercept, slope)`` is 2-D as in the figure; the generating
    intercept is 0 as in Table D.2 (the released code adds an intercept of 1,
    which only shifts the optimum).

    Parameters
    ----------
    variant : {"correct", "misspecified-a", "misspecified-b"}
        Row of Table D.2.
    seed : int or torch.Generator
        Source of randomness.
    n : int, default 1000
        Number of samples.
    reading : {"authors", "literal"}, default "authors"
        How "N(0, 2)" of misspecified (A) is read (see above).

    Returns
    -------
    Dataset
        ``X`` of shape (n, 2) = ``[1, x]``, ``y`` of shape (n,); task ``"regression"``.
    """
    _check(variant, n, reading)
    gen = as_generator(seed)
    x = torch.randn(n, generator=gen, dtype=_F64)
    noise_std = 1.0
    if variant == "misspecified-a":
        noise_std = 2.0 if reading == "authors" else math.sqrt(2.0)
    y = x + noise_std * torch.randn(n, generator=gen, dtype=_F64)
    if variant == "misspecified-b":
        y = y + 0.5 * x**2
    X = _intercept_design(x)
    return Dataset(
        X,
        y,
        f"kunstner-fig2-linear-{variant}",
        "regression",
        f"x ~ N(0,1), Table D.2 '{variant}' ({reading} reading), X = [1, x], N={n}; "
        "source: Kunstner et al. 2019, Fig. 2",
    )
