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


def _entry(lines, name):
    """The lines of one experiment in ``fisherlab list``: its row and the indented ones."""
    start = next(i for i, line in enumerate(lines) if line.startswith(name + " "))
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i] and not lines[i].startswith(" ")),
        len(lines),
    )
    return lines[start:end]


@pytest.mark.parametrize("columns", [80, 160])
def test_list(capsys, tmp_path, toy_registered, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    assert main(["list", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(len(line) for line in lines) < columns
    assert lines[0].split() == ["NAME", "LAST", "RUN", "TITLE"]
    demo = " ".join(" ".join(_entry(lines, "demo")).split())
    assert demo.startswith("demo - Fisher vs empirical Fisher")
    assert "Kunstner et al. 2019" in demo and "data sets (--dataset): blobs, xor" in demo
    toy_entry = " ".join(" ".join(_entry(lines, toy.NAME)).split())
    assert "Toy et al. 2024, Fig. 1" in toy_entry and "data sets (--dataset): a, b" in toy_entry
    assert "--quick" in out and "--full" in out

    assert main(["run", toy.NAME, "--quick", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    main(["list", "--out", str(tmp_path)])
    toy_line = _entry(capsys.readouterr().out.splitlines(), toy.NAME)[0]
    assert toy_line.split()[:3] == [toy.NAME, "quick", "ok"]


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
    assert main([*args, "--set", "scale=0.5", "--dataset", "B"]) == 0
    config = json.loads((tmp_path / toy.NAME / "config.json").read_text())["config"]
    assert config["n_cells"] == 2 and config["scale"] == 0.5 and config["datasets"] == ["b"]
    assert toy_registered.computed == ["b/0", "b/1"]


def test_dataset_the_experiment_does_not_take(tmp_path, capsys, toy_registered):
    out = tmp_path / "res"
    assert main(["run", toy.NAME, "--quick", "--out", str(out), "--dataset", "zz"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        f"fisherlab: error: experiment {toy.NAME!r} does not take data set 'zz'; it takes: a, b"
    )
    assert "Traceback" not in err and toy_registered.computed == []
    assert not out.exists()  # no run directory, so no failed run in a report


def test_real_experiment_refuses_a_foreign_data_set(tmp_path, capsys):
    assert main(["run", "kunstner-fig3", "--out", str(tmp_path), "--dataset", "digits"]) == 2
    err = capsys.readouterr().err
    assert "does not take data set 'digits'; it takes: " in err and "boston" in err
    assert not any(tmp_path.iterdir())


def test_run_help_lists_the_data_sets(capsys, toy_registered):
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert "data sets that --dataset accepts, per experiment:" in out
    assert f"  {toy.NAME}: a, b" in out and "  demo: blobs, xor" in out
    assert "kunstner-fig1:" not in out  # no datasets field: nothing to choose


def test_help_does_not_import_torch():
    code = (
        "import contextlib, io, sys\n"
        "from fisherlab.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    code = main(['--help'])\n"
        "print(code, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["0", "False"], out.stderr


def test_monitor_demo_and_plot(tmp_path, capsys):
    pytest.importorskip("sklearn")
    out = tmp_path / "mon"
    assert main(["monitor-demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ("run.jsonl", "dashboard.png", "dashboard.html"):
        assert str(out / name) in printed
    from fisherlab.monitor import INSTRUMENTS, read_log

    records = read_log(out / "run.jsonl")
    assert [r["step"] for r in records] == list(range(60))
    keys = {k for r in records for k in r}
    assert {"loss", "variance_trace", "hessian_max_eigenvalue", "ef_natural_cosine"} <= keys
    assert len(keys - {"step"}) == sum(len(cls.panels) for cls in INSTRUMENTS.values())
    assert (out / "dashboard.png").read_bytes()[:4] == b"\x89PNG"
    assert "data:image/png;base64,iVBOR" in (out / "dashboard.html").read_text()

    png, page = tmp_path / "p" / "d.png", tmp_path / "d.html"
    assert (
        main(["monitor-plot", str(out / "run.jsonl"), "--out", str(png), "--html", str(page)]) == 0
    )
    assert png.read_bytes()[:4] == b"\x89PNG" and "<table>" in page.read_text()


def test_monitor_plot_usage_errors(tmp_path, capsys):
    assert main(["monitor-plot", str(tmp_path / "none.jsonl"), "--out", "x.png"]) == 2
    assert "cannot read the log" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["monitor-plot", str(empty), "--out", str(tmp_path / "x.png")]) == 2
    assert "holds no records" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"loss": 1}\n{"step": 1}\n')
    assert main(["monitor-plot", str(bad), "--out", str(tmp_path / "x.png")]) == 2
    assert "line 1 is not a monitor record" in capsys.readouterr().err
    assert main(["monitor-plot", str(bad)]) == 2  # --out is required
    assert not (tmp_path / "x.png").exists()


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


def test_reproduce_again_reuses_finished_runs_and_says_so(tmp_path, capsys, toy_registered):
    args = ["reproduce", "--quick", "--out", str(tmp_path), "--only", toy.NAME, "--no-progress"]
    assert main(args) == 0
    computed = len(toy_registered.computed)
    capsys.readouterr()
    assert main(args) == 0
    assert "reused: config unchanged" in capsys.readouterr().out
    assert len(toy_registered.computed) == computed
    assert main([*args, "--fresh"]) == 0
    assert len(toy_registered.computed) == 2 * computed


def test_a_locked_run_directory_is_an_error_without_traceback(tmp_path, capsys, toy_registered):
    from fisherlab.experiments.lock import RunDirectoryLock

    with RunDirectoryLock(tmp_path / toy.NAME):
        code = main(["run", toy.NAME, "--quick", "--out", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "is being written by process" in err and "Traceback" not in err


def test_reproduce_with_two_jobs_runs_each_experiment_in_a_worker(tmp_path, capsys):
    names = ["demo", "balles-fig6-2"]
    args = ["reproduce", "--quick", "--out", str(tmp_path), "--no-progress", "--jobs", "2"]
    assert main([*args, "--only", *names]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    for name in names:
        assert json.loads((tmp_path / name / "run.json").read_text())["status"] == "ok"
    assert "report:" in out
    assert main([*args[:-1], "0", "--only", "demo"]) == 2


def test_reproduce_starts_the_longest_full_runs_first():
    from fisherlab.cli import longest_first
    from fisherlab.experiments import all_experiments, get

    names = [e.name for e in all_experiments()]
    ordered = longest_first(names, "full")
    assert sorted(ordered) == sorted(names)
    seconds = [get(n).full_seconds for n in ordered]
    assert seconds == sorted(seconds, reverse=True) and seconds[0] > 0
    assert ordered[0] == "wen-tables"
    assert longest_first(names, "quick") == names


def test_reproduce_monitor_demo_task_writes_the_dashboard(tmp_path):
    # the task ``reproduce`` runs in a worker beside the experiments
    import torch

    from fisherlab.cli import _monitor_demo

    threads = torch.get_num_threads()
    try:
        html = _monitor_demo(tmp_path / "monitor-demo", 3, 1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert html == tmp_path / "monitor-demo" / "dashboard.html"
    assert html.is_file() and (tmp_path / "monitor-demo" / "run.jsonl").is_file()
