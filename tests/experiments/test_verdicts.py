import math

import pytest

from fisherlab.experiments.base import NOT_DECIDABLE, Claim
from fisherlab.experiments.verdicts import fmt, fmt_mean_se, greater_by_se, interior, mean_se


def _claim(holds, premise_holds):
    return Claim("c", "m", holds, "s", criterion="r", premise="p", premise_holds=premise_holds)


@pytest.mark.parametrize("holds", [True, False, None])
def test_a_failed_premise_makes_the_verdict_not_decidable(holds):
    c = _claim(holds, premise_holds=False)
    assert c.holds is None
    assert NOT_DECIDABLE in c.measured


@pytest.mark.parametrize("holds", [True, False, None])
def test_a_met_premise_keeps_the_verdict(holds):
    assert _claim(holds, premise_holds=True).holds is holds


@pytest.mark.parametrize("field", ["claim", "criterion", "premise"])
def test_a_claim_without_its_rule_is_refused(field):
    kwargs = dict(
        claim="c",
        measured="m",
        holds=True,
        source="s",
        criterion="r",
        premise="p",
        premise_holds=True,
    )
    kwargs[field] = " "
    with pytest.raises(ValueError, match=field):
        Claim(**kwargs)


def test_scale_is_stamped_and_checked():
    assert _claim(True, True).at_scale("quick").to_dict()["scale"] == "quick"
    with pytest.raises(ValueError, match="scale"):
        _claim(True, True).at_scale("medium")


def test_round_trip():
    c = _claim(False, True).at_scale("full")
    assert Claim.from_dict(c.to_dict()) == c


def test_mean_se():
    m, se = mean_se([1.0, 2.0, 3.0])
    assert m == 2.0 and se == pytest.approx(1 / math.sqrt(3))
    assert math.isnan(mean_se([1.0])[1])


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ([10.0, 10.1, 9.9], [1.0, 1.1, 0.9], True),
        ([1.0, 1.1, 0.9], [10.0, 10.1, 9.9], False),
        ([1.0, 3.0, 2.0], [2.0, 1.0, 3.0], False),
        ([10.0], [1.0], False),
    ],
)
def test_greater_by_se_can_go_both_ways(a, b, expected):
    assert greater_by_se(a, b) is expected


def test_interior():
    grid = [0.1, 0.2, 0.3, 0.4]
    assert interior(0.2, grid) and not interior(0.1, grid) and not interior(0.4, grid)
    assert not interior(1.0, [1.0, 2.0])


def test_fmt():
    assert fmt(3.14159265) == "3.142" and fmt(float("nan")) == "nan"


def test_fmt_mean_se():
    assert fmt_mean_se([1.0, 2.0, 3.0]) == "2 ± 0.58"
    assert fmt_mean_se([1.23456], 3) == "1.23"
