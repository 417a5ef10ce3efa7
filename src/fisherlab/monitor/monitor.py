r"""``fl.Monitor``: an instrument panel on the user's own training loop.

>>> import torch, fisherlab as fl
>>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
>>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
>>> mon = fl.Monitor(model, fl.likelihoods.Categorical(), track=("loss", "variance_trace"))
>>> for _ in range(3):
...     X, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
...     opt.zero_grad()
...     with mon.step(X, y) as s:
...         s.loss(model(X), y).backward()
...     opt.step()
>>> [sorted(r) for r in mon.records][0]
['loss', 'step', 'variance_trace']

Each step's backward pass runs inside :func:`fisherlab.engine.hooks.collect` with the
statistics that the instruments due at this step need (nothing is hooked on steps where no
instrument measures); the values are computed on leaving the ``with`` block, before the
optimizer moves the parameters, so every value belongs to the parameters and the batch of
the step's forward pass. Any optimizer works: the monitor changes neither ``.grad`` nor the
parameters, and the learning-rate instruments read ``optimizer.param_groups[0]["lr"]``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import torch
from torch import Tensor

from fisherlab.engine.hooks import Collector, Statistic
from fisherlab.likelihoods import Likelihood
from fisherlab.monitor.instruments import Instrument, Panel, StepData, make_instrument
from fisherlab.scaling import Scaling
from fisherlab.validation import check_likelihood, check_reduction

__all__ = ["DEFAULT_TRACK", "Monitor", "MonitorStep", "read_log"]

#: what ``Monitor`` tracks when ``track`` is not given
DEFAULT_TRACK: tuple[str, ...] = ("loss", "gradient_norm", "variance_trace")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    return value


def read_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read the records of a monitor log (JSON lines).

    A last line cut short by a killed process is skipped; any other unreadable line is an
    error.

    Parameters
    ----------
    path : str or path-like
        The ``log=`` file of a :class:`Monitor`.

    Returns
    -------
    list of dict
        The records in file order.
    """
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            if number == len(lines):
                break
            raise ValueError(f"{path}: line {number} is not a JSON record") from None
        if not isinstance(record, dict) or "step" not in record:
            raise ValueError(f"{path}: line {number} is not a monitor record (no 'step')")
        records.append(record)
    return records


class Monitor:
    """Measure gradient-noise and curvature quantities during training.

    Parameters
    ----------
    model : torch.nn.Module
        The trained model (any model :func:`fisherlab.engine.hooks.collect` covers; others
        fall back to the generic engine with a :class:`~fisherlab.engine.hooks.FallbackWarning`).
    likelihood : Likelihood
        The likelihood whose per-sample loss the training loss averages (or sums).
    track : iterable of str or Instrument
        Instrument names (see :data:`fisherlab.monitor.INSTRUMENTS`) or configured
        instrument objects, e.g. ``fl.monitor.HessianMaxEigenvalue(every=50)``.
    every : int
        Period, in steps, of the instruments that do not set their own ``every``.
    log : str, path-like or None
        Append each record to this file as one JSON line, flushed at once (a killed run
        keeps what it logged).
    optimizer : torch.optim.Optimizer or None
        Where the learning-rate instruments (``edge_of_stability``, ``cabs``) read the
        current learning rate, ``param_groups[0]["lr"]``.
    lr : float or None
        A fixed learning rate instead of ``optimizer``.
    reduction : {"mean", "sum"} or None
        The training loss's reduction (default: the likelihood's, else ``"mean"``).
    tensorboard : str, path-like or None
        Also write the scalar values to a TensorBoard event directory (needs the
        ``tensorboard`` package).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        likelihood: Likelihood,
        track: Iterable[str | Instrument] = DEFAULT_TRACK,
        every: int = 1,
        log: str | os.PathLike[str] | None = None,
        *,
        optimizer: torch.optim.Optimizer | None = None,
        lr: float | None = None,
        reduction: str | None = None,
        tensorboard: str | os.PathLike[str] | None = None,
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        check_likelihood(likelihood)
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}")
        if optimizer is not None and lr is not None:
            raise ValueError("give either optimizer= or lr=, not both")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {optimizer!r}")
        if lr is not None and not (isinstance(lr, (int, float)) and lr > 0):
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        if isinstance(track, (str, Instrument)):
            track = (track,)
        self.instruments: list[Instrument] = [make_instrument(t) for t in track]
        if not self.instruments:
            raise ValueError("track is empty: name at least one instrument")
        names = [i.name for i in self.instruments]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"instrument(s) tracked twice: {', '.join(repeated)}")
        if reduction is None:
            reduction = likelihood.reduction or "mean"
        check_reduction(reduction)
        for instrument in self.instruments:
            instrument.check(reduction)
        self.model = model
        self.likelihood = likelihood
        self.every = every
        self.optimizer = optimizer
        self.lr = None if lr is None else float(lr)
        self.reduction = reduction
        self.records: list[dict[str, Any]] = []
        self.num_steps = 0
        self.log_path = None if log is None else Path(log)
        self._log: IO[str] | None = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115
        self._tensorboard: Any = None
        if tensorboard is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as error:
                raise ImportError(
                    "tensorboard= needs the tensorboard package: pip install tensorboard"
                ) from error
            self._tensorboard = SummaryWriter(str(tensorboard))
        self._collectors: dict[frozenset[Statistic], Collector] = {}

    # -- the training loop ----------------------------------------------------------------
    def due(self, step: int) -> list[Instrument]:
        """The instruments that measure at step ``step``."""
        return [i for i in self.instruments if step % i.period(self.every) == 0]

    def step(self, X: Tensor, y: Tensor) -> MonitorStep:
        """Monitor one training step on the minibatch ``(X, y)``; use as a context manager.

        Call ``s.loss(model(X), y).backward()`` inside (``s.loss`` is the training loss in
        the monitor's reduction); the values are measured when the block exits without an
        exception, and the step counter advances.
        """
        if not isinstance(X, Tensor) or not isinstance(y, Tensor):
            raise TypeError("X and y must be tensors (one minibatch of a DataLoader)")
        if X.ndim == 0 or X.shape[0] == 0:
            raise ValueError(f"X must be a non-empty batch, got shape {tuple(X.shape)}")
        return MonitorStep(self, X, y)

    @property
    def learning_rate(self) -> float | None:
        """The current learning rate: the optimizer's first group's, or the fixed ``lr``."""
        if self.optimizer is not None:
            return float(self.optimizer.param_groups[0]["lr"])
        return self.lr

    def _collector(self, statistics: frozenset[Statistic]) -> Collector:
        if statistics not in self._collectors:
            self._collectors[statistics] = Collector(
                self.model, self.likelihood, statistics, reduction=self.reduction
            )
        return self._collectors[statistics]

    def _record(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if self._log is not None:
            self._log.write(json.dumps(record) + "\n")
            self._log.flush()
        if self._tensorboard is not None:
            step = record["step"]
            for key, value in record.items():
                if isinstance(value, float):
                    self._tensorboard.add_scalar(key, value, step)
                elif isinstance(value, dict) and all(isinstance(v, float) for v in value.values()):
                    for sub, v in value.items():
                        self._tensorboard.add_scalar(f"{key}/{sub}", v, step)
            self._tensorboard.flush()

    # -- output ---------------------------------------------------------------------------
    def panels(self) -> list[Panel]:
        """The dashboard panels of the tracked instruments, in ``track`` order."""
        return [p for i in self.instruments for p in i.panels]

    def plot(self, path: str | os.PathLike[str]) -> Path:
        """Draw the dashboard of the records so far as a PNG; return its path."""
        from fisherlab.monitor.dashboard import plot_records

        return plot_records(self.records, path, panels=self.panels())

    def to_html(self, path: str | os.PathLike[str]) -> Path:
        """Write a self-contained HTML page (dashboard image and last values); return its path."""
        from fisherlab.monitor.dashboard import write_html

        return write_html(self.records, path, panels=self.panels())

    def close(self) -> None:
        """Close the log file and the TensorBoard writer (records stay readable)."""
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        track = ", ".join(i.name for i in self.instruments)
        return f"Monitor(track=({track}), every={self.every}, steps={self.num_steps})"


class MonitorStep:
    """One monitored training step (returned by :meth:`Monitor.step`)."""

    def __init__(self, monitor: Monitor, X: Tensor, y: Tensor) -> None:
        self.monitor = monitor
        self.X = X
        self.y = y
        self.index = monitor.num_steps
        self.instruments = monitor.due(self.index)
        needed = {s for i in self.instruments for s in i.statistics}
        self.collector: Collector | None = (
            monitor._collector(frozenset(needed | {Statistic.GRADIENT})) if needed else None
        )
        self._loss: Tensor | None = None

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        r"""The training loss :math:`c\sum_n l_n` of the model outputs, to call ``backward`` on.

        When statistics are collected this is the collector's loss, so that under
        :mod:`torch.distributed` the recorded loss is the global batch's, like the
        statistics (and the batch-size rules fed with both agree on every rank).
        """
        if self.collector is not None:
            self._loss = self.collector.loss(output, target)
            return self._loss
        f = output.reshape(output.shape[0], -1)
        lik = self.monitor.likelihood
        total = lik.nll(f, lik.flatten_targets(target)).sum()
        value = Scaling(self.monitor.reduction, f.shape[0]).normalize(total)
        self._loss = value
        return value

    def __enter__(self) -> MonitorStep:
        if self.collector is not None:
            self.collector.attach()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.collector is not None:
            self.collector.detach()
        if exc_type is not None:
            return
        monitor = self.monitor
        monitor.num_steps += 1
        if not self.instruments:
            return
        if self.collector is not None:
            self.collector[Statistic.GRADIENT]  # raises if no backward pass was recorded
        if self._loss is None:
            loss = None
        elif self.collector is not None:
            loss = self.collector.loss_value
        else:
            loss = float(self._loss.detach())
        data = StepData(
            self.index,
            monitor.model,
            monitor.likelihood,
            self.X,
            self.y,
            monitor.reduction,
            self.collector,
            loss,
            monitor.learning_rate,
        )
        record: dict[str, Any] = {"step": self.index}
        for instrument in self.instruments:
            record.update(_jsonable(instrument.measure(data)))
        monitor._record(record)
