"""``demo``: Fisher vs empirical Fisher along gradient descent on a small synthetic problem.

A small tanh MLP is trained by full-batch gradient descent on a synthetic classification
problem; at a few checkpoints we record the traces of the Fisher ``F`` and of the empirical
Fisher ``EF`` (both from :class:`fisherlab.Curvature`) and the squared gradient norm. It
illustrates the point of Kunstner et al. (2019) that the empirical Fisher is not the
Fisher, and it exercises the experiment machinery (cells, plots, claims, report) in seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fisherlab.experiments.base import Claim, Experiment, RunContext
from fisherlab.experiments.common import make_mlp
from fisherlab.experiments.registry import register
from fisherlab.experiments.verdicts import fmt, mean_se

__all__ = ["DemoConfig", "EXPERIMENT"]

DATASETS = ("blobs", "xor")


@dataclass
class DemoConfig:
    """Configuration of the ``demo`` experiment.

    Attributes
    ----------
    datasets : tuple of str
        Synthetic problems to run: ``"blobs"`` (Gaussian clusters) and/or ``"xor"``.
    seeds : tuple of int
        One run (cell) per data set and seed.
    n_samples : int
        Number of training points.
    n_features : int
        Input dimension.
    n_classes : int
        Number of classes.
    hidden : int
        Width of the hidden layer.
    steps : int
        Gradient-descent steps.
    lr : float
        Step size.
    n_checkpoints : int
        Number of (evenly spaced, including first and last) steps at which ``F`` and
        ``EF`` are computed.
    """

    datasets: tuple[str, ...] = DATASETS
    seeds: tuple[int, ...] = (0, 1)
    n_samples: int = 200
    n_features: int = 4
    n_classes: int = 3
    hidden: int = 16
    steps: int = 300
    lr: float = 0.5
    n_checkpoints: int = 7

    @classmethod
    def preset(cls, quick: bool, seed: int) -> DemoConfig:
        """Return the quick (seconds) or full configuration with base seed ``seed``."""
        if quick:
            return cls(seeds=(seed, seed + 1, seed + 2), steps=150, n_checkpoints=4)
        return cls(seeds=(seed, seed + 1, seed + 2))

    def __post_init__(self) -> None:
        unknown = [d for d in self.datasets if d not in DATASETS]
        if unknown:
            raise ValueError(f"unknown demo data set(s) {unknown}; choose from {DATASETS}")
        if self.n_checkpoints < 2 or self.steps < 1:
            raise ValueError("need steps >= 1 and n_checkpoints >= 2")


def _make_data(name: str, cfg: DemoConfig, seed: int):
    import torch

    g = torch.Generator().manual_seed(10_000 + seed)
    n, d, k = cfg.n_samples, cfg.n_features, cfg.n_classes
    if name == "blobs":
        centers = 2.0 * torch.randn(k, d, generator=g, dtype=torch.float64)
        y = torch.randint(0, k, (n,), generator=g)
        X = centers[y] + torch.randn(n, d, generator=g, dtype=torch.float64)
    else:  # xor: class = parity of the signs of the first two coordinates (mod k)
        X = torch.randn(n, d, generator=g, dtype=torch.float64)
        y = (((X[:, 0] > 0).long() + (X[:, 1] > 0).long()) % 2) % k
    return X, y


def _run_cell(dataset: str, seed: int, cfg: DemoConfig) -> dict[str, Any]:
    import torch

    import fisherlab as fl

    X, y = _make_data(dataset, cfg, seed)
    model = make_mlp([cfg.n_features, cfg.hidden, cfg.n_classes], torch.nn.Tanh, seed).double()
    lik = fl.likelihoods.Categorical()
    checkpoints = sorted(
        {round(i * cfg.steps / (cfg.n_checkpoints - 1)) for i in range(cfg.n_checkpoints)}
    )
    rows: dict[str, list[float]] = {
        "step": [],
        "loss": [],
        "trace_fisher": [],
        "trace_ef": [],
        "grad_norm_sq": [],
    }
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    for step in range(cfg.steps + 1):
        if step in checkpoints:
            c = fl.Curvature(model, lik, X, y)
            grad = c.gradient()
            rows["step"].append(step)
            rows["loss"].append(float(c.loss()))
            rows["trace_fisher"].append(float(c.fisher(form="diag").sum()))
            rows["trace_ef"].append(float(c.empirical_fisher(form="diag").sum()))
            rows["grad_norm_sq"].append(float(grad.pow(2).sum()))
        if step == cfg.steps:
            break
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(X), y).backward()
        opt.step()
    return rows


def run(cfg: DemoConfig, ctx: RunContext) -> dict[str, Any]:
    """Run every (data set, seed) cell, resuming completed ones; return the traces."""
    store = ctx.cells("traces")
    cells = [(d, s) for d in cfg.datasets for s in cfg.seeds]
    runs: dict[str, dict[str, Any]] = {}
    for dataset, seed in ctx.progress(cells, total=len(cells), desc="demo"):
        key = f"{dataset}-seed{seed}"
        value = store.get(key)
        if value is None:
            value = _run_cell(dataset, seed, cfg)
            store.put(key, value)
        runs[key] = {"dataset": dataset, "seed": seed, **value}
    rows = []
    for r in runs.values():
        rows.append(
            [
                r["dataset"],
                r["seed"],
                r["loss"][0],
                r["loss"][-1],
                r["trace_fisher"][-1],
                r["trace_ef"][-1],
                r["trace_ef"][-1] / r["trace_fisher"][-1],
            ]
        )
    table = {
        "columns": [
            "dataset",
            "seed",
            "loss (init)",
            "loss (final)",
            "tr F",
            "tr EF",
            "tr EF / tr F",
        ],
        "rows": rows,
    }
    return {"runs": runs, "tables": {"Final traces": table}}


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Plot tr F and tr EF against the step, one panel per data set."""
    from fisherlab.plotting import method_color, new_figure, save_figure

    runs = results["runs"]
    datasets = list(dict.fromkeys(r["dataset"] for r in runs.values()))
    fig, axes = new_figure(ncols=len(datasets), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for i, r in enumerate(x for x in runs.values() if x["dataset"] == dataset):
            label = (lambda s: s) if i == 0 else (lambda s: None)
            ax.plot(
                r["step"],
                r["trace_fisher"],
                "-o",
                color=method_color("Fisher"),
                label=label("tr F"),
            )
            ax.plot(r["step"], r["trace_ef"], "--s", color=method_color("EF"), label=label("tr EF"))
            ax.plot(
                r["step"],
                r["grad_norm_sq"],
                ":",
                color=method_color("GD"),
                label=label(r"$\|\nabla L\|^2$"),
            )
        ax.set_yscale("log")
        ax.set_xlabel("GD step")
        ax.set_title(dataset)
        ax.legend()
    axes[0][0].set_ylabel("trace")
    fig.suptitle("Traces of the Fisher and the empirical Fisher along gradient descent")
    path = Path(out_dir) / "traces.png"
    save_figure(fig, path)
    return [path]


def _per_dataset(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in results["runs"].values():
        out.setdefault(r["dataset"], []).append(r)
    return out


def _log_ratio(r: dict[str, Any], k: int) -> float:
    te, tf = r["trace_ef"][k], r["trace_fisher"][k]
    return math.log10(te / tf) if te > 0 and tf > 0 else math.nan


def claims(results: dict[str, Any]) -> list[Claim]:
    """Whether tr EF differs from tr F after training and falls relative to it as GD fits."""
    by_data = _per_dataset(results)
    n_seeds = min(len(v) for v in by_data.values())
    differs, falls, fitted = {}, {}, {}
    for name, runs in by_data.items():
        final = [_log_ratio(r, -1) for r in runs]
        drop = [_log_ratio(r, 0) - _log_ratio(r, -1) for r in runs]
        loss_drop = [r["loss"][0] - r["loss"][-1] for r in runs]
        differs[name] = mean_se(final)
        falls[name] = mean_se(drop)
        fitted[name] = mean_se(loss_drop)
    finite = all(math.isfinite(m) for m, _ in (*differs.values(), *falls.values()))
    seeds_ok = n_seeds >= 2 and finite
    trained = seeds_ok and all(m > 2 * se for m, se in fitted.values())
    seeds = f"at least 2 seeds per data set (got {n_seeds}) and positive traces"

    def show(stats: dict[str, tuple[float, float]]) -> str:
        return "; ".join(f"{k}: {fmt(m, 3)} ± {fmt(se, 3)}" for k, (m, se) in stats.items())

    source = "Kunstner et al. 2019, Sec. 3 (illustration)"
    return [
        Claim(
            claim="The empirical Fisher is not the Fisher: after training, their traces differ",
            measured=f"log10(tr EF / tr F) at the final step, mean ± se over seeds: "
            f"{show(differs)}",
            holds=seeds_ok and all(abs(m) > 2 * se for m, se in differs.values()),
            source=source,
            criterion="for every data set, the mean over seeds of log10(tr EF / tr F) at the "
            "final step differs from 0 by more than 2 standard errors",
            premise=seeds,
            premise_holds=seeds_ok,
        ),
        Claim(
            claim="As gradient descent fits the data, the empirical Fisher shrinks relative to "
            "the Fisher (its per-example terms carry squared residuals, the Fisher's the "
            "predictive variance)",
            measured=f"fall of log10(tr EF / tr F) from step 0 to the final step, mean ± se "
            f"over seeds: {show(falls)}; loss decrease: {show(fitted)}",
            holds=trained and all(m > 2 * se for m, se in falls.values()),
            source=source,
            criterion="for every data set, log10(tr EF / tr F) at the final step is below its "
            "value at step 0 by more than 2 standard errors (paired over seeds)",
            premise=f"GD fits the data: for every data set the training loss falls by more "
            f"than 2 standard errors (paired over seeds); {seeds}",
            premise_holds=trained,
        ),
    ]


EXPERIMENT = register(
    Experiment(
        name="demo",
        title="Fisher vs empirical Fisher along gradient descent (demo)",
        paper="Kunstner et al. 2019, Sec. 3 (illustration)",
        description=(
            "A one-hidden-layer tanh MLP trained by full-batch gradient descent on synthetic "
            "classification problems (Gaussian blobs, XOR); the traces of the Fisher and the "
            "empirical Fisher and the squared gradient norm at evenly spaced steps. A small "
            "illustration, not a figure of the paper (nothing to reduce); full: 200 points, "
            "300 steps, three seeds; quick: 150 steps, 4 checkpoints."
        ),
        config_class=DemoConfig,
        run=run,
        plot=plot,
        claims=claims,
        captions={
            "traces.png": "Illustration of Kunstner et al. 2019, Sec. 3 (not a figure of the "
            "paper): tr F, tr EF and the squared gradient norm along full-batch gradient "
            "descent of a small tanh MLP, one panel per synthetic data set, one line per seed.",
        },
    )
)
