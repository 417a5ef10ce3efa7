"""Run the fast-engine benchmarks: ``python -m benchmarks.run [--quick] [--out DIR]``.

Every number is a ratio to a plain forward+backward of the same batch in the same
process: the methods of one model are timed in interleaved repetitions (one call of each
per round, in the same order) and the ratio is median(method) / median(plain). Results go
to ``DIR/ratios.json``, ``DIR/memory.json``, ``DIR/scaling.json`` (written atomically)
and the table ``DIR/README.md``. BackPACK and curvlinops are optional: their columns say
"n/a" when missing or unsupported for a model.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import statistics as stats_lib
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

import fisherlab as fl
from benchmarks import monitor_overhead
from benchmarks.models import problem
from fisherlab.engine.hooks import FIRST_ORDER, Collector

ROWS = {
    "first_order": "first-order set (grad, 2nd moment, variance, L2 norms)",
    "per_sample": "per-sample gradients",
    "per_sample_reuse": "per-sample gradients, reused buffers",
    "mc_diag": "MC-Fisher diagonal",
    "ggn_diag": "exact GGN/Fisher diagonal",
    "kfac": "KFAC (MC)",
}
IMPLS = ("fisherlab", "backpack", "curvlinops", "torch.func")
OURS = {
    "first_order": FIRST_ORDER,
    "per_sample": ("per_sample_gradients",),
    "per_sample_reuse": ("per_sample_gradients",),
    "mc_diag": ("fisher_mc_diag",),
    "ggn_diag": ("ggn_diag",),
    "kfac": ("kfac",),
}
DEFAULT_OUT = Path(__file__).parent / "results"

Method = Callable[[], object]


# -- the methods ------------------------------------------------------------------------------
def plain(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> Method:
    loss_fn = nn.CrossEntropyLoss()

    def run() -> None:
        model.zero_grad(set_to_none=True)
        loss_fn(model(X), y).backward()

    return run


def fisherlab_method(model: nn.Module, X: torch.Tensor, y: torch.Tensor, row: str) -> Method:
    loss_fn = nn.CrossEntropyLoss()
    collector = Collector(
        model,
        fl.likelihoods.Categorical(),
        OURS[row],
        generator=torch.Generator(),
        reuse_buffers=row == "per_sample_reuse",
    )

    def run() -> None:
        model.zero_grad(set_to_none=True)
        with collector:
            loss_fn(model(X), y).backward()
        for stat in OURS[row]:  # assemble the results (scaling, variance)
            collector[stat]

    return run


def backpack_method(
    model: nn.Module, X: torch.Tensor, y: torch.Tensor, row: str, check: bool = True
) -> Method:
    if row == "per_sample_reuse":
        raise NotImplementedError("fisherlab option")
    import backpack
    from backpack import extensions as ext

    try:
        bp_model = backpack.extend(copy.deepcopy(model), use_converter=_has_residual(model))
    except Exception as error:  # noqa: BLE001 - any failure means "unsupported"
        raise NotImplementedError(f"backpack.extend failed: {error}") from None
    loss_fn = backpack.extend(nn.CrossEntropyLoss())
    extensions = {
        "first_order": lambda: (ext.SumGradSquared(), ext.Variance(), ext.BatchL2Grad()),
        "per_sample": lambda: (ext.BatchGrad(),),
        "mc_diag": lambda: (ext.DiagGGNMC(),),
        "ggn_diag": lambda: (ext.DiagGGNExact(),),
        "kfac": lambda: (ext.KFAC(),),
    }[row]()

    def run() -> None:
        bp_model.zero_grad(set_to_none=True)
        with backpack.backpack(*extensions):
            loss_fn(bp_model(X), y).backward()

    if check:
        run()  # raises here if BackPACK does not support a layer
    return run


def curvlinops_method(model: nn.Module, X: torch.Tensor, y: torch.Tensor, row: str) -> Method:
    if row != "kfac":
        raise NotImplementedError("curvlinops has no such statistic")
    from curvlinops import KFACLinearOperator

    params = [
        p
        for m in model.modules()
        if isinstance(m, (nn.Linear, nn.Conv2d))
        for p in m.parameters(recurse=False)
    ]

    def run() -> None:
        op = KFACLinearOperator(
            model,
            nn.CrossEntropyLoss(),
            params,
            [(X, y)],
            check_deterministic=False,
            fisher_type="mc",
            mc_samples=1,
        )
        op.compute_kronecker_factors()

    return run


def func_method(model: nn.Module, X: torch.Tensor, y: torch.Tensor, row: str) -> Method:
    if row not in ("first_order", "per_sample"):
        raise NotImplementedError("torch.func rows: per-sample gradients (+ squares)")
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    buffers = dict(model.named_buffers())
    loss_fn = nn.CrossEntropyLoss()

    def sample_loss(params: dict, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, {**params, **buffers}, (x.unsqueeze(0),))
        return loss_fn(out, t.unsqueeze(0))

    per_sample = vmap(grad(sample_loss), in_dims=(None, 0, 0))

    def run() -> None:
        params = {n: p.detach() for n, p in model.named_parameters() if n in names}
        G = per_sample(params, X, y)
        if row == "first_order":
            for g in G.values():
                mean = g.mean(0)
                second = g.square().mean(0)
                _ = second - mean.square()
                _ = g.flatten(1).square().sum(1)

    return run


def _has_residual(model: nn.Module) -> bool:
    return any(type(m).__name__ == "Block" for m in model.modules())


def build_method(
    model: nn.Module, X: torch.Tensor, y: torch.Tensor, row: str, impl: str, check: bool = True
):
    if impl == "fisherlab":
        return fisherlab_method(model, X, y, row)
    if impl == "backpack":
        return backpack_method(model, X, y, row, check)
    if impl == "curvlinops":
        return curvlinops_method(model, X, y, row)
    return func_method(model, X, y, row)


# -- timing -----------------------------------------------------------------------------------
def time_interleaved(methods: dict[str, Method], reps: int, warmup: int = 2) -> dict[str, float]:
    """Median seconds per call of each method, timed in interleaved rounds."""
    for _ in range(warmup):
        for method in methods.values():
            method()
    times: dict[str, list[float]] = {k: [] for k in methods}
    for _ in range(reps):
        for key, method in methods.items():
            start = time.perf_counter()
            method()
            times[key].append(time.perf_counter() - start)
    return {k: stats_lib.median(v) for k, v in times.items()}


def bench_model(name: str, n: int, reps: int, log: Callable[[str], None]) -> dict:
    model, X, y = problem(name, n)
    methods: dict[str, Method] = {"plain": plain(model, X, y)}
    notes: dict[str, str] = {}
    for row in ROWS:
        for impl in IMPLS:
            key = f"{row}/{impl}"
            try:
                methods[key] = build_method(model, X, y, row, impl)
            except ImportError:
                notes[key] = "not installed"
            except NotImplementedError as error:
                notes[key] = str(error).splitlines()[0][:80]
            except Exception as error:  # noqa: BLE001 - a peer failing on a model is a note
                notes[key] = f"{type(error).__name__}: {str(error).splitlines()[0][:80]}"
    log(f"  {name}: timing {len(methods)} methods x {reps} reps")
    medians = time_interleaved(methods, reps)
    base = medians["plain"]
    table = {
        row: {
            impl: (
                {"ratio": medians[f"{row}/{impl}"] / base, "ms": 1e3 * medians[f"{row}/{impl}"]}
                if f"{row}/{impl}" in medians
                else {"ratio": None, "note": notes.get(f"{row}/{impl}", "n/a")}
            )
            for impl in IMPLS
        }
        for row in ROWS
    }
    return {"n": n, "plain_ms": 1e3 * base, "rows": table}


# -- memory -----------------------------------------------------------------------------------
def memory_probe(name: str, n: int, row: str, impl: str) -> float:
    """Peak resident memory above the set-up state (MiB) over three calls of a method."""
    model, X, y = problem(name, n)
    if row == "plain":
        method = plain(model, X, y)
    else:  # no call before the measurement, for any library
        method = build_method(model, X, y, row, impl, check=False)
    before = _resident_kib()
    _reset_peak()
    for _ in range(3):
        method()
    return (_peak_kib() - before) / 1024.0


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _resident_kib() -> int:
    return _status_kib("VmRSS")


def _peak_kib() -> int:
    return _status_kib("VmHWM")


def _reset_peak() -> None:
    """Reset the peak resident set size (Linux: ``5`` to ``/proc/self/clear_refs``)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def bench_memory(models: list[str], n: int, impls: tuple[str, ...], threads: int, log) -> dict:
    out: dict = {}
    for name in models:
        out[name] = {}
        log(f"  {name}: memory probes")
        for row in ("plain", *ROWS):
            for impl in ("plain",) if row == "plain" else impls:
                cmd = [
                    sys.executable,
                    "-m",
                    "benchmarks.run",
                    "--memory-probe",
                    name,
                    str(n),
                    row,
                    impl,
                    "--threads",
                    str(threads),
                ]
                proc = subprocess.run(
                    cmd, capture_output=True, text=True, cwd=Path(__file__).parent.parent
                )
                key = "plain" if row == "plain" else f"{row}/{impl}"
                if proc.returncode == 0 and proc.stdout.strip():
                    out[name][key] = float(proc.stdout.strip().splitlines()[-1])
                else:
                    out[name][key] = None
    return out


# -- scaling ----------------------------------------------------------------------------------
def bench_scaling(sizes: list[int], widths: list[int], reps: int, log) -> dict:
    out: dict = {"batch": [], "width": []}
    for axis, values in (("batch", sizes), ("width", widths)):
        for value in values:
            n, width = (value, 256) if axis == "batch" else (128, value)
            model, X, y = problem("mlp", n, width=width)
            methods = {
                "plain": plain(model, X, y),
                "first_order": fisherlab_method(model, X, y, "first_order"),
                "ggn_diag": fisherlab_method(model, X, y, "ggn_diag"),
            }
            medians = time_interleaved(methods, reps, warmup=1)
            out[axis].append({axis: value, **{k: 1e3 * v for k, v in medians.items()}})
            log(
                f"  scaling {axis}={value}: "
                + ", ".join(f"{k} {1e3 * v:.2f} ms" for k, v in medians.items())
            )
    return out


# -- output -----------------------------------------------------------------------------------
def write_json(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` atomically (temporary file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    os.replace(tmp, path)


def _cell(entry: dict) -> str:
    return f"{entry['ratio']:.2f}×" if entry.get("ratio") is not None else "n/a"


def markdown(meta: dict, ratios: dict, memory: dict, scaling: dict) -> str:
    lines = [
        "# Fast-engine benchmarks",
        "",
        f"Mode: {meta['mode']}; torch {meta['torch']}; {meta['threads']} thread(s) "
        f"(`torch.set_num_threads`); {meta['reps']} interleaved repetitions, median; "
        f"machine: {meta['machine']}. Float32, cross-entropy, N = {meta['n']}.",
        "",
        "Time of each method divided by the time of a plain forward+backward of the same "
        "batch, measured in the same process (lower is better). n/a: the library has no "
        "such statistic (curvlinops: KFAC only here; torch.func: per-sample gradients, "
        "and with squares for the first-order set) or does not support the model. "
        "fisherlab and BackPACK compute the statistics inside the training step's own "
        "backward (the gradient is included); curvlinops' KFAC runs its own forward and "
        "sampled backward and gives no gradient, so a training step that also wants KFAC "
        "from it costs its ratio + 1.",
        "",
    ]
    for name, result in ratios.items():
        lines += [
            f"## {name} (plain forward+backward: {result['plain_ms']:.2f} ms)",
            "",
            "| statistic | " + " | ".join(IMPLS) + " | best peer |",
            "|---|" + "---|" * (len(IMPLS) + 1),
        ]
        for row, label in ROWS.items():
            entries = result["rows"][row]
            peers = [e["ratio"] for i, e in entries.items() if i != "fisherlab" and e["ratio"]]
            best = f"{min(peers):.2f}×" if peers else "–"
            cells = " | ".join(_cell(entries[i]) for i in IMPLS)
            lines.append(f"| {label} | {cells} | {best} |")
        noted = [
            f"{impl} ({row}): {e['note']}"
            for row in ROWS
            for impl, e in result["rows"][row].items()
            if e.get("ratio") is None and "backpack" in impl and row != "per_sample_reuse"
        ]
        if noted:
            lines += ["", "n/a: " + "; ".join(sorted(set(noted)))]
        lines.append("")
    if memory:
        lines += [
            "## Memory",
            "",
            "Peak resident memory above the set-up state over three calls (MiB), one fresh "
            "process per cell.",
            "",
        ]
        for name, cells in memory.items():
            impls = sorted({k.split("/")[1] for k in cells if "/" in k}, key=IMPLS.index)
            lines += [
                f"### {name} (plain: {_mib(cells.get('plain'))})",
                "",
                "| statistic | " + " | ".join(impls) + " |",
                "|---|" + "---|" * len(impls),
            ]
            for row, label in ROWS.items():
                lines.append(
                    f"| {label} | "
                    + " | ".join(_mib(cells.get(f"{row}/{i}")) for i in impls)
                    + " |"
                )
            lines.append("")
    for axis, label in (("batch", "N (width 256)"), ("width", "width (N = 128)")):
        lines += [
            f"## Scaling with {label}, MLP, fisherlab",
            "",
            f"| {axis} | plain ms | first-order ms | ratio | exact GGN diag ms | ratio |",
            "|---|---|---|---|---|---|",
        ]
        for entry in scaling[axis]:
            lines.append(
                f"| {entry[axis]} | {entry['plain']:.2f} | {entry['first_order']:.2f} | "
                f"{entry['first_order'] / entry['plain']:.2f}× | {entry['ggn_diag']:.2f} | "
                f"{entry['ggn_diag'] / entry['plain']:.2f}× |"
            )
        lines.append("")
    return "\n".join(lines)


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repetitions, small N")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--memory-probe", nargs=4, metavar=("MODEL", "N", "ROW", "IMPL"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)  # peers' hook warnings
    if args.memory_probe:
        name, n, row, impl = args.memory_probe
        print(memory_probe(name, int(n), row, impl))
        return 0

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    quick = args.quick
    n = 32 if quick else 128
    reps = args.reps or (3 if quick else 15)
    meta = {
        "mode": "quick" if quick else "full",
        "torch": torch.__version__,
        "threads": args.threads,
        "reps": reps,
        "n": n,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
    }
    log(f"benchmarks ({meta['mode']}, {args.threads} thread(s))")
    ratios = {name: bench_model(name, n, reps, log) for name in ("mlp", "cnn", "resnet")}
    write_json(args.out / "ratios.json", {"meta": meta, "models": ratios})
    memory_models = ["mlp"] if quick else ["mlp", "cnn", "resnet"]
    memory_impls = ("fisherlab",) if quick else IMPLS
    memory = bench_memory(memory_models, n, memory_impls, args.threads, log)
    write_json(args.out / "memory.json", {"meta": meta, "models": memory})
    sizes = [16, 64] if quick else [16, 32, 64, 128, 256, 512, 1024]
    widths = [64, 128] if quick else [64, 128, 256, 512, 1024]
    scaling = bench_scaling(sizes, widths, 2 if quick else 10, log)
    write_json(args.out / "scaling.json", {"meta": meta, **scaling})
    monitor = monitor_overhead.bench_monitor(n, reps, log)
    write_json(args.out / "monitor.json", {"meta": meta, **monitor})
    text = markdown(meta, ratios, memory, scaling) + "\n\n" + monitor_overhead.markdown(monitor)
    readme = args.out / "README.md"
    tmp = readme.with_suffix(".md.tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, readme)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
