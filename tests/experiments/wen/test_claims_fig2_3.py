"""``wen-fig2-3`` claims on synthetic results: verdicts follow the numbers and the premise."""

from __future__ import annotations

import pytest

from fisherlab.experiments.wen import fig2_3

SPREAD = (-0.01, 0.0, 0.01)


def _results(tail, variance, fro_ratio=5.0, draws=60, diag_norm=1.0):
    return {
        "curves": {n: {"tail_loss_per_seed": [tail[n] + d for d in SPREAD]} for n in tail},
        "mean_variance": variance,
        "variance": {"draws": draws},
        "frobenius": {"full": [fro_ratio * diag_norm] * 3, "diag": [diag_norm] * 3},
        "batch_sizes": [32, 256],
    }


PAPER_TAIL = {"SB": 1.0, "LB": 0.5, "LB+full F": 0.95, "LB+diag F": 0.6}
PAPER_VARIANCE = {"SB": 1.0, "LB": 0.12, "LB+full F": 1.1, "LB+diag F": 1.05}


@pytest.mark.parametrize(
    ("tail", "variance", "kwargs", "expected"),
    [
        (PAPER_TAIL, PAPER_VARIANCE, {}, [True, True, True, True]),
        # full noise as fast as LB, diag as slow as SB; noise variance off; Fisher ≈ diagonal
        (
            {"SB": 1.0, "LB": 0.5, "LB+full F": 0.5, "LB+diag F": 1.0},
            {"SB": 1.0, "LB": 0.5, "LB+full F": 5.0, "LB+diag F": 5.0},
            {"fro_ratio": 1.2},
            [False, False, False, False],
        ),
        # LB does not train faster than SB: the convergence claims are not decidable
        (
            {"SB": 0.5, "LB": 0.5, "LB+full F": 0.5, "LB+diag F": 0.5},
            PAPER_VARIANCE,
            {},
            [True, None, None, True],
        ),
        # too few variance draws; the Fisher at round-off zero
        (PAPER_TAIL, PAPER_VARIANCE, {"draws": 10, "diag_norm": 0.0}, [None, True, True, None]),
    ],
)
def test_verdicts(tail, variance, kwargs, expected):
    claims = fig2_3.claims(_results(tail, variance, **kwargs))
    assert [c.holds for c in claims] == expected
    assert all(c.criterion and c.premise for c in claims)


def test_frobenius_gram_identity():
    """‖F‖_F through the Gram matrix equals the dense empirical Fisher's (float64)."""
    import torch

    from fisherlab import Curvature
    from fisherlab.likelihoods import Categorical

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv1d(1, 2, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(12, 3),
    ).double()  # fmt: skip
    X, y = torch.randn(9, 1, 6, dtype=torch.float64), torch.randint(0, 3, (9,))
    full, diag = fig2_3.fisher_frobenius(model, X, y, "empirical")
    F = Curvature(model, Categorical(), X, y).empirical_fisher(form="dense")
    assert full == pytest.approx(float(F.norm()), rel=1e-12)
    assert diag == pytest.approx(float(F.diagonal().norm()), rel=1e-12)
