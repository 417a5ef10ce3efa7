"""Statistical decision rules shared by the experiments' claims.

Every claim's criterion is one of a few rules, fixed before the run: a difference of means
larger than ``k`` standard errors of the difference over seeds, a ratio beyond a factor
the paper states, a selected hyper-parameter strictly inside its grid. The rules live
here once, so that the sentence a claim prints as its ``criterion`` and the test it
applies are the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "fmt",
    "fmt_mean_se",
    "greater_by_se",
    "interior",
    "mean_se",
    "se_of_difference",
]


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    r"""Return the mean and its standard error over seeds.

    .. math:: \bar x = \frac1S \sum_s x_s, \qquad
              \mathrm{se} = \sqrt{\frac{1}{S(S-1)} \sum_s (x_s - \bar x)^2}

    Parameters
    ----------
    values : sequence of float
        One value per seed; at least one.

    Returns
    -------
    (float, float)
        The mean and its standard error (``nan`` for a single value: one seed gives no
        error bar, so no rule based on it can pass).
    """
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("mean_se needs at least one value")
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, math.nan
    var = sum((x - m) ** 2 for x in xs) / (len(xs) - 1)
    return m, math.sqrt(var / len(xs))


def se_of_difference(a: Sequence[float], b: Sequence[float]) -> float:
    r"""Standard error of :math:`\bar a - \bar b` for independent seeds.

    .. math:: \mathrm{se}(\bar a - \bar b) = \sqrt{\mathrm{se}_a^2 + \mathrm{se}_b^2}
    """
    return math.hypot(mean_se(a)[1], mean_se(b)[1])


def greater_by_se(a: Sequence[float], b: Sequence[float], k: float = 2.0) -> bool:
    r"""Whether :math:`\bar a - \bar b > k \sqrt{se_a^2 + se_b^2}` over seeds.

    With fewer than two seeds on either side the standard error is undefined and the
    rule returns ``False``: one seed cannot establish a difference.

    Parameters
    ----------
    a, b : sequence of float
        Per-seed values of the two arms.
    k : float, optional
        Number of standard errors (default 2, about a 95 % one-sided test).
    """
    se = se_of_difference(a, b)
    if not math.isfinite(se):
        return False
    return mean_se(a)[0] - mean_se(b)[0] > k * se


def interior(value: float, grid: Sequence[float]) -> bool:
    """Whether ``value`` lies strictly inside ``grid``: neither its smallest nor largest point.

    A hyper-parameter selected on the edge of its grid means the optimum may lie outside
    it, so comparisons at the selected value are not decidable.
    """
    g = sorted(float(x) for x in grid)
    if len(g) < 3:
        return False
    v = float(value)
    tol = 1e-9 * max(1.0, abs(v))
    return g[0] + tol < v < g[-1] - tol


def fmt(x: float, digits: int = 4) -> str:
    """Format ``x`` with ``digits`` significant digits (``"nan"``, ``"inf"`` as such)."""
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    return f"{x:.{digits}g}"


def fmt_mean_se(values: Sequence[float], digits: int = 4) -> str:
    """Format values over seeds as ``"mean ± se"``.

    ``digits`` significant digits for the mean, 2 for the standard error; the mean alone
    when one seed gives no standard error.
    """
    m, se = mean_se(values)
    return f"{fmt(m, digits)} ± {fmt(se, 2)}" if math.isfinite(se) else fmt(m, digits)
