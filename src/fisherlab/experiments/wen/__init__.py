"""Wen, Luk, Gazeau, Zhang, Chan and Ba (2020): SGD with covariance noise (AISTATS 2020).

Importing this package registers its experiments in this order: ``wen-fig1``, ``wen-fig4``,
``wen-fig2-3``, ``wen-tables``. :mod:`~fisherlab.experiments.wen.common` holds the data,
network and training loop of the two classifier experiments; it registers nothing.
"""

# isort: off
from fisherlab.experiments.wen import fig1, fig4, fig2_3, tables  # noqa: F401
# isort: on
