r"""Dense Hessian and GGN of a small CNN (D ≈ 1,000): ``python -m benchmarks.dense_builds``.

The model is Conv2d(1, 8, 3)-ReLU-Conv2d(8, 8, 3)-ReLU-Flatten-Linear(128, 3) on 8×8
inputs (D = 1,051), cross-entropy with mean reduction. Each build is timed as a ratio to a
plain forward+backward of the same batch in the same process, interleaved with its peers
(one call of each per round, after warm-up; median), as in ``benchmarks.run``:

- fisherlab: ``fl.Curvature(...).hessian(form="dense")`` / ``.ggn(form="dense")``, the
  object built once;
- torch.func: ``torch.func.hessian`` of the loss of the flat parameters (forward-over-
  reverse over all D columns at once); for the GGN ``vmap(jacrev)`` per-sample Jacobians
  :math:`J_n` and :math:`\frac1N \sum_n J_n^\top (\mathrm{diag}(p_n) - p_n p_n^\top) J_n`;
- curvlinops: ``HessianLinearOperator`` / ``GGNLinearOperator`` built once, ``op @ E`` for
  the unit-vector columns ``E`` in chunks of :data:`PEER_CHUNK`.

A float64 check at small N gives the relative differences of the peers' matrices from
fisherlab's, and of fisherlab's Hessian from autograd's double backward.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

import fisherlab as fl
from benchmarks.measure import relative_difference, time_interleaved

ROWS = {"hessian": "dense Hessian (D≈1000 CNN)", "ggn": "dense GGN (D≈1000 CNN)"}
IMPLS = ("fisherlab", "torch.func", "curvlinops")
PEER_CHUNK = 64
CHECK_N = 16

Method = Callable[[], torch.Tensor | None]


def cnn() -> nn.Module:
    """The D = 1,051 CNN of both rows."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 3),
    )


def problem(
    n: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The model and a batch of ``n`` random 8×8 images with random labels."""
    generator = torch.Generator().manual_seed(1)
    X = torch.randn(n, 1, 8, 8, generator=generator, dtype=dtype)
    y = torch.randint(0, 3, (n,), generator=generator)
    return cnn().to(device=device, dtype=dtype), X.to(device), y.to(device)


def _flat_loss(model: nn.Module, X: torch.Tensor, y: torch.Tensor):
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]
    theta = torch.cat([p.detach().flatten() for p in model.parameters()])

    def loss(vector: torch.Tensor) -> torch.Tensor:
        pieces = vector.split(sizes)
        params = {n: t.view(s) for n, t, s in zip(names, pieces, shapes, strict=True)}
        return nn.functional.cross_entropy(functional_call(model, params, (X,)), y)

    return loss, theta


def methods(model: nn.Module, X: torch.Tensor, y: torch.Tensor, row: str) -> dict[str, Method]:
    """fisherlab's build of ``row`` and its peers' (``NotImplementedError`` for none)."""
    curvature = fl.Curvature(model, fl.likelihoods.Categorical(), X, y)
    out: dict[str, Method] = {"fisherlab": lambda: getattr(curvature, row)(form="dense")}
    loss, theta = _flat_loss(model, X, y)
    if row == "hessian":
        out["torch.func"] = lambda: torch.func.hessian(loss)(theta)
    else:
        out["torch.func"] = _func_ggn(model, X)
    try:
        import curvlinops
    except ImportError:
        return out
    cls = curvlinops.HessianLinearOperator if row == "hessian" else curvlinops.GGNLinearOperator
    params = list(model.parameters())
    op = cls(model, nn.CrossEntropyLoss(), params, [(X, y)], check_deterministic=False)
    eye = torch.eye(theta.numel(), dtype=theta.dtype, device=theta.device)

    def curvlinops_dense() -> torch.Tensor:
        chunks = [op @ eye[:, s : s + PEER_CHUNK] for s in range(0, eye.shape[1], PEER_CHUNK)]
        return torch.cat(chunks, dim=1)

    out["curvlinops"] = curvlinops_dense
    return out


def _func_ggn(model: nn.Module, X: torch.Tensor) -> Method:
    names = [name for name, _ in model.named_parameters()]

    def logits(params: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(model, params, (x.unsqueeze(0),)).squeeze(0)

    def run() -> torch.Tensor:
        params = {n: p.detach() for n, p in model.named_parameters()}
        jac = vmap(jacrev(logits), in_dims=(None, 0))(params, X)
        J = torch.cat([jac[n].flatten(2) for n in names], dim=2)  # (N, C, D)
        with torch.no_grad():
            p = functional_call(model, params, (X,)).softmax(-1)
        H = torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1)
        return torch.einsum("ncd,nce,nef->df", J, H, J) / X.shape[0]

    return run


def plain(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> Method:
    """A training step's forward and backward, the unit of every ratio."""

    def run() -> None:
        model.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(X), y).backward()

    return run


def checks() -> dict[str, dict[str, float]]:
    """Float64 relative differences at N = :data:`CHECK_N` (CPU)."""
    model, X, y = problem(CHECK_N, torch.float64)
    out: dict[str, dict[str, float]] = {}
    for row in ROWS:
        built = {impl: call() for impl, call in methods(model, X, y, row).items()}
        ours = built.pop("fisherlab")
        out[row] = {
            f"{impl}_vs_fisherlab": relative_difference(M, ours) for impl, M in built.items()
        }
        if row == "hessian":
            loss, theta = _flat_loss(model, X, y)
            reference = torch.autograd.functional.hessian(loss, theta)
            out[row]["fisherlab_vs_autograd"] = relative_difference(ours, reference)
    return out


def bench_dense(
    n: int, reps: int, log: Callable[[str], None], device: torch.device | str = "cpu"
) -> dict:
    """Milliseconds and ratios to a plain forward+backward of each row and implementation."""
    device = torch.device(device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else lambda: None
    model, X, y = problem(n, device=device)
    calls: dict[str, Method] = {"plain": plain(model, X, y)}
    for row in ROWS:
        calls.update({f"{row}/{impl}": m for impl, m in methods(model, X, y, row).items()})
    log(f"  dense builds: timing {len(calls)} methods x {reps} reps")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        medians = time_interleaved(calls, reps, warmup=1, sync=sync)
    base = medians["plain"]
    rows = {
        row: {
            impl: {"ratio": medians[key] / base, "ms": 1e3 * medians[key]}
            if (key := f"{row}/{impl}") in medians
            else {"ratio": None, "note": "not installed"}
            for impl in IMPLS
        }
        for row in ROWS
    }
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "n": n,
        "reps": reps,
        "device": str(device),
        "num_params": sum(p.numel() for p in model.parameters()),
        "plain_ms": 1e3 * base,
        "load": os.getloadavg()[0],
        "rows": rows,
        "checks": checks(),
    }
    ms = {r: {i: e.get("ms") for i, e in v.items()} for r, v in rows.items()}
    log(f"  dense builds (ms): {json.dumps(ms)}")
    return result


def markdown(result: dict) -> str:
    """The dense-build table."""
    lines = [
        f"## Dense builds (CNN, D = {result['num_params']}, N = {result['n']}, plain "
        f"forward+backward: {result['plain_ms']:.2f} ms)",
        "",
        "Time of the whole (D, D) matrix divided by a plain forward+backward of the same batch "
        f"(measured {result['date']}, {result['device']}, float32, {result['threads']} "
        f"thread(s), median of {result['reps']} interleaved repetitions; 1-minute load average "
        f"{result['load']:.2f}). torch.func: `torch.func.hessian` over all columns at once, for "
        "the GGN `vmap(jacrev)` Jacobians and the softmax Hessian; curvlinops: its linear "
        f"operator `@` unit vectors in chunks of {PEER_CHUNK}.",
        "",
        "| quantity | " + " | ".join(IMPLS) + " | best peer | ours / best |",
        "|---|" + "---|" * (len(IMPLS) + 2),
    ]
    for row, label in ROWS.items():
        entries = result["rows"][row]
        cells = " | ".join(
            f"{e['ratio']:.0f}× ({e['ms'] / 1e3:.2f} s)" if e["ratio"] is not None else "n/a"
            for e in entries.values()
        )
        peers = [(i, e["ratio"]) for i, e in entries.items() if i != "fisherlab" and e["ratio"]]
        if peers:
            best = min(peers, key=lambda p: p[1])
            factor = entries["fisherlab"]["ratio"] / best[1]
            lines.append(f"| {label} | {cells} | {best[0]} {best[1]:.0f}× | {factor:.2f} |")
        else:
            lines.append(f"| {label} | {cells} | – | – |")
    lines += [
        "",
        f"Check (float64, N = {CHECK_N}, relative difference): "
        + "; ".join(
            f"{row}: " + ", ".join(f"{k.replace('_', ' ')} {v:.1e}" for k, v in c.items())
            for row, c in result["checks"].items()
        ),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Time the dense builds alone; print the table, write ``dense.json`` with ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="write dense.json here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = bench_dense(args.n, args.reps, lambda m: print(m, file=sys.stderr), args.device)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "dense.json").write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
