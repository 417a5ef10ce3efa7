"""kunstner-fig2: the two readings of Tables D.1/D.2, and claims on synthetic results."""

import copy
import math

import pytest
import torch

from fisherlab import datasets
from fisherlab.datasets.synthetic import LOGISTIC_CLASSES
from fisherlab.experiments.kunstner.fig2 import VARIANTS, Fig2Config, authors_draw, claims

BIG = 200_000


@pytest.mark.parametrize("variant", VARIANTS)
def test_authors_reading_squares_the_table_matrices(variant):
    data = datasets.load(f"kunstner-fig2-logistic-{variant}", seed=5, n=BIG)
    for label, (_, matrix) in enumerate(LOGISTIC_CLASSES[variant]):
        A = torch.tensor(matrix, dtype=torch.float64)
        cov = A @ A
        x = data.X[data.y == label]
        tol = 5 * math.sqrt(2 / x.shape[0]) * cov.diagonal().max().item()
        assert (torch.cov(x.T) - cov).abs().max().item() <= tol


@pytest.mark.parametrize(("reading", "std"), [("authors", 2.0), ("literal", math.sqrt(2.0))])
def test_misspecified_a_noise_of_both_readings(reading, std):
    data = datasets.load("kunstner-fig2-linear-misspecified-a", seed=6, n=BIG, reading=reading)
    eps = data.y - data.X[:, 1]
    assert abs(eps.std().item() - std) <= 5 * std / math.sqrt(2 * BIG)


def test_reading_is_checked():
    with pytest.raises(ValueError, match="reading"):
        Fig2Config(reading="squared")
    with pytest.raises(ValueError, match="reading"):
        datasets.load("kunstner-fig2-linear-correct", seed=0, reading="squared")


@pytest.mark.parametrize("variant", VARIANTS)
def test_authors_draw_has_the_class_moments_of_the_reading(variant):
    X, y = authors_draw(variant, "literal", n=BIG)
    for label, (mean, matrix) in enumerate(LOGISTIC_CLASSES[variant]):
        x = X[y == label]
        sign = -1.0 if variant == "misspecified-b" else 1.0
        se = (torch.tensor(matrix).diagonal() / x.shape[0]).sqrt()
        assert ((x.mean(0) - sign * torch.tensor(mean)).abs() <= 5 * se).all()
        tol = 5 * math.sqrt(2 / x.shape[0]) * max(max(row) for row in matrix)
        assert (torch.cov(x.T) - torch.tensor(matrix)).abs().max().item() <= tol


def _results():
    """Results in which every claim holds (four seeds, N = 100 ... 10^5)."""
    ns = [100, 1000, 10_000, 100_000]
    correct = {str(n): [0.8 / n**0.5 * f for f in (0.9, 1.0, 1.1, 1.0)] for n in ns}
    miss = {str(n): [0.6 * f for f in (0.95, 1.0, 1.05, 1.0)] for n in ns}
    sweep = {
        problem: {
            "correct": copy.deepcopy(correct),
            **{v: copy.deepcopy(miss) for v in VARIANTS[1:]},
        }
        for problem in ("logistic", "linear")
    }
    panels = {
        problem: {v: {"relative_difference": 0.5 if v != "correct" else 0.03} for v in VARIANTS}
        for problem in sweep
    }
    return {
        "n": 1000,
        "reading": "authors",
        "panels": panels,
        "sweep_ns": ns,
        "sweep": sweep,
        "max_gradient_norm": 1e-13,
        "authors_draw_accuracy": {
            "correct": 0.733,
            "misspecified-a": 0.856,
            "misspecified-b": 0.852,
        },
        "sweep_accuracy": {
            "correct": {"1000": [0.76, 0.75, 0.77, 0.76]},
            "misspecified-a": {"1000": [0.87, 0.88, 0.87, 0.875]},
            "misspecified-b": {"1000": [0.85, 0.86, 0.855, 0.86]},
        },
    }


def _literal_accuracy(r):
    r["authors_draw_accuracy"]["correct"] = 0.822
    r["reading"] = "literal"


def _correct_far(r):
    r["sweep"]["logistic"]["correct"]["1000"] = [0.55, 0.6, 0.65, 0.6]


def _misspecified_close(r):
    r["sweep"]["linear"]["misspecified-b"]["1000"] = list(r["sweep"]["linear"]["correct"]["1000"])


def _vanishing(r):
    for n in r["sweep_ns"]:
        r["sweep"]["linear"]["misspecified-a"][str(n)] = [3.0 / n**0.5] * 4


def _flat_correct(r):
    for n in r["sweep_ns"]:
        r["sweep"]["logistic"]["correct"][str(n)] = [0.05, 0.051, 0.049, 0.05]


def _same_accuracy(r):
    r["sweep_accuracy"]["misspecified-b"]["1000"] = [0.76, 0.75, 0.77, 0.76]


def _not_a_minimum(r):
    r["max_gradient_norm"] = 1e-3


def _few_sizes(r):
    r["sweep_ns"] = [1000, 10_000]


EXPECTED = [True] * 10


def _expect(**changes):
    out = list(EXPECTED)
    for index, value in changes.items():
        out[int(index[1:])] = value
    return out


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (None, EXPECTED),
        (_literal_accuracy, _expect(i4=False)),
        (_correct_far, _expect(i0=False, i1=False)),
        (_misspecified_close, _expect(i3=False)),
        (_vanishing, _expect(i9=False)),
        (_flat_correct, _expect(i6=False)),
        (_same_accuracy, _expect(i5=False)),
        (_not_a_minimum, [None] * 10),
        (_few_sizes, _expect(i6=None, i7=None, i8=None, i9=None)),
    ],
)
def test_verdicts_follow_the_numbers(edit, expected):
    results = _results()
    if edit is not None:
        edit(results)
    out = claims(results)
    assert [c.holds for c in out] == expected
    for c in out:
        assert c.criterion and c.premise
        assert c.premise_holds is (c.holds is not None)
