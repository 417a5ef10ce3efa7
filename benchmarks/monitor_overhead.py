"""Overhead of ``fl.Monitor`` on the benchmark MLP: ``python -m benchmarks.monitor_overhead``.

A plain training step (zero_grad, cross-entropy forward and backward, SGD step) is timed
interleaved with the same step under the monitor (median over repetitions, as in
``benchmarks.run``):

- first-order instruments every step (loss, gradient norm, variance trace, noise-to-signal,
  per-layer SNR, CABS and norm-test batch sizes), and ``collect()`` of the gradient and
  variance alone, the engine part of that cost;
- an expensive instrument at its period ``k``: a step where it measures costs ``t_k``, so
  over ``k`` steps the amortised ratio is ``1 + (t_k - t_plain) / (k t_plain)``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

import fisherlab as fl
from benchmarks.measure import time_interleaved
from benchmarks.models import problem
from fisherlab.engine.hooks import collect
from fisherlab.monitor import EFvsFisher, GradientHistogram, HessianMaxEigenvalue, Monitor

FIRST_ORDER = (
    "loss",
    "gradient_norm",
    "variance_trace",
    "noise_to_signal",
    "layer_snr",
    "cabs",
    "norm_test",
)
LANCZOS_EVERY = 50
EF_EVERY = 100
HISTOGRAM_EVERY = 10
TARGETS = {"first_order": 1.3, "lanczos": 1.2}


def _methods(n: int) -> dict[str, Callable[[], None]]:
    model, X, y = problem("mlp", n)
    lik = fl.likelihoods.Categorical()
    opt = torch.optim.SGD(model.parameters(), lr=1e-8)  # parameters barely move
    loss_fn = nn.CrossEntropyLoss()

    def plain() -> None:
        opt.zero_grad()
        loss_fn(model(X), y).backward()
        opt.step()

    def collect_only() -> None:
        opt.zero_grad()
        with collect(model, lik, ("gradient", "variance")):
            loss_fn(model(X), y).backward()
        opt.step()

    def monitored(mon: Monitor) -> Callable[[], None]:
        def run() -> None:
            opt.zero_grad()
            with mon.step(X, y) as s:
                s.loss(model(X), y).backward()
            opt.step()

        return run

    first = Monitor(model, lik, track=FIRST_ORDER, optimizer=opt)
    lanczos = Monitor(model, lik, track=(HessianMaxEigenvalue(every=1),))
    ef = Monitor(model, lik, track=(EFvsFisher(every=1),))
    histogram = Monitor(model, lik, track=(GradientHistogram(every=1),))
    return {
        "plain": plain,
        "collect": collect_only,
        "first_order": monitored(first),
        "lanczos": monitored(lanczos),
        "ef_vs_fisher": monitored(ef),
        "histogram": monitored(histogram),
    }


def bench_monitor(n: int, reps: int, log: Callable[[str], None]) -> dict:
    """Median times (ms) and the overhead ratios of the monitor on the MLP with batch ``n``."""
    methods = _methods(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        median = time_interleaved(methods, reps, warmup=1)
    plain = median["plain"]
    result = {
        "n": n,
        "reps": reps,
        "ms": {k: 1e3 * v for k, v in median.items()},
        "ratios": {
            "collect": median["collect"] / plain,
            "first_order": median["first_order"] / plain,
            "lanczos": 1 + (median["lanczos"] - plain) / (LANCZOS_EVERY * plain),
            "ef_vs_fisher": 1 + (median["ef_vs_fisher"] - plain) / (EF_EVERY * plain),
            "histogram": 1 + (median["histogram"] - plain) / (HISTOGRAM_EVERY * plain),
        },
        "lanczos_steps": HessianMaxEigenvalue().num_steps,
        "targets": TARGETS,
    }
    log(f"  monitor: {json.dumps(result['ratios'])}")
    return result


def markdown(result: dict) -> str:
    """The monitor-overhead table."""
    r, ms = result["ratios"], result["ms"]
    k = result["lanczos_steps"]
    return "\n".join(
        [
            f"## Monitor overhead (mlp, N = {result['n']}, plain training step: "
            f"{ms['plain']:.2f} ms)",
            "",
            "Time of a training step under `fl.Monitor` divided by a plain training step "
            "(zero_grad, forward, backward, SGD step); expensive instruments amortised over "
            "their period. On a shared machine these numbers are noisy.",
            "",
            "| monitored | ratio | target |",
            "|---|---|---|",
            f"| `collect()` of gradient and variance alone (engine part) | {r['collect']:.2f}× "
            "| – |",
            f"| first-order instruments every step | {r['first_order']:.2f}× | "
            f"≤ {TARGETS['first_order']}× |",
            f"| largest Hessian eigenvalue (Lanczos, {k} products) every {LANCZOS_EVERY} steps "
            f"| {r['lanczos']:.2f}× | ≤ {TARGETS['lanczos']}× |",
            f"| EF vs Fisher (MC) every {EF_EVERY} steps | {r['ef_vs_fisher']:.2f}× | – |",
            f"| gradient histogram every {HISTOGRAM_EVERY} steps | {r['histogram']:.2f}× | – |",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="write monitor.json here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = bench_monitor(args.n, args.reps, lambda m: print(m, file=sys.stderr))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "monitor.json").write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
