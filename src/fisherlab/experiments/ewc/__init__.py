"""Elastic weight consolidation (Kirkpatrick et al. 2017) with the exact, MC or empirical Fisher.

Importing this package registers ``ewc-fisher-choice``.
"""

from fisherlab.experiments.ewc import fisher_choice  # noqa: F401
