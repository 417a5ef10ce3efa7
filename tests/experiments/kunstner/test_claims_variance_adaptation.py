"""kunstner-variance-adaptation: the optimal adaptation matrix, and claims on synthetic results."""

import copy

import pytest
import torch

from fisherlab.experiments.kunstner import variance_adaptation as va
from fisherlab.experiments.kunstner.variance_adaptation import adaptation_matrices, expected_error


def _problem(seed, D=4):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(D, D, generator=g, dtype=torch.float64)
    covariance = A @ A.T + 0.1 * torch.eye(D, dtype=torch.float64)
    gradient = torch.randn(D, generator=g, dtype=torch.float64)
    return gradient, covariance, g


@pytest.mark.parametrize("seed", range(5))
def test_transpose_of_eq19_minimises_the_expected_error(seed):
    gradient, covariance, g = _problem(seed)
    M = adaptation_matrices(gradient, covariance)
    best = expected_error(M["optimal matrix"], gradient, covariance)
    # closed form: ‖μ‖² / (1 + μᵀΣ⁻¹μ)
    closed = gradient @ gradient / (1 + gradient @ torch.linalg.solve(covariance, gradient))
    torch.testing.assert_close(best, closed)
    for _ in range(50):
        perturbed = M["optimal matrix"] + 1e-3 * torch.randn(4, 4, generator=g, dtype=torch.float64)
        assert expected_error(perturbed, gradient, covariance) > best
    assert expected_error(M["Eq. 19"], gradient, covariance) > best * (1 + 1e-6)
    # the diagonal factors minimise over diagonal matrices
    diagonal = expected_error(M["diagonal"], gradient, covariance)
    for _ in range(50):
        d = M["diagonal"].diagonal() + 1e-3 * torch.randn(4, generator=g, dtype=torch.float64)
        assert expected_error(torch.diag(d), gradient, covariance) > diagonal


def test_eq19_is_optimal_when_the_gradient_is_an_eigenvector_of_the_covariance():
    eigenvalues = torch.tensor([0.5, 1.0, 3.0, 7.0], dtype=torch.float64)
    Q = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(0)).double())[0]
    covariance = Q @ torch.diag(eigenvalues) @ Q.T
    gradient = 2.0 * Q[:, 2]
    M = adaptation_matrices(gradient, covariance)
    torch.testing.assert_close(M["Eq. 19"], M["optimal matrix"])


def _cell(usable, eq19, optimal, excess):
    q = {"median": eq19, "q10": eq19 / 2, "q90": eq19 * 2}
    return {
        "usable": usable,
        "ratio_to_plain": {
            "diagonal": {"median": 0.5, "q10": 0.4, "q90": 0.9},
            "Eq. 19": q,
            "optimal matrix": {"median": optimal, "q10": optimal, "q90": optimal},
        },
        "max_ratio_to_plain": {"diagonal": 0.9, "Eq. 19": 2 * eq19, "optimal matrix": optimal},
        "max_excess_eq19": excess,
    }


RATIOS = [0.01, 1.0, 100.0]
SLOPES = ("slope_gradient", "slope_ef", "slope_adapted")


def _results(usable=20, eq19=(0.5, 0.3, 0.1), excess=0.0, slopes=(1.0, -1.0, 1.0)):
    return {
        "ratios": RATIOS,
        "errors": {
            "boston": {
                "ratios": {
                    str(r): _cell(usable, m, 0.1, excess) for r, m in zip(RATIOS, eq19, strict=True)
                }
            }
        },
        "ray": {
            "boston": dict(
                zip(("slope_gradient", "slope_ef", "slope_adapted"), slopes, strict=True)
            )
        },
    }


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        (_results(), [True, True, True]),
        (_results(excess=10.0, eq19=(50.0, 3.0, 0.5)), [False, False, True]),
        (_results(excess=0.2), [False, True, True]),
        (_results(usable=3), [None, None, True]),
        (_results(slopes=(1.0, -0.5, 1.0)), [True, True, False]),
        (_results(slopes=(1.0, -1.0, 0.6)), [True, True, False]),
        (_results(slopes=(0.5, -1.0, 1.0)), [True, True, None]),
    ],
)
def test_verdicts_follow_the_numbers(results, expected):
    claims = va.claims(copy.deepcopy(results))
    assert [c.holds for c in claims] == expected
    for c in claims:
        assert c.criterion and c.premise
        assert c.premise_holds is (c.holds is not None)
