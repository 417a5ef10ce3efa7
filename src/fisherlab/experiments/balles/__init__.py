"""Balles (2021), "Noise-aware stochastic optimization" (PhD thesis).

Importing this package registers its experiments in this order: ``balles-fig4-1``,
``balles-fig5-2``, ``balles-fig6-3``, ``balles-fig5-4``, ``balles-cabs``, ``balles-figB2``,
``balles-figB3``, ``balles-fig6-2``. :mod:`~fisherlab.experiments.balles.training` holds the
small classification problems of the training experiments; it registers nothing.
"""

# isort: off
from fisherlab.experiments.balles import fig4_1, fig5_2, fig6_3, fig5_4  # noqa: F401
from fisherlab.experiments.balles import cabs, figB2, figB3, fig6_2  # noqa: F401
# isort: on
