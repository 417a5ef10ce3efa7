r"""Matrix-free products under ``torch.compile``: ``python -m benchmarks.compiled_products``.

For each model and product row of :mod:`benchmarks.run`, fisherlab's operator product
``op @ v`` is timed eager and compiled (``torch.compile`` of the call ``lambda: op @ v``,
default mode: the operator's Python checks run eagerly between the compiled graphs), next
to curvlinops' eager product, as ratios to a plain forward+backward of the same batch
(interleaved rounds after warm-up, median, as in :mod:`benchmarks.run`). The first compiled
call, which compiles, is timed on its own, and the compiled product's relative difference
from the eager one is recorded.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.measure import relative_difference, time_interleaved

__all__ = ["bench_compiled", "markdown", "main"]

IMPLS = ("eager", "compiled", "curvlinops")


def bench_compiled(
    names: list[str],
    n: int,
    reps: int,
    log: Callable[[str], None],
    device: torch.device | str = "cpu",
) -> dict:
    """Milliseconds, ratios to a plain step and compile seconds per model and product row."""
    from benchmarks import run  # the methods and timing of the main benchmark

    device = torch.device(device)
    sync = run.synchronizer(device)
    out: dict = {}
    for name in names:
        model, X, y = run.on_device(name, n, device)
        calls: dict[str, Callable[[], object]] = {"plain": run.plain(model, X, y)}
        compile_seconds: dict[str, float] = {}
        differences: dict[str, float] = {}
        torch.compiler.reset()  # each model's products compile afresh (a bounded cache)
        for row in run.PRODUCTS:
            eager = run.fisherlab_method(model, X, y, row)
            compiled = torch.compile(eager)
            sync()
            start = time.perf_counter()
            first = compiled()
            sync()
            compile_seconds[row] = time.perf_counter() - start
            differences[row] = relative_difference(first, eager())
            calls[f"{row}/eager"] = eager
            calls[f"{row}/compiled"] = compiled
            try:
                calls[f"{row}/curvlinops"] = run.curvlinops_method(model, X, y, row)
            except ImportError:
                pass
        log(f"  {name}: timing {len(calls)} products (eager, compiled, curvlinops) x {reps} reps")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            medians = time_interleaved(calls, reps, sync=sync)
        base = medians["plain"]
        out[name] = {
            "plain_ms": 1e3 * base,
            "rows": {
                row: {
                    **{
                        impl: {"ratio": medians[key] / base, "ms": 1e3 * medians[key]}
                        if (key := f"{row}/{impl}") in medians
                        else {"ratio": None, "note": "not installed"}
                        for impl in IMPLS
                    },
                    "compile_s": compile_seconds[row],
                    "compiled_vs_eager": differences[row],
                }
                for row in run.PRODUCTS
            },
        }
    return out


def markdown(result: dict, reps: int) -> str:
    """The table of eager and compiled products next to curvlinops."""
    from benchmarks import run

    lines = [
        "## Matrix-free products under `torch.compile`",
        "",
        "`torch.compile(lambda: op @ v)` of fisherlab's operators (default mode; the "
        "operator's checks run eagerly between the compiled graphs) next to the eager product "
        "and curvlinops' eager product; time over a plain forward+backward, median of "
        f"{reps} interleaved repetitions after warm-up. *first call*: the compiling call.",
        "",
        "| model | product | eager | compiled | curvlinops | compiled / eager "
        "| compiled / curvlinops | first call | compiled vs eager |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in result.items():
        for row, cells in entry["rows"].items():
            ratios = [cells[impl]["ratio"] for impl in IMPLS]
            eager, compiled, peer = ratios
            shown = " | ".join("n/a" if r is None else f"{r:.2f}×" for r in ratios)
            versus_peer = f"{compiled / peer:.2f}" if peer else "–"
            lines.append(
                f"| {name} | {run.ROWS[row]} | {shown} | {compiled / eager:.2f} | "
                f"{versus_peer} | {cells['compile_s']:.1f} s | {cells['compiled_vs_eager']:.1e} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Time the products alone; print the table, write ``compiled.json`` with ``--out``."""
    from benchmarks import run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+", choices=sorted(run.MODELS), default=list(run.MODELS))
    parser.add_argument("--out", type=Path, default=None, help="write compiled.json here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    run.limit_blas_threads(args.threads)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    result = bench_compiled(args.models, args.n, args.reps, log, args.device)
    if args.out is not None:
        meta = {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "device": str(args.device),
            "torch": torch.__version__,
            "threads": args.threads,
            "reps": args.reps,
            "n": args.n,
            "load": os.getloadavg()[0],
        }
        args.out.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"meta": meta, "models": result}, indent=2) + "\n"
        (args.out / "compiled.json").write_text(text)
    print(markdown(result, args.reps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
