"""Run directories are never mixed, never half-trusted and honour the umask."""

import json
import os
import stat
import subprocess
import sys

import pytest

import toy_experiment as toy
from fisherlab.experiments import CellStore
from fisherlab.experiments.base import atomic_write_json, config_tag
from fisherlab.experiments.lock import RunDirectoryLock, RunLockedError
from fisherlab.experiments.runner import read_run_status, run_experiment


@pytest.fixture
def counter():
    toy.COUNTER.__init__()
    with toy.registered(toy.make()):
        yield toy.COUNTER


def test_written_files_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "a.json", {"x": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644


def test_cells_of_another_config_are_not_reused(tmp_path):
    CellStore(tmp_path, tag="config-1").put("k", {"v": 1})
    assert CellStore(tmp_path, tag="config-2").get("k") is None
    assert CellStore(tmp_path, tag="config-2").keys() == []
    assert CellStore(tmp_path, tag="config-1").get("k") == {"v": 1}


def test_config_tag_depends_on_the_config_only():
    a = {"experiment": "x", "config": {"lr": 0.1, "seeds": [0, 1]}}
    assert config_tag(a) == config_tag(json.loads(json.dumps(a)))
    assert config_tag(a) != config_tag({"experiment": "x", "config": {"lr": 0.2, "seeds": [0, 1]}})


@pytest.mark.parametrize("garbage", ["", '{"key": "a", "val', "[1, 2]", "not json"])
def test_a_truncated_cell_file_is_recomputed_with_a_warning(tmp_path, counter, garbage):
    run_experiment(toy.NAME, tmp_path, quick=True, show_progress=False)
    cells = sorted((tmp_path / toy.NAME / "cells" / "squares").glob("*.json"))
    cells[0].write_text(garbage)
    counter.computed.clear()
    with pytest.warns(RuntimeWarning, match=cells[0].name):
        run_experiment(toy.NAME, tmp_path, quick=True, show_progress=False)
    assert len(counter.computed) == 1
    assert read_run_status(tmp_path / toy.NAME)["status"] == "ok"


def test_a_garbage_config_file_is_named_and_rewritten(tmp_path, counter):
    run_experiment(toy.NAME, tmp_path, quick=True, show_progress=False)
    (tmp_path / toy.NAME / "config.json").write_text("{trunc")
    with pytest.warns(RuntimeWarning, match="config.json"):
        run_experiment(toy.NAME, tmp_path, quick=True, show_progress=False)
    assert json.loads((tmp_path / toy.NAME / "config.json").read_text())["experiment"] == toy.NAME


def test_a_live_lock_refuses_a_second_writer_even_with_fresh(tmp_path, counter):
    run_dir = tmp_path / toy.NAME
    with RunDirectoryLock(run_dir):
        with pytest.raises(RunLockedError, match="being written by process"):
            run_experiment(toy.NAME, tmp_path, quick=True, fresh=True, show_progress=False)
    assert not run_dir.exists()
    run_experiment(toy.NAME, tmp_path, quick=True, show_progress=False)
    assert not (tmp_path / f"{toy.NAME}.lock").exists()


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path, counter):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    lock = tmp_path / f"{toy.NAME}.lock"
    lock.write_text(
        json.dumps({"host": __import__("socket").gethostname(), "pid": int(dead.stdout)})
    )
    with pytest.warns(RuntimeWarning, match="stale lock"):
        run_experiment(toy.NAME, tmp_path, quick=True, show_progress=False)
    assert not lock.exists()


def test_reuse_keeps_a_finished_run_and_reevaluates_its_claims(tmp_path, counter):
    run_experiment(toy.NAME, tmp_path, quick=True, show_progress=False)
    (tmp_path / toy.NAME / "claims.json").write_text("[]")
    counter.computed.clear()
    run_experiment(toy.NAME, tmp_path, quick=True, show_progress=False, reuse=True)
    info = read_run_status(tmp_path / toy.NAME)
    assert info["reused"] is True and counter.computed == []
    claims = json.loads((tmp_path / toy.NAME / "claims.json").read_text())
    assert len(claims) == 2 and all(c["scale"] == "quick" for c in claims)
