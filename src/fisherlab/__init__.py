"""fisherlab: second-order and noise geometry of neural-network training.

>>> import fisherlab as fl
>>> c = fl.Curvature(model, fl.likelihoods.Categorical(), X, y)  # doctest: +SKIP
>>> c.fisher(form="diag")  # doctest: +SKIP
"""

import importlib
import importlib.util
from typing import Any

__version__ = "0.1.0"

__all__ = [
    "Bernoulli",
    "BlockDiagonal",
    "Categorical",
    "Curvature",
    "CurvatureOperator",
    "Gaussian",
    "EKFAC",
    "KFAC",
    "Monitor",
    "Quantity",
    "available_forms",
    "from_loss",
    "likelihoods",
    "register_form",
    "representations",
    "__version__",
]


#: where each top-level name lives; imported on first use, so that ``import fisherlab`` (and
#: the ``fisherlab`` command's ``--help``) does not pay for importing torch
_EXPORTS = {
    "Bernoulli": "fisherlab.likelihoods",
    "BlockDiagonal": "fisherlab.representations.blockdiag",
    "Categorical": "fisherlab.likelihoods",
    "Curvature": "fisherlab.curvature",
    "CurvatureOperator": "fisherlab.representations",
    "Gaussian": "fisherlab.likelihoods",
    "EKFAC": "fisherlab.representations.ekfac",
    "KFAC": "fisherlab.representations.kfac",
    "Monitor": "fisherlab.monitor",
    "Quantity": "fisherlab.quantities",
    "available_forms": "fisherlab.forms",
    "from_loss": "fisherlab.likelihoods",
    "register_form": "fisherlab.forms",
}


def __getattr__(name: str) -> Any:  # lazy names and subpackages (PEP 562)
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"fisherlab.{name}") is not None:
        value = importlib.import_module(f"fisherlab.{name}")
    else:
        raise AttributeError(f"module 'fisherlab' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
