"""The fast engine: statistics from hooks during one ordinary backward pass.

See :mod:`fisherlab.engine.hooks.collector` for the statistics and their scaling, and the
modules ``linear``, ``conv``, ``embedding`` and ``norm`` for each layer family's closed
forms.
"""

from fisherlab.engine.hooks.collector import (
    FIRST_ORDER,
    Collector,
    FallbackWarning,
    Statistic,
    collect,
    compute,
)

__all__ = ["FIRST_ORDER", "Collector", "FallbackWarning", "Statistic", "collect", "compute"]
