"""Fixtures of the data set tests: an isolated cache, a local HTTP server and
small stand-ins for the downloadable files in their real formats."""

from __future__ import annotations

import io
import socket
import types
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from local_http import serving

A1A = "+1 3:1 11:1 14:1 123:1 \n-1 1:1 5:1 \n\n-1 2:1 119:1 # a comment\n"

# Runs of spaces, trailing spaces and a blank last line, like the UCI file.
YACHT = (
    "-2.3 0.568 4.78 3.99 3.17 0.125  0.11\n"
    "-2.3  0.568 4.78 3.99 3.17 0.150 0.27 \n"
    " 0.0 0.530 4.78 3.75 3.15 0.450 34.28\n"
    "\n"
)

ENERGY_HEADER = ["X1", "X2", "X3", "X4", "X5", "X6", "X7", "X8", "Y1", "Y2"]
ENERGY_ROWS = [
    [0.98, 514.5, 294.0, 110.25, 7.0, 2.0, 0.0, 0.0, 15.55, 21.33],
    [0.90, 563.5, 318.5, 122.5, 7.0, 3.0, 0.1, 1.0, 20.84, 28.28],
]
CCPP_HEADER = ["AT", "V", "AP", "RH", "PE"]
CCPP_ROWS = [
    [14.96, 41.76, 1024.07, 73.17, 463.26],
    [25.18, 62.96, 1020.04, 59.08, 444.37],
    [5.11, 39.4, 1012.16, 92.14, 488.56],
]

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG = "http://schemas.openxmlformats.org/package/2006/relationships"


def _column(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def xlsx(sheets: list[list[list[object]]]) -> bytes:
    """An .xlsx workbook; strings go to the shared-string table, as Excel writes them.

    The relationship ids are listed in reverse order so that a reader has to
    resolve the first sheet through ``workbook.xml.rels``.
    """
    shared: list[str] = []
    parts = {}
    for number, rows in enumerate(sheets, start=1):
        xml_rows = []
        for r, row in enumerate(rows, start=1):
            cells = []
            for c, value in enumerate(row):
                ref = f"{_column(c)}{r}"
                if value is None:
                    continue
                if isinstance(value, str):
                    shared.append(value)
                    cells.append(f'<c r="{ref}" t="s"><v>{len(shared) - 1}</v></c>')
                else:
                    cells.append(f'<c r="{ref}" s="1"><v>{value!r}</v></c>')
            xml_rows.append(f'<row r="{r}">{"".join(cells)}</row>')
        parts[f"xl/worksheets/sheet{number}.xml"] = (
            f'<worksheet xmlns="{_MAIN}"><sheetData>{"".join(xml_rows)}</sheetData></worksheet>'
        )
    sheet_list = "".join(
        f'<sheet name="Sheet{n}" sheetId="{n}" r:id="rId{n}"/>' for n in range(1, len(sheets) + 1)
    )
    rels = "".join(
        f'<Relationship Id="rId{n}" Target="worksheets/sheet{n}.xml" Type="{_REL}/worksheet"/>'
        for n in range(len(sheets), 0, -1)
    )
    strings = "".join(f"<si><t>{escape(s)}</t></si>" for s in shared)
    parts["xl/workbook.xml"] = (
        f'<workbook xmlns="{_MAIN}" xmlns:r="{_REL}"><sheets>{sheet_list}</sheets></workbook>'
    )
    parts["xl/_rels/workbook.xml.rels"] = f'<Relationships xmlns="{_PKG}">{rels}</Relationships>'
    parts["xl/sharedStrings.xml"] = f'<sst xmlns="{_MAIN}">{strings}</sst>'
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in parts.items():
            archive.writestr(name, '<?xml version="1.0" encoding="UTF-8"?>\n' + text)
    return buffer.getvalue()


def energy_xlsx() -> bytes:
    """ENB2012_data.xlsx: header, data rows and trailing empty rows."""
    return xlsx([[ENERGY_HEADER, *ENERGY_ROWS, [None] * 10, []]])


def ccpp_zip() -> bytes:
    """CCPP.zip with the workbook (5 sheets, the first one is read) and a readme."""
    first = [CCPP_HEADER, *CCPP_ROWS]
    others = [CCPP_HEADER, *reversed(CCPP_ROWS)]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("CCPP/Folds5x2_pp.xlsx", xlsx([first] + [others] * 4))
        archive.writestr("CCPP/Readme.txt", "Combined Cycle Power Plant\n")
    return buffer.getvalue()


FILES: dict[str, bytes] = {
    "a1a": A1A.encode(),
    "yacht": YACHT.encode(),
    "energy": energy_xlsx(),
    "powerplant": ccpp_zip(),
}


@pytest.fixture
def fakes() -> types.SimpleNamespace:
    """The fake files and the helpers that build them."""
    return types.SimpleNamespace(
        FILES=FILES,
        ENERGY_ROWS=ENERGY_ROWS,
        CCPP_ROWS=CCPP_ROWS,
        xlsx=xlsx,
    )


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty cache and no mirror from the environment."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("FISHERLAB_DATA", str(cache))
    monkeypatch.delenv("FISHERLAB_DATA_MIRROR", raising=False)
    return cache


@dataclass
class FileServer:
    url: str
    root: Path
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[FileServer]:
    """An HTTP server on 127.0.0.1 (random free port) serving ``root`` in a thread."""
    root = tmp_path / "served"
    root.mkdir()
    requests: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(Handler) as url:
        yield FileServer(url, root, requests)


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
