import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import toy_experiment as toy
from fisherlab.experiments import CellStore, Claim, RunContext, all_experiments, get, register
from fisherlab.experiments.base import atomic_write_json, to_jsonable
from fisherlab.experiments.runner import (
    ConfigMismatchError,
    OverrideError,
    build_config,
    parse_set_options,
    read_run_status,
    run_experiment,
)


@pytest.fixture
def counter():
    toy.COUNTER.__init__()
    with toy.registered(toy.make()):
        yield toy.COUNTER


def _json(path: Path):
    return json.loads(path.read_text())


# -- registry ------------------------------------------------------------------------------


def test_registry_lists_demo_and_rejects_unknown_names():
    names = [e.name for e in all_experiments()]
    assert "demo" in names
    assert get("demo").name == "demo"
    with pytest.raises(ValueError, match="known experiments: .*demo"):
        get("no-such-experiment")


def test_registry_rejects_duplicates_and_keeps_order(counter):
    names = [e.name for e in all_experiments()]
    assert names[-1] == toy.NAME
    with pytest.raises(ValueError, match="registered already"):
        register(toy.make())
    with pytest.raises(TypeError):
        register("demo")


def test_experiments_import_without_matplotlib():
    code = (
        "import sys; sys.modules['matplotlib'] = None; "
        "import fisherlab.experiments as e; import fisherlab.experiments.runner; "
        "import fisherlab.plotting; print(len(e.all_experiments()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) >= 1


# -- cells, JSON -----------------------------------------------------------------------------


def test_cell_store_roundtrip(tmp_path):
    store = CellStore(tmp_path / "cells" / "x")
    assert store.keys() == [] and "a" not in store and store.get("a") is None
    store.put("a", {"v": 1.5})
    store.put("lr=0.1/seed 2", {"v": [1, 2]})
    assert "a" in store and "lr=0.1/seed 2" in store
    assert store.get("a") == {"v": 1.5}
    assert store.get("lr=0.1/seed 2") == {"v": [1, 2]}
    assert store.keys() == ["a", "lr=0.1/seed 2"]
    # one file per cell, no temporary files left, nothing outside the root
    files = sorted(p.name for p in store.root.iterdir())
    assert len(files) == 2 and all(f.endswith(".json") and not f.startswith(".") for f in files)
    # keys that differ only in unsafe characters do not collide
    store.put("lr=0.1_seed 2", {"v": 0})
    assert store.get("lr=0.1/seed 2") == {"v": [1, 2]}


def test_run_context_cells_and_progress(tmp_path):
    ctx = RunContext(tmp_path, seed=3, quick=True, show_progress=False)
    assert list(ctx.progress(range(3), total=3, desc="x")) == [0, 1, 2]
    store = ctx.cells("grid")
    store.put("k", {"a": 1})
    assert (tmp_path / "cells" / "grid").is_dir()
    assert ctx.cells("grid").get("k") == {"a": 1}


def test_to_jsonable_and_atomic_write(tmp_path):
    obj = {
        "t": torch.tensor([1.0, 2.0]),
        "n": np.float32(0.5),
        "a": np.arange(3),
        "tup": (1, "x"),
        "p": Path("x/y"),
        "c": Claim("c", "m", None, "s", criterion="r", premise="p", premise_holds=True),
    }
    out = to_jsonable(obj)
    assert out == {
        "t": [1.0, 2.0],
        "n": 0.5,
        "a": [0, 1, 2],
        "tup": [1, "x"],
        "p": "x/y",
        "c": {
            "claim": "c",
            "measured": "m",
            "holds": None,
            "source": "s",
            "criterion": "r",
            "premise": "p",
            "premise_holds": True,
            "scale": "",
        },
    }
    atomic_write_json(tmp_path / "r.json", obj)
    assert _json(tmp_path / "r.json") == out
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
    with pytest.raises(TypeError):
        to_jsonable(object())


# -- configs and overrides -------------------------------------------------------------------


def test_overrides_are_parsed_by_field_type(counter):
    cfg = build_config(
        toy.NAME,
        quick=True,
        seed=0,
        overrides={
            "n_cells": "7",
            "scale": "1e-2",
            "label": "x",
            "datasets": "c,d",
            "verbose": "true",
            "limit": "none",
        },
    )
    assert cfg == toy.ToyConfig(7, 0.01, "x", ("c", "d"), True, None)
    cfg = build_config(toy.NAME, True, 0, {"limit": "3", "scale": 3, "datasets": ["e"]})
    assert cfg.limit == 3 and cfg.scale == 3.0 and isinstance(cfg.scale, float)
    assert cfg.datasets == ("e",)
    assert build_config(toy.NAME, False, 0, {}).n_cells == 6


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"n_cells": "3.5"}, "expected an int"),
        ({"n_cells": True}, "expected an int"),
        ({"scale": "fast"}, "expected a float"),
        ({"verbose": "maybe"}, "expected a bool"),
        ({"limit": "x"}, "not a valid"),
        ({"label": 3}, "expected a str"),
        ({"nope": "1"}, "unknown config field.*fields: n_cells, scale, label"),
    ],
)
def test_override_errors(counter, overrides, match):
    with pytest.raises(OverrideError, match=match):
        build_config(toy.NAME, True, 0, overrides)


def test_parse_set_options():
    assert parse_set_options(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    for bad in (["a"], ["=1"], ["a=1", "a=2"]):
        with pytest.raises(OverrideError):
            parse_set_options(bad)


# -- runs ----------------------------------------------------------------------------------


def test_run_writes_all_files(tmp_path, counter):
    run_dir = run_experiment(toy.NAME, tmp_path, quick=True, seed=1, show_progress=False)
    assert run_dir == tmp_path / toy.NAME
    config = _json(run_dir / "config.json")
    assert config == {
        "experiment": toy.NAME,
        "scale": "quick",
        "seed": 1,
        "config": {
            "n_cells": 4,
            "scale": 2.0,
            "label": "toy",
            "datasets": ["a", "b"],
            "verbose": False,
            "limit": None,
        },
    }
    results = _json(run_dir / "results.json")
    assert results["total"] == pytest.approx(2 * 2 * (0 + 1 + 4 + 9) + 8 * 1)
    claims = _json(run_dir / "claims.json")
    assert [c["holds"] for c in claims] == [True, None]
    info = read_run_status(run_dir)
    assert info["status"] == "ok" and info["figures"] == ["values.png"]
    assert info["wall_time_s"] >= 0
    assert set(info["versions"]) == {"fisherlab", "torch", "python"}
    assert info["versions"]["torch"] == torch.__version__
    assert (run_dir / "values.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(counter.computed) == 8


def test_interrupted_run_resumes_without_recomputing(tmp_path, counter):
    reference = run_experiment(toy.NAME, tmp_path / "ref", quick=True, seed=0)
    expected = _json(reference / "results.json")
    counter.computed.clear()

    counter.fail_after = 3
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_experiment(toy.NAME, tmp_path / "out", quick=True, seed=0)
    run_dir = tmp_path / "out" / toy.NAME
    assert read_run_status(run_dir)["status"].startswith("failed: RuntimeError")
    assert not (run_dir / "results.json").exists()
    first = list(counter.computed)
    assert first == ["a/0", "a/1", "a/2"]

    run_experiment(toy.NAME, tmp_path / "out", quick=True, seed=0)
    resumed = counter.computed[len(first) :]
    assert resumed == ["a/3", "b/0", "b/1", "b/2", "b/3"]  # completed cells not recomputed
    assert _json(run_dir / "results.json") == expected
    assert read_run_status(run_dir)["status"] == "ok"

    # a finished run re-run with the same config recomputes nothing
    counter.computed.clear()
    run_experiment(toy.NAME, tmp_path / "out", quick=True, seed=0)
    assert counter.computed == []


def test_config_mismatch_is_refused_unless_fresh(tmp_path, counter):
    run_experiment(toy.NAME, tmp_path, quick=True, seed=0)
    for kwargs in (
        {"overrides": {"scale": "3"}, "quick": True, "seed": 0},
        {"overrides": {}, "quick": False, "seed": 0},
        {"overrides": {}, "quick": True, "seed": 1},
    ):
        with pytest.raises(ConfigMismatchError, match="different config.*--fresh"):
            run_experiment(toy.NAME, tmp_path, **kwargs)
    with pytest.raises(ConfigMismatchError, match="scale: existing 2.0, requested 3.0"):
        run_experiment(toy.NAME, tmp_path, True, 0, {"scale": "3"})
    counter.computed.clear()
    run_dir = run_experiment(toy.NAME, tmp_path, True, 0, {"scale": "3"}, fresh=True)
    assert len(counter.computed) == 8  # old cells were deleted
    assert _json(run_dir / "config.json")["config"]["scale"] == 3.0


def test_missing_download_is_skipped(tmp_path, monkeypatch, counter):
    from fisherlab import datasets

    def offline_run(cfg, ctx):
        raise datasets.DownloadError("could not download data set 'x' (offline)")

    with toy.registered(toy.make("toy-offline", run=offline_run, needs_download=("x-file",))):
        run_dir = run_experiment("toy-offline", tmp_path, quick=True, seed=0)
    status = read_run_status(run_dir)["status"]
    assert status.startswith("skipped:") and "offline" in status
    assert not (run_dir / "results.json").exists()

    # a data set of the download table that cannot be fetched: skipped before running
    name = next(iter(datasets.SOURCES))

    def no_network(*args, **kwargs):
        raise datasets.DownloadError(f"could not download data set {name!r}")

    monkeypatch.setattr(datasets, "fetch", no_network)
    with toy.registered(toy.make("toy-remote", needs_download=(name,))):
        run_dir = run_experiment("toy-remote", tmp_path, quick=True, seed=0)
    assert read_run_status(run_dir)["status"].startswith(f"skipped: data set {name!r}")
    assert counter.computed == []


def test_other_errors_are_reraised(tmp_path):
    def broken(cfg, ctx):
        raise RuntimeError("a bug, not a download")

    with toy.registered(toy.make("toy-broken", run=broken, needs_download=("x-file",))):
        with pytest.raises(RuntimeError, match="a bug"):
            run_experiment("toy-broken", tmp_path, quick=True, seed=0)
    assert read_run_status(tmp_path / "toy-broken")["status"].startswith("failed:")


def test_config_without_preset_is_rejected():
    @dataclass
    class NoPreset:
        a: int = 1

    with pytest.raises(TypeError, match="preset"):
        register(toy.make("toy-no-preset", config_class=NoPreset))
