"""A compact table of a benchmark run: ``python -m benchmarks.summary [DIR]``.

Reads ``DIR/ratios.json`` (default ``benchmarks/results``) and prints, per quantity and
model, fisherlab's ratio to a plain forward+backward, the best peer's, and fisherlab's time
over the best peer's (below 1: ahead). This is the table in the README's performance section.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.run import DEFAULT_OUT, ROWS, best_peer

PEER_NAMES = {"backpack": "BackPACK", "curvlinops": "curvlinops", "torch.func": "torch.func"}


def cell(rows: dict, row: str) -> str:
    """``ours (best peer's, name) → factor`` for one quantity of one model."""
    ours = rows[row]["fisherlab"]["ratio"]
    best = best_peer(rows, row)
    if ours is None:
        return "n/a"
    if best is None:
        return f"{ours:.2f}× (no peer)"
    return f"{ours:.2f}× vs {best[1]:.2f}× {PEER_NAMES[best[0]]}: **{ours / best[1]:.2f}**"


def summary_markdown(data: dict) -> str:
    """The compact table of a ``ratios.json`` document."""
    meta, models = data["meta"], data["models"]
    lines = [
        f"Measured {meta['date']} on {meta['machine']}, device {meta['device']}, "
        f"{meta['threads']} thread(s), N = {meta['n']}, median of {meta['reps']} interleaved "
        "repetitions. Each cell: fisherlab's time over a plain forward+backward, the best "
        "peer's, and in bold fisherlab's time over the best peer's (below 1: ahead).",
        "",
        "| quantity | " + " | ".join(models) + " |",
        "|---|" + "---|" * len(models),
    ]
    for row, label in ROWS.items():
        lines.append(
            f"| {label} | " + " | ".join(cell(r["rows"], row) for r in models.values()) + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the compact table of the run in ``argv[0]`` (default: the committed results)."""
    argv = sys.argv[1:] if argv is None else argv
    folder = Path(argv[0]) if argv else DEFAULT_OUT
    print(summary_markdown(json.loads((folder / "ratios.json").read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
