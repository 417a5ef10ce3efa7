import json
import subprocess
import sys
from dataclasses import dataclass

import pytest

import toy_experiment as toy
from fisherlab.cli import main

# the demo at a scale of a fraction of a second
TINY_DEMO = ["--set", "steps=4", "n_checkpoints=2", "n_samples=16", "hidden=4"]


@pytest.fixture
def toy_registered():
    toy.COUNTER.__init__()
    with toy.registered(toy.make()):
        yield toy.COUNTER


def test_run_demo_then_report(tmp_path, capsys):
    out = tmp_path / "res"
    code = main(["run", "demo", "--quick", "--out", str(out), "--no-progress", *TINY_DEMO])
    assert code == 0, capsys.readouterr().err
    run_dir = out / "demo"
    for name in ("config.json", "results.json", "claims.json", "run.json", "traces.png"):
        assert (run_dir / name).stat().st_size > 0, name
    assert (run_dir / "traces.png").read_bytes()[:4] == b"\x89PNG"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["scale"] == "quick" and config["config"]["steps"] == 4
    results = json.loads((run_dir / "results.json").read_text())
    for r in results["runs"].values():
        assert len(r["trace_fisher"]) == 2 and all(t > 0 for t in r["trace_ef"])
    claims = json.loads((run_dir / "claims.json").read_text())
    assert len(claims) == 2 and all(c["holds"] in (True, False, None) for c in claims)
    assert "demo: ok" in capsys.readouterr().out

    assert main(["report", "--out", str(out)]) == 0
    assert "report.html" in capsys.readouterr().out
    html = (out / "report.html").read_text()
    assert claims[0]["claim"] in html
    assert '<img src="data:image/png;base64,iVBOR' in html
    assert "Final traces" in html  # the results table


def test_reproduce_only_writes_report(tmp_path, capsys, toy_registered):
    out = tmp_path / "res"
    code = main(["reproduce", "--quick", "--out", str(out), "--only", toy.NAME, "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"report: {(out / 'report.html').resolve()}" in captured.out
    assert not (out / "demo").exists()
    html = (out / "report.html").read_text()
    assert "The toy total is positive." in html and "data:image/png;base64," in html


def test_reproduce_reports_failures_and_continues(tmp_path, capsys, toy_registered):
    def broken(cfg, ctx):
        raise ZeroDivisionError("boom")

    with toy.registered(toy.make("toy-broken", run=broken)):
        code = main(["reproduce", "--out", str(tmp_path), "--only", "toy-broken", toy.NAME])
    captured = capsys.readouterr()
    assert code == 1
    assert "toy-broken" in captured.err and "boom" in captured.err
    assert (tmp_path / toy.NAME / "results.json").is_file()  # the others still ran
    html = (tmp_path / "report.html").read_text()
    assert "ZeroDivisionError: boom" in html


def test_list(capsys, tmp_path, toy_registered):
    assert main(["list", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["NAME", "PAPER", "TITLE"]
    demo_line = next(line for line in lines if line.startswith("demo "))
    assert "Kunstner et al. 2019" in demo_line and demo_line.rstrip().endswith("-")
    assert any(line.startswith(toy.NAME) and "Toy et al. 2024, Fig. 1" in line for line in lines)
    assert "--quick" in out and "--full" in out

    assert main(["run", toy.NAME, "--quick", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    main(["list", "--out", str(tmp_path)])
    toy_line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith(toy.NAME))
    assert toy_line.rstrip().endswith("quick ok")


def test_unknown_experiment(capsys, tmp_path):
    assert main(["run", "no-such-thing", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown experiment 'no-such-thing'" in err and "demo" in err
    assert main(["reproduce", "--only", "nope", "--out", str(tmp_path)]) == 2
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "sets, message",
    [
        (["n_cells=many"], "expected an int"),
        (["scale=x"], "expected a float"),
        (["verbose=2"], "expected a bool"),
        (["n_cells"], "expects key=value"),
        (["bogus=1"], "unknown config field(s) 'bogus'"),
    ],
)
def test_set_errors(capsys, tmp_path, toy_registered, sets, message):
    assert main(["run", toy.NAME, "--out", str(tmp_path), "--set", *sets]) == 2
    assert message in capsys.readouterr().err
    assert toy_registered.computed == []


def test_set_and_dataset(tmp_path, capsys, toy_registered):
    args = ["run", toy.NAME, "--quick", "--out", str(tmp_path), "--set", "n_cells=2"]
    assert main([*args, "--set", "scale=0.5", "--dataset", "zz"]) == 0
    config = json.loads((tmp_path / toy.NAME / "config.json").read_text())["config"]
    assert config["n_cells"] == 2 and config["scale"] == 0.5 and config["datasets"] == ["zz"]
    assert toy_registered.computed == ["zz/0", "zz/1"]


def test_dataset_needs_a_datasets_field(tmp_path, capsys):
    @dataclass
    class Plain:
        n: int = 1

        @classmethod
        def preset(cls, quick, seed):
            return cls()

    with toy.registered(toy.make("toy-plain", config_class=Plain)):
        assert main(["run", "toy-plain", "--out", str(tmp_path), "--dataset", "a1a"]) == 2
    assert "no 'datasets' config field" in capsys.readouterr().err


def test_config_mismatch_and_fresh(tmp_path, capsys, toy_registered):
    base = ["run", toy.NAME, "--quick", "--out", str(tmp_path)]
    assert main(base) == 0
    assert main([*base, "--set", "scale=5"]) == 2
    err = capsys.readouterr().err
    assert "different config" in err and "--fresh" in err
    assert main(["run", toy.NAME, "--full", "--out", str(tmp_path)]) == 2
    assert main([*base, "--set", "scale=5", "--fresh"]) == 0
    assert json.loads((tmp_path / toy.NAME / "config.json").read_text())["config"]["scale"] == 5


def test_failure_exit_code(tmp_path, capsys):
    def broken(cfg, ctx):
        raise ValueError("experiment bug")

    with toy.registered(toy.make("toy-broken", run=broken)):
        assert main(["run", "toy-broken", "--out", str(tmp_path)]) == 1
    assert "experiment bug" in capsys.readouterr().err


def test_usage_errors(capsys, tmp_path):
    assert main([]) == 2
    assert main(["run", "demo", "--quick", "--full"]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["report", "--out", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["--help"]) == 0


def test_python_dash_m(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "fisherlab", "list", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "demo" in out.stdout
