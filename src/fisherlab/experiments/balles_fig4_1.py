r"""``balles-fig4-1``: estimating the noise-to-signal ratio is ill-posed (Balles 2021, Fig. 4.1).

Toy experiment of §4.3: draw :math:`x_1, \dots, x_m \sim \mathcal N(\mu, \sigma^2)` and
estimate :math:`\eta^2 = \sigma^2/\mu^2` with the empirical moments

.. math::

    \hat\eta^2 = \frac{\hat\sigma^2}{\hat\mu^2}, \qquad
    \hat\mu = \frac1m \sum_i x_i, \qquad
    \hat\sigma^2 = \frac{1}{m-1}\sum_i (x_i - \hat\mu)^2 .

For every sample size :math:`m` and true :math:`\eta` we repeat this over independent
trials (1000 as in the thesis) and record the distribution of :math:`\hat\eta^2`.

Protocol choices the thesis leaves open: :math:`\mu = 1` and :math:`\sigma = \eta` (the
estimator is scale invariant, so this is no restriction); sample sizes
:math:`m \in \{10, 100, 1000\}` (the thesis names 10 and 100); the spread of a
distribution is summarised by the ratio of its 95th to 5th percentile and by the number of
decades its central 99% (0.5th to 99.5th percentile) span; "roughly three orders of
magnitude" is read as at least 2.5 decades. Nothing is reduced: the experiment is cheap
in full; ``--quick`` uses 500 trials and drops :math:`m = 1000`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fisherlab.experiments.base import Claim, Experiment, RunContext
from fisherlab.experiments.registry import register

__all__ = ["EXPERIMENT", "Fig41Config", "estimate_eta_squared"]

SOURCE = "Balles 2021, §4.3 and Fig. 4.1"


@dataclass
class Fig41Config:
    r"""Configuration of ``balles-fig4-1``.

    Attributes
    ----------
    sample_sizes : list of int
        Sample sizes :math:`m` per estimate.
    etas : list of float
        True noise-to-signal ratios :math:`\eta = \sigma/\mu`.
    trials : int
        Independent estimates per :math:`(m, \eta)`.
    seed : int
        Random seed.
    """

    sample_sizes: list[int] = field(default_factory=lambda: [10, 100, 1000])
    etas: list[float] = field(default_factory=lambda: [0.25, 0.5, 1.0, 2.0, 4.0])
    trials: int = 1000
    seed: int = 0

    @classmethod
    def preset(cls, quick: bool, seed: int) -> Fig41Config:
        """Full: m in {10, 100, 1000}, 1000 trials; quick: m in {10, 100}, 500 trials."""
        if quick:
            return cls(sample_sizes=[10, 100], trials=500, seed=seed)
        return cls(seed=seed)


def estimate_eta_squared(
    m: int, eta: float, trials: int, generator: torch.Generator
) -> torch.Tensor:
    r"""Return ``trials`` estimates :math:`\hat\eta^2` from ``m`` samples of N(1, η²) each."""
    if m < 2:
        raise ValueError(f"need m >= 2 samples for a variance estimate, got m={m}")
    x = 1.0 + eta * torch.randn(trials, m, generator=generator, dtype=torch.float64)
    return x.var(dim=1, correction=1) / x.mean(dim=1).square()


def _quantile(values: torch.Tensor, q: float) -> float:
    return float(torch.quantile(values, q))


def run(cfg: Fig41Config, ctx: RunContext) -> dict[str, Any]:
    """Estimate η² ``trials`` times for every (m, η) and summarise the distributions."""
    generator = torch.Generator().manual_seed(cfg.seed)
    cells: dict[str, Any] = {}
    rows = []
    for m in cfg.sample_sizes:
        for eta in cfg.etas:
            est = estimate_eta_squared(m, eta, cfg.trials, generator)
            q = {p: _quantile(est, p / 100) for p in (0.5, 1, 5, 50, 95, 99, 99.5)}
            cell = {
                "m": m,
                "eta": eta,
                "estimates": est.tolist(),
                "percentiles": {str(p): v for p, v in q.items()},
                "ratio_95_5": q[95] / q[5],
                "decades_1_99": math.log10(q[99] / q[1]),
                "decades_central_99": math.log10(q[99.5] / q[0.5]),
                "median_relative_error": float((est / eta**2 - 1).abs().median()),
            }
            cells[f"m={m},eta={eta}"] = cell
            rows.append(
                [m, eta, eta**2, q[5], q[50], q[95], cell["ratio_95_5"], cell["decades_1_99"]]
            )
    return {
        "sample_sizes": list(cfg.sample_sizes),
        "etas": list(cfg.etas),
        "trials": cfg.trials,
        "cells": cells,
        "tables": {
            "Distribution of the estimate η̂² (percentiles over trials)": {
                "columns": [
                    "m",
                    "η",
                    "η²",
                    "5th pct",
                    "median",
                    "95th pct",
                    "95th/5th",
                    "decades 1st-99th",
                ],
                "rows": rows,
            }
        },
    }


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Histograms of log10 η̂², one panel per (m, η), the true η² as a dashed line."""
    import numpy as np

    from fisherlab.plotting import new_figure, save_figure

    ms, etas = results["sample_sizes"], results["etas"]
    fig, axes = new_figure(
        nrows=len(ms), ncols=len(etas), panel_size=(2.3, 1.7), squeeze=False, sharex=True
    )
    all_est = np.concatenate([np.asarray(c["estimates"]) for c in results["cells"].values()])
    # bins cover the central 99.8% of all estimates; the rest is piled into the edge bins
    lo, hi = np.percentile(np.log10(np.maximum(all_est, 1e-12)), [0.1, 99.9])
    bins = np.linspace(lo, hi, 60)
    for i, m in enumerate(ms):
        for j, eta in enumerate(etas):
            ax = axes[i][j]
            cell = results["cells"][f"m={m},eta={eta}"]
            est = np.clip(np.log10(np.maximum(cell["estimates"], 1e-12)), lo, hi)
            ax.hist(est, bins=bins, color="#0072B2", alpha=0.8)
            ax.axvline(np.log10(eta**2), color="k", ls="--", lw=1)
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"η = {eta:g}")
            if j == 0:
                ax.set_ylabel(f"m = {m}")
            if i == len(ms) - 1:
                ax.set_xlabel(r"$\log_{10}\hat\eta^2$")
    fig.suptitle(f"Distribution of η̂² over {results['trials']} trials (dashed: true η²)")
    path = Path(out_dir) / "fig4_1_eta_histograms.png"
    save_figure(fig, path)
    return [path]


def claims(results: dict[str, Any]) -> list[Claim]:
    """Spread grows with η for every m; η = 4 spans orders of magnitude even for m = 100."""
    ms, etas = results["sample_sizes"], results["etas"]
    cells = results["cells"]
    out = []
    spreads = {m: [cells[f"m={m},eta={e}"]["ratio_95_5"] for e in etas] for m in ms}
    monotone = all(all(b > a for a, b in zip(s, s[1:], strict=False)) for s in spreads.values())
    text = "; ".join(f"m={m}: " + ", ".join(f"{v:.3g}" for v in spreads[m]) for m in ms)
    out.append(
        Claim(
            claim="Estimating η² gets harder as η grows: the spread of η̂² increases with η "
            "(for every sample size m)",
            measured=f"95th/5th percentile of η̂² for η = {', '.join(f'{e:g}' for e in etas)}: "
            f"{text}",
            holds=monotone,
            source=SOURCE,
        )
    )
    small, large = min(etas), max(etas)
    m_small = min(ms)
    m_large = 100 if 100 in ms else max(ms)
    small_cell = cells[f"m={m_small},eta={small}"]
    large_cell = cells[f"m={m_large},eta={large}"]
    out.append(
        Claim(
            claim=f"Small noise-to-signal ratios (η = {small:g}) are estimated relatively "
            f"accurately with as little as m = {m_small} samples, large ones (η = {large:g}) "
            f"not even with m = {m_large}",
            measured=f"median |η̂²/η² − 1|: {small_cell['median_relative_error']:.3g} "
            f"(η = {small:g}, m = {m_small}) vs {large_cell['median_relative_error']:.3g} "
            f"(η = {large:g}, m = {m_large}); 95th/5th percentile "
            f"{small_cell['ratio_95_5']:.3g} vs {large_cell['ratio_95_5']:.3g}",
            holds=small_cell["median_relative_error"] < large_cell["median_relative_error"]
            and small_cell["ratio_95_5"] < large_cell["ratio_95_5"],
            source=SOURCE,
        )
    )
    decades = large_cell["decades_central_99"]
    out.append(
        Claim(
            claim=f"For η = {large:g}, η̂² scatters over roughly three orders of magnitude even "
            f"for m = {m_large} samples",
            measured=f"the central 99% of η̂² (0.5th to 99.5th percentile) span {decades:.2f} "
            f"decades, the 1st to 99th percentile {large_cell['decades_1_99']:.2f}",
            holds=decades >= 2.5,
            source=SOURCE,
        )
    )
    return out


EXPERIMENT = register(
    Experiment(
        name="balles-fig4-1",
        title="Estimating the noise-to-signal ratio is ill-posed",
        paper="Balles 2021, Fig. 4.1",
        description=(
            "Histograms of η̂² = σ̂²/μ̂² from m Gaussian samples over 1000 trials, for "
            "m ∈ {10, 100, 1000} and η ∈ {0.25, 0.5, 1, 2, 4} (quick: 500 trials, m ≤ 100)."
        ),
        config_class=Fig41Config,
        run=run,
        plot=plot,
        claims=claims,
    )
)
