"""``fl.datasets.load(..., dtype=)``: float32 data for a float32 model."""

import pytest
import torch

from fisherlab import datasets


@pytest.mark.parametrize(
    "name, options, task",
    [
        ("kunstner-fig1", {"seed": 0, "n": 20}, "regression"),
        ("kunstner-fig2-logistic-correct", {"seed": 0, "n": 20}, "binary"),
    ],
)
def test_dtype_casts_after_preprocessing(name, options, task):
    ref = datasets.load(name, standardize=True, add_bias=True, **options)
    data = datasets.load(name, standardize=True, add_bias=True, dtype=torch.float32, **options)
    assert data.task == task and ref.X.dtype == torch.float64
    assert data.X.dtype == torch.float32 and data.y.dtype == torch.float32
    # standardized in float64, then rounded once
    assert torch.equal(data.X, ref.X.to(torch.float32))
    assert torch.equal(data.y, ref.y.to(torch.float32))


def test_multiclass_labels_stay_int64():
    pytest.importorskip("sklearn")
    data = datasets.load("digits", split="test", dtype=torch.float32)
    assert data.X.dtype == torch.float32 and data.y.dtype == torch.int64


@pytest.mark.parametrize("dtype", [torch.int64, "float32", float])
def test_dtype_must_be_a_floating_torch_dtype(dtype):
    with pytest.raises(TypeError, match="dtype must be a floating-point torch.dtype"):
        datasets.load("kunstner-fig1", seed=0, dtype=dtype)
