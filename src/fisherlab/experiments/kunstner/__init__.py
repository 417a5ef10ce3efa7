"""Kunstner, Balles and Hennig (2019), "Limitations of the empirical Fisher approximation".

Importing this package registers its experiments in this order: ``kunstner-fig1``,
``kunstner-fig2``, ``kunstner-fig3``, ``kunstner-app-e``, ``kunstner-variance-adaptation``.
:mod:`~fisherlab.experiments.kunstner.preconditioning` holds the linear problems and the
GD / NGD / EF-preconditioned runs they share; it registers nothing.
"""

# isort: off
from fisherlab.experiments.kunstner import fig1, fig2, fig3  # noqa: F401
from fisherlab.experiments.kunstner import app_e, variance_adaptation  # noqa: F401
# isort: on
