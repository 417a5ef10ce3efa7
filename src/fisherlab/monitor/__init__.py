"""Training monitor: gradient-noise and curvature instruments on the user's training loop.

>>> import fisherlab as fl
>>> mon = fl.Monitor(model, lik, track=("loss", "variance_trace"), log="r.jsonl")  # doctest: +SKIP
>>> with mon.step(X, y) as s:  # doctest: +SKIP
...     s.loss(model(X), y).backward()
>>> mon.plot("dashboard.png"); mon.to_html("dashboard.html")  # doctest: +SKIP

See :mod:`fisherlab.monitor.instruments` for every instrument's formula and reference.
"""

from fisherlab.monitor.dashboard import plot_records, write_html
from fisherlab.monitor.instruments import (
    INSTRUMENTS,
    CABSBatchSize,
    EdgeOfStability,
    EFvsFisher,
    GGNMaxEigenvalue,
    GradientHistogram,
    GradientNorm,
    HessianMaxEigenvalue,
    Instrument,
    LayerSNR,
    Loss,
    NoiseToSignal,
    NormTestBatchSize,
    Panel,
    StepData,
    VarianceTrace,
)
from fisherlab.monitor.monitor import DEFAULT_TRACK, Monitor, MonitorStep, read_log

__all__ = [
    "CABSBatchSize",
    "DEFAULT_TRACK",
    "EFvsFisher",
    "EdgeOfStability",
    "GGNMaxEigenvalue",
    "GradientHistogram",
    "GradientNorm",
    "HessianMaxEigenvalue",
    "INSTRUMENTS",
    "Instrument",
    "LayerSNR",
    "Loss",
    "Monitor",
    "MonitorStep",
    "NoiseToSignal",
    "NormTestBatchSize",
    "Panel",
    "StepData",
    "VarianceTrace",
    "plot_records",
    "read_log",
    "write_html",
]
