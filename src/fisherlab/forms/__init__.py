"""Forms: how a quantity of a :class:`fisherlab.Curvature` is built in a structure.

``form="dense"``, ``"diag"``, ``"operator"``, ``"kfac"`` and ``"blockdiag"`` are built here
from the data loop of :class:`fisherlab.problem.Problem` and the engines; the results are
the matrix objects of :mod:`fisherlab.representations`. Further forms register themselves
with :func:`register_form`.
"""

from fisherlab.forms import basic, blockdiag, kfac  # register their forms
from fisherlab.forms.registry import Form, Source, available_forms, build, register_form

__all__ = [
    "Form",
    "Source",
    "available_forms",
    "build",
    "register_form",
    "basic",
    "blockdiag",
    "kfac",
]
