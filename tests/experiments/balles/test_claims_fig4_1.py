"""balles-fig4-1 claims on synthetic results: a pass, a fail, and a failed premise."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from fisherlab.experiments.balles import fig4_1

ETAS = [0.25, 1.0, 4.0]
MS = [10, 100]


def _results(spread, central99=3.0, ks_pvalue=0.5):
    """Results with the exact 5-95 span ``spread[(m, eta)]`` and the given premise data."""
    cells = {}
    for m in MS:
        for eta in ETAS:
            cells[f"m={m},eta={eta}"] = {
                "m": m,
                "eta": eta,
                "exact_decades_5_95": spread[(m, eta)],
                "decades_5_95": spread[(m, eta)],
                "exact_decades_central_99": central99,
                "decades_central_99": central99,
                "ks_pvalue": ks_pvalue,
            }
    return {"sample_sizes": MS, "etas": ETAS, "trials": 1000, "cells": cells}


GOOD = {(10, 0.25): 0.7, (10, 1.0): 1.2, (10, 4.0): 3.0, (100, 0.25): 0.2, (100, 1.0): 0.4}
GOOD[(100, 4.0)] = 1.4
# spread falls with η at m = 100, and η = 4 at m = 100 is tighter than η = 0.25 at m = 10
BAD = {**GOOD, (100, 1.0): 0.1, (100, 4.0): 0.05}


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        (_results(GOOD, central99=3.1), [True, True, True]),
        (_results(BAD, central99=1.8), [False, False, False]),
        (_results(GOOD, central99=4.2), [True, True, False]),
        (_results(GOOD, ks_pvalue=1e-5), [None, None, None]),
    ],
    ids=["pass", "fail", "too-wide", "trials-disagree-with-exact"],
)
def test_claims_follow_the_numbers(results, expected):
    claims = fig4_1.claims(results)
    assert [c.holds for c in claims] == expected
    for c in claims:
        assert c.criterion and c.premise
        assert c.premise_holds is (expected[0] is not None)


@pytest.mark.parametrize(("m", "eta"), [(10, 0.25), (10, 4.0), (100, 4.0)])
def test_exact_cdf_matches_direct_quadrature(m, eta):
    """Brute force: integrate the χ² CDF against the density of μ̂ with adaptive quadrature."""
    sd = eta / math.sqrt(m)

    def direct(t):
        def f(u):
            return stats.chi2.cdf((m - 1) * t * u * u / eta**2, m - 1) * stats.norm.pdf(u, 1, sd)

        lo, hi = 1 - 14 * sd, 1 + 14 * sd
        pts = [0.0] if lo < 0 < hi else None
        return integrate.quad(f, lo, hi, limit=1000, points=pts, epsabs=1e-13)[0]

    ts = eta**2 * np.array([0.3, 1.0, 3.0, 30.0])
    got = fig4_1.eta_squared_cdf(ts, m, eta)
    want = np.array([direct(t) for t in ts])
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_exact_quantiles_match_many_trials():
    g = torch.Generator().manual_seed(3)
    n = 200_000
    est = fig4_1.estimate_eta_squared(10, 4.0, n, g)
    for p in (0.05, 0.5, 0.95):
        # the fraction of trials below the exact quantile is p within 4 binomial errors
        below = float((est <= fig4_1.eta_squared_quantile(p, 10, 4.0)).double().mean())
        assert abs(below - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_invalid_arguments_are_named():
    with pytest.raises(ValueError, match="m >= 2"):
        fig4_1.eta_squared_cdf(1.0, 1, 1.0)
    with pytest.raises(ValueError, match="eta"):
        fig4_1.eta_squared_cdf(1.0, 5, 0.0)
    with pytest.raises(ValueError, match="p must"):
        fig4_1.eta_squared_quantile(1.0, 5, 1.0)
