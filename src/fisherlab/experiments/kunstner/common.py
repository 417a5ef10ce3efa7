"""Helpers shared by more than one of the ``kunstner-*`` experiments; registers nothing."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["loglog_slope"]


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    r"""Least-squares slope of :math:`\log y` against :math:`\log x`.

    :math:`\hat b = \sum_i (u_i - \bar u)(v_i - \bar v) / \sum_i (u_i - \bar u)^2` with
    :math:`u = \log x`, :math:`v = \log y` (float64): the exponent :math:`b` of a power law
    :math:`y \propto x^b`.

    Parameters
    ----------
    x, y : sequence of float
        Equally long, at least two points, ``x`` not all equal.

    Returns
    -------
    float
        The slope; NaN if a value is not positive (a power law has no zero).

    Raises
    ------
    ValueError
        If ``x`` and ``y`` differ in length or have fewer than two points.
    """
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"need two equally long sequences of >= 2 points, got {len(x)}, {len(y)}")
    if min(x) <= 0 or min(y) <= 0:
        return math.nan
    us, vs = [math.log(v) for v in x], [math.log(v) for v in y]
    mu, mv = sum(us) / len(us), sum(vs) / len(vs)
    return sum((u - mu) * (v - mv) for u, v in zip(us, vs, strict=True)) / sum(
        (u - mu) ** 2 for u in us
    )
