"""Parsers for the plain-text file formats of the downloaded data sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def read_svmlight(path: Path, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Read a LIBSVM / svmlight file into a dense matrix.

    Each line is ``<label> <index>:<value> ...`` with 1-based feature indices;
    absent features are 0. Text after ``#`` and blank lines are ignored.

    Parameters
    ----------
    path : pathlib.Path
        The file.
    n_features : int
        Number of columns of the result; indices beyond it are an error.

    Returns
    -------
    X : numpy.ndarray
        float64 array of shape ``(N, n_features)``.
    y : numpy.ndarray
        float64 labels of shape ``(N,)``.
    """
    labels: list[float] = []
    rows: list[list[tuple[int, float]]] = []
    with open(path, encoding="ascii") as handle:
        for lineno, line in enumerate(handle, start=1):
            fields = line.split("#", 1)[0].split()
            if not fields:
                continue
            try:
                labels.append(float(fields[0]))
                pairs = [(int(i), float(v)) for i, v in (f.split(":", 1) for f in fields[1:])]
            except ValueError as exc:
                raise ValueError(f"{path}:{lineno}: not in svmlight format: {exc}") from exc
            if any(not 1 <= i <= n_features for i, _ in pairs):
                raise ValueError(f"{path}:{lineno}: feature index outside 1..{n_features}")
            rows.append(pairs)
    X = np.zeros((len(rows), n_features))
    for r, pairs in enumerate(rows):
        for i, v in pairs:
            X[r, i - 1] = v
    return X, np.asarray(labels, dtype=np.float64)


def read_whitespace_table(path: Path, n_columns: int) -> np.ndarray:
    """Read a numeric table whose columns are separated by any whitespace.

    Runs of spaces, trailing spaces and blank lines are tolerated (the UCI
    yacht file has all three).

    Parameters
    ----------
    path : pathlib.Path
        The file.
    n_columns : int
        Expected number of columns.

    Returns
    -------
    numpy.ndarray
        float64 array of shape ``(N, n_columns)``.
    """
    table = np.loadtxt(path, dtype=np.float64, ndmin=2)
    if table.shape[1] != n_columns:
        raise ValueError(f"{path}: expected {n_columns} columns, found {table.shape[1]}")
    return table
