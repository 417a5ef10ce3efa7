"""The monitor demo: an MLP trained on the embedded digits data with every instrument.

``fisherlab monitor-demo --out DIR`` calls :func:`run_demo`, which writes
``DIR/run.jsonl`` (the log), ``DIR/dashboard.png`` and ``DIR/dashboard.html``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fisherlab.likelihoods import Categorical
from fisherlab.monitor.instruments import (
    CABSBatchSize,
    EdgeOfStability,
    EFvsFisher,
    GGNMaxEigenvalue,
    GradientHistogram,
    HessianMaxEigenvalue,
    Instrument,
    NormTestBatchSize,
)
from fisherlab.monitor.monitor import Monitor

__all__ = ["demo_instruments", "run_demo"]


def demo_instruments(steps: int) -> tuple[str | Instrument, ...]:
    """Every instrument; the curvature ones about 12 times over ``steps`` steps."""
    sparse = max(1, steps // 12)
    return (
        "loss",
        "gradient_norm",
        "variance_trace",
        "noise_to_signal",
        "layer_snr",
        EFvsFisher(damping=1e-3, every=sparse),
        HessianMaxEigenvalue(every=sparse),
        GGNMaxEigenvalue(every=sparse),
        EdgeOfStability(every=sparse),
        CABSBatchSize(),
        NormTestBatchSize(),
        GradientHistogram(every=max(1, steps // 60)),
    )


def run_demo(
    out: str | Path,
    steps: int = 400,
    batch_size: int = 32,
    lr: float = 0.2,
    hidden: int = 32,
    seed: int = 0,
) -> dict[str, Path]:
    """Train a 64-``hidden``-10 tanh MLP on digits with SGD under the monitor.

    Parameters
    ----------
    out : str or Path
        Output directory; an existing ``run.jsonl`` there is replaced.
    steps : int
        SGD steps; minibatches run through a random permutation, a new one per epoch.
    batch_size : int
        Minibatch size.
    lr : float
        SGD learning rate (momentum 0).
    hidden : int
        Hidden width.
    seed : int
        Seed of the initialisation, the batch order and the instruments' random numbers.

    Returns
    -------
    dict
        Paths of ``"log"``, ``"png"`` and ``"html"``.
    """
    from fisherlab import datasets

    if steps < 1 or batch_size < 2:
        raise ValueError(f"need steps >= 1 and batch_size >= 2, got {steps}, {batch_size}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "run.jsonl"
    log.unlink(missing_ok=True)
    data = datasets.load("digits", split="train", dtype=torch.float32)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(data.D, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 10)
    )
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    with Monitor(
        model, Categorical(), track=demo_instruments(steps), log=log, optimizer=opt
    ) as mon:
        order = torch.randperm(data.N, generator=generator)
        position = 0
        for _ in range(steps):
            if position + batch_size > data.N:
                order, position = torch.randperm(data.N, generator=generator), 0
            index = order[position : position + batch_size]
            position += batch_size
            X, y = data.X[index], data.y[index]
            opt.zero_grad()
            with mon.step(X, y) as s:
                s.loss(model(X), y).backward()
            opt.step()
        title = f"fisherlab monitor-demo: MLP on digits, SGD lr={lr}, batch {batch_size}"
        from fisherlab.monitor.dashboard import plot_records, write_html

        png = plot_records(mon.records, out / "dashboard.png", mon.panels(), title)
        html = write_html(mon.records, out / "dashboard.html", mon.panels(), title, png)
    return {"log": log, "png": png, "html": html}
