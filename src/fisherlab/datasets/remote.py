"""Loaders of the data sets that are downloaded on first use (see :mod:`.download`).

Each loader accepts ``data_dir``, ``mirror`` and ``timeout``, passed on to
:func:`fisherlab.datasets.download.fetch`.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from fisherlab.datasets.dataset import Dataset, Task
from fisherlab.datasets.download import DEFAULT_TIMEOUT, fetch
from fisherlab.datasets.text_formats import read_svmlight, read_whitespace_table
from fisherlab.datasets.xlsx import Cell, read_first_sheet

PathLike = str | os.PathLike[str] | None

A1A_FEATURES = 123
POWERPLANT_MEMBER = "CCPP/Folds5x2_pp.xlsx"


def _dataset(X: np.ndarray, y: np.ndarray, name: str, task: Task, description: str) -> Dataset:
    return Dataset(
        torch.as_tensor(np.ascontiguousarray(X, dtype=np.float64)),
        torch.as_tensor(np.ascontiguousarray(y, dtype=np.float64)),
        name,
        task,
        description,
    )


def _regression(table: np.ndarray, n_features: int, name: str, description: str) -> Dataset:
    """Features: the first ``n_features`` columns of ``table``; target: the next column."""
    return _dataset(table[:, :n_features], table[:, n_features], name, "regression", description)


def _numeric_rows(rows: list[list[Cell]], n_columns: int, source: Path) -> np.ndarray:
    """Keep the rows whose first ``n_columns`` cells are all numbers.

    This drops the header row and empty rows of a spreadsheet; any other row
    that is partly numeric is an error.
    """
    table = []
    for row in rows:
        cells = (row + [None] * n_columns)[:n_columns]
        numeric = [isinstance(c, float) for c in cells]
        if all(numeric):
            table.append(cells)
        elif any(numeric):
            raise ValueError(f"{source}: incomplete numeric row {row!r}")
    if not table:
        raise ValueError(f"{source}: no numeric rows found")
    return np.asarray(table, dtype=np.float64)


def load_a1a(
    *, data_dir: PathLike = None, mirror: str | None = None, timeout: float = DEFAULT_TIMEOUT
) -> Dataset:
    """LIBSVM ``a1a`` (Adult, training file): 1605 x 123 binary features.

    Labels +1 / -1 become 1. / 0. The matrix always has the 123 columns stated
    by LIBSVM, even though the training file uses fewer feature indices.

    Parameters
    ----------
    data_dir, mirror, timeout
        See :func:`fisherlab.datasets.download.fetch`.

    Returns
    -------
    Dataset
        ``X`` of shape (1605, 123) with entries in {0, 1}; task ``"binary"``.
    """
    path = fetch("a1a", data_dir=data_dir, mirror=mirror, timeout=timeout)
    X, labels = read_svmlight(path, A1A_FEATURES)
    if not np.isin(labels, (-1.0, 1.0)).all():
        raise ValueError(f"{path}: a1a labels must be +1 or -1")
    return _dataset(
        X,
        (labels + 1.0) / 2.0,
        "a1a",
        "binary",
        "LIBSVM a1a (Adult, train split), 123 binary features, 1 = income > 50K; "
        "source: csie.ntu.edu.tw/~cjlin/libsvmtools",
    )


def load_yacht(
    *, data_dir: PathLike = None, mirror: str | None = None, timeout: float = DEFAULT_TIMEOUT
) -> Dataset:
    """UCI Yacht Hydrodynamics: 308 x 6, target residuary resistance.

    The file has 7 whitespace-separated columns (the "7" of Table D.3): the six
    hull-geometry features (longitudinal position of the centre of buoyancy,
    prismatic coefficient, length-displacement ratio, beam-draught ratio,
    length-beam ratio, Froude number) and the target (last column).

    Parameters
    ----------
    data_dir, mirror, timeout
        See :func:`fisherlab.datasets.download.fetch`.

    Returns
    -------
    Dataset
        ``X`` of shape (308, 6), raw; task ``"regression"``.
    """
    path = fetch("yacht", data_dir=data_dir, mirror=mirror, timeout=timeout)
    table = read_whitespace_table(path, 7)
    return _regression(
        table,
        6,
        "yacht",
        "UCI Yacht Hydrodynamics (308 x 6), target residuary resistance; "
        "source: archive.ics.uci.edu dataset 243",
    )


def load_energy(
    *, data_dir: PathLike = None, mirror: str | None = None, timeout: float = DEFAULT_TIMEOUT
) -> Dataset:
    """UCI Energy Efficiency: 768 x 8, target Y1 (heating load).

    Read from the original ``ENB2012_data.xlsx`` (first sheet, columns X1..X8,
    Y1, Y2). Features X1..X8 are relative compactness, surface area, wall area,
    roof area, overall height, orientation, glazing area and glazing area
    distribution; the cooling load Y2 is not used.

    Parameters
    ----------
    data_dir, mirror, timeout
        See :func:`fisherlab.datasets.download.fetch`.

    Returns
    -------
    Dataset
        ``X`` of shape (768, 8), raw; task ``"regression"``.
    """
    path = fetch("energy", data_dir=data_dir, mirror=mirror, timeout=timeout)
    table = _numeric_rows(read_first_sheet(str(path)), 10, path)
    return _regression(
        table,
        8,
        "energy",
        "UCI Energy Efficiency (768 x 8), target Y1 heating load; "
        "source: archive.ics.uci.edu dataset 242",
    )


def load_powerplant(
    *, data_dir: PathLike = None, mirror: str | None = None, timeout: float = DEFAULT_TIMEOUT
) -> Dataset:
    """UCI Combined Cycle Power Plant: 9568 x 4, target PE (net electrical output).

    Read from the first sheet of ``CCPP/Folds5x2_pp.xlsx`` inside ``CCPP.zip``
    (the other four sheets are reshuffled copies of the same rows). Features:
    AT (temperature), V (exhaust vacuum), AP (ambient pressure), RH (relative
    humidity).

    Parameters
    ----------
    data_dir, mirror, timeout
        See :func:`fisherlab.datasets.download.fetch`.

    Returns
    -------
    Dataset
        ``X`` of shape (9568, 4), raw; task ``"regression"``.
    """
    path = fetch("powerplant", data_dir=data_dir, mirror=mirror, timeout=timeout)
    with zipfile.ZipFile(path) as archive:
        workbook = io.BytesIO(archive.read(POWERPLANT_MEMBER))
    table = _numeric_rows(read_first_sheet(workbook), 5, path)
    return _regression(
        table,
        4,
        "powerplant",
        "UCI Combined Cycle Power Plant (9568 x 4), target PE net output; "
        "source: archive.ics.uci.edu dataset 294",
    )
