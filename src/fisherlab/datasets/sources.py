"""Where the downloadable data sets come from: URLs, file names and SHA-256 sums.

``SOURCES`` is the single table of remote files. A ``sha256`` of ``None`` means
no published checksum is known: the first download then records the file's
SHA-256 next to it in the cache (trust on first use) and later loads verify it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file.

    Parameters
    ----------
    filename : str
        Name of the file in the cache and on a mirror.
    urls : tuple of str
        Locations serving exactly this file, tried in order.
    sha256 : str or None
        Expected lowercase hex SHA-256, or ``None`` for trust on first use.
    page : str
        Human-readable page describing the data set.
    """

    filename: str
    urls: tuple[str, ...]
    sha256: str | None
    page: str


_UCI = "https://archive.ics.uci.edu/ml/machine-learning-databases"
_LIBSVM = "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/binary"

SOURCES: dict[str, RemoteFile] = {
    "a1a": RemoteFile(
        filename="a1a",
        urls=(f"{_LIBSVM}/a1a",),
        sha256=None,
        page="https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/binary.html#a1a",
    ),
    "yacht": RemoteFile(
        filename="yacht_hydrodynamics.data",
        urls=(f"{_UCI}/00243/yacht_hydrodynamics.data",),
        sha256="00dfecc0fc01ddd4c90b558a3ac11b246df8ebcfea130724223475a9a67f0ea1",
        page="https://archive.ics.uci.edu/dataset/243/yacht+hydrodynamics",
    ),
    "energy": RemoteFile(
        filename="ENB2012_data.xlsx",
        urls=(f"{_UCI}/00242/ENB2012_data.xlsx",),
        sha256="0089fcffc1415e41e2ff63730cca5280efe54fc43d722dfde1b0aaa808e35dc4",
        page="https://archive.ics.uci.edu/dataset/242/energy+efficiency",
    ),
    "powerplant": RemoteFile(
        filename="CCPP.zip",
        urls=(f"{_UCI}/00294/CCPP.zip",),
        sha256="cc7b2a4977c0a44e8221c91d9a7e5746b3c68186cff7e5c61c70af6432b98c7a",
        page="https://archive.ics.uci.edu/dataset/294/combined+cycle+power+plant",
    ),
}
