"""Every ```python block of every page in docs/ runs, in order, in one namespace per page."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
import torch

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = sorted(DOCS.glob("*.md"))
OPTIONAL = ("backpack", "curvlinops")
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(page: Path) -> list[str]:
    """Return the code of the page's ```python blocks, in order."""
    return BLOCK.findall(page.read_text(encoding="utf-8"))


def test_docs_exist():
    names = {p.name for p in PAGES}
    expected = {
        "README.md",
        "quickstart.md",
        "conventions.md",
        "structured.md",
        "optimizers.md",
        "fast_engine.md",
        "experiments.md",
    }
    assert expected <= names, expected - names
    for name in expected - {"README.md"}:
        assert python_blocks(DOCS / name), f"{name} has no python block"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_docs_page_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything a page writes goes to a temporary directory
    # the CLI examples would set the process-wide thread count; keep the test's own
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    # one module per page, so that dataclasses and pickling find the page's definitions
    module = types.ModuleType(f"docs_{page.stem}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    for number, code in enumerate(python_blocks(page), start=1):
        try:
            exec(compile(code, f"{page.name}[block {number}]", "exec"), namespace)
        except ModuleNotFoundError as error:
            if error.name in OPTIONAL:  # the oracle libraries are test extras
                pytest.skip(f"{page.name} needs {error.name}")
            raise
        except Exception as error:  # name the block that failed
            raise AssertionError(f"{page.name}, python block {number} failed: {error!r}") from error
