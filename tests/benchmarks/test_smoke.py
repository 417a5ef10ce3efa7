"""Smoke test: the quick benchmark writes every result file with every row."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_writes_json_and_table(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--reps", "1", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    from benchmarks.run import IMPLS, ROWS

    ratios = json.loads((tmp_path / "ratios.json").read_text())
    assert ratios["meta"]["threads"] == 1
    assert set(ratios["models"]) == {"mlp", "cnn", "resnet"}
    for result in ratios["models"].values():
        assert result["plain_ms"] > 0
        assert set(result["rows"]) == set(ROWS)
        for row in ROWS:
            assert set(result["rows"][row]) == set(IMPLS)
            ours = result["rows"][row]["fisherlab"]
            assert ours["ratio"] is not None and ours["ratio"] > 0
    memory = json.loads((tmp_path / "memory.json").read_text())
    assert memory["models"]["mlp"]["plain"] is not None
    scaling = json.loads((tmp_path / "scaling.json").read_text())
    assert scaling["batch"] and scaling["width"]
    table = (tmp_path / "README.md").read_text()
    for label in ROWS.values():
        assert table.count(f"| {label} |") >= 3
    assert "1 thread(s)" in table
    assert not list(tmp_path.glob("*.tmp"))
