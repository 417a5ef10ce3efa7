"""The registry of representation forms: ``form="name"`` → a builder.

A builder receives the :class:`fisherlab.Curvature` and a
:class:`fisherlab.quantities.QuantitySpec` and returns the quantity in its structure. New
forms (``"kfac"``, ``"blockdiag"``, ...) register themselves here and need no change to the
quantity methods of :class:`fisherlab.Curvature`.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Any

from fisherlab.quantities import QuantitySpec

if TYPE_CHECKING:
    from fisherlab.curvature import Curvature

__all__ = ["Form", "register_form", "build", "available_forms"]

Builder = Callable[["Curvature", QuantitySpec], Any]

_BUILDERS: dict[str, Builder] = {}


class Form(str, Enum):
    """Names of the built-in forms."""

    DENSE = "dense"
    DIAG = "diag"
    OPERATOR = "operator"
    KFAC = "kfac"
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


def build(curvature: Curvature, form: str | Form, spec: QuantitySpec) -> Any:
    """Build ``spec``'s quantity in ``form``; unknown forms get a ``ValueError``."""
    key = form.value if isinstance(form, Form) else form
    if key not in _BUILDERS:
        raise ValueError(f"unknown form {form!r}; available forms: {', '.join(available_forms())}")
    return _BUILDERS[key](curvature, spec)
