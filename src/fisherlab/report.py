"""Render every run in a results directory into one self-contained ``report.html``.

For each run directory ``DIR/NAME/`` (see :mod:`fisherlab.experiments.runner`) the report
shows the title, paper, description, scale, config, the figures with their captions
(embedded as base64 PNG data URIs; only PNG files inside the run directory are read), the
tables found in ``results["tables"]`` and the claims table: claim, criterion, premise,
measurement and verdict. At the top, a summary lists every claim that does not hold or is
not decidable, linked to its section; a "Findings" section collects the claims that do not
hold at full scale and the ``results["findings"]`` of full runs. Verdicts of quick runs are
greyed and labelled as smoke runs. Skipped or failed runs are listed with their reasons.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from fisherlab.experiments.base import atomic_write_text, read_json

__all__ = ["RunRecord", "collect_runs", "render_report", "write_report"]

TEMPLATE = "report.html.j2"


@dataclass
class RunRecord:
    """One run directory, as read from disk for the report."""

    name: str
    path: Path
    status: str
    title: str = ""
    paper: str = ""
    description: str = ""
    scale: str = ""
    seed: int | None = None
    wall_time_s: float | None = None
    finished: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    figures: list[dict[str, str]] = field(default_factory=list)
    tables: list[dict[str, Any]] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    reused: bool = False

    @property
    def smoke(self) -> bool:
        """Whether this is a quick (smoke) run, whose verdicts are not findings."""
        return self.scale != "full"

    @property
    def state(self) -> str:
        """``"ok"``, ``"skipped"``, ``"failed"`` or ``"incomplete"``."""
        head = self.status.split(":", 1)[0].strip()
        if head in ("ok", "skipped", "failed"):
            return head
        return "incomplete"

    @property
    def reason(self) -> str:
        """The text after ``"skipped:"`` / ``"failed:"`` in the status."""
        return self.status.split(":", 1)[1].strip() if ":" in self.status else self.status


def _png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _figures(run_dir: Path, names: list[Any], captions: dict[str, Any]) -> list[dict[str, str]]:
    """Embed the PNG figures named in ``run.json`` that lie inside ``run_dir``."""
    root = run_dir.resolve()
    out = []
    for fig in names:
        path = (run_dir / str(fig)).resolve()
        if path.suffix.lower() != ".png" or not path.is_file() or not path.is_relative_to(root):
            continue
        caption = captions.get(path.name) or captions.get(str(fig)) or path.stem
        out.append({"name": path.stem, "src": _png_data_uri(path), "caption": str(caption)})
    return out


def _findings(results: Any) -> list[str]:
    if not isinstance(results, dict) or not isinstance(results.get("findings"), list):
        return []
    return [str(f) for f in results["findings"]]


def _tables(results: Any) -> list[dict[str, Any]]:
    if not isinstance(results, dict) or not isinstance(results.get("tables"), dict):
        return []
    out = []
    for name, table in results["tables"].items():
        if not isinstance(table, dict):
            continue
        columns = [str(c) for c in table.get("columns", [])]
        rows = [list(r) if isinstance(r, (list, tuple)) else [r] for r in table.get("rows", [])]
        out.append({"name": str(name), "columns": columns, "rows": rows})
    return out


def _registry_order() -> list[str]:
    try:
        from fisherlab.experiments import all_experiments
    except Exception:  # the report does not depend on the experiments importing
        return []
    return [e.name for e in all_experiments()]


def collect_runs(out_dir: Path | str) -> list[RunRecord]:
    """Read every run directory under ``out_dir``.

    Runs are ordered as the experiments are registered, then unknown ones by name.

    Parameters
    ----------
    out_dir : Path or str
        The results root ``DIR``.

    Returns
    -------
    list of RunRecord
        One per subdirectory holding a ``run.json`` or ``config.json``.
    """
    root = Path(out_dir)
    if not root.is_dir():
        return []
    records = []
    for run_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        info = read_json(run_dir / "run.json")
        config = read_json(run_dir / "config.json")
        if info is None and config is None:
            continue
        info = info or {}
        config = config or {}
        rec = RunRecord(
            name=str(info.get("experiment", config.get("experiment", run_dir.name))),
            path=run_dir,
            status=str(info.get("status", "incomplete")),
            title=str(info.get("title", "")),
            paper=str(info.get("paper", "")),
            description=str(info.get("description", "")),
            scale=str(info.get("scale", config.get("scale", ""))),
            seed=info.get("seed", config.get("seed")),
            wall_time_s=info.get("wall_time_s"),
            finished=info.get("finished"),
            versions=dict(info.get("versions") or {}),
            config=dict(config.get("config") or {}),
        )
        if rec.state == "ok":
            names = info.get("figures") or sorted(p.name for p in run_dir.glob("*.png"))
            rec.figures = _figures(run_dir, list(names), dict(info.get("captions") or {}))
            results = read_json(run_dir / "results.json")
            rec.tables = _tables(results)
            rec.findings = _findings(results)
            rec.reused = bool(info.get("reused"))
            rec.claims = [
                c for c in (read_json(run_dir / "claims.json") or []) if isinstance(c, dict)
            ]
            for i, c in enumerate(rec.claims):
                c.setdefault("scale", rec.scale)
                c.setdefault("criterion", "not recorded")
                c.setdefault("premise", "not recorded")
                c.setdefault("premise_holds", None)
                c["anchor"] = f"{rec.name}-claim-{i + 1}"
        records.append(rec)
    order = {name: i for i, name in enumerate(_registry_order())}
    records.sort(key=lambda r: (order.get(r.name, len(order)), r.name))
    return records


def _fmt(value: Any) -> str:
    """Format a table cell: floats with 4 significant digits, lists compactly."""
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def _holds_symbol(holds: Any) -> str:
    return {True: "✔", False: "✘"}.get(holds, "not decidable")


def _holds_class(holds: Any) -> str:
    return {True: "holds", False: "fails"}.get(holds, "na")


def _monitor_link(root: Path | None) -> str | None:
    """Relative link to the monitor demo's dashboard under the results root, if present."""
    if root is None:
        return None
    page = root / "monitor-demo" / "dashboard.html"
    return "monitor-demo/dashboard.html" if page.is_file() else None


def render_report(runs: list[RunRecord], title: str = "fisherlab reproduction report") -> str:
    """Render the HTML of the report for ``runs``.

    Parameters
    ----------
    runs : list of RunRecord
        From :func:`collect_runs`.
    title : str
        Page title.

    Returns
    -------
    str
        A self-contained HTML document.
    """
    import jinja2

    from fisherlab import __version__

    text = resources.files("fisherlab").joinpath("templates", TEMPLATE).read_text("utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["fmt"] = _fmt
    env.filters["holds_symbol"] = _holds_symbol
    env.filters["holds_class"] = _holds_class
    template = env.from_string(text)

    finished = [r for r in runs if r.state == "ok"]
    all_claims = [c for r in finished for c in r.claims]
    open_claims = [
        {"run": r, "claim": c} for r in finished for c in r.claims if c.get("holds") is not True
    ]
    findings = [
        {
            "run": r,
            "text": f"{c.get('claim', '')} — measured: {c.get('measured', '')}",
            "anchor": c["anchor"],
        }
        for r in finished
        if not r.smoke
        for c in r.claims
        if c.get("holds") is False
    ] + [
        {"run": r, "text": f, "anchor": r.name} for r in finished if not r.smoke for f in r.findings
    ]
    smoke_findings = [
        {"run": r, "text": f, "anchor": r.name} for r in finished if r.smoke for f in r.findings
    ]
    summary = {
        "experiments": len(finished),
        "skipped": sum(r.state == "skipped" for r in runs),
        "failed": sum(r.state in ("failed", "incomplete") for r in runs),
        "claims": len(all_claims),
        "holds": sum(c.get("holds") is True for c in all_claims),
        "fails": sum(c.get("holds") is False for c in all_claims),
        "undecided": sum(c.get("holds") not in (True, False) for c in all_claims),
        "smoke": sum(c.get("scale") != "full" for c in all_claims),
    }
    return template.render(
        title=title,
        version=__version__,
        summary=summary,
        runs=finished,
        open_claims=open_claims,
        findings=findings,
        smoke_findings=smoke_findings,
        monitor=_monitor_link(runs[0].path.parent if runs else None),
        skipped=[r for r in runs if r.state == "skipped"],
        failed=[r for r in runs if r.state in ("failed", "incomplete")],
    )


def write_report(out_dir: Path | str) -> Path:
    """Render every run in ``out_dir`` into ``out_dir/report.html`` (atomically).

    Parameters
    ----------
    out_dir : Path or str
        The results root ``DIR``.

    Returns
    -------
    Path
        The path of ``report.html``.

    Raises
    ------
    FileNotFoundError
        If ``out_dir`` does not exist.
    """
    root = Path(out_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"results directory {root} does not exist; run experiments first")
    html = render_report(collect_runs(root))
    path = root / "report.html"
    atomic_write_text(path, html)
    return path
