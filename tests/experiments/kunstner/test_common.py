"""Helpers shared by the kunstner-* experiments."""

import math

import pytest

from fisherlab.experiments.kunstner.common import loglog_slope


@pytest.mark.parametrize("exponent", [-0.5, 1.0, 2.5])
def test_loglog_slope_recovers_a_power_law(exponent):
    x = [10.0**k for k in range(-2, 4)]
    y = [3.0 * v**exponent for v in x]
    assert loglog_slope(x, y) == pytest.approx(exponent, abs=1e-12)


def test_loglog_slope_is_the_least_squares_fit_through_scattered_points():
    x, y = [1.0, 10.0, 100.0], [1.0, 100.0, 1000.0]  # log10: (0, 0), (1, 2), (2, 3)
    assert loglog_slope(x, y) == pytest.approx(1.5, abs=1e-12)


def test_loglog_slope_nan_for_non_positive_values_and_errors_for_bad_lengths():
    assert math.isnan(loglog_slope([1.0, 2.0], [0.0, 1.0]))
    with pytest.raises(ValueError, match="points"):
        loglog_slope([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="points"):
        loglog_slope([1.0], [1.0])
