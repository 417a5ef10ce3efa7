"""fisherlab: second-order and noise geometry of neural-network training.

>>> import fisherlab as fl
>>> c = fl.Curvature(model, fl.likelihoods.Categorical(), X, y)  # doctest: +SKIP
>>> c.fisher(form="diag")  # doctest: +SKIP
"""

from fisherlab import likelihoods, representations
from fisherlab.curvature import Curvature
from fisherlab.likelihoods import Bernoulli, Categorical, Gaussian, from_loss
from fisherlab.quantities import Quantity
from fisherlab.representations import CurvatureOperator, available_forms, register_form
from fisherlab.representations.blockdiag import BlockDiagonal
from fisherlab.representations.kfac import KFAC

__version__ = "0.1.0"

__all__ = [
    "Bernoulli",
    "BlockDiagonal",
    "Categorical",
    "Curvature",
    "CurvatureOperator",
    "Gaussian",
    "KFAC",
    "Quantity",
    "available_forms",
    "from_loss",
    "likelihoods",
    "register_form",
    "representations",
    "__version__",
]


def __getattr__(name: str):  # lazy subpackages: optional dependencies load on use
    import importlib

    if name in ("optim", "datasets", "experiments", "linalg", "noise", "continual"):
        return importlib.import_module(f"fisherlab.{name}")
    raise AttributeError(f"module 'fisherlab' has no attribute {name!r}")
