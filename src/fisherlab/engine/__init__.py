"""Engines that compute curvature and gradient statistics.

:mod:`fisherlab.engine.functional` holds the generic engine, built on :mod:`torch.func`; it
works for any model of differentiable torch modules and is the oracle for faster paths.
"""

from fisherlab.engine import hooks  # noqa: F401 - the fast engine, fl.engine.hooks
from fisherlab.engine.functional import FunctionalModel

__all__ = ["FunctionalModel"]
