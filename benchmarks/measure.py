"""Timing and comparison shared by the benchmark scripts."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["relative_difference", "time_interleaved"]


def time_interleaved(
    methods: dict[str, Callable[[], Any]],
    reps: int,
    warmup: int = 2,
    sync: Callable[[], None] = lambda: None,
) -> dict[str, float]:
    """Median seconds per call of each method, timed in interleaved rounds after warm-up.

    ``sync`` runs before the clock starts and before it stops (``torch.cuda.synchronize``
    on a GPU), so the time is that of the finished work, not of the kernel launches.
    """
    for _ in range(warmup):
        for method in methods.values():
            method()
    sync()
    times: dict[str, list[float]] = {k: [] for k in methods}
    for _ in range(reps):
        for key, method in methods.items():
            sync()
            start = time.perf_counter()
            method()
            sync()
            times[key].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """``‖a − b‖ / ‖b‖`` (Frobenius norms; ``b = 0`` divides by the smallest normal)."""
    return float((a - b).norm() / b.norm().clamp_min(torch.finfo(b.dtype).tiny))
