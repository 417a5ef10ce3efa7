"""The registry of forms: ``form="name"`` → a builder of the quantity in that structure.

A builder receives a :class:`Source` (in practice the :class:`fisherlab.Curvature`) and a
:class:`fisherlab.quantities.QuantitySpec` and returns a representation from
:mod:`fisherlab.representations`. New forms register themselves here with
:func:`register_form` and need no change to the quantity methods of
:class:`fisherlab.Curvature`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from enum import Enum
from typing import Any, Protocol

import torch
from torch import Tensor

from fisherlab.engine.functional import FunctionalModel
from fisherlab.likelihoods import Likelihood
from fisherlab.problem import Batch, BatchFunction
from fisherlab.quantities import QuantitySpec
from fisherlab.scaling import Scaling

__all__ = ["Form", "Source", "register_form", "build", "available_forms"]


class Source(Protocol):
    """What a builder uses: a :class:`fisherlab.problem.Problem` that also has the gradient."""

    model: torch.nn.Module
    likelihood: Likelihood
    functional_model: FunctionalModel
    reduction: str
    num_samples: int
    distributed: bool
    max_bytes: int | None
    diagonal_engine: str

    @property
    def num_params(self) -> int: ...  # noqa: D102

    @property
    def scaling(self) -> Scaling: ...  # noqa: D102

    def batches(self) -> Iterator[Batch]: ...  # noqa: D102

    def batch_sum(self, fn: BatchFunction) -> Tensor: ...  # noqa: D102

    def normalize(self, total: Tensor) -> Tensor: ...  # noqa: D102

    def gradient(self) -> Tensor: ...  # noqa: D102


Builder = Callable[[Source, QuantitySpec], Any]

_BUILDERS: dict[str, Builder] = {}


class Form(str, Enum):
    """Names of the built-in forms."""

    DENSE = "dense"
    DIAG = "diag"
    OPERATOR = "operator"
    KFAC = "kfac"
    EKFAC = "ekfac"
    BLOCKDIAG = "blockdiag"


def register_form(name: str) -> Callable[[Builder], Builder]:
    """Register ``builder`` as the implementation of ``form=name`` (decorator)."""

    def decorate(builder: Builder) -> Builder:
        _BUILDERS[name] = builder
        return builder

    return decorate


def available_forms() -> list[str]:
    """Names of the registered forms."""
    return sorted(_BUILDERS)


def build(curvature: Source, form: str | Form, spec: QuantitySpec) -> Any:
    """Build ``spec``'s quantity in ``form``; unknown forms get a ``ValueError``."""
    key = form.value if isinstance(form, Form) else form
    if key not in _BUILDERS:
        raise ValueError(f"unknown form {form!r}; available forms: {', '.join(available_forms())}")
    return _BUILDERS[key](curvature, spec)
