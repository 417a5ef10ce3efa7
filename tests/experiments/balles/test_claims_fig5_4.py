"""Claims of balles-fig5-4 on synthetic results dicts; step-size grid extension."""

import copy

import pytest

from fisherlab.experiments.balles import fig5_4
from fisherlab.experiments.balles.training import grid_neighbor

from .tuning_summaries import around as _lo
from .tuning_summaries import set_value as _set
from .tuning_summaries import summary as _s

# two problems: sign methods better on "A", non-sign better on "B"; M-SVAG < M-SGD on both;
# on "B" ADAM and M-SSD generalize worse than M-SGD, M-SVAG does not
FIG54 = {
    "seeds": 3,
    "methods": ["M-SGD", "M-SVAG", "M-SSD", "ADAM"],
    "problems": {
        "A": {
            "M-SGD": _s(_lo(-1.0), _lo(0.90)),
            "M-SVAG": _s(_lo(-1.2), _lo(0.90)),
            "M-SSD": _s(_lo(-2.0), _lo(0.90)),
            "ADAM": _s(_lo(-2.1), _lo(0.90)),
        },
        "B": {
            "M-SGD": _s(_lo(-2.0), _lo(0.95)),
            "M-SVAG": _s(_lo(-2.1), _lo(0.95)),
            "M-SSD": _s(_lo(-1.0), _lo(0.90)),
            "ADAM": _s(_lo(-1.1), _lo(0.90)),
        },
    },
}


def _no_cluster(r):
    _set(r, "A", "M-SVAG", "log10_final_train_loss", _lo(-2.05))  # M-SVAG joins the signs


def _same_sign(r):
    for m in ("M-SSD", "ADAM"):  # sign methods lose on A too
        _set(r, "A", m, "log10_final_train_loss", _lo(-0.5))


def _va_hurts(r):
    _set(r, "B", "ADAM", "log10_final_train_loss", _lo(-0.5))  # ADAM worse than M-SSD


def _svag_generalizes_worse(r):
    _set(r, "B", "M-SVAG", "max_test_acc", _lo(0.90))


def _edge(r):
    r["problems"]["A"]["ADAM"]["lr_interior"] = False


def _one_seed(r):
    r["seeds"] = 1


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (None, [True, True, True, True]),
        (_no_cluster, [False, True, True, True]),
        (_same_sign, [True, False, True, True]),
        (_va_hurts, [True, True, False, True]),
        (_svag_generalizes_worse, [True, True, True, False]),
        (_edge, [None, None, None, None]),
        (_one_seed, [None, None, None, None]),
    ],
)
def test_fig5_4_claims(mutate, expected):
    r = copy.deepcopy(FIG54)
    if mutate is not None:
        mutate(r)
    claims = fig5_4.claims(r)
    assert [c.holds for c in claims] == expected
    assert all(c.criterion and c.premise for c in claims)


def test_fig5_4_generalization_premise_needs_the_effect():
    r = copy.deepcopy(FIG54)
    _set(r, "B", "ADAM", "max_test_acc", _lo(0.95))  # no generalization gap anywhere
    claim = fig5_4.claims(r)[3]
    assert claim.holds is None and not claim.premise_holds


def test_fig5_4_problem_dependence_needs_two_problems():
    r = copy.deepcopy(FIG54)
    del r["problems"]["B"]
    claim = fig5_4.claims(r)[1]
    assert claim.holds is None


@pytest.mark.parametrize(
    ("lr", "up", "expected"),
    [
        (0.1, True, 0.3),
        (0.3, True, 1.0),
        (0.1, False, 0.03),
        (0.3, False, 0.1),
        (0.6, True, 1.0),
        (0.6, False, 0.3),
    ],
)
def test_grid_neighbor(lr, up, expected):
    assert grid_neighbor(lr, up) == pytest.approx(expected)


def test_grid_is_extended_when_the_selection_is_on_the_edge(tmp_path):
    from fisherlab.experiments.base import RunContext

    cfg = fig5_4.TuningConfig(
        problems=["digits-mlp"],
        methods=["M-SGD"],
        lrs_non_sign=[0.001, 0.003],  # far too small: the best is the top edge
        max_extensions=1,
        steps=30,
        eval_every=10,
        seeds=1,
    )
    res = fig5_4.tune_and_replicate(cfg, RunContext(tmp_path, 0, quick=True))
    s = res["problems"]["digits-mlp"]["M-SGD"]
    assert s["grid"] == pytest.approx([0.001, 0.003, 0.01])
    assert s["lr"] == pytest.approx(0.01) and s["lr_interior"] is False
