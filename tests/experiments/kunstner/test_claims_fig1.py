"""kunstner-fig1 claims on synthetic results: passing, failing and undecidable cases."""

import copy
import math

import pytest

from fisherlab.experiments.kunstner.fig1 import claims

OPTIMUM = [2.0, 2.0]
STARTS = [[2.0, 4.5], [1.0, 0.0]]


def _run(start, final, bend=1.0):
    return {"start": start, "final": final, "path_length": bend * math.dist(start, final)}


def _results():
    """NGD straight to θ*, GD bent, EFGD straight but stopping short, distorted field."""
    n = 100
    return {
        "iterations": 5000,
        "lr": 1e-3,
        "optimum": OPTIMUM,
        "trajectories": {
            "GD": [_run(s, [2.1, 2.1], bend=1.3) for s in STARTS],
            "NGD": [
                _run(s, [2.0 + 0.01 * (s[0] - 2.0), 2.0 + 0.01 * (s[1] - 2.0)]) for s in STARTS
            ],
            "EFGD": [
                _run(s, [s[0] + 0.3 * (2.0 - s[0]), s[1] + 0.3 * (2.0 - s[1])]) for s in STARTS
            ],
        },
        "field_stats": {
            "grid": 10,
            "cos_ef_ngd": [0.3] * 30 + [0.99] * (n - 30),
            "cos_to_optimum": {
                "GD": [0.8] * n,
                "NGD": [1.0] * n,
                "EFGD": [0.3] * 30 + [0.99] * (n - 30),
            },
        },
    }


def _ngd_bent(r):
    r["trajectories"]["NGD"][0]["path_length"] *= 1.5


def _gd_straight(r):
    for run in r["trajectories"]["GD"]:
        run["path_length"] = math.dist(run["start"], run["final"])


def _efgd_converges(r):
    r["trajectories"]["EFGD"] = copy.deepcopy(r["trajectories"]["NGD"])


def _ngd_stalls(r):
    r["trajectories"]["NGD"] = [_run(s, [s[0] + 0.5, s[1]]) for s in STARTS]


def _ef_aligned(r):
    n = len(r["field_stats"]["cos_ef_ngd"])
    r["field_stats"]["cos_ef_ngd"] = [0.99] * n
    r["field_stats"]["cos_to_optimum"]["EFGD"] = [0.99] * n


def _ng_not_aligned(r):
    r["field_stats"]["cos_to_optimum"]["NGD"][0] = 0.9


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (None, [True, True, True, True]),
        (_ngd_bent, [False, True, True, True]),
        (_gd_straight, [None, True, True, True]),
        (_efgd_converges, [True, False, True, True]),
        (_ngd_stalls, [False, None, True, True]),
        (_ef_aligned, [True, True, False, False]),
        (_ng_not_aligned, [True, True, None, None]),
    ],
)
def test_verdicts_follow_the_numbers(edit, expected):
    results = _results()
    if edit is not None:
        edit(results)
    out = claims(results)
    assert [c.holds for c in out] == expected
    for c in out:
        assert c.criterion and c.premise
        assert c.premise_holds is (c.holds is not None)
