"""Smoke test: the quick benchmark writes every result file with every row."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_writes_json_and_table(tmp_path):
    models = ["mlp", "transformer"]
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--reps", "1", "--out", str(tmp_path)]
        + ["--models", *models],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    from benchmarks.run import IMPLS, ROWS

    ratios = json.loads((tmp_path / "ratios.json").read_text())
    assert ratios["meta"]["threads"] == 1
    assert ratios["meta"]["device"] == "cpu"
    assert set(ratios["models"]) == set(models)
    for result in ratios["models"].values():
        assert result["plain_ms"] > 0
        assert set(result["rows"]) == set(ROWS)
        for row in ROWS:
            assert set(result["rows"][row]) == set(IMPLS)
            ours = result["rows"][row]["fisherlab"]
            assert ours["ratio"] is not None and ours["ratio"] > 0
        for row in ("ggn_vp", "hvp", "efvp"):
            assert result["rows"][row]["curvlinops"]["ratio"] is not None
            assert result["checks"][row]["fisherlab_vs_curvlinops"] >= 0
        assert result["checks"]["hvp"]["fisherlab_vs_autograd"] < 1e-10
    # the transformer block has a torch.func peer on the diagonal rows
    transformer = ratios["models"]["transformer"]["rows"]
    for row in ("first_order", "per_sample", "mc_diag", "ggn_diag"):
        assert transformer[row]["torch.func"]["ratio"] is not None
    memory = json.loads((tmp_path / "memory.json").read_text())
    assert memory["models"]["mlp"]["plain"] is not None
    assert memory["models"]["mlp"]["ggn_diag/fisherlab"] is not None
    scaling = json.loads((tmp_path / "scaling.json").read_text())
    assert scaling["batch"] and scaling["width"]
    table = (tmp_path / "README.md").read_text()
    for label in ROWS.values():
        assert table.count(f"| {label} |") >= len(models)
    assert "1 thread(s)" in table
    assert "Measured 20" in table and "UTC" in table
    assert "| best peer | ours / best | ahead |" in table
    assert not list(tmp_path.glob("*.tmp"))
