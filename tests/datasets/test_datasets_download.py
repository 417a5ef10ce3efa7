from __future__ import annotations

import dataclasses
import hashlib
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from fisherlab import datasets
from fisherlab.datasets import ChecksumError, DownloadError, download, sources

REMOTE = ["a1a", "yacht", "energy", "powerplant"]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def serve(file_server, fakes):
    """Put the fake file of a data set on the server; return its bytes."""

    def put(name: str) -> bytes:
        data = fakes.FILES[name]
        (file_server.root / sources.SOURCES[name].filename).write_bytes(data)
        return data

    return put


def _set_sha(monkeypatch: pytest.MonkeyPatch, name: str, sha: str | None, **changes) -> None:
    entry = dataclasses.replace(sources.SOURCES[name], sha256=sha, **changes)
    monkeypatch.setitem(sources.SOURCES, name, entry)


EXPECTED = {
    "a1a": (
        np.array([[3, 11, 14, 123], [1, 5, -1, -1], [2, 119, -1, -1]]),
        np.array([1.0, 0.0, 0.0]),
        "binary",
        123,
    ),
    "yacht": (None, np.array([0.11, 0.27, 34.28]), "regression", 6),
    "energy": (None, np.array([15.55, 20.84]), "regression", 8),
    "powerplant": (None, np.array([463.26, 444.37, 488.56]), "regression", 4),
}


@pytest.mark.parametrize("name", REMOTE)
def test_download_parse_then_cache_hit(name, file_server, serve, monkeypatch, isolated_cache):
    data = serve(name)
    _set_sha(monkeypatch, name, _sha(data))
    active, y, task, D = EXPECTED[name]

    first = datasets.load(name, mirror=file_server.url)
    assert file_server.requests == [f"/{sources.SOURCES[name].filename}"]
    assert (first.task, first.D, first.X.dtype, first.y.dtype) == (
        task,
        D,
        torch.float64,
        torch.float64,
    )
    torch.testing.assert_close(first.y, torch.as_tensor(y))
    cached = isolated_cache / name / sources.SOURCES[name].filename
    assert cached.read_bytes() == data
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]  # no temp file left

    second = datasets.load(name, mirror=file_server.url)
    assert len(file_server.requests) == 1, "second load must come from the cache"
    assert torch.equal(first.X, second.X) and torch.equal(first.y, second.y)

    if active is not None:  # a1a: the listed (1-based) indices are 1, everything else 0
        for row, indices in zip(first.X, active, strict=True):
            expected_row = torch.zeros(123, dtype=torch.float64)
            expected_row[[i - 1 for i in indices if i > 0]] = 1.0
            assert torch.equal(row, expected_row)


def test_parsed_values_of_spreadsheets_and_tables(file_server, serve, fakes, monkeypatch):
    for name in ("yacht", "energy", "powerplant"):
        _set_sha(monkeypatch, name, None)
        serve(name)
    yacht = datasets.load("yacht", mirror=file_server.url)
    assert yacht.X[1].tolist() == [-2.3, 0.568, 4.78, 3.99, 3.17, 0.150]
    energy = datasets.load("energy", mirror=file_server.url)
    assert energy.X.tolist() == [row[:8] for row in fakes.ENERGY_ROWS]
    plant = datasets.load("powerplant", mirror=file_server.url)
    assert plant.X.tolist() == [row[:4] for row in fakes.CCPP_ROWS]  # first sheet only


def test_checksum_mismatch_names_file_and_hashes_and_deletes_download(
    file_server, serve, monkeypatch, isolated_cache
):
    data = serve("yacht")
    wrong = "ab" * 32
    _set_sha(monkeypatch, "yacht", wrong)
    with pytest.raises(ChecksumError) as info:
        datasets.load("yacht", mirror=file_server.url)
    message = str(info.value)
    assert "yacht_hydrodynamics.data" in message
    assert wrong in message and _sha(data) in message
    folder = isolated_cache / "yacht"
    assert list(folder.iterdir()) == []


def test_trust_on_first_use_records_and_then_verifies(
    file_server, serve, monkeypatch, isolated_cache
):
    data = serve("a1a")
    _set_sha(monkeypatch, "a1a", None)
    datasets.load("a1a", mirror=file_server.url)
    record = isolated_cache / "a1a" / "a1a.sha256"
    assert record.read_text().split() == [_sha(data), "a1a"]

    (isolated_cache / "a1a" / "a1a").write_bytes(data.replace(b"+1", b"-1"))
    with pytest.raises(ChecksumError, match=_sha(data)):
        datasets.load("a1a", mirror=file_server.url)
    assert len(file_server.requests) == 1


def test_offline_error_names_data_set_url_and_manual_path(closed_port_url, monkeypatch):
    with pytest.raises(ConnectionError) as info:
        datasets.load("energy", mirror=closed_port_url, timeout=5)
    assert isinstance(info.value, DownloadError)
    message = str(info.value)
    assert "'energy'" in message
    assert f"{closed_port_url}/ENB2012_data.xlsx" in message
    assert str(download.cached_path("energy")) in message


def test_http_error_is_a_download_error(file_server):
    with pytest.raises(DownloadError, match="404"):
        datasets.load("yacht", mirror=file_server.url)


def test_mirror_from_environment(file_server, serve, monkeypatch):
    _set_sha(monkeypatch, "yacht", _sha(serve("yacht")))
    monkeypatch.setenv("FISHERLAB_DATA_MIRROR", file_server.url + "/")
    assert datasets.load("yacht").N == 3
    assert file_server.requests == ["/yacht_hydrodynamics.data"]


def test_falls_back_to_next_url(file_server, serve, closed_port_url, monkeypatch):
    data = serve("yacht")
    urls = (
        f"{closed_port_url}/yacht_hydrodynamics.data",
        f"{file_server.url}/yacht_hydrodynamics.data",
    )
    _set_sha(monkeypatch, "yacht", _sha(data), urls=urls)
    assert datasets.load("yacht").N == 3


def test_manually_placed_file_is_used_without_network(
    closed_port_url, fakes, monkeypatch, tmp_path
):
    data = fakes.FILES["powerplant"]
    _set_sha(monkeypatch, "powerplant", _sha(data))
    root = tmp_path / "elsewhere"
    target = download.cached_path("powerplant", data_dir=root)
    target.parent.mkdir(parents=True)
    target.write_bytes(data)
    plant = datasets.load("powerplant", data_dir=root, mirror=closed_port_url)
    assert plant.N == len(fakes.CCPP_ROWS)


def test_manually_placed_file_with_wrong_checksum_is_kept(monkeypatch, isolated_cache):
    target = download.cached_path("yacht")
    target.parent.mkdir(parents=True)
    target.write_bytes(b"1 2 3 4 5 6 7\n")
    with pytest.raises(ChecksumError, match="delete the file"):
        datasets.load("yacht")
    assert target.exists()


def test_cache_dir_resolution(monkeypatch, tmp_path):
    assert download.cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("FISHERLAB_DATA")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setitem(sys.modules, "platformdirs", None)  # not installed
    assert download.cache_dir() == tmp_path / ".cache" / "fisherlab"
    fake = types.SimpleNamespace(user_cache_dir=lambda app: f"/caches/{app}")
    monkeypatch.setitem(sys.modules, "platformdirs", fake)
    assert download.cache_dir() == Path("/caches/fisherlab")


def test_source_table_is_well_formed():
    assert sorted(sources.SOURCES) == sorted(REMOTE)
    for entry in sources.SOURCES.values():
        assert entry.sha256 is None or re.fullmatch("[0-9a-f]{64}", entry.sha256)
        assert entry.urls and all(url.startswith("https://") for url in entry.urls)
        assert all(url.endswith("/" + entry.filename) for url in entry.urls)
