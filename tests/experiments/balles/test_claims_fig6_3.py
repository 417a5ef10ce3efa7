"""balles-fig6-3 claims on synthetic results: a pass, a fail, and failed premises."""

import math

import pytest

from fisherlab.experiments.balles import fig6_3

PHIS = [0.0, 0.1, 0.2, 0.6, 1.0]
COND = [1.4, 5.0, 9.9]


def _results(n_rot=4, ratio=None, rel=None, fig61_ok=True):
    """Per-rotation grids ``ratio(i, j, r)`` (L∞/L2) and ``rel(i, j, r)`` (log10 GD/sign GD)."""
    ratio = ratio or (lambda i, j, r: 1.0 + 4.0 * PHIS[j] + 0.01 * r)
    rel = rel or (lambda i, j, r: (1.0 if i == 2 and j <= 2 else -2.0) + 0.01 * r)
    per_ratio = [
        [[ratio(i, j, r) for j in range(len(PHIS))] for i in range(len(COND))] for r in range(n_rot)
    ]
    per_rel = [
        [[rel(i, j, r) for j in range(len(PHIS))] for i in range(len(COND))] for r in range(n_rot)
    ]

    def mean(per):
        return [
            [sum(p[i][j] for p in per) / n_rot for j in range(len(PHIS))] for i in range(len(COND))
        ]

    omega = [k * math.pi / 8 for k in range(5)]
    f61 = {
        "omega": omega,
        "ratio": {"5.0": [1.2 + 0.8 * math.sin(2 * w) for w in omega]},
        "max_closed_form_error": 1e-16 if fig61_ok else 1e-3,
    }
    return {
        "phi": PHIS,
        "lambda_ratio": COND,
        "linf_over_l2": mean(per_ratio),
        "log10_gd_over_sign": mean(per_rel),
        "per_rotation": {"linf_over_l2": per_ratio, "log10_gd_over_sign": per_rel},
        "fig61": f61,
    }


def _bad_ratio(i, j, r):
    # falls by 1 from φ = 0.6 to 1 in every rotation: a significant decrease
    return 1.0 + 4.0 * PHIS[j] - (5.0 if j == 4 else 0.0) + 0.01 * r


def _bad_rel(i, j, r):
    # sign GD worse everywhere; GD only slightly better on the mild, rotated problem
    return -0.5 + 0.01 * r


@pytest.mark.parametrize(
    ("results", "holds", "premise"),
    [
        (_results(), [True, True, True, True], [True] * 4),
        (_results(ratio=_bad_ratio, rel=_bad_rel, fig61_ok=False), [False] * 4, [True] * 4),
        (_results(n_rot=2), [True, None, None, None], [True, False, False, False]),
    ],
    ids=["pass", "fail", "two-rotations"],
)
def test_claims_follow_the_numbers(results, holds, premise):
    claims = fig6_3.claims(results)
    assert [c.holds for c in claims] == holds
    assert [c.premise_holds for c in claims] == premise
    assert all(c.criterion and c.premise for c in claims)


def test_outlier_premise():
    res = _results()
    res["lambda_ratio"] = [1.4, 2.0, 3.0]  # no outlier eigenvalue on the grid
    assert fig6_3.claims(res)[2].holds is None
