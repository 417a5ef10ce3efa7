"""Running one experiment at quick scale inside a test (shared by the paper test packages)."""

import json
from pathlib import Path
from typing import Any

from fisherlab.experiments.runner import run_experiment


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def quick_run(name: str, out: Path, **overrides: Any) -> tuple[Path, dict, dict, list]:
    """Run ``name`` at quick scale into ``out`` with config fields ``overrides``.

    Checks that the run is ``ok`` and that every figure it lists is a non-empty file;
    returns the run directory and the contents of ``run.json``, ``results.json`` and
    ``claims.json``.
    """
    run_dir = run_experiment(name, out, quick=True, overrides=overrides, show_progress=False)
    status = _read(run_dir / "run.json")
    assert status["status"] == "ok", status["status"]
    for figure in status["figures"]:
        assert (run_dir / figure).stat().st_size > 0, figure
    return run_dir, status, _read(run_dir / "results.json"), _read(run_dir / "claims.json")


def assert_figures(run_dir: Path, names: list[str], min_bytes: int = 1000) -> None:
    """Every figure in ``names`` exists in ``run_dir`` and is larger than ``min_bytes``."""
    for name in names:
        assert (run_dir / name).stat().st_size > min_bytes, name
