"""Reproductions of published experiments, built on the fisherlab quantities.

Importing this package registers every experiment (in the order of the imports at the
bottom of this file); it does not import matplotlib.

>>> from fisherlab.experiments import all_experiments
>>> [e.name for e in all_experiments()]  # doctest: +SKIP
"""

from fisherlab.experiments.base import CellStore, Claim, Experiment, RunContext
from fisherlab.experiments.registry import all_experiments, get, register

__all__ = [
    "CellStore",
    "Claim",
    "Experiment",
    "RunContext",
    "all_experiments",
    "get",
    "register",
]

# Experiment packages register themselves on import; import order = listing order.
# isort: off
from fisherlab.experiments import demo  # noqa: E402, F401
from fisherlab.experiments import kunstner  # noqa: E402, F401
from fisherlab.experiments import ewc  # noqa: E402, F401
from fisherlab.experiments import balles  # noqa: E402, F401
from fisherlab.experiments import wen  # noqa: E402, F401
# isort: on
