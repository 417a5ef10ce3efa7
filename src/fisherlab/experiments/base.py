"""Building blocks of an experiment: its declaration, the run context and cell store.

An experiment is data: a config dataclass, a ``run`` function that returns JSON-able
results, a ``plot`` function that turns results into PNG files and a ``claims`` function
that compares the numbers in the results against what the paper says. The runner
(:mod:`fisherlab.experiments.runner`) wires them together; the CLI and the HTML report
are thin layers on top.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fisherlab.progress import progress

__all__ = [
    "NOT_DECIDABLE",
    "SCALES",
    "CellStore",
    "Claim",
    "Experiment",
    "RunContext",
    "atomic_write_json",
    "config_tag",
    "read_json",
    "atomic_write_text",
    "to_jsonable",
]


SCALES = ("quick", "full")

NOT_DECIDABLE = "not decidable: the premise does not hold"


@dataclass(frozen=True)
class Claim:
    """One statement of a paper, checked against our own numbers by a rule fixed in advance.

    A claim is a test that could have failed: ``criterion`` is the decision rule, written
    before the run (thresholds come from the paper's statement or from statistics: seeds,
    standard errors, confidence intervals; never from where the number fell), and
    ``premise`` is what the setup must show for the test to mean anything (the effect
    exists, the mechanism is active, the selected value is not on the edge of its grid).
    When the premise fails the verdict is not decidable: ``holds`` is forced to ``None``
    and ``measured`` says so, whatever the claim function passed.

    Attributes
    ----------
    claim : str
        What the paper says, in one sentence.
    measured : str
        What we measured, with the numbers.
    holds : bool or None
        Whether the measurement meets the criterion; ``None`` when it is not decidable.
    source : str
        Where the claim is made, e.g. ``"Kunstner et al. 2019, Fig. 3"``.
    criterion : str
        The decision rule in one sentence, e.g. "mean final loss of A below B by more than
        2 standard errors over 5 seeds".
    premise : str
        What the setup must show for the criterion to be meaningful.
    premise_holds : bool
        Whether the setup showed it.
    scale : str
        ``"quick"`` (a smoke run) or ``"full"``; stamped by the runner, empty until then.
    """

    claim: str
    measured: str
    holds: bool | None
    source: str
    criterion: str
    premise: str
    premise_holds: bool
    scale: str = ""

    def __post_init__(self) -> None:
        for name in ("claim", "criterion", "premise"):
            if not str(getattr(self, name)).strip():
                raise ValueError(f"Claim.{name} must be a non-empty sentence")
        holds = None if self.holds is None else bool(self.holds)
        premise_holds = bool(self.premise_holds)
        measured = str(self.measured)
        if not premise_holds and holds is not None:
            holds = None
        if not premise_holds and NOT_DECIDABLE not in measured:
            measured = f"{measured} — {NOT_DECIDABLE} ({self.premise})"
        if self.scale not in ("", *SCALES):
            raise ValueError(f"Claim.scale must be one of {SCALES}, got {self.scale!r}")
        object.__setattr__(self, "holds", holds)
        object.__setattr__(self, "premise_holds", premise_holds)
        object.__setattr__(self, "measured", measured)

    def at_scale(self, scale: str) -> Claim:
        """Return a copy stamped with ``scale`` (``"quick"`` or ``"full"``)."""
        return dataclasses.replace(self, scale=scale)

    def to_dict(self) -> dict[str, Any]:
        """Return the claim as a JSON-able dict."""
        return {
            "claim": self.claim,
            "measured": self.measured,
            "holds": self.holds,
            "source": self.source,
            "criterion": self.criterion,
            "premise": self.premise,
            "premise_holds": self.premise_holds,
            "scale": self.scale,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Claim:
        """Build a claim from the dict written by :meth:`to_dict`."""
        return cls(
            claim=str(d["claim"]),
            measured=str(d["measured"]),
            holds=d.get("holds"),
            source=str(d.get("source", "")),
            criterion=str(d.get("criterion") or "not recorded"),
            premise=str(d.get("premise") or "not recorded"),
            premise_holds=bool(d.get("premise_holds", True)),
            scale=str(d.get("scale", "")),
        )


@dataclass(frozen=True)
class Experiment:
    """Declaration of a reproducible experiment.

    Attributes
    ----------
    name : str
        Identifier used on the command line, e.g. ``"kunstner-fig1"``.
    title : str
        Human-readable title.
    paper : str
        The figure or table reproduced, e.g. ``"Kunstner et al. 2019, Fig. 1"``.
    description : str
        What is run and at which scale (say where it is reduced w.r.t. the paper).
    config_class : type
        A dataclass holding the configuration. It must define a classmethod
        ``preset(quick: bool, seed: int)`` returning an instance.
    run : callable
        ``run(config, ctx: RunContext) -> dict``; returns JSON-able results. Results may
        contain ``"tables": {name: {"columns": [...], "rows": [[...], ...]}}``, which the
        report renders.
    plot : callable
        ``plot(results: dict, out_dir: Path) -> list[Path]``; writes PNG files into
        ``out_dir`` and returns their paths. Import matplotlib inside the function.
    claims : callable
        ``claims(results: dict) -> list[Claim]``; computes the numbers behind the claims
        from the results only (no recomputation).
    needs_download : tuple of str
        Names of data sets that must be downloaded (not available offline by default).
    captions : dict of str to str
        Caption of each figure, keyed by PNG file name: the paper figure it reproduces and
        what is plotted. The report prints it under the figure.
    full_seconds : float
        Roughly how long a full run takes, in wall seconds with one thread (0 if short). ``fisherlab
        reproduce --jobs N`` starts the longest runs first so that the workers finish together.
    """

    name: str
    title: str
    paper: str
    description: str
    config_class: type
    run: Callable[[Any, RunContext], dict]
    plot: Callable[[dict, Path], list[Path]]
    claims: Callable[[dict], list[Claim]]
    needs_download: tuple[str, ...] = ()
    captions: Mapping[str, str] = dataclasses.field(default_factory=dict)
    full_seconds: float = 0.0


def to_jsonable(obj: Any) -> Any:
    """Convert ``obj`` to plain JSON types.

    Handles dataclasses, tuples, sets, paths, enums, numpy scalars/arrays and torch
    tensors; non-finite floats are kept (``json`` writes them as ``NaN``/``Infinity``).

    Parameters
    ----------
    obj : Any
        Object to convert.

    Returns
    -------
    Any
        A structure made of dict, list, str, int, float, bool and None.
    """
    import dataclasses
    import enum

    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted(to_jsonable(v) for v in obj)
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if hasattr(obj, "tolist"):  # numpy arrays/scalars, torch tensors
        if hasattr(obj, "detach"):
            obj = obj.detach().cpu()
        return to_jsonable(obj.tolist())
    if hasattr(obj, "item"):
        return to_jsonable(obj.item())
    raise TypeError(f"object of type {type(obj).__name__} is not JSON-serializable")


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file in the same dir + replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def read_json(path: Path) -> Any:
    """Return the JSON in ``path``, or ``None`` if the file is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` (converted by :func:`to_jsonable`) as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=False) + "\n")


_SAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def _key_to_filename(key: str) -> str:
    """Map a cell key to a file name that is safe on every file system and unique."""
    safe = _SAFE.sub("_", key).strip("._") or "cell"
    if safe != key or len(safe) > 120:
        digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:10]
        safe = f"{safe[:100]}-{digest}"
    return safe + ".json"


class CellStore:
    """Resumable store of per-cell results: one JSON file per completed cell.

    A "cell" is one independent unit of an experiment (one seed, one learning rate, one
    data set, ...). Cells are written atomically under ``root`` as they complete, so a
    run that is interrupted resumes from the completed cells. Each cell records the
    ``tag`` of the config it was computed under; a cell with another tag, or a file that
    cannot be read (truncated, not JSON), counts as absent and is recomputed, with a
    warning that names the file.

    Parameters
    ----------
    root : Path
        Directory holding the cell files (``out_dir/cells/<name>/``); created on demand.
    tag : str, optional
        Fingerprint of the config the cells belong to (see :func:`config_tag`).
    """

    def __init__(self, root: Path, tag: str = "") -> None:
        self.root = Path(root)
        self.tag = str(tag)

    def _path(self, key: str) -> Path:
        return self.root / _key_to_filename(str(key))

    def _read(self, path: Path) -> dict | None:
        """The record in ``path`` if it is readable and of this store's config, else ``None``."""
        try:
            with open(path, encoding="utf-8") as f:
                record = json.load(f)
            if not isinstance(record, dict) or "key" not in record or "value" not in record:
                raise ValueError("not a cell record")
        except (OSError, ValueError) as exc:
            warnings.warn(
                f"cell file {path} is unreadable ({exc}); the cell is recomputed",
                RuntimeWarning,
                stacklevel=3,
            )
            return None
        if record.get("config", "") != self.tag:
            return None
        return record

    def get(self, key: str) -> dict | None:
        """Return the stored value of ``key``, or ``None`` if the cell is not complete."""
        path = self._path(key)
        if not path.is_file():
            return None
        record = self._read(path)
        return None if record is None else record["value"]

    def put(self, key: str, value: dict) -> None:
        """Store ``value`` (JSON-able) as the result of cell ``key``, atomically."""
        atomic_write_json(self._path(key), {"key": str(key), "config": self.tag, "value": value})

    def __contains__(self, key: object) -> bool:
        return self.get(str(key)) is not None

    def keys(self) -> list[str]:
        """Return the keys of all completed cells of this config, sorted."""
        if not self.root.is_dir():
            return []
        records = (self._read(p) for p in self.root.glob("*.json"))
        return sorted(str(r["key"]) for r in records if r is not None)

    def __len__(self) -> int:
        return len(self.keys())

    def __repr__(self) -> str:
        return f"CellStore({str(self.root)!r})"


def config_tag(record: Any) -> str:
    """Fingerprint of a config record: the first 16 hex digits of its JSON's SHA-256."""
    text = json.dumps(to_jsonable(record), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class RunContext:
    """Everything a running experiment may use besides its config.

    Parameters
    ----------
    out_dir : Path
        The run directory ``DIR/NAME/``.
    seed : int
        Base random seed.
    quick : bool
        Whether the reduced (quick) scale runs.
    show_progress : bool, optional
        Show progress bars; they are shown only if additionally stderr is a TTY.
    config_tag : str, optional
        Fingerprint of the run's config; the cell stores keep cells of this config only.
    """

    def __init__(
        self,
        out_dir: Path,
        seed: int,
        quick: bool,
        show_progress: bool = True,
        config_tag: str = "",
    ) -> None:
        self.out_dir = Path(out_dir)
        self.config_tag = str(config_tag)
        self.seed = int(seed)
        self.quick = bool(quick)
        self.show_progress = bool(show_progress)

    def progress(
        self, iterable: Iterable[Any], total: int | None = None, desc: str | None = None
    ) -> Iterator[Any]:
        """Wrap ``iterable`` in a tqdm progress bar (disabled when not a TTY or turned off)."""
        return progress(iterable, total=total, desc=desc, enabled=self.show_progress)

    def cells(self, name: str) -> CellStore:
        """Return the resumable cell store ``out_dir/cells/<name>/``."""
        safe = _SAFE.sub("_", name).strip("._") or "cells"
        return CellStore(self.out_dir / "cells" / safe, tag=self.config_tag)

    def log(self, message: str) -> None:
        """Print a status message to stderr."""
        print(message, file=sys.stderr)

    def __repr__(self) -> str:
        return f"RunContext(out_dir={str(self.out_dir)!r}, seed={self.seed}, quick={self.quick})"
