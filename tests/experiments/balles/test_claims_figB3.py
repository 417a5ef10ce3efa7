"""Claims of balles-figB3 on synthetic results dicts (pass, fail, premise fails)."""

import copy

import pytest

from fisherlab.experiments.balles import figB3

from .tuning_summaries import around as _lo
from .tuning_summaries import set_value as _set
from .tuning_summaries import summary as _s


def _one_seed(r):
    r["seeds"] = 1


FIGB3 = {
    "seeds": 3,
    "methods": ["M-SVAG", "M-SVAG-mb"],
    "problems": {
        p: {
            "M-SVAG": _s(_lo(-1.0), _lo(0.9, 0.001), shrinkage=[0.5] * 3),
            "M-SVAG-mb": _s(_lo(-1.02), _lo(0.902, 0.001), shrinkage=[0.55] * 3),
        }
        for p in ("A", "B")
    },
}


def _mb_differs(r):
    _set(r, "B", "M-SVAG-mb", "log10_final_train_loss", _lo(-1.2))


def _mb_noisy(r):
    _set(r, "B", "M-SVAG-mb", "log10_final_train_loss", [-1.1, -1.0, -0.9])


def _no_adaptation(r):
    _set(r, "A", "M-SVAG", "shrinkage", [0.99] * 3)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (None, True),
        (_mb_differs, False),
        (_mb_noisy, False),
        (_no_adaptation, None),
        (_edge_b3 := lambda r: r["problems"]["A"]["M-SVAG"].update(lr_interior=False), None),
        (_one_seed, None),
    ],
)
def test_figB3_claims(mutate, expected):
    r = copy.deepcopy(FIGB3)
    if mutate is not None:
        mutate(r)
    (claim,) = figB3.claims(r)
    assert claim.holds is expected
