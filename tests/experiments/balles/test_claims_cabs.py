"""Claims of balles-cabs on synthetic results dicts."""

import copy

import pytest

from fisherlab.experiments.balles import cabs


def _sel(log10_final, acc, *, lr=0.1, interior=True, batch=None, clipped=None):
    return {
        "variant": "x",
        "lr": lr,
        "lr_interior": interior,
        "log10_final_train_loss": list(log10_final),
        "max_test_acc": list(acc),
        "batch": batch if batch is not None else [[16] * 10] * 3,
        "clipped_min_fraction": clipped if clipped is not None else [float("nan")] * 3,
    }


def _lo(x, d=0.01):
    return [x - d, x, x + d]


GROWING = [[2, 2, 4, 8, 10, 12, 14, 16, 20, 24]] * 3

RESULTS = {
    "min_batch": 2,
    "seeds": 3,
    "sensitivity_lrs": [0.03, 0.1, 0.3],
    "selected": {
        "CABS": _sel(_lo(-2.0), _lo(0.98, 0.001), batch=GROWING, clipped=[0.2, 0.25, 0.3]),
        "constant 16": _sel(_lo(-1.5), _lo(0.97, 0.001)),
        "competitor": _sel(_lo(-1.2), _lo(0.96, 0.001), clipped=[0.1] * 3),
    },
    "sensitivity": {
        "CABS": {
            "variant": "CABS",
            "log10_spread": 0.2,
            "clipped_min_fraction": {"0.03": 0.4, "0.1": 0.2, "0.3": 0.2},
        },
        "constant 64": {"variant": "constant 64", "log10_spread": 0.9},
        "competitor": {"variant": "competitor θ=0.8", "log10_spread": 1.5},
    },
}


def _slow(r):
    r["selected"]["competitor"]["log10_final_train_loss"] = _lo(-2.1)


def _less_accurate(r):
    r["selected"]["constant 16"]["max_test_acc"] = _lo(0.99, 0.001)


def _flat_batch(r):
    r["selected"]["CABS"]["batch"] = [[4, 5, 5, 5, 5, 5, 5, 5, 5, 6]] * 3


def _sensitive(r):
    r["sensitivity"]["CABS"]["log10_spread"] = 0.6


def _clipped(r):
    r["selected"]["CABS"]["clipped_min_fraction"] = [0.2, 0.7, 0.3]


def _clipped_at_small_lr(r):
    r["sensitivity"]["CABS"]["clipped_min_fraction"]["0.03"] = 0.9


def _edge(r):
    r["selected"]["constant 16"]["lr_interior"] = False


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (None, [True, True, True, True]),
        (_slow, [False, True, True, True]),
        (_less_accurate, [True, False, True, True]),
        (_flat_batch, [True, True, False, True]),
        (_sensitive, [True, True, True, False]),
        (_clipped, [None, None, None, True]),
        (_clipped_at_small_lr, [True, True, True, None]),
        (_edge, [None, None, True, True]),
    ],
)
def test_cabs_claims(mutate, expected):
    r = copy.deepcopy(RESULTS)
    if mutate is not None:
        mutate(r)
    claims = cabs.claims(r)
    assert [c.holds for c in claims] == expected
    assert all(c.criterion and c.premise for c in claims)
    assert not any(c.holds and not c.premise_holds for c in claims)


def test_cabs_comparisons_need_two_seeds():
    r = copy.deepcopy(RESULTS)
    r["seeds"] = 1
    assert [c.holds for c in cabs.claims(r)[:2]] == [None, None]


def test_cabs_train_rejects_bad_arguments():
    cfg = cabs.CABSConfig(epochs=0.1)
    with pytest.raises(ValueError, match="unknown method"):
        cabs.train(cfg, "nope", 0.1)
    with pytest.raises(ValueError, match="batch_size"):
        cabs.train(cfg, "constant", 0.1, batch_size=1)
    with pytest.raises(ValueError, match="min_batch"):
        cabs.train(cabs.CABSConfig(epochs=0.1, min_batch=1), "CABS", 0.1)
