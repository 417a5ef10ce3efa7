"""A minimal reader for the first worksheet of an Office Open XML (.xlsx) workbook.

Only the standard library is used (an .xlsx file is a zip archive of XML
parts). Cell values are returned as numbers or strings; formatting, formulas
(their cached values are read) and every sheet but the first are ignored.
This covers the numeric tables of the UCI Energy and Power Plant data sets
without an optional spreadsheet dependency.
"""

from __future__ import annotations

import posixpath
import zipfile
from typing import IO
from xml.etree import ElementTree

Cell = float | str | None


def _local(tag: str) -> str:
    """Drop the ``{namespace}`` prefix of an element or attribute name."""
    return tag.rsplit("}", 1)[-1]


def _children(element: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    return [child for child in element if _local(child.tag) == name]


def _attribute(element: ElementTree.Element, name: str) -> str | None:
    for key, value in element.attrib.items():
        if _local(key) == name:
            return value
    return None


def _text(element: ElementTree.Element) -> str:
    """Concatenated text of all ``<t>`` descendants (rich-text runs included)."""
    return "".join(node.text or "" for node in element.iter() if _local(node.tag) == "t")


def _first_sheet_part(archive: zipfile.ZipFile) -> str:
    workbook = ElementTree.fromstring(archive.read("xl/workbook.xml"))
    sheets = [s for node in _children(workbook, "sheets") for s in _children(node, "sheet")]
    if not sheets:
        raise ValueError("workbook has no worksheet")
    rel_id = _attribute(sheets[0], "id")
    rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    for rel in rels:
        if rel.get("Id") == rel_id:
            target = rel.get("Target", "")
            if target.startswith("/"):
                return target.lstrip("/")
            return posixpath.normpath(posixpath.join("xl", target))
    raise ValueError(f"workbook relationship {rel_id!r} of the first sheet not found")


def _column_index(reference: str) -> int:
    """Zero-based column of a cell reference such as ``"AB12"``."""
    index = 0
    for char in reference:
        if not char.isalpha():
            break
        index = index * 26 + (ord(char.upper()) - ord("A") + 1)
    return index - 1


def _cell_value(cell: ElementTree.Element, shared: list[str]) -> Cell:
    kind = cell.get("t", "n")
    if kind == "inlineStr":
        return _text(cell)
    values = _children(cell, "v")
    if not values or values[0].text is None:
        return None
    raw = values[0].text
    if kind == "s":
        return shared[int(raw)]
    if kind in ("str", "e"):
        return raw
    return float(raw)


def read_first_sheet(source: str | IO[bytes]) -> list[list[Cell]]:
    """Read the cell values of the first worksheet of an .xlsx workbook.

    Parameters
    ----------
    source : str or binary file object
        Path to the workbook, or an open binary file (e.g. a zip member).

    Returns
    -------
    list of list
        One list per stored row, in order; each holds the row's cells from
        column A up to its last stored cell, as ``float`` (numbers, booleans),
        ``str`` (text) or ``None`` (empty).
    """
    with zipfile.ZipFile(source) as archive:
        shared: list[str] = []
        if "xl/sharedStrings.xml" in archive.namelist():
            table = ElementTree.fromstring(archive.read("xl/sharedStrings.xml"))
            shared = [_text(item) for item in _children(table, "si")]
        sheet = ElementTree.fromstring(archive.read(_first_sheet_part(archive)))
    rows: list[list[Cell]] = []
    for data in _children(sheet, "sheetData"):
        for row in _children(data, "row"):
            values: list[Cell] = []
            for cell in _children(row, "c"):
                reference = cell.get("r")
                column = _column_index(reference) if reference else len(values)
                values.extend([None] * (column + 1 - len(values)))
                values[column] = _cell_value(cell, shared)
            rows.append(values)
    return rows
