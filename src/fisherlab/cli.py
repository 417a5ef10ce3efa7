"""Command-line interface: ``fisherlab list | run | reproduce | report``.

Examples
--------
.. code-block:: console

    $ fisherlab list
    $ fisherlab run demo --quick --set steps=100 --set lr=0.3
    $ fisherlab reproduce --quick --out results/
    $ fisherlab report --out results/

Exit codes: 0 success, 1 an experiment failed, 2 usage error (unknown experiment, invalid
``--set``, a run directory holding a different config, ...).
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

__all__ = ["DEFAULT_OUT", "build_parser", "main"]

DEFAULT_OUT = Path("fisherlab-results")


class UsageError(Exception):
    """An error in how the command was called (exit code 2)."""


def _error(message: str) -> None:
    print(f"fisherlab: error: {message}", file=sys.stderr)


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
        "noise; results go to DIR/NAME/ and an HTML report to DIR/report.html.",
    )
    from fisherlab import __version__

    parser.add_argument("--version", action="version", version=f"fisherlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("list", help="list the experiments")
    _add_out(p)

    p = sub.add_parser("run", help="run one experiment")
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
        "--dataset", metavar="NAME", help="run on this data set only (sets datasets=(NAME,))"
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
    _add_threads(p)

    p = sub.add_parser("report", help="write DIR/report.html from the runs in DIR")
    _add_out(p)
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
    rows = [("NAME", "PAPER", "TITLE", f"RUN IN {args.out}")]
    for e in exps:
        title = e.title + (
            f" [downloads: {', '.join(e.needs_download)}]" if e.needs_download else ""
        )
        rows.append((e.name, e.paper, title, _run_state(args.out / e.name)))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3])
    print(
        f"\n{len(exps)} experiment(s). Each runs at two scales: --quick (reduced, minutes on "
        "a CPU) or --full (the scale of the paper)."
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
        overrides["datasets"] = (args.dataset,)
    return overrides


def _summarize(run_dir: Path) -> str:
    from fisherlab.experiments.runner import read_run_status

    info = read_run_status(run_dir) or {}
    status = str(info.get("status", "?"))
    wall = info.get("wall_time_s")
    text = f"{run_dir.name}: {status}" + (f" ({wall:.1f} s)" if wall is not None else "")
    try:
        with open(run_dir / "claims.json", encoding="utf-8") as f:
            claims = json.load(f)
    except (OSError, ValueError):
        claims = None
    if status == "ok" and claims is not None:
        holds = sum(c.get("holds") is True for c in claims)
        fails = sum(c.get("holds") is False for c in claims)
        na = len(claims) - holds - fails
        text += f"; claims: {holds} hold, {fails} do not, {na} n/a"
    return text + f" -> {run_dir}"


def _run_one(name: str, args: argparse.Namespace, overrides: dict[str, object]) -> int:
    """Run one experiment; return 0 (ok or skipped) or 1 (failed). Usage errors propagate."""
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
        )
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
    scale = "quick" if args.quick else "full"
    print(f"reproducing {len(names)} experiment(s) at {scale} scale into {args.out}")
    failed = []
    for name in names:
        try:
            code = _run_one(name, args, {})
        except UsageError as exc:  # e.g. a run directory with another config: keep going
            _error(str(exc))
            code = 1
        if code:
            failed.append(name)
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


_COMMANDS = {
    "list": _cmd_list,
    "run": _cmd_run,
    "reproduce": _cmd_reproduce,
    "report": _cmd_report,
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
