"""kunstner-fig3 claims on synthetic results: a passing, a failing and an undecidable case."""

import copy

import pytest

from fisherlab.experiments.kunstner import fig3

LR_GRID = [-6.0 + 0.125 * i for i in range(65)]


def _selected(lr, damping, loss, published, published_loss, ties, flipped=None):
    return {
        "log10_lr": lr,
        "log10_damping": damping,
        "final_loss": loss,
        "num_ties": 1,
        "published": list(published),
        "published_final_loss": published_loss,
        "published_ties": ties,
        "sign_flipped_final_loss": flipped,
        "sign_flipped_ties": False,
    }


def _results():
    """Boston-like results where every claim holds."""
    cosines = [1.0, 0.5, -0.95] + [0.9] * 20
    return {
        "lr_grid": LR_GRID,
        "tie_rtol": 1e-6,
        "selected": {
            "boston": {
                "GD": _selected(-5.25, None, 38.7, (-5.25, None), 38.7, True),
                "NGD": _selected(0.125, -10.0, 10.9, (0.125, -10.0), 10.9, True),
                "EFGD": _selected(-1.25, -8.0, 10.9, (-1.25, -8.0), 10.9, True),
            }
        },
        "curves": {
            "boston": {
                "GD": [300.0, 38.7],
                "NGD": [300.0, 10.9],
                "EFGD": [300.0, 10.9],
                "GD (Table D.5)": [300.0, 38.7],
                "NGD (Table D.5)": [300.0, 10.9],
                "EFGD (Table D.5)": [300.0, 10.9],
                "cosine_EF_NGD": cosines,
                "cosine_resolved": [True] * len(cosines),
            }
        },
        "speed": {
            "boston": {
                "target": 10.9,
                "NGD": {"log10_lr": 0.0, "log10_damping": -10.0, "iterations": 1},
                "EFGD": {"log10_lr": -1.25, "log10_damping": -8.0, "iterations": 70},
            }
        },
    }


def _verdicts(results):
    return {c.claim.split(":")[0]: c for c in fig3.claims(results)}


def _table_fails(r):
    efgd = r["selected"]["boston"]["EFGD"]
    efgd.update(log10_lr=1.25, published_final_loss=290.6, published_ties=False)
    efgd["sign_flipped_final_loss"], efgd["sign_flipped_ties"] = 10.9, True
    r["curves"]["boston"]["EFGD (Table D.5)"] = [300.0, 290.6]


def _table_rounding(r):
    _table_fails(r)
    r["curves"]["boston"]["EFGD (Table D.5)"] = [300.0, 10.0]  # alone, it beats ours


def _selection_not_reproduced(r):
    # the published cell ties in the grid, but run alone our selection ends 5 % higher
    r["curves"]["boston"]["EFGD"] = [300.0, 10.9 * 1.05]


def _table_edge(r):
    _table_fails(r)
    r["selected"]["boston"]["EFGD"]["log10_lr"] = LR_GRID[-1]


def _slower(r):
    r["speed"]["boston"]["NGD"]["iterations"] = 80


def _never(r):
    r["speed"]["boston"]["NGD"]["iterations"] = None


def _speed_edge(r):
    r["selected"]["boston"]["NGD"]["log10_lr"] = LR_GRID[0]


def _not_opposite(r):
    r["curves"]["boston"]["cosine_EF_NGD"][2] = -0.5


def _opposite_at_roundoff(r):
    _not_opposite(r)
    r["curves"]["boston"]["cosine_EF_NGD"][3] = -0.99
    r["curves"]["boston"]["cosine_resolved"][3] = False


def _too_few_points(r):
    r["curves"]["boston"]["cosine_resolved"] = [True] * 5 + [False] * 18


KEYS = {
    "table": "Table D.5, boston EFGD",
    "speed": "boston",
    "cosine": "Boston",
}


@pytest.mark.parametrize(
    ("claim", "edit", "expected"),
    [
        ("table", None, True),
        ("table", _table_fails, False),
        ("table", _table_rounding, None),
        ("table", _selection_not_reproduced, None),
        ("table", _table_edge, None),
        ("speed", None, True),
        ("speed", _slower, False),
        ("speed", _never, False),
        ("speed", _speed_edge, None),
        ("cosine", None, True),
        ("cosine", _not_opposite, False),
        ("cosine", _opposite_at_roundoff, False),
        ("cosine", _too_few_points, None),
    ],
)
def test_verdicts_follow_the_numbers(claim, edit, expected):
    results = copy.deepcopy(_results())
    if edit is not None:
        edit(results)
    c = _verdicts(results)[KEYS[claim]]
    assert c.holds is expected
    assert c.premise_holds is (expected is not None)
    assert c.criterion and c.premise


def test_sign_flipped_cell_is_reported():
    results = copy.deepcopy(_results())
    _table_fails(results)
    measured = _verdicts(results)[KEYS["table"]].measured
    assert "at lr 10^1.25 (the published value with the opposite sign)" in measured
    assert "ties with the minimum" in measured


def _breast_cancer(cosines, efgd_final):
    r = copy.deepcopy(_results())
    for key in ("selected", "curves", "speed"):
        r[key]["breast-cancer"] = r[key].pop("boston")
    r["curves"]["breast-cancer"].update(
        cosine_EF_NGD=cosines, cosine_resolved=[True] * len(cosines)
    )
    r["curves"]["breast-cancer"]["EFGD"] = [0.69, efgd_final]
    r["curves"]["breast-cancer"]["NGD"] = [0.69, 0.0005]
    return r


@pytest.mark.parametrize(
    ("cosines", "efgd_final", "expected"),
    [
        ([0.3] * 12, 0.01, True),  # right direction, yet EFGD ends far above NGD
        ([0.3] * 11 + [-0.1], 0.01, False),  # direction wrong somewhere
        ([0.3] * 12, 0.0005, False),  # EFGD as good as NGD
        ([0.3] * 9, 0.01, None),  # too few points
    ],
)
def test_breast_cancer_direction_vs_magnitude(cosines, efgd_final, expected):
    c = _verdicts(_breast_cancer(cosines, efgd_final))["BreastCancer"]
    assert c.holds is expected
