"""``wen-fig1`` claims on synthetic results: verdicts follow the numbers and the premise."""

from __future__ import annotations

import pytest

from fisherlab.experiments.wen import fig1


def _results(d_full, d_diag, corr_sgd, corr_full, cos_full, draws=10000, eig=(0.2, 1.8)):
    def stat(distance, corr, cos):
        return {
            "relative_distance_to_sgd": distance,
            "correlation": corr,
            "axis_cosine_to_top_curvature": cos,
        }

    return {
        "stats": {
            "SGD": stat(0.0, corr_sgd, 0.99),
            "isotropic": stat(0.9, 0.0, 0.5),
            "full Fisher": stat(d_full, corr_full, cos_full),
            "diagonal Fisher": stat(d_diag, 0.0, 0.7),
        },
        "predicted": {"relative_distance": d_full},
        "num_draws": draws,
        "hessian_eigenvalues": list(eig),
    }


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"d_full": 0.05, "d_diag": 0.6, "corr_sgd": 0.8, "corr_full": 0.78, "cos_full": 0.99},
         [True, True, True]),
        # full noise far from SGD's, SGD noise uncorrelated, axis off
        ({"d_full": 0.5, "d_diag": 0.6, "corr_sgd": 0.1, "corr_full": 0.5, "cos_full": 0.8},
         [False, False, False]),
        # too few draws to resolve the covariances: not decidable
        ({"d_full": 0.05, "d_diag": 0.6, "corr_sgd": 0.8, "corr_full": 0.78, "cos_full": 0.99,
          "draws": 200}, [None, None, None]),
        # isotropic curvature: the top eigenvector is not defined
        ({"d_full": 0.05, "d_diag": 0.6, "corr_sgd": 0.8, "corr_full": 0.78, "cos_full": 0.99,
          "eig": (1.0, 1.2)}, [True, True, None]),
    ],
)  # fmt: skip
def test_verdicts(kwargs, expected):
    claims = fig1.claims(_results(**kwargs))
    assert [c.holds for c in claims] == expected
    assert all(c.criterion and c.premise for c in claims)
