"""Run an experiment into ``DIR/NAME/``: config, resumable cells, results, plots, claims.

A run directory holds

- ``config.json``: experiment name, scale (quick/full), seed and the config fields;
- ``cells/<name>/*.json``: completed cells (see :class:`~fisherlab.experiments.CellStore`);
- ``results.json``: what ``run`` returned, written atomically;
- ``*.png``: the figures written by ``plot``;
- ``claims.json``: the claims computed from the results;
- ``run.json``: status (``"running"``, ``"ok"``, ``"failed: ..."``, ``"interrupted"``,
  ``"skipped: ..."``), wall time, figure names and package versions.

Running again with the same config resumes (completed cells are not recomputed); a
different config is refused unless ``fresh=True``, which deletes the old run directory.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import platform
import shutil
import time
import types
import typing
import warnings
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fisherlab.experiments.base import (
    Claim,
    Experiment,
    RunContext,
    atomic_write_json,
    config_tag,
    read_json,
    to_jsonable,
)
from fisherlab.experiments.lock import RunDirectoryLock
from fisherlab.experiments.registry import get

__all__ = [
    "ConfigMismatchError",
    "OverrideError",
    "build_config",
    "config_fields",
    "parse_set_options",
    "read_run_status",
    "run_experiment",
]

SKIPPED = "skipped"


class OverrideError(ValueError):
    """A config override names an unknown field or has a value of the wrong type."""


class ConfigMismatchError(ValueError):
    """The run directory holds a run with a different config."""


# -- configs and overrides -------------------------------------------------------------------


def config_fields(experiment: Experiment | str) -> dict[str, Any]:
    """Return ``{field name: type}`` of an experiment's config dataclass."""
    exp = get(experiment) if isinstance(experiment, str) else experiment
    cls = exp.config_class
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"config_class of {exp.name!r} must be a dataclass, got {cls!r}")
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # unresolvable annotations: fall back to the raw ones
        hints = {}
    return {f.name: hints.get(f.name, f.type) for f in dataclasses.fields(cls)}


_TRUE = {"true", "1", "yes", "on", "y", "t"}
_FALSE = {"false", "0", "no", "off", "n", "f"}


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _split_sequence(text: str) -> list[str]:
    text = text.strip()
    if text.startswith(("[", "(")) and text.endswith(("]", ")")):
        try:
            value = json.loads("[" + text[1:-1] + "]")
            return [v if isinstance(v, str) else json.dumps(v) for v in value]
        except ValueError:
            text = text[1:-1]
    if not text:
        return []
    return [part.strip() for part in text.split(",")]


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert ``value`` (a string from the command line, or a Python value) to type ``tp``."""
    if tp is Any or isinstance(tp, (str, typing.ForwardRef)):
        return value  # unknown type: accept as given
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)

    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        # try the non-None members, str last (a string always "fits" a str member)
        members = sorted((a for a in args if a is not type(None)), key=lambda a: a is str)
        for member in members:
            try:
                return _coerce(value, member, where)
            except OverrideError as exc:
                errors.append(str(exc))
        raise OverrideError(f"{where}: {value!r} is not a valid {_type_name(tp)}")

    if origin is typing.Literal:
        for choice in args:
            if value == choice or (isinstance(value, str) and str(choice) == value):
                return choice
        raise OverrideError(f"{where}: {value!r} is not one of {list(args)}")

    if origin in (tuple, list, set, frozenset) or tp in (tuple, list):
        container = origin or tp
        items = _split_sequence(value) if isinstance(value, str) else value
        if not isinstance(items, (list, tuple, set, frozenset)):
            raise OverrideError(f"{where}: expected a sequence, got {value!r}")
        items = list(items)
        if container is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(items) != len(args):
                raise OverrideError(f"{where}: expected {len(args)} values, got {len(items)}")
            return tuple(_coerce(v, a, where) for v, a in zip(items, args, strict=True))
        elem = args[0] if args else Any
        converted = [_coerce(v, elem, where) for v in items]
        return container(converted)

    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, tp):
            return value
        try:
            return tp(value)
        except ValueError:
            pass
        if isinstance(value, str) and value.upper() in tp.__members__:
            return tp[value.upper()]
        raise OverrideError(f"{where}: {value!r} is not one of {[m.value for m in tp]}")

    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise OverrideError(f"{where}: expected a bool (true/false), got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise OverrideError(f"{where}: expected an int, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise OverrideError(f"{where}: expected a float, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise OverrideError(f"{where}: expected a str, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
        raise OverrideError(f"{where}: expected None, got {value!r}")
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = value
            try:
                return tp(parsed)
            except Exception as exc:
                raise OverrideError(f"{where}: cannot convert {value!r} to {tp.__name__}") from exc
        raise OverrideError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def parse_set_options(items: list[str] | None) -> dict[str, str]:
    """Parse ``["key=value", ...]`` (from ``--set``) into a dict of strings.

    Raises
    ------
    OverrideError
        If an item has no ``=`` or an empty key, or a key is repeated.
    """
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise OverrideError(f"--set expects key=value, got {item!r}")
        if key in out:
            raise OverrideError(f"--set {key}=... given twice")
        out[key] = value
    return out


def build_config(
    experiment: Experiment | str,
    quick: bool,
    seed: int,
    overrides: Mapping[str, Any] | None = None,
) -> Any:
    """Build an experiment's config: ``preset(quick, seed)``, then type-checked overrides.

    Parameters
    ----------
    experiment : Experiment or str
        The experiment or its name.
    quick : bool
        Quick (reduced) or full scale.
    seed : int
        Base seed passed to ``preset``.
    overrides : mapping, optional
        ``{field: value}``; string values are parsed according to the field type
        (``"0.1"`` for float, ``"a,b"`` for tuples, ``"true"`` for bool, ...).

    Returns
    -------
    dataclass instance
        The config.

    Raises
    ------
    OverrideError
        For an unknown field (the message lists the fields) or a value of the wrong type,
        or when the config rejects the values (its ``__post_init__`` raises ValueError).
    """
    exp = get(experiment) if isinstance(experiment, str) else experiment
    fields = config_fields(exp)
    config = exp.config_class.preset(quick=quick, seed=seed)
    if not overrides:
        return config
    unknown = [k for k in overrides if k not in fields]
    if unknown:
        raise OverrideError(
            f"unknown config field(s) {', '.join(map(repr, unknown))} for experiment "
            f"{exp.name!r}; fields: {', '.join(fields)}"
        )
    values = {k: _coerce(v, fields[k], f"config field {k!r}") for k, v in overrides.items()}
    try:
        return dataclasses.replace(config, **values)
    except (TypeError, ValueError) as exc:
        raise OverrideError(f"invalid config for experiment {exp.name!r}: {exc}") from exc


# -- run directory ---------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    import fisherlab

    out = {
        "fisherlab": getattr(fisherlab, "__version__", "unknown"),
        "python": platform.python_version(),
    }
    try:
        import torch

        out["torch"] = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        out["torch"] = "not installed"
    return out


def read_run_status(run_dir: Path) -> dict[str, Any] | None:
    """Return the contents of ``run_dir/run.json``, or ``None`` if absent or unreadable."""
    return read_json(Path(run_dir) / "run.json")


def _config_record(exp: Experiment, config: Any, quick: bool, seed: int) -> dict[str, Any]:
    return to_jsonable(
        {
            "experiment": exp.name,
            "scale": "quick" if quick else "full",
            "seed": seed,
            "config": config,
        }
    )


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """List the differences between two JSON records as ``"key: old -> new"``."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in list(old) + [k for k in new if k not in old]:
            name = f"{prefix}{k}"
            if k not in old:
                out.append(f"{name}: absent in the existing run, requested {new[k]!r}")
            elif k not in new:
                out.append(f"{name}: existing {old[k]!r}, absent in the request")
            else:
                out.extend(_diff(old[k], new[k], prefix="" if k == "config" else f"{name}."))
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: existing {old!r}, requested {new!r}"]


def _check_downloads(exp: Experiment) -> str | None:
    """Make the experiment's downloaded data sets available; return a skip reason or None."""
    if not exp.needs_download:
        return None
    from fisherlab import datasets

    for name in exp.needs_download:
        if name not in datasets.SOURCES:
            continue  # not a downloaded file: the experiment loads it itself
        try:
            datasets.fetch(name)
        except (ConnectionError, RuntimeError) as exc:
            return f"data set {name!r} is not available offline ({exc})"
    return None


def _is_download_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the datasets module's error for a missing download."""
    if isinstance(exc, ConnectionError):
        return True
    try:
        from fisherlab.datasets import ChecksumError, DownloadError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, (DownloadError, ChecksumError))


def _plot(exp: Experiment, results: dict, run_dir: Path) -> list[Path]:
    """Call the experiment's ``plot`` in the fisherlab matplotlib style."""
    from fisherlab.plotting import style

    with style():
        return [Path(p) for p in exp.plot(results, run_dir) or []]


def _relative_to(path: Path, root: Path) -> str:
    """Return ``path`` relative to ``root`` if it is inside, else the absolute path."""
    path, root = Path(path).resolve(), Path(root).resolve()
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def run_experiment(
    name: str,
    out_dir: Path | str,
    quick: bool,
    seed: int = 0,
    overrides: Mapping[str, Any] | None = None,
    *,
    fresh: bool = False,
    show_progress: bool = True,
    reuse: bool = False,
) -> Path:
    """Run experiment ``name`` into ``out_dir/name/`` and return that directory.

    Parameters
    ----------
    name : str
        Registered experiment name.
    out_dir : Path or str
        Results root ``DIR``; the run goes to ``DIR/NAME/``.
    quick : bool
        Quick (reduced) or full scale.
    seed : int
        Base seed.
    overrides : mapping, optional
        Config overrides, see :func:`build_config`.
    fresh : bool
        Delete an existing run directory first (required when its config differs).
    show_progress : bool
        Show progress bars (only on a TTY).
    reuse : bool
        If the run directory holds a finished run of the same config, keep its results,
        re-evaluate its claims and return (``run.json`` then has ``"reused": true``).
        Otherwise completed cells are reused and the rest is computed.

    Returns
    -------
    Path
        The run directory. Its ``run.json`` holds the status; an experiment whose
        downloaded data are not available is recorded as ``"skipped: <reason>"`` and does
        not raise.

    Raises
    ------
    ValueError
        Unknown experiment name (lists the names).
    OverrideError
        Invalid overrides.
    ConfigMismatchError
        The run directory holds a run with a different config and ``fresh`` is false.
    RunLockedError
        Another live process is writing into the run directory.
    Exception
        Whatever the experiment raised (recorded as ``"failed: ..."`` in ``run.json``).
    """
    exp = get(name)
    config = build_config(exp, quick, seed, overrides)
    record = _config_record(exp, config, quick, seed)
    run_dir = Path(out_dir) / exp.name
    with RunDirectoryLock(run_dir):
        if run_dir.exists() and fresh:
            shutil.rmtree(run_dir)
        else:
            _check_config(exp, run_dir, record)
            if reuse and _reuse_finished(exp, run_dir, quick):
                return run_dir
        return _run_locked(exp, config, record, run_dir, quick, seed, show_progress)


def _read_config(config_path: Path) -> Any:
    """The config record in ``config_path``; ``None`` (with a warning) if it is unreadable."""
    if not config_path.is_file():
        return None
    try:
        with open(config_path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        warnings.warn(
            f"{config_path} is unreadable ({exc}); it is rewritten, and cells of other "
            "configs are recomputed",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


def _write_claims(exp: Experiment, results: dict, run_dir: Path, quick: bool) -> None:
    """Evaluate the experiment's claims on ``results`` and write ``claims.json``."""
    claims = exp.claims(results)
    bad = [c for c in claims if not isinstance(c, Claim)]
    if bad:
        raise TypeError(f"claims() of {exp.name!r} must return Claim objects, got {bad[0]!r}")
    scale = "quick" if quick else "full"
    atomic_write_json(run_dir / "claims.json", [c.at_scale(scale).to_dict() for c in claims])


def _check_config(exp: Experiment, run_dir: Path, record: dict) -> None:
    """Raise :class:`ConfigMismatchError` if ``run_dir`` holds a run of another config."""
    old = _read_config(run_dir / "config.json")
    if old is not None and old != record:
        changes = "; ".join(_diff(old, record)) or "(unreadable difference)"
        raise ConfigMismatchError(
            f"{run_dir} holds a run of {exp.name!r} with a different config ({changes}). "
            "Use --fresh to delete it and start over, or choose another --out directory."
        )


def _reuse_finished(exp: Experiment, run_dir: Path, quick: bool) -> bool:
    """Reuse a finished run (of the checked config): re-evaluate its claims, keep its results."""
    info = read_run_status(run_dir)
    if not info or info.get("status") != "ok":
        return False
    try:
        with open(run_dir / "results.json", encoding="utf-8") as f:
            results = json.load(f)
        _write_claims(exp, results, run_dir, quick)
    except Exception as exc:  # results of an older version: run again
        warnings.warn(
            f"the finished run in {run_dir} cannot be reused ({type(exc).__name__}: {exc}); "
            "it runs again",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    info["reused"] = True
    info["captions"] = dict(exp.captions)
    atomic_write_json(run_dir / "run.json", info)
    return True


def _run_locked(
    exp: Experiment,
    config: Any,
    record: dict,
    run_dir: Path,
    quick: bool,
    seed: int,
    show_progress: bool,
) -> Path:
    """Run ``exp`` into ``run_dir`` (whose lock the caller holds)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "config.json", record)

    info: dict[str, Any] = {
        "experiment": exp.name,
        "title": exp.title,
        "paper": exp.paper,
        "description": exp.description,
        "scale": record["scale"],
        "seed": seed,
        "status": "running",
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "finished": None,
        "wall_time_s": None,
        "figures": [],
        "captions": dict(exp.captions),
        "reused": False,
        "versions": _versions(),
    }
    atomic_write_json(run_dir / "run.json", info)
    start = time.perf_counter()

    def finish(status: str) -> None:
        info["status"] = status
        info["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        info["wall_time_s"] = round(time.perf_counter() - start, 3)
        atomic_write_json(run_dir / "run.json", info)

    skip = _check_downloads(exp)
    if skip is not None:
        finish(f"{SKIPPED}: {skip}")
        return run_dir

    ctx = RunContext(
        run_dir,
        seed=seed,
        quick=quick,
        show_progress=show_progress,
        config_tag=config_tag(record),
    )
    try:
        results = exp.run(config, ctx)
        if not isinstance(results, dict):
            raise TypeError(
                f"run() of {exp.name!r} must return a dict, got {type(results).__name__}"
            )
        atomic_write_json(run_dir / "results.json", results)
        # plot and claims see exactly what is on disk
        with open(run_dir / "results.json", encoding="utf-8") as f:
            results = json.load(f)
        figures = _plot(exp, results, run_dir)
        info["figures"] = [_relative_to(p, run_dir) for p in figures]
        _write_claims(exp, results, run_dir, quick)
    except KeyboardInterrupt:
        finish("interrupted")
        raise
    except Exception as exc:
        if exp.needs_download and _is_download_error(exc):
            finish(f"{SKIPPED}: data not available offline ({exc})")
            return run_dir
        finish(f"failed: {type(exc).__name__}: {exc}")
        raise
    finish("ok")
    return run_dir
