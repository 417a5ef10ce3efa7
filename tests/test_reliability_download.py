"""Downloads: a cut-short body, an HTML page or an empty record is never trusted."""

from __future__ import annotations

import dataclasses
import hashlib
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from fisherlab.datasets import ChecksumError, DownloadError, download, sources
from local_http import serving

DATA = b"-2.3 0.568 4.78 3.99 3.17 0.125 0.11\n" * 50
HTML = b"<!DOCTYPE html>\n<html><body>503 Service Unavailable</body></html>\n"


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, str]]]:
    """A server whose behaviour per request is set through the returned dict's "mode"."""
    state = {"mode": "full"}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            mode = state["mode"]
            body = HTML if mode == "html" else DATA
            self.send_response(200)
            self.send_header("Content-Type", "text/html" if mode == "html" else "text/plain")
            self.send_header("Content-Length", str(len(body) + (100 if mode == "short" else 0)))
            self.end_headers()
            self.wfile.write(body)
            if mode == "short":  # the server cuts the body short and closes the connection
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(Handler) as url:
        yield url, state


@pytest.fixture
def untrusted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The yacht entry without a published checksum: trust on first use."""
    entry = dataclasses.replace(sources.SOURCES["yacht"], sha256=None)
    monkeypatch.setitem(sources.SOURCES, "yacht", entry)


def _files(root: Path) -> list[str]:
    folder = root / "yacht"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("mode", ["short", "html"])
def test_first_download_that_is_not_the_file_is_not_trusted(server, untrusted, tmp_path, mode):
    url, state = server
    state["mode"] = mode
    with pytest.raises(DownloadError, match="Content-Length|HTML page"):
        download.fetch("yacht", data_dir=tmp_path, mirror=url, timeout=10)
    assert _files(tmp_path) == []  # no file, no record, no temporary file
    state["mode"] = "full"
    path = download.fetch("yacht", data_dir=tmp_path, mirror=url, timeout=10)
    assert path.read_bytes() == DATA
    record = path.with_name(path.name + ".sha256").read_text().split()[0]
    assert record == hashlib.sha256(DATA).hexdigest()


def test_cached_html_page_is_refused(untrusted, tmp_path):
    path = download.cached_path("yacht", tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(HTML)
    with pytest.raises(ChecksumError, match="HTML page"):
        download.fetch("yacht", data_dir=tmp_path, mirror="http://127.0.0.1:9", timeout=1)
    assert not path.with_name(path.name + ".sha256").exists()


@pytest.mark.parametrize("content", ["", "\n", "not-a-digest  yacht_hydrodynamics.data\n"])
def test_empty_or_malformed_checksum_record_is_a_clear_error(untrusted, tmp_path, content):
    path = download.cached_path("yacht", tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(DATA)
    path.with_name(path.name + ".sha256").write_text(content)
    with pytest.raises(ChecksumError, match="empty or malformed"):
        download.fetch("yacht", data_dir=tmp_path, mirror="http://127.0.0.1:9", timeout=1)
