"""Name-based access to every data set: :func:`load` and :func:`available`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from fisherlab.datasets import dataset, embedded, remote, synthetic
from fisherlab.datasets.dataset import Dataset

LOADERS: dict[str, Callable[..., Dataset]] = {
    "wine": embedded.load_wine,
    "breast-cancer": embedded.load_breast_cancer,
    "breast-cancer-libsvm": embedded.load_breast_cancer_libsvm,
    "boston": embedded.load_boston,
    "digits": embedded.load_digits,
    "mnist1d": embedded.load_mnist1d,
    "a1a": remote.load_a1a,
    "yacht": remote.load_yacht,
    "energy": remote.load_energy,
    "powerplant": remote.load_powerplant,
    "kunstner-fig1": synthetic.kunstner_fig1,
    **{
        f"kunstner-fig2-{kind}-{variant}": partial(generator, variant)
        for kind, generator in (
            ("logistic", synthetic.kunstner_fig2_logistic),
            ("linear", synthetic.kunstner_fig2_linear),
        )
        for variant in synthetic.VARIANTS
    },
}


def available() -> list[str]:
    """Return the canonical names accepted by :func:`load`, sorted.

    Returns
    -------
    list of str
        Data set names.
    """
    return sorted(LOADERS)


def canonical_name(name: str) -> str:
    """Map a user-given name to its canonical form.

    Names are case-insensitive, surrounding whitespace is ignored and ``_``
    is accepted for ``-``.

    Parameters
    ----------
    name : str
        A data set name such as ``"Breast_Cancer"``.

    Returns
    -------
    str
        The canonical name, e.g. ``"breast-cancer"``.

    Raises
    ------
    ValueError
        If the name is unknown; the message lists the available names.
    """
    key = name.strip().lower().replace("_", "-")
    if key not in LOADERS:
        raise ValueError(f"unknown data set {name!r}; available: {', '.join(available())}")
    return key


def load(
    name: str,
    *,
    standardize: bool = False,
    add_bias: bool = False,
    dtype: torch.dtype | None = None,
    **options: Any,
) -> Dataset:
    """Load a data set by name.

    No preprocessing happens by default: the experiments of Kunstner et al.
    (2019) use raw features.

    Parameters
    ----------
    name : str
        One of :func:`available` (case-insensitive).
    standardize : bool, default False
        Shift and scale every input column to mean 0, standard deviation 1
        (see :func:`fisherlab.datasets.dataset.standardize`). Targets are
        left as they are.
    add_bias : bool, default False
        Append a column of ones as the LAST column of ``X`` (after
        standardizing), so ``D`` grows by one.
    dtype : torch.dtype or None
        Floating-point dtype of the returned inputs and non-integer targets, e.g.
        ``torch.float32`` for a float32 model (preprocessing runs in float64 first);
        ``None`` keeps float64. Class labels stay ``int64``.
    **options
        Passed to the data set's loader: ``seed`` (required) and ``n`` for
        the synthetic ``kunstner-*`` problems; ``data_dir``, ``mirror`` and
        ``timeout`` for the downloaded ``a1a``, ``yacht``, ``energy`` and
        ``powerplant``; ``multiclass`` for ``wine``.

    Returns
    -------
    Dataset
        The data set with float64 inputs, or ``dtype`` ones.
    """
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating-point torch.dtype or None, got {dtype!r}")
    data = LOADERS[canonical_name(name)](**options)
    X = data.X
    if standardize:
        X = dataset.standardize(X)
    if add_bias:
        X = dataset.add_bias(X)
    data = dataclasses.replace(data, X=X)
    return data if dtype is None else data.to(dtype)
