r"""``kunstner-app-e``: EF preconditioning depends on the starting point (Kunstner et al. App. E).

Thesis Fig. 7.4 / Kunstner et al. App. E: linear regression on Boston, NGD and EFGD with
the hyper-parameters of Fig. 3, started at several points of :math:`[-\theta^*, \theta^*]`.
"When the optimization starts close to the minimum (low loss), the empirical Fisher is a
good approximation to the Fisher and there are very few differences with NGD. However,
when the optimization starts far from the minimum (high loss), the individual gradients,
and thus the sum of outer product gradients, are large, which leads to very small steps"
(thesis §7.4.3).

Protocol (the authors' released code for this figure, where the text is silent):

- the problem of ``kunstner-fig3``: raw features, a bias column appended last, mean
  reduction, Gaussian :math:`\sigma = 1`;
- hyper-parameters: the cell the grid search of ``kunstner-fig3`` selects (lowest loss
  after 100 iterations from :math:`\theta = 0`;
  :func:`~fisherlab.experiments.kunstner.fig3.grid_search`,
  :func:`~fisherlab.experiments.kunstner.preconditioning.select`),
  not Table D.5's cell. The search runs on a restricted grid, with the steps of Table D.4:
  :math:`\log_{10}\gamma \in \{-2, -1.875, \ldots, 3\}`,
  :math:`\log_{10}\lambda \in \{-10, -9.5, \ldots, -4\}`. The full grid of Table D.4
  (``kunstner-fig3 --full``) selects NGD :math:`(\gamma, \lambda) = (10^{-0.625},
  10^{-10})` and EFGD :math:`(10^{1.25}, 10^{-9.5})` on Boston; both cells lie in the
  restricted grid, which is a subset of the full one, so its minimum is the same cell.
  The premise of every claim requires the selected step sizes to be strictly inside the
  restricted grid;
- starting points :math:`\theta_0 = f\,\theta^*` with :math:`f \in \{7/8, 3/4, 1/2, 0\}`
  (the released code's ``1 - [1/8, 1/4, 1/2, 1]``; all lie in :math:`[-\theta^*,
  \theta^*]`), :math:`\theta^*` the least-squares solution; 20 iterations each (the
  released code's figure).

Table D.5's Boston EFGD cell :math:`(10^{-1.25}, 10^{-8})` is a misprint of the sign of
the step size: on the full grid its loss after 100 iterations is 290.6 (EFGD barely
moves from :math:`L(0) \approx 296`), while :math:`(10^{+1.25}, 10^{-8})` reaches
10.9474, which ties with the grid minimum :math:`L^* = 10.9474`. The run records both
cells' final losses on the restricted grid.

Claims (criteria fixed before the run). On a quadratic, NGD is a linear iteration,
:math:`\theta_{t+1} - \theta^* = (I - \gamma (F + \lambda I)^{-1} F)(\theta_t - \theta^*)`,
so from starts on a ray through :math:`\theta^*` its remaining fraction of the initial
suboptimality is the same from every start by construction: it is the reference, not a
claim. EFGD's preconditioner depends on :math:`\theta`, and the figure's statements are
about it:

- "EFGD gets less far, against NGD, the farther it starts": the ratio of EFGD's to NGD's
  final loss increases strictly from the closest start (:math:`f = 7/8`) to the farthest
  (:math:`f = 0`);
- the same for the fraction of the initial suboptimality EFGD leaves,
  :math:`(L_T - L^*)/(L_0 - L^*)` (progress normalised by the start's distance);
- "close to the minimum very few differences with NGD, far from it a clear one" (the
  figure plots the loss on a log scale): from the closest start EFGD's final loss is within
  1 % of NGD's, from the farthest start it exceeds NGD's by more than 1 %. Premise
  (besides the interior step sizes): the closest start's initial loss exceeds NGD's final
  loss by more than 1 %, so the closeness is earned by the iterations.

``--quick`` is the same run (the restricted grid takes a few seconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fisherlab.experiments.base import Claim, Experiment, RunContext
from fisherlab.experiments.kunstner.fig3 import PUBLISHED, grid_search
from fisherlab.experiments.kunstner.preconditioning import (
    linear_problem,
    log10_grid,
    optimum,
    run_batch,
    select,
)
from fisherlab.experiments.registry import register
from fisherlab.experiments.verdicts import fmt, interior

__all__ = ["AppEConfig", "EXPERIMENT"]

SOURCE = "Kunstner et al. 2019, App. E (Balles 2021, Fig. 7.4 and §7.4.3)"
METHODS = ("NGD", "EFGD")
#: Relative loss difference below which EFGD and NGD count as "very few differences".
CLOSE = 0.01


@dataclass
class AppEConfig:
    """Configuration of ``kunstner-app-e``.

    Attributes
    ----------
    dataset : str
        Regression data set.
    factors : tuple of float
        Starting points ``f θ*``, from the closest to the farthest.
    iterations : int
        Iterations from every starting point.
    lr_grid : tuple of (start, stop, num)
        ``log10`` step sizes of the restricted grid search.
    damping_grid : tuple of (start, stop, num)
        ``log10`` dampings of the restricted grid search.
    grid_iterations : int
        Iterations of every grid run (from θ = 0).
    divergence_factor : float
        Early stop of a grid run when its loss exceeds this multiple of the initial loss.
    tie_rtol : float
        Relative tolerance under which two final losses of the grid tie.
    cells_per_batch : int
        Damping values whose runs are computed together.
    """

    dataset: str = "boston"
    factors: tuple[float, ...] = (0.875, 0.75, 0.5, 0.0)
    iterations: int = 20
    lr_grid: tuple[float, float, int] = (-2.0, 3.0, 41)
    damping_grid: tuple[float, float, int] = (-10.0, -4.0, 13)
    grid_iterations: int = 100
    divergence_factor: float = 100.0
    tie_rtol: float = 1e-6
    cells_per_batch: int = 13

    @classmethod
    def preset(cls, quick: bool, seed: int) -> AppEConfig:
        """Quick and full are the same run (a few seconds)."""
        return cls()

    def __post_init__(self) -> None:
        if list(self.factors) != sorted(self.factors, reverse=True):
            raise ValueError(
                f"factors must go from the closest start to the farthest: {self.factors}"
            )


@dataclass
class _GridConfig:
    """The fields :func:`grid_search` reads."""

    lr_grid: tuple[float, float, int]
    damping_grid: tuple[float, float, int]
    iterations: int
    divergence_factor: float
    cells_per_batch: int


def run(cfg: AppEConfig, ctx: RunContext) -> dict[str, Any]:
    """Grid search for NGD and EFGD, then both from every starting point."""
    model, data = linear_problem(cfg.dataset)
    if data.task != "regression":
        raise ValueError(f"kunstner-app-e needs a regression data set, got {cfg.dataset!r}")
    grid_cfg = _GridConfig(
        cfg.lr_grid,
        cfg.damping_grid,
        cfg.grid_iterations,
        cfg.divergence_factor,
        cfg.cells_per_batch,
    )
    finals = grid_search(grid_cfg, ctx, cfg.dataset, model)
    theta_star = optimum(model)
    optimal_loss = float(model.loss(theta_star))
    starts = torch.tensor(cfg.factors, dtype=torch.float64).unsqueeze(1) * theta_star
    selected: dict[str, Any] = {}
    curves: dict[str, list[list[float]]] = {}
    for method in METHODS:
        (lr, damping), best, ties = select(finals[method], cfg.tie_rtol)
        published = PUBLISHED.get(cfg.dataset, {}).get(method)
        cells = {}
        if published is not None:
            flipped = (-published[0], published[1])
            cells = {
                "Table D.5": [*published, finals[method].get(published)],
                "Table D.5, step size sign flipped": [*flipped, finals[method].get(flipped)],
            }
        selected[method] = {
            "log10_lr": lr,
            "log10_damping": damping,
            "grid_final_loss": best,
            "num_ties": len(ties),
            "cells": cells,
        }
        lrs = torch.full((len(cfg.factors),), lr, dtype=torch.float64)
        trajectory = run_batch(
            model,
            method,
            lrs,
            damping,
            cfg.iterations,
            theta0=starts,
            divergence_factor=float("inf"),
        )
        curves[method] = trajectory.losses.T.tolist()  # [start][iteration]
    rows = []
    for i, f in enumerate(cfg.factors):
        initial = curves["NGD"][i][0]
        rows.append(
            [f, initial]
            + [curves[m][i][-1] for m in METHODS]
            + [(curves[m][i][-1] - optimal_loss) / (initial - optimal_loss) for m in METHODS]
        )
    cell_rows = [
        [method, name, lr, damping, loss]
        for method in METHODS
        for name, (lr, damping, loss) in selected[method]["cells"].items()
    ] + [
        [method, "selected", s["log10_lr"], s["log10_damping"], s["grid_final_loss"]]
        for method, s in selected.items()
    ]
    return {
        "dataset": cfg.dataset,
        "optimal_loss": optimal_loss,
        "factors": list(cfg.factors),
        "iterations": cfg.iterations,
        "lr_grid": log10_grid(*cfg.lr_grid),
        "damping_grid": log10_grid(*cfg.damping_grid),
        "selected": selected,
        "curves": curves,
        "tables": {
            f"Loss after {cfg.iterations} iterations from θ0 = f θ*, L* = {fmt(optimal_loss, 7)}": {
                "columns": [
                    "f",
                    "initial loss",
                    "NGD final",
                    "EFGD final",
                    "NGD remaining fraction",
                    "EFGD remaining fraction",
                ],
                "rows": rows,
            },
            f"Grid cells: loss after {cfg.grid_iterations} iterations from θ = 0": {
                "columns": ["method", "cell", "log10 lr", "log10 damping", "final loss"],
                "rows": cell_rows,
            },
        },
    }


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Loss curves of NGD and EFGD from every starting point (thesis Fig. 7.4)."""
    from fisherlab.plotting import method_color, new_figure, save_figure

    fig, axes = new_figure(ncols=1, squeeze=False, panel_size=(6.0, 3.6))
    ax = axes[0][0]
    styles = ("-", "--", "-.", ":")
    for method in METHODS:
        for i, (f, curve) in enumerate(
            zip(results["factors"], results["curves"][method], strict=True)
        ):
            ax.plot(
                curve,
                color=method_color(method),
                ls=styles[i % len(styles)],
                label=f"{method}, θ0 = {f:g} θ*",
            )
    ax.axhline(results["optimal_loss"], color="grey", lw=0.8, label="L*")
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    s = results["selected"]
    ax.set_title(
        f"{results['dataset']}: NGD (lr 10^{s['NGD']['log10_lr']}) and EFGD "
        f"(lr 10^{s['EFGD']['log10_lr']}) from four starts"
    )
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize="small")
    path = Path(out_dir) / "app_e_starting_points.png"
    save_figure(fig, path)
    return [path]


def claims(results: dict[str, Any]) -> list[Claim]:
    """EFGD's progress against the distance of the start; EFGD vs NGD close and far."""
    curves, optimal = results["curves"], results["optimal_loss"]
    factors = results["factors"]
    selected = results["selected"]
    inside = all(interior(selected[m]["log10_lr"], results["lr_grid"]) for m in METHODS)
    hyper = ", ".join(
        f"{m} lr 10^{selected[m]['log10_lr']}, damping 10^{selected[m]['log10_damping']}"
        for m in METHODS
    )
    T = results["iterations"]

    def remaining(method: str, i: int) -> float:
        curve = curves[method][i]
        return (curve[-1] - optimal) / (curve[0] - optimal)

    efgd = [remaining("EFGD", i) for i in range(len(factors))]
    ngd = [remaining("NGD", i) for i in range(len(factors))]
    premise_grid = "the selected step sizes of NGD and EFGD are strictly inside the step-size grid"
    out = [
        Claim(
            claim="EFGD with fixed hyper-parameters performs worse the farther it starts from "
            "the optimum (large initial loss → small steps, slow convergence), measured as "
            "the fraction of the initial suboptimality it leaves",
            measured=f"EFGD remaining fraction of L0 − L* after {T} iterations: "
            + ", ".join(f"f = {f:g}: {fmt(r, 3)}" for f, r in zip(factors, efgd, strict=True))
            + f" (NGD: {fmt(ngd[0], 3)} from every start); {hyper}",
            holds=all(a < b for a, b in zip(efgd[:-1], efgd[1:], strict=True)),
            source=SOURCE,
            criterion="EFGD's (L_T − L*)/(L_0 − L*) increases strictly from the closest "
            "start to the farthest",
            premise=premise_grid,
            premise_holds=inside,
        ),
    ]
    close_ngd, close_efgd = curves["NGD"][0][-1], curves["EFGD"][0][-1]
    far_ngd, far_efgd = curves["NGD"][-1][-1], curves["EFGD"][-1][-1]
    close_start = curves["EFGD"][0][0]
    out.append(
        Claim(
            claim="Close to the minimum there are very few differences between EFGD and NGD; "
            "far from it EFGD is clearly behind",
            measured=f"final loss EFGD / NGD: {fmt(close_efgd / close_ngd)} from θ0 = "
            f"{factors[0]:g} θ* (initial loss {fmt(close_start)}), {fmt(far_efgd / far_ngd)} "
            f"from θ0 = {factors[-1]:g} θ*; L* = {fmt(optimal, 7)}",
            holds=close_efgd <= (1 + CLOSE) * close_ngd and far_efgd > (1 + CLOSE) * far_ngd,
            source=SOURCE,
            criterion=f"L_T(EFGD) ≤ {1 + CLOSE:g}·L_T(NGD) from the closest start and "
            f"> {1 + CLOSE:g}·L_T(NGD) from the farthest",
            premise=f"{premise_grid}, and the closest start's initial loss exceeds NGD's final "
            f"loss by more than {100 * CLOSE:g} %",
            premise_holds=inside and close_start > (1 + CLOSE) * close_ngd,
        )
    )
    return out


EXPERIMENT = register(
    Experiment(
        name="kunstner-app-e",
        title="EF preconditioning and the starting point (Boston)",
        paper="Kunstner et al. 2019, App. E (Balles 2021, Fig. 7.4)",
        description=(
            "NGD and EFGD on Boston linear regression with the step size and damping the grid "
            "search of Fig. 3 selects (restricted to lr 1e-2..1e3 and damping 1e-10..1e-4, "
            "which contains the full grid's selection), from θ0 = f θ* with f = 7/8, 3/4, "
            "1/2, 0 for 20 iterations (the authors' released protocol; the paper gives no "
            "numbers). Same run in quick and full."
        ),
        config_class=AppEConfig,
        run=run,
        plot=plot,
        claims=claims,
        captions={
            "app_e_starting_points.png": "Thesis Fig. 7.4 / Kunstner et al. App. E: loss of "
            "NGD (all starts) and EFGD from four starting points f θ* on Boston, at the "
            "grid-selected hyper-parameters; grey: L*.",
        },
    )
)
