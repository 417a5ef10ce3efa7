"""Claims of balles-figB2 on synthetic results dicts (pass, fail, premise fails)."""

import copy

import pytest

from fisherlab.experiments.balles import figB2

from .tuning_summaries import around as _lo
from .tuning_summaries import set_value as _set
from .tuning_summaries import summary as _s


def _edge(r):
    r["problems"]["A"]["ADAM"]["lr_interior"] = False


def _one_seed(r):
    r["seeds"] = 1


FIGB2 = {
    "seeds": 3,
    "methods": ["M-SVAG", "SVAG", "ADAM", "ADAM*"],
    "problems": {
        "A": {
            "M-SVAG": _s(_lo(-1.0), _lo(0.9)),
            "SVAG": _s(_lo(-1.5), _lo(0.9)),
            "ADAM": _s(_lo(-1.0), _lo(0.9), min_loss=_lo(0.10)),
            "ADAM*": _s(_lo(-1.0), _lo(0.9), min_loss=_lo(0.05)),
        },
        "B": {
            "M-SVAG": _s(_lo(-1.0), _lo(0.9)),
            "SVAG": _s(_lo(-0.9), _lo(0.9)),
            "ADAM": _s(_lo(-1.0), _lo(0.9), min_loss=_lo(0.10)),
            "ADAM*": _s(_lo(-1.0), _lo(0.9), min_loss=_lo(0.10)),
        },
    },
}


def _svag_never_better(r):
    _set(r, "A", "SVAG", "log10_final_train_loss", _lo(-0.8))


def _adam_star_worse_somewhere(r):
    _set(r, "B", "ADAM*", "min_train_loss", _lo(0.2))


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (None, [True, True]),
        (_svag_never_better, [False, True]),
        (_adam_star_worse_somewhere, [True, False]),
        (_edge, [True, None]),
        (_one_seed, [None, None]),
    ],
)
def test_figB2_claims(mutate, expected):
    r = copy.deepcopy(FIGB2)
    if mutate is not None:
        mutate(r)
    claims = figB2.claims(r)
    assert [c.holds for c in claims] == expected
