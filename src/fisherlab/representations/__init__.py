"""Representations: the structure a quantity is returned in (``form=...``).

Built-in forms: ``"dense"``, ``"diag"``, ``"operator"``. Further forms register themselves
with :func:`register_form`.
"""

from fisherlab.representations import basic, blockdiag, kfac  # register their forms
from fisherlab.representations.operator import CurvatureOperator
from fisherlab.representations.registry import Form, available_forms, build, register_form

__all__ = [
    "CurvatureOperator",
    "Form",
    "available_forms",
    "build",
    "register_form",
    "basic",
    "blockdiag",
    "kfac",
]
