"""Downloading remote data files into a local cache, with SHA-256 verification.

The cache directory is ``$FISHERLAB_DATA`` if set, otherwise the user cache
directory of ``platformdirs`` when that package is installed, otherwise
``~/.cache/fisherlab``. Every file of :data:`fisherlab.datasets.sources.SOURCES`
lives at ``<cache>/<data set name>/<file name>``; a file placed there by hand is
used as is (no network access).

Integrity: if the table has a published SHA-256, every load verifies it. If it
has none, the first load records the file's SHA-256 in ``<file name>.sha256``
next to it (trust on first use) and later loads verify against that record. A
body shorter or longer than the announced ``Content-Length``, or an HTML page in
place of the data file (a download or a cached file), is never trusted; an empty
or malformed record is an error.

Downloads use only :mod:`urllib.request`, go to a temporary file in the target
directory, and are renamed into place atomically once the checksum is
verified. ``$FISHERLAB_DATA_MIRROR`` (or the ``mirror`` argument) replaces the
download locations by ``<mirror>/<file name>``.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from fisherlab.datasets.sources import SOURCES, RemoteFile

DATA_ENV = "FISHERLAB_DATA"
MIRROR_ENV = "FISHERLAB_DATA_MIRROR"
DEFAULT_TIMEOUT = 60.0
_CHUNK = 1 << 16


class ChecksumError(RuntimeError):
    """A data file's SHA-256 differs from the expected one."""


class DownloadError(ConnectionError):
    """A data file could not be downloaded (offline, HTTP error, timeout)."""


def cache_dir() -> Path:
    """Return the root directory of the data cache (it may not exist yet).

    Returns
    -------
    pathlib.Path
        ``$FISHERLAB_DATA`` if set, else the ``platformdirs`` user cache
        directory for ``fisherlab`` if ``platformdirs`` is installed, else
        ``~/.cache/fisherlab``.
    """
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    try:
        import platformdirs
    except ImportError:
        return Path.home() / ".cache" / "fisherlab"
    return Path(platformdirs.user_cache_dir("fisherlab"))


def cached_path(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return where the file of data set ``name`` is (or is to be) stored.

    Parameters
    ----------
    name : str
        A key of :data:`~fisherlab.datasets.sources.SOURCES`.
    data_dir : path-like, optional
        Cache root to use instead of :func:`cache_dir`.

    Returns
    -------
    pathlib.Path
        ``<cache>/<name>/<file name>``.
    """
    root = Path(data_dir) if data_dir is not None else cache_dir()
    return root / name / SOURCES[name].filename


def sha256_of(path: Path) -> str:
    """Return the lowercase hex SHA-256 of a file.

    Parameters
    ----------
    path : pathlib.Path
        The file to hash.

    Returns
    -------
    str
        64 hexadecimal digits.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _expected_sha256(entry: RemoteFile, path: Path) -> str | None:
    if entry.sha256 is not None:
        return entry.sha256.lower()
    record = _record_path(path)
    if record.exists():
        fields = record.read_text().split()
        digest = fields[0].lower() if fields else ""
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ChecksumError(
                f"the checksum record {record} is empty or malformed (expected 64 hex "
                f"digits, got {digest[:70]!r}); delete it and {path.name!r} to download "
                "the file again"
            )
        return digest
    return None


def _looks_like_html(head: bytes) -> bool:
    """Whether a file starts like an HTML page (an error or login page served instead)."""
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


def _check_not_html(path: Path, what: str) -> None:
    with open(path, "rb") as handle:
        head = handle.read(512)
    if _looks_like_html(head):
        raise ChecksumError(
            f"{what} {path.name!r} is an HTML page, not the data file (an error or login page "
            f"served in its place); delete {path} and download it again"
        )


def _write_record(path: Path, digest: str) -> None:
    record = _record_path(path)
    tmp = record.with_name(record.name + ".part")
    tmp.write_text(f"{digest}  {path.name}\n")
    os.replace(tmp, record)


def _download(url: str, target: Path, timeout: float) -> str:
    """Stream ``url`` into ``target``; return the SHA-256 of what was written.

    Raises
    ------
    DownloadError
        The body is shorter (or longer) than the announced ``Content-Length``, or the
        server sent an HTML page (``Content-Type: text/html`` or an HTML body).
    """
    digest = hashlib.sha256()
    received = 0
    request = urllib.request.Request(url, headers={"User-Agent": "fisherlab"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(target, "wb") as out:
        announced = response.headers.get("Content-Length")
        content_type = response.headers.get("Content-Type", "")
        first = True
        try:
            while chunk := response.read(_CHUNK):
                if first and (_looks_like_html(chunk) or content_type.startswith("text/html")):
                    raise DownloadError(
                        f"the server sent an HTML page (Content-Type {content_type!r}), not "
                        "the data file"
                    )
                first = False
                digest.update(chunk)
                out.write(chunk)
                received += len(chunk)
        except http.client.IncompleteRead as error:
            raise DownloadError(
                f"the connection closed after {received + len(error.partial)} of {announced} bytes"
            ) from None
    if announced is not None and announced.isdigit() and int(announced) != received:
        raise DownloadError(f"received {received} bytes, but Content-Length is {announced}")
    return digest.hexdigest()


def fetch(
    name: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    mirror: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Path:
    """Return the local path of a data set's file, downloading it if needed.

    Parameters
    ----------
    name : str
        A key of :data:`~fisherlab.datasets.sources.SOURCES`.
    data_dir : path-like, optional
        Cache root; default :func:`cache_dir`.
    mirror : str, optional
        Base URL serving the file as ``<mirror>/<file name>``; default
        ``$FISHERLAB_DATA_MIRROR``, else the URLs of the table.
    timeout : float, default 60
        Socket timeout in seconds for each download attempt.

    Returns
    -------
    pathlib.Path
        Path to the verified file.

    Raises
    ------
    DownloadError
        No location could be reached; the message names the data set, the
        URLs and the path where the file can be placed by hand.
    ChecksumError
        The file's SHA-256 differs from the published or recorded one. A
        downloaded file is then deleted; a file already in the cache is kept.
    """
    entry = SOURCES[name]
    path = cached_path(name, data_dir)
    expected = _expected_sha256(entry, path)
    if path.exists():
        _check_not_html(path, "cached file")
        actual = sha256_of(path)
        if expected is not None and actual != expected:
            raise ChecksumError(
                f"SHA-256 mismatch for cached file {path.name!r} at {path}: expected "
                f"{expected}, got {actual}; delete the file to download it again"
            )
        if expected is None:
            _write_record(path, actual)
        return path

    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV)
    urls = (f"{mirror.rstrip('/')}/{entry.filename}",) if mirror else entry.urls
    path.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in urls:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{entry.filename}.", suffix=".part", dir=path.parent
        )
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            actual = _download(url, tmp, timeout)
        except (OSError, http.client.HTTPException) as exc:
            tmp.unlink(missing_ok=True)
            errors.append(f"{url}: {exc}")
            continue
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if expected is not None and actual != expected:
            tmp.unlink(missing_ok=True)
            raise ChecksumError(
                f"SHA-256 mismatch for {entry.filename!r} downloaded from {url}: "
                f"expected {expected}, got {actual}; the download was deleted"
            )
        if expected is None:
            _write_record(path, actual)
        os.replace(tmp, path)
        return path
    raise DownloadError(
        f"could not download data set {name!r} ({'; '.join(errors)}). "
        f"Without network access, download {entry.filename!r} from {entry.urls[0]} "
        f"(see {entry.page}) and place it at {path}"
    )
