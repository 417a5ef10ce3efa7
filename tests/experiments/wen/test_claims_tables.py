"""``wen-tables`` claims on synthetic results: verdicts follow the numbers and the premise."""

from __future__ import annotations

import copy

import pytest

from fisherlab.experiments.wen import tables

SPREAD = (-0.3, 0.0, 0.3)  # per-seed offsets: standard error 0.17 per arm


def _results(val, train=None, lam=None, selected=(0.2, 0.3)):
    train = train or {}
    lam = lam or {"SB": 2.0, "LB": 6.0, "LB+diag F": 3.0}
    methods = {}
    for name in tables.METHODS:
        methods[name] = {
            "val_accuracy": [val[name] + d for d in SPREAD],
            "train_accuracy": [train.get(name, 100.0) - abs(d) for d in SPREAD],
        }
        if name in tables.SHARPNESS:
            methods[name]["lambda_max"] = [lam[name] + d for d in SPREAD]
    return {
        "methods": methods,
        "num_seeds": len(SPREAD),
        "tuning": {
            "SB": {"grid": [0.1, 0.2, 0.4], "selected": selected[0]},
            "LB": {"grid": [0.15, 0.3, 0.6], "selected": selected[1]},
        },
    }


PAPER_LIKE = {  # a gap of 8 points, diag and BatchChange close most of it (Tables 1-2)
    "SB": 92.0,
    "LB": 84.0,
    "LB+diag F": 90.0,
    "BatchChange": 91.0,
    "Multiplicative": 85.0,
    "K-FAC": 89.5,
    "Fisher trace": 90.0,
}
NOTHING_HELPS = {  # the gap exists, no method closes it, a variant beats diag
    "SB": 92.0,
    "LB": 84.0,
    "LB+diag F": 84.2,
    "BatchChange": 84.0,
    "Multiplicative": 86.0,
    "K-FAC": 88.0,
    "Fisher trace": 84.0,
}
NO_GAP = dict(PAPER_LIKE, SB=84.1)


@pytest.mark.parametrize(
    ("val", "train", "lam", "selected", "expected"),
    [
        (PAPER_LIKE, None, None, (0.2, 0.3), [True] * 8),
        (
            NOTHING_HELPS,
            None,
            {"SB": 6.0, "LB": 2.0, "LB+diag F": 3.0},
            (0.2, 0.3),
            [True, False, False, False, False, False, False, False],
        ),
        # no SB/LB gap: the gap claim fails, everything downstream is not decidable
        (NO_GAP, None, None, (0.2, 0.3), [False] + [None] * 7),
        # LB under-trained (train accuracy 10 points lower): not comparable, not decidable
        (PAPER_LIKE, {"LB": 90.0}, None, (0.2, 0.3), [None] * 8),
        # LB's selected step size on the edge of its grid: not decidable
        (PAPER_LIKE, None, None, (0.2, 0.6), [None] * 8),
    ],
)
def test_verdicts(val, train, lam, selected, expected):
    claims = tables.claims(_results(val, train, lam, selected))
    assert [c.holds for c in claims] == expected
    for c in claims:
        assert c.criterion and c.premise
        assert not (c.holds and not c.premise_holds)


def test_single_seed_is_not_decidable():
    r = _results(PAPER_LIKE)
    for m in r["methods"].values():
        for key in ("val_accuracy", "train_accuracy", "lambda_max"):
            if key in m:
                m[key] = m[key][:1]
    r["num_seeds"] = 1
    assert [c.holds for c in tables.claims(r)] == [False] + [None] * 7


def test_missing_sharpness_makes_fig5b_not_decidable():
    r = copy.deepcopy(_results(PAPER_LIKE))
    r["methods"]["LB"]["lambda_max"] = [float("nan")] * 3
    verdicts = [c.holds for c in tables.claims(r)]
    assert verdicts[:6] == [True] * 6 and verdicts[6:] == [None, None]


def test_no_difference_claim_needs_power():
    """ "At least as good" is not decidable when diag's seeds scatter more than half the gap."""
    r = _results(PAPER_LIKE)
    r["methods"]["LB+diag F"]["val_accuracy"] = [84.0, 90.0, 96.0]
    assert tables.claims(r)[5].holds is None
