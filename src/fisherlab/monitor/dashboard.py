"""The monitor's dashboard: the instruments in a grid (PNG) and a self-contained HTML page.

Both take the records of a :class:`fisherlab.monitor.Monitor` (or of its JSON-lines log,
:func:`fisherlab.monitor.read_log`). A record key gets the panel its instrument declares
(title, axis label, log scale, reference line); keys of unknown instruments get a plain
linear panel. Log scales are used where the instrument asks for one, every drawn value is
positive and the values span at least a factor :data:`LOG_SPAN`.
"""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fisherlab.monitor.instruments import Panel, panels_by_key

__all__ = ["panels_for", "plot_records", "write_html"]

NCOLS = 3
#: a panel that may be logarithmic is, when its values span at least this factor
LOG_SPAN = 10.0


def panels_for(
    records: Sequence[dict[str, Any]], panels: Sequence[Panel] | None = None
) -> list[Panel]:
    """The panels to draw: ``panels`` (or the known ones) for the keys the records hold."""
    keys = list(dict.fromkeys(k for r in records for k in r if k != "step"))
    known = {p.key: p for p in panels} if panels is not None else {}
    registry = panels_by_key()
    result = []
    for key in keys:
        panel = known.get(key) or registry.get(key)
        if panel is None:
            value = next(r[key] for r in records if key in r)
            kind = "lines" if isinstance(value, dict) else "line"
            panel = Panel(key, key.replace("_", " "), key, kind=kind)
        result.append(panel)
    if panels is not None:  # keep the monitor's order
        order = {p.key: i for i, p in enumerate(panels)}
        result.sort(key=lambda p: order.get(p.key, len(order)))
    return result


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _draw_line(ax: Any, panel: Panel, records: Sequence[dict[str, Any]]) -> None:
    series: dict[str, tuple[list[int], list[float]]] = {}
    for r in records:
        value = r.get(panel.key)
        if value is None:
            continue
        items = value.items() if panel.kind == "lines" else [(panel.key, value)]
        for name, v in items:
            if _finite(v):
                steps, values = series.setdefault(name, ([], []))
                steps.append(r["step"])
                values.append(float(v))
    drawn = [v for _, values in series.values() for v in values]
    for name, (steps, values) in series.items():
        marker = "o" if len(steps) <= 30 else None
        label = name if panel.kind == "lines" else None
        ax.plot(steps, values, marker=marker, label=label)
    if panel.reference is not None:
        ax.axhline(panel.reference, color="0.4", linestyle="--", linewidth=1.0)
        drawn.append(panel.reference)
    if panel.log and drawn and min(drawn) > 0 and max(drawn) >= LOG_SPAN * min(drawn):
        ax.set_yscale("log")
    if panel.kind == "lines" and series:
        ax.legend(loc="best", ncols=1 + (len(series) > 4))
    if not drawn:
        ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes)


def _draw_histogram(ax: Any, fig: Any, panel: Panel, records: Sequence[dict[str, Any]]) -> None:
    import numpy as np

    rows = [(r["step"], r[panel.key]) for r in records if panel.key in r]
    steps = [s for s, _ in rows]
    counts = np.array([h["counts"] for _, h in rows], dtype=float).T  # (bins, steps)
    low, high = rows[0][1]["low"], rows[0][1]["high"]
    last = steps[-1] + (steps[-1] - steps[-2] if len(steps) > 1 else 1)
    edges = np.array([*steps, last], dtype=float)
    image = ax.pcolormesh(
        edges, np.linspace(low, high, counts.shape[0] + 1), np.log10(1.0 + counts), cmap="viridis"
    )
    fig.colorbar(image, ax=ax, label=r"$\log_{10}(1 + \mathrm{count})$")
    zeros = [h.get("zeros", 0) for _, h in rows]
    if any(zeros):
        ax.set_title(f"{panel.title} (+{zeros[-1]} exact zeros)")
    ax.grid(False)


def plot_records(
    records: Sequence[dict[str, Any]],
    path: str | os.PathLike[str],
    panels: Sequence[Panel] | None = None,
    title: str = "fisherlab monitor",
) -> Path:
    """Draw the records as a grid of panels, one per recorded quantity, and save a PNG.

    Parameters
    ----------
    records : sequence of dict
        Monitor records (each with ``"step"``).
    path : str or path-like
        The PNG file.
    panels : sequence of Panel, optional
        Panel specifications (default: the registered instruments').
    title : str
        Figure title.

    Returns
    -------
    Path
        ``path``.
    """
    from fisherlab.plotting import new_figure, save_figure

    if not records:
        raise ValueError("no records to plot: monitor at least one step first")
    chosen = panels_for(records, panels)
    if not chosen:
        raise ValueError("the records hold no values besides 'step'")
    ncols = min(NCOLS, len(chosen))
    nrows = math.ceil(len(chosen) / ncols)
    fig, axes = new_figure(nrows, ncols, panel_size=(4.2, 3.0), squeeze=False)
    for ax, panel in zip(axes.flat, chosen, strict=False):
        ax.set_title(panel.title)
        ax.set_xlabel("step")
        ax.set_ylabel(panel.ylabel)
        if panel.kind == "histogram":
            _draw_histogram(ax, fig, panel, records)
        else:
            _draw_line(ax, panel, records)
    for ax in list(axes.flat)[len(chosen) :]:
        ax.set_visible(False)
    steps = [r["step"] for r in records]
    fig.suptitle(f"{title}: steps {min(steps)}-{max(steps)}")
    return save_figure(fig, path)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict) and "counts" in value:
        return f"histogram of {sum(value['counts'])} nonzero values, {value['zeros']} zeros"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_format(v)}" for k, v in value.items())
    return str(value)


def write_html(
    records: Sequence[dict[str, Any]],
    path: str | os.PathLike[str],
    panels: Sequence[Panel] | None = None,
    title: str = "fisherlab monitor",
    png: str | os.PathLike[str] | None = None,
) -> Path:
    """Write a self-contained HTML page: the dashboard (embedded PNG) and the last values.

    Parameters
    ----------
    records : sequence of dict
        Monitor records.
    path : str or path-like
        The HTML file.
    panels : sequence of Panel, optional
        Panel specifications (default: the registered instruments').
    title : str
        Page and figure title.
    png : str, path-like or None
        Embed this dashboard image (from :func:`plot_records` on the same records) instead
        of drawing it again.

    Returns
    -------
    Path
        ``path``.
    """
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if png is None:
        with tempfile.TemporaryDirectory() as tmp:
            drawn = plot_records(records, Path(tmp) / "dashboard.png", panels, title)
            image = base64.b64encode(drawn.read_bytes()).decode("ascii")
    else:
        image = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    rows = []
    for panel in panels_for(records, panels):
        last = next(r for r in reversed(records) if panel.key in r)
        rows.append(
            f"<tr><td>{html.escape(panel.title)}</td><td><code>{html.escape(panel.key)}</code>"
            f"</td><td>{last['step']}</td><td>{html.escape(_format(last[panel.key]))}</td></tr>"
        )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1300px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}
img{{max-width:100%}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{len(records)} record(s), steps {records[0]["step"]} to {records[-1]["step"]}.</p>
<img alt="monitor dashboard" src="data:image/png;base64,{image}">
<h2>Last values</h2>
<table><tr><th>quantity</th><th>key</th><th>step</th><th>value</th></tr>
{chr(10).join(rows)}
</table></body></html>
"""
    path.write_text(page, encoding="utf-8")
    return path
