"""kunstner-app-e claims on synthetic results: passing, failing and undecidable cases."""

import copy

import pytest

from fisherlab.experiments.kunstner import app_e

L_STAR = 10.0


def _results(efgd_final, ngd_final=(10.001,) * 4, initial=(15.0, 28.0, 80.0, 300.0), lr=1.25):
    """Four starts, two-point curves ``[initial, final]``."""
    return {
        "optimal_loss": L_STAR,
        "factors": [0.875, 0.75, 0.5, 0.0],
        "iterations": 20,
        "lr_grid": [-2.0 + 0.125 * i for i in range(41)],
        "selected": {
            "NGD": {"log10_lr": -0.625, "log10_damping": -10.0},
            "EFGD": {"log10_lr": lr, "log10_damping": -9.5},
        },
        "curves": {
            "NGD": [[a, b] for a, b in zip(initial, ngd_final, strict=True)],
            "EFGD": [[a, b] for a, b in zip(initial, efgd_final, strict=True)],
        },
    }


GOOD = (10.002, 10.02, 10.5, 80.0)  # close: as NGD; far: clearly behind, growing gap


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        (_results(GOOD), [True, True]),
        # EFGD as good as NGD from every start
        (_results((10.001,) * 4), [False, False]),
        # leaves a larger fraction from the closest start than from the next
        (_results((10.004, 10.005, 10.5, 80.0)), [False, True]),
        # already close to NGD at the start: "very few differences" is not earned
        (_results(GOOD, initial=(10.005, 28.0, 80.0, 300.0)), [False, None]),
        # the selected EFGD step size is on the edge of the grid
        (_results(GOOD, lr=3.0), [None, None]),
    ],
)
def test_verdicts_follow_the_numbers(results, expected):
    claims = app_e.claims(copy.deepcopy(results))
    assert [c.holds for c in claims] == expected
    for c in claims:
        assert c.criterion and c.premise
        assert c.premise_holds is (c.holds is not None)
