"""The :class:`Dataset` container and the optional preprocessing steps."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch

Task = Literal["regression", "binary", "multiclass"]
TASKS: tuple[str, ...] = ("regression", "binary", "multiclass")


@dataclass(frozen=True, eq=False)
class Dataset:
    """A full-batch supervised data set held in memory.

    Parameters
    ----------
    X : torch.Tensor
        Inputs, a floating-point tensor of shape ``(N, D)`` (float64 as loaded).
    y : torch.Tensor
        Targets of shape ``(N,)``: floating-point values for ``"regression"``,
        floating-point labels in ``{0, 1}`` for ``"binary"``, ``int64`` class
        indices for ``"multiclass"``.
    name : str
        Canonical name of the data set (as accepted by :func:`fisherlab.datasets.load`).
    task : {"regression", "binary", "multiclass"}
        Which likelihood the targets are meant for.
    description : str
        One line describing the data and where it comes from.
    """

    X: torch.Tensor
    y: torch.Tensor
    name: str
    task: Task
    description: str

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.X.ndim != 2 or not self.X.is_floating_point():
            raise ValueError(
                f"X must be a 2-D floating-point tensor, got shape {tuple(self.X.shape)} "
                f"and dtype {self.X.dtype}"
            )
        if self.y.shape != (self.X.shape[0],):
            raise ValueError(f"y must have shape ({self.X.shape[0]},), got {tuple(self.y.shape)}")
        if self.task == "multiclass":
            if self.y.dtype != torch.int64:
                raise ValueError(f"multiclass labels must be int64, got {self.y.dtype}")
        elif not self.y.is_floating_point():
            raise ValueError(f"{self.task} targets must be floating point, got {self.y.dtype}")

    @property
    def N(self) -> int:  # noqa: N802 - the conventional symbol for the sample count
        """Number of samples."""
        return self.X.shape[0]

    @property
    def D(self) -> int:  # noqa: N802 - the conventional symbol for the input dimension
        """Number of input features (columns of ``X``)."""
        return self.X.shape[1]

    def to(self, dtype: torch.dtype) -> Dataset:
        """Return a copy with inputs (and non-integer targets) cast to ``dtype``.

        Parameters
        ----------
        dtype : torch.dtype
            A floating-point dtype such as ``torch.float32``.

        Returns
        -------
        Dataset
            The converted data set. Multiclass labels stay ``int64``.
        """
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
        y = self.y if self.task == "multiclass" else self.y.to(dtype)
        return dataclasses.replace(self, X=self.X.to(dtype), y=y)


def standardize(X: torch.Tensor) -> torch.Tensor:
    """Shift every column of ``X`` to mean 0 and scale it to standard deviation 1.

    The standard deviation is the population one (divisor ``N``). Constant
    columns (standard deviation 0, e.g. features never active in ``a1a``) are
    only centred, so they become zero instead of NaN.

    Parameters
    ----------
    X : torch.Tensor
        Inputs of shape ``(N, D)``.

    Returns
    -------
    torch.Tensor
        The standardized inputs, same shape and dtype.
    """
    mean = X.mean(dim=0)
    std = X.std(dim=0, correction=0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return (X - mean) / std


def add_bias(X: torch.Tensor) -> torch.Tensor:
    """Append a column of ones as the last column of ``X``.

    Parameters
    ----------
    X : torch.Tensor
        Inputs of shape ``(N, D)``.

    Returns
    -------
    torch.Tensor
        Inputs of shape ``(N, D + 1)`` whose last column is all ones.
    """
    return torch.cat([X, torch.ones(X.shape[0], 1, dtype=X.dtype)], dim=1)
