from __future__ import annotations

import dataclasses

import pytest
import torch

from fisherlab import datasets
from fisherlab.datasets import Dataset
from fisherlab.datasets.dataset import add_bias, standardize

CANONICAL = [
    "wine",
    "breast-cancer",
    "breast-cancer-libsvm",
    "boston",
    "digits",
    "mnist1d",
    "a1a",
    "yacht",
    "energy",
    "powerplant",
    "kunstner-fig1",
] + [
    f"kunstner-fig2-{kind}-{variant}"
    for kind in ("logistic", "linear")
    for variant in ("correct", "misspecified-a", "misspecified-b")
]


def _data(**changes) -> Dataset:
    fields = dict(
        X=torch.zeros(3, 2, dtype=torch.float64),
        y=torch.zeros(3, dtype=torch.float64),
        name="toy",
        task="regression",
        description="toy",
    )
    return Dataset(**{**fields, **changes})


def test_available_lists_every_canonical_name_sorted():
    assert datasets.available() == sorted(CANONICAL)


def test_unknown_name_lists_available_ones():
    with pytest.raises(ValueError, match="unknown data set 'mnist'.*boston.*kunstner-fig1"):
        datasets.load("mnist")


@pytest.mark.parametrize("name", ["Kunstner-Fig1", " KUNSTNER_FIG1 ", "kunstner-fig1"])
def test_names_are_case_insensitive(name):
    assert datasets.load(name, seed=0).name == "kunstner-fig1"


def test_unknown_option_is_rejected():
    with pytest.raises(TypeError, match="colour"):
        datasets.load("kunstner-fig1", seed=0, colour="red")


def test_dataset_properties_and_immutability():
    data = _data(X=torch.ones(5, 4, dtype=torch.float64), y=torch.ones(5, dtype=torch.float64))
    assert (data.N, data.D) == (5, 4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"task": "ranking"}, "task must be one of"),
        ({"X": torch.zeros(3, dtype=torch.float64)}, "2-D floating-point"),
        ({"X": torch.zeros(3, 2, dtype=torch.int64)}, "2-D floating-point"),
        ({"y": torch.zeros(4, dtype=torch.float64)}, r"shape \(3,\)"),
        ({"task": "multiclass"}, "must be int64"),
        ({"task": "binary", "y": torch.zeros(3, dtype=torch.int64)}, "floating point"),
    ],
)
def test_dataset_validates_its_fields(changes, message):
    with pytest.raises(ValueError, match=message):
        _data(**changes)


def test_to_casts_inputs_and_float_targets():
    data = datasets.load("kunstner-fig2-logistic-correct", seed=1, n=10).to(torch.float32)
    assert (data.X.dtype, data.y.dtype) == (torch.float32, torch.float32)
    labels = _data(task="multiclass", y=torch.tensor([0, 2, 1])).to(torch.float32)
    assert labels.X.dtype == torch.float32 and labels.y.dtype == torch.int64
    with pytest.raises(ValueError, match="floating-point dtype"):
        data.to(torch.int32)


def test_standardize_gives_zero_mean_unit_std_and_keeps_constant_columns_finite():
    X = torch.tensor([[1.0, 5.0, 2.0], [3.0, 5.0, 4.0], [8.0, 5.0, 9.0]], dtype=torch.float64)
    Z = standardize(X)
    torch.testing.assert_close(Z.mean(0), torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(Z.std(0, correction=0), torch.tensor([1.0, 0.0, 1.0]).double())
    assert torch.equal(Z[:, 1], torch.zeros(3, dtype=torch.float64))


def test_add_bias_appends_ones_last():
    X = torch.arange(6, dtype=torch.float64).reshape(3, 2)
    B = add_bias(X)
    assert torch.equal(B[:, :2], X) and torch.equal(B[:, 2], torch.ones(3, dtype=torch.float64))


def test_load_options_standardize_then_add_bias():
    raw = datasets.load("kunstner-fig2-logistic-misspecified-b", seed=3, n=50)
    both = datasets.load(
        "kunstner-fig2-logistic-misspecified-b", seed=3, n=50, standardize=True, add_bias=True
    )
    assert both.D == raw.D + 1
    torch.testing.assert_close(both.X[:, :-1], standardize(raw.X))
    assert torch.equal(both.X[:, -1], torch.ones(50, dtype=torch.float64))
    assert torch.equal(both.y, raw.y)
