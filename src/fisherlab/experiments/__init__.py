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

# Experiment modules register themselves on import; import order = listing order.
# isort: off
from fisherlab.experiments import demo  # noqa: E402, F401
from fisherlab.experiments import kunstner_fig1, kunstner_fig2  # noqa: E402, F401
from fisherlab.experiments import kunstner_fig3  # noqa: E402, F401
from fisherlab.experiments import kunstner_app_e  # noqa: E402, F401
from fisherlab.experiments import kunstner_variance_adaptation  # noqa: E402, F401
from fisherlab.experiments import ewc_fisher_choice  # noqa: E402, F401
from fisherlab.experiments import balles_fig4_1, balles_fig5_2  # noqa: E402, F401
from fisherlab.experiments import balles_fig6_3  # noqa: E402, F401
from fisherlab.experiments import balles_fig5_4  # noqa: E402, F401
from fisherlab.experiments import balles_cabs  # noqa: E402, F401
from fisherlab.experiments import balles_figB2, balles_figB3  # noqa: E402, F401
from fisherlab.experiments import balles_fig6_2  # noqa: E402, F401
from fisherlab.experiments import wen_fig1, wen_fig4  # noqa: E402, F401
from fisherlab.experiments import wen_fig2_3, wen_tables  # noqa: E402, F401
# isort: on
