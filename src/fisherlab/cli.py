"""Command-line interface: ``fisherlab list | run | reproduce | report | monitor-...``.

Examples
--------
.. code-block:: console

    $ fisherlab list
    $ fisherlab run demo --quick --set steps=100 --set lr=0.3
    $ fisherlab run kunstner-fig3 --quick --dataset wine
    $ fisherlab reproduce --quick --out results/
    $ fisherlab report --out results/
    $ fisherlab monitor-demo --out monitor/
    $ fisherlab monitor-plot monitor/run.jsonl --out dashboard.png

Heavy modules (torch, the experiments) are imported only by the command that needs them,
so ``fisherlab --help`` answers at once.

Exit codes: 0 success, 1 an experiment failed, 2 usage error (unknown experiment, invalid
``--set``, a run directory holding a different config, ...).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import textwrap
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_OUT", "build_parser", "main"]

DEFAULT_OUT = Path("fisherlab-results")


class UsageError(Exception):
    """An error in how the command was called (exit code 2)."""


def _error(message: str) -> None:
    print(f"fisherlab: error: {message}", file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose epilog may be computed when the help is shown."""

    def __init__(self, *args: Any, epilog_factory: Callable[[], str] | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self.epilog_factory = epilog_factory

    def format_help(self) -> str:
        if self.epilog_factory is not None:
            self.epilog = self.epilog_factory()
        return super().format_help()


def accepted_datasets(name: str) -> tuple[str, ...]:
    """The data sets ``fisherlab run NAME --dataset`` accepts: those its presets run on.

    The union of the ``datasets`` field of the experiment's quick and full configs; empty
    for an experiment without a ``datasets`` field.
    """
    from fisherlab.experiments import get
    from fisherlab.experiments.runner import config_fields

    exp = get(name)
    if "datasets" not in config_fields(exp):
        return ()
    names: dict[str, None] = {}
    for quick in (True, False):
        names.update(dict.fromkeys(exp.config_class.preset(quick=quick, seed=0).datasets))
    return tuple(names)


def _datasets_epilog() -> str:
    from fisherlab.experiments import all_experiments

    lines = ["data sets that --dataset accepts, per experiment:"]
    for e in all_experiments():
        names = accepted_datasets(e.name)
        if names:
            lines.append(f"  {e.name}: {', '.join(names)}")
    return "\n".join(lines)


def _add_scale(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--quick",
        dest="quick",
        action="store_true",
        default=False,
        help="reduced scale: minutes on a laptop CPU",
    )
    group.add_argument(
        "--full", dest="quick", action="store_false", help="the scale of the paper (default)"
    )


def _add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        metavar="T",
        help="torch CPU threads (default: 1; the experiments are many small operations, "
        "which more threads slow down)",
    )


def _add_out(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"results directory (default: ./{DEFAULT_OUT})",
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``fisherlab`` command."""
    parser = argparse.ArgumentParser(
        prog="fisherlab",
        description="Reproduce experiments on the Fisher, the empirical Fisher and gradient "
        "noise; results go to DIR/NAME/ and an HTML report to DIR/report.html. Monitor "
        "gradient noise and curvature of a training run (monitor-demo, monitor-plot).",
    )
    from fisherlab import __version__

    parser.add_argument("--version", action="version", version=f"fisherlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("list", help="list the experiments and the data sets each takes")
    _add_out(p)

    p = sub.add_parser(
        "run",
        help="run one experiment",
        epilog_factory=_datasets_epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", metavar="NAME", help="experiment name (see `fisherlab list`)")
    _add_scale(p)
    _add_out(p)
    p.add_argument("--seed", type=int, default=0, metavar="S", help="base seed (default: 0)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set lr=0.1 seeds=0,1,2 (repeatable)",
    )
    p.add_argument(
        "--dataset",
        metavar="NAME",
        help="run on only this one of the experiment's data sets (see the list below)",
    )
    p.add_argument(
        "--fresh", action="store_true", help="delete an existing run directory and start over"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_threads(p)

    p = sub.add_parser("reproduce", help="run every experiment, then write the report")
    _add_scale(p)
    _add_out(p)
    p.add_argument("--seed", type=int, default=0, metavar="S", help="base seed (default: 0)")
    p.add_argument(
        "--only", nargs="+", action="extend", metavar="NAME", help="run only these experiments"
    )
    p.add_argument(
        "--fresh", action="store_true", help="delete existing run directories and start over"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="run N experiments at a time, each in its own process (default: 1; "
        "--jobs 2 on a 2-core machine halves the wall time of --full)",
    )
    _add_threads(p)

    p = sub.add_parser("report", help="write DIR/report.html from the runs in DIR")
    _add_out(p)

    p = sub.add_parser(
        "monitor-demo",
        help="train a small MLP on the digits data under fl.Monitor; write the log, PNG, HTML",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    p.add_argument("--steps", type=int, default=400, metavar="N", help="SGD steps (default: 400)")
    p.add_argument("--quick", action="store_true", help="60 steps: a smoke run, e.g. in CI")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed (default: 0)")
    _add_threads(p)

    p = sub.add_parser("monitor-plot", help="draw the dashboard of a monitor log (JSON lines)")
    p.add_argument("log", type=Path, metavar="LOG", help="the log= file of fl.Monitor")
    p.add_argument("--out", type=Path, required=True, metavar="PNG", help="the PNG to write")
    p.add_argument("--html", type=Path, metavar="HTML", help="also write a self-contained page")
    return parser


# -- commands ------------------------------------------------------------------------------------


def _run_state(run_dir: Path) -> str:
    from fisherlab.experiments.runner import read_run_status

    info = read_run_status(run_dir)
    if info is None:
        return "-"
    status = str(info.get("status", "?")).split(":", 1)[0]
    return f"{info.get('scale', '?')} {status}"


def _cmd_list(args: argparse.Namespace) -> int:
    from fisherlab.experiments import all_experiments

    exps = all_experiments()
    width = max(60, shutil.get_terminal_size((100, 24)).columns - 1)
    name_width = max(len(e.name) for e in exps)
    state_header = "LAST RUN"
    states = {e.name: _run_state(args.out / e.name) for e in exps}
    state_width = max(len(state_header), *(len(v) for v in states.values()))
    title_indent = " " * (name_width + state_width + 4)
    title_wrap = textwrap.TextWrapper(
        width=width, initial_indent=title_indent, subsequent_indent=title_indent
    )
    detail_wrap = textwrap.TextWrapper(width=width, initial_indent="    ", subsequent_indent="    ")
    print(f"{'NAME':<{name_width}}  {state_header:<{state_width}}  TITLE")
    for e in exps:
        lines = title_wrap.wrap(e.title)
        lines[0] = f"{e.name:<{name_width}}  {states[e.name]:<{state_width}}  " + lines[0].lstrip()
        details = [e.paper]
        datasets = accepted_datasets(e.name)
        if datasets:
            details.append(f"data sets (--dataset): {', '.join(datasets)}")
        if e.needs_download:
            details.append(f"downloads: {', '.join(e.needs_download)}")
        lines += detail_wrap.wrap("; ".join(details))
        print("\n".join(lines))
    print(
        "\n"
        + textwrap.fill(
            f"{len(exps)} experiment(s); LAST RUN is the state of the run in {args.out}. "
            "Each runs at two scales: --quick (reduced, minutes on a CPU) or --full (the "
            "scale of the paper).",
            width=width,
        )
    )
    return 0


def _overrides(args: argparse.Namespace, name: str) -> dict[str, object]:
    from fisherlab.experiments.runner import config_fields, parse_set_options

    overrides: dict[str, object] = dict(parse_set_options(args.overrides))
    if args.dataset is not None:
        if "datasets" not in config_fields(name):
            raise UsageError(
                f"experiment {name!r} has no 'datasets' config field; --dataset does not apply"
            )
        if "datasets" in overrides:
            raise UsageError("give either --dataset or --set datasets=..., not both")
        accepted = accepted_datasets(name)
        dataset = args.dataset.strip().lower().replace("_", "-")
        if dataset not in accepted:
            raise UsageError(
                f"experiment {name!r} does not take data set {args.dataset!r}; "
                f"it takes: {', '.join(accepted)}"
            )
        overrides["datasets"] = (dataset,)
    return overrides


def _summarize(run_dir: Path) -> str:
    from fisherlab.experiments.runner import read_run_status

    info = read_run_status(run_dir) or {}
    status = str(info.get("status", "?"))
    wall = info.get("wall_time_s")
    text = f"{run_dir.name}: {status}" + (f" ({wall:.1f} s)" if wall is not None else "")
    if info.get("reused"):
        text += " (reused: config unchanged, claims re-evaluated)"
    try:
        with open(run_dir / "claims.json", encoding="utf-8") as f:
            claims = json.load(f)
    except (OSError, ValueError):
        claims = None
    if status == "ok" and claims is not None:
        holds = sum(c.get("holds") is True for c in claims)
        fails = sum(c.get("holds") is False for c in claims)
        na = len(claims) - holds - fails
        text += f"; claims: {holds} hold, {fails} do not, {na} not decidable"
    return text + f" -> {run_dir}"


def _run_one(
    name: str, args: argparse.Namespace, overrides: dict[str, object], reuse: bool = False
) -> int:
    """Run one experiment; return 0 (ok or skipped) or 1 (failed). Usage errors propagate."""
    from fisherlab.experiments.lock import RunLockedError
    from fisherlab.experiments.runner import run_experiment

    try:
        run_dir = run_experiment(
            name,
            args.out,
            quick=args.quick,
            seed=args.seed,
            overrides=overrides,
            fresh=args.fresh,
            show_progress=not args.no_progress,
            reuse=reuse,
        )
    except RunLockedError as exc:
        _error(str(exc))
        return 1
    except (UsageError, ValueError) as exc:
        from fisherlab.experiments.runner import ConfigMismatchError, OverrideError

        if isinstance(exc, (UsageError, ConfigMismatchError, OverrideError)):
            raise UsageError(str(exc)) from exc
        traceback.print_exc()
        _error(f"experiment {name!r} failed: {type(exc).__name__}: {exc}")
        return 1
    except Exception as exc:
        from fisherlab.datasets import ChecksumError, DownloadError

        if not isinstance(exc, (DownloadError, ChecksumError)):  # those explain themselves
            traceback.print_exc()
        _error(f"experiment {name!r} failed: {type(exc).__name__}: {exc}")
        return 1
    print(_summarize(run_dir))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from fisherlab.experiments import get

    try:
        get(args.name)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    from fisherlab.experiments.runner import OverrideError

    try:
        overrides = _overrides(args, args.name)
    except OverrideError as exc:
        raise UsageError(str(exc)) from exc
    return _run_one(args.name, args, overrides)


def _reproduce_one(name: str, args: argparse.Namespace) -> int:
    """One experiment of ``reproduce`` (also in a worker process); 0 ok or skipped, 1 failed."""
    if getattr(args, "threads", None) is not None:
        import torch

        torch.set_num_threads(args.threads)
    try:
        return _run_one(name, args, {}, reuse=not args.fresh)
    except UsageError as exc:  # e.g. a run directory with another config: keep going
        _error(str(exc))
        return 1


def _monitor_demo(out: Path, steps: int, threads: int | None) -> Path:
    """The monitor's demo run of ``reproduce`` (also in a worker process); its dashboard."""
    from fisherlab.monitor.demo import run_demo

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    return run_demo(out, steps=steps)["html"]


def longest_first(names: list[str], scale: str) -> list[str]:
    """Order full runs by their expected time, longest first (stable; quick runs unchanged).

    With several workers, no worker then starts a long run while the others finish.
    """
    from fisherlab.experiments import get

    if scale != "full":
        return list(names)
    return sorted(names, key=lambda name: get(name).full_seconds, reverse=True)


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from fisherlab.experiments import all_experiments, get
    from fisherlab.report import write_report

    if args.only:
        try:
            names = [get(n).name for n in dict.fromkeys(args.only)]
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    else:
        names = [e.name for e in all_experiments()]
    if args.jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {args.jobs}")
    scale = "quick" if args.quick else "full"
    print(f"reproducing {len(names)} experiment(s) at {scale} scale into {args.out}")
    steps = 60 if args.quick else 400
    demo = None if args.only else (Path(args.out) / "monitor-demo", steps, args.threads)
    if args.jobs == 1:
        codes = [_reproduce_one(name, args) for name in names]
        dashboard = None if demo is None else _monitor_demo(*demo)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        names = longest_first(names, scale)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
            runs = [pool.submit(_reproduce_one, name, args) for name in names]
            # the short demo goes last, into whichever worker frees up first
            pending = None if demo is None else pool.submit(_monitor_demo, *demo)
            codes = [run.result() for run in runs]
            dashboard = None if pending is None else pending.result()
    failed = [name for name, code in zip(names, codes, strict=True) if code]
    if dashboard is not None:
        print(f"monitor-demo: dashboard -> {dashboard}")
    report = write_report(args.out)
    print(f"report: {report.resolve()}")
    if failed:
        _error(f"{len(failed)} experiment(s) failed: {', '.join(failed)}")
        return 1
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from fisherlab.report import write_report

    if not args.out.is_dir():
        raise UsageError(f"results directory {args.out} does not exist; run experiments first")
    path = write_report(args.out)
    print(f"report: {path.resolve()}")
    return 0


def _cmd_monitor_demo(args: argparse.Namespace) -> int:
    from fisherlab.monitor.demo import run_demo

    steps = 60 if args.quick else args.steps
    if steps < 1:
        raise UsageError(f"--steps must be >= 1, got {steps}")
    paths = run_demo(args.out, steps=steps, seed=args.seed)
    for kind in ("log", "png", "html"):
        print(f"{kind}: {paths[kind]}")
    return 0


def _cmd_monitor_plot(args: argparse.Namespace) -> int:
    from fisherlab.monitor import plot_records, read_log, write_html

    try:
        records = read_log(args.log)
    except OSError as exc:
        raise UsageError(f"cannot read the log {args.log}: {exc.strerror}") from exc
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if not records:
        raise UsageError(f"the log {args.log} holds no records")
    title = f"fisherlab monitor: {args.log.name}"
    png = plot_records(records, args.out, title=title)
    print(f"png: {png}")
    if args.html is not None:
        print(f"html: {write_html(records, args.html, title=title, png=png)}")
    return 0


_COMMANDS = {
    "list": _cmd_list,
    "run": _cmd_run,
    "reproduce": _cmd_reproduce,
    "report": _cmd_report,
    "monitor-demo": _cmd_monitor_demo,
    "monitor-plot": _cmd_monitor_plot,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fisherlab`` command with arguments ``argv`` (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code: 0 success, 1 failure, 2 usage error.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(None if argv is None else list(argv))
    except SystemExit as exc:  # argparse: usage errors (2), --help/--version (0)
        return int(exc.code) if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if getattr(args, "threads", None) is not None:
        if args.threads < 1:
            _error(f"--threads must be >= 1, got {args.threads}")
            return 2
        import torch

        torch.set_num_threads(args.threads)
    try:
        return _COMMANDS[args.command](args)
    except UsageError as exc:
        _error(str(exc))
        return 2
    except KeyboardInterrupt:
        _error("interrupted; run the same command again to resume")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
