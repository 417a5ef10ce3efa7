r"""``kunstner-fig3``: GD vs NGD vs EF-preconditioned GD on real data (Kunstner et al. Fig. 3).

Protocol (Kunstner et al. App. D.3.3; Balles' thesis App. D, Tables D.3-D.5):

- linear models: least squares (Gaussian likelihood, σ = 1, so
  :math:`L = \frac{1}{2N}\sum_n (x_n^\top\theta - y_n)^2`) for regression and logistic
  regression (Bernoulli) for classification, mean reduction (the thesis reports step
  sizes for the average loss, App. D.3);
- raw features with a bias column of ones appended as the **last** column (the paper does
  not say where the bias goes; the position does not change any result);
- :math:`\theta_0 = 0`, 100 iterations of Eq. D.30-D.32;
- grid (Table D.4): :math:`\gamma \in` ``logspace(-20, 10, 241)``, :math:`\lambda \in`
  ``logspace(-10, 10, 41)``; a run stops when its loss exceeds 100× the initial loss;
- selection: lowest final loss. Cells whose final loss is within ``tie_rtol`` (relative)
  of the minimum *tie*; our pick is the cell with the exactly lowest final loss (as the
  authors' ``argmin``; equal values broken by grid order), and the comparison with
  Table D.5 asks whether the published cell ties with our minimum;
- the cosine-similarity panel: :math:`\cos((\tilde F + \lambda I)^{-1}\nabla L,
  (F + \lambda I)^{-1}\nabla L)` along the path of EFGD with its selected step size and
  damping :math:`\lambda`, the damped solves of the protocol (the thesis says "without
  damping", but the authors' released code solves with the optimizer's damping; an
  undamped pseudo-inverse is a different, ill-conditioned quantity: on BreastCancer it
  flips the sign of the cosine). Points where the gradient is at round-off
  (:func:`~fisherlab.experiments.kunstner.preconditioning.gradient_resolved`) are kept in the
  curve but not judged.

Claims (criteria fixed before the run):

- Table D.5 cells are facts to check: a published cell agrees when its final loss ties
  with the grid minimum within ``tie_rtol`` (relative). Premises: our selected step
  size is strictly inside the step-size grid (else the optimum may lie outside a
  sub-grid), and the ranking is reproducible: run alone, our selection reaches its grid
  value within ``tie_rtol`` and the published cell does not reach a lower loss than it
  (batched and single solves round differently on ill-conditioned problems);
- "EFGD compares unfavourably to NGD": NGD reaches the best loss either method attains,
  :math:`L_\mathrm{best} = \min(L^\mathrm{NGD}_{100}, L^\mathrm{EFGD}_{100})` (grid
  minima), within the tie tolerance in fewer iterations than EFGD (a method that never
  gets there counts as never). Every cell tying at a method's grid minimum is equally
  "selected", so each method is represented by its fastest tying cell
  (:func:`fastest_tie`). On problems where both reach the optimum the comparison is
  one of speed, as in the figure's curves, not of two equal final losses. Premise: both
  selected step sizes are strictly inside the grid;
- Boston, "update directions opposite to the natural gradient": the minimum cosine
  along EFGD's path is at most -0.9; BreastCancer, "even when the direction is correct,
  the magnitude of the steps can lead to poor performance": every judged cosine is
  positive and EFGD (run alone at its selected cell) ends above NGD by more than the tie
  tolerance. Premise: at least
  ten points of the path have a resolved gradient.

Every completed (data set, method, damping) cell is stored, so a killed grid search
resumes where it stopped. ``--quick`` uses a sub-grid that keeps the steps of Table D.4
(1/8 decade in the step size, 1/2 decade in the damping) and contains every value of
Table D.5 for these data sets and the sign-flipped Boston EFGD step size:
:math:`\log_{10}\gamma \in [-6, 2]`, :math:`\log_{10}\lambda \in \{-10, -9.5, \ldots,
-6\}`, on Wine, Boston and BreastCancer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fisherlab.experiments.base import Claim, Experiment, RunContext
from fisherlab.experiments.kunstner.preconditioning import (
    METHODS,
    gradient_resolved,
    linear_problem,
    log10_grid,
    preconditioner,
    run_batch,
    select,
)
from fisherlab.experiments.registry import register
from fisherlab.experiments.verdicts import fmt, interior
from fisherlab.optim.preconditioned import damped_direction

__all__ = [
    "Fig3Config",
    "EXPERIMENT",
    "PUBLISHED",
    "cosine_path",
    "fastest_tie",
    "grid_search",
]

SOURCE = "Kunstner et al. 2019, Fig. 3 / App. D (Balles 2021, Table D.5)"

#: Table D.5 of Balles' thesis (= Kunstner et al. App. D): selected log10 step size and
#: log10 damping after the grid search.
PUBLISHED: dict[str, dict[str, tuple[float, float | None]]] = {
    "boston": {"GD": (-5.25, None), "NGD": (0.125, -10.0), "EFGD": (-1.25, -8.0)},
    "breast-cancer": {"GD": (-5.125, None), "NGD": (0.125, -10.0), "EFGD": (-1.25, -10.0)},
    "a1a": {"GD": (0.25, None), "NGD": (0.25, -10.0), "EFGD": (-0.375, -8.0)},
    "wine": {"GD": (-5.625, None), "NGD": (0.0, -8.5), "EFGD": (-1.375, -6.0)},
    "energy": {"GD": (-5.5, None), "NGD": (0.0, -7.5), "EFGD": (0.875, -3.0)},
    "powerplant": {"GD": (-5.75, None), "NGD": (-0.625, -8.0), "EFGD": (3.375, -1.0)},
    "yacht": {"GD": (-1.5, None), "NGD": (-0.75, -7.5), "EFGD": (1.625, -6.5)},
}

DOWNLOADED = ("a1a", "energy", "powerplant", "yacht")


@dataclass
class Fig3Config:
    """Configuration of ``kunstner-fig3``.

    Attributes
    ----------
    datasets : tuple of str
        Data sets (``fisherlab.datasets`` names).
    lr_grid : tuple of (start, stop, num)
        ``log10`` step sizes, as ``numpy.logspace`` arguments.
    damping_grid : tuple of (start, stop, num)
        ``log10`` damping values.
    iterations : int
        Iterations per run.
    divergence_factor : float
        Early stop when the loss exceeds this multiple of the initial loss.
    tie_rtol : float
        Relative tolerance under which two final losses tie.
    add_bias : bool
        Append a column of ones to the features.
    cells_per_batch : int
        Damping values whose runs are computed together (memory vs speed).
    """

    datasets: tuple[str, ...] = ("breast-cancer", "boston", "wine")
    lr_grid: tuple[float, float, int] = (-20.0, 10.0, 241)
    damping_grid: tuple[float, float, int] = (-10.0, 10.0, 41)
    iterations: int = 100
    divergence_factor: float = 100.0
    tie_rtol: float = 1e-6
    add_bias: bool = True
    cells_per_batch: int = 8

    @classmethod
    def preset(cls, quick: bool, seed: int) -> Fig3Config:
        """Full grid of Table D.4, or the quick sub-grid (see the module docstring)."""
        if quick:
            return cls(lr_grid=(-6.0, 2.0, 65), damping_grid=(-10.0, -6.0, 9))
        return cls()


def grid_search(
    cfg: Fig3Config, ctx: RunContext, name: str, model: Any
) -> dict[str, dict[tuple[float, float | None], float]]:
    """Final losses of every grid cell of data set ``name``, keyed ``(log10 lr, log10 damping)``.

    Cells (one method and damping, all step sizes) are computed in groups of
    ``cfg.cells_per_batch`` and stored one by one in ``ctx.cells("grid-<name>")``, so an
    interrupted search resumes; ``cfg`` needs ``lr_grid``, ``damping_grid``,
    ``iterations``, ``divergence_factor`` and ``cells_per_batch``.
    """
    lrs = log10_grid(*cfg.lr_grid)
    dampings = log10_grid(*cfg.damping_grid)
    store = ctx.cells(f"grid-{name}")
    cells = [("GD", None)] + [(m, d) for m in ("NGD", "EFGD") for d in dampings]

    def key(method: str, damping: float | None) -> str:
        return f"{method}/{'none' if damping is None else damping}"

    missing = [cell for cell in cells if key(*cell) not in store]
    groups = [
        [cell for cell in missing if cell[0] == method][start : start + cfg.cells_per_batch]
        for method in METHODS
        for start in range(0, len(missing), cfg.cells_per_batch)
    ]
    groups = [group for group in groups if group]
    n_lrs = len(lrs)
    for group in ctx.progress(groups, total=len(groups), desc=f"fig3 {name}"):
        method = group[0][0]
        group_lrs = torch.tensor(lrs * len(group), dtype=torch.float64)
        group_dampings = (
            None
            if method == "GD"
            else torch.tensor([d for _, d in group for _ in lrs], dtype=torch.float64)
        )
        trajectory = run_batch(
            model,
            method,
            group_lrs,
            group_dampings,
            cfg.iterations,
            divergence_factor=cfg.divergence_factor,
        )
        final = trajectory.losses[-1].tolist()
        for index, (_, damping) in enumerate(group):
            values = final[index * n_lrs : (index + 1) * n_lrs]
            store.put(key(method, damping), {"final_loss": values})
    finals: dict[str, dict[tuple[float, float | None], float]] = {m: {} for m in METHODS}
    for method, damping in cells:
        values = store.get(key(method, damping))["final_loss"]
        for lr, loss in zip(lrs, values, strict=True):
            finals[method][(lr, damping)] = loss
    return finals


def cosine_path(
    model: Any, lr: float, damping: float, iterations: int
) -> tuple[list[float], list[bool]]:
    r"""Cosine of the damped EF and NG directions along EFGD's path, and which points count.

    At every iterate :math:`\theta_t` of EFGD (step :math:`10^{lr}`, damping
    :math:`\lambda = 10^{damping}`, from :math:`\theta = 0`):
    :math:`\cos\big((\tilde F + \lambda I)^{-1}\nabla L, (F + \lambda I)^{-1}\nabla L\big)`.
    The second list says whether the gradient at that point is resolved above round-off.
    """
    trajectory = run_batch(
        model,
        "EFGD",
        torch.tensor([lr], dtype=torch.float64),
        damping,
        iterations,
        keep_thetas=True,
    )
    thetas = trajectory.thetas[:, 0]
    g = model.gradient(thetas)
    lam = 10.0**damping
    natural = damped_direction(preconditioner(model, "NGD", thetas), g, lam)
    empirical = damped_direction(preconditioner(model, "EFGD", thetas), g, lam)
    denominator = natural.norm(dim=-1) * empirical.norm(dim=-1)
    cosine = (natural * empirical).sum(-1) / denominator
    cosine = torch.where(denominator > 0, cosine, math.nan)
    return cosine.tolist(), gradient_resolved(model, thetas).tolist()


def fastest_tie(
    model: Any,
    method: str,
    ties: list[tuple[float, float | None]],
    target: float,
    rtol: float,
    iterations: int,
) -> dict[str, Any]:
    """Among the cells tying at a method's grid minimum, the one reaching ``target`` first.

    All tying cells are equally "selected" by the lowest-final-loss rule; the speed
    comparison of the claims therefore uses each method's fastest one. Returns the cell and
    the first iteration whose loss is within ``rtol`` (relative) of ``target`` (``None``
    when no tying cell gets there).
    """
    lrs = torch.tensor([lr for lr, _ in ties], dtype=torch.float64)
    dampings = torch.tensor([d for _, d in ties], dtype=torch.float64)
    losses = run_batch(model, method, lrs, dampings, iterations).losses  # (T + 1, R)
    below = losses <= target + rtol * abs(target)
    first = torch.where(below.any(0), below.double().argmax(0), iterations + 1)
    index = int(first.argmin())
    if int(first[index]) > iterations:
        return {"log10_lr": None, "log10_damping": None, "iterations": None}
    lr, damping = ties[index]
    return {"log10_lr": lr, "log10_damping": damping, "iterations": int(first[index])}


def run(cfg: Fig3Config, ctx: RunContext) -> dict[str, Any]:
    """Grid search per data set and method, then curves at the selected hyperparameters."""
    results: dict[str, Any] = {
        "selected": {},
        "published": {},
        "grid": {},
        "curves": {},
        "lr_grid": log10_grid(*cfg.lr_grid),
        "damping_grid": log10_grid(*cfg.damping_grid),
        "tie_rtol": cfg.tie_rtol,
    }
    rows = []
    for name in cfg.datasets:
        model, data = linear_problem(name, cfg.add_bias)
        finals = grid_search(cfg, ctx, name, model)
        results["grid"][name] = {
            method: [[lr, damping, loss] for (lr, damping), loss in cells.items()]
            for method, cells in finals.items()
        }
        selected, curves, all_ties = {}, {}, {}
        for method in METHODS:
            (lr, damping), best, ties = select(finals[method], cfg.tie_rtol)
            all_ties[method] = ties
            published = PUBLISHED.get(name, {}).get(method)
            published_loss = finals[method].get(published) if published else None
            published_ties = published in ties if published else None
            flipped = (-published[0], published[1]) if published else None
            flipped_loss = finals[method].get(flipped) if published else None
            selected[method] = {
                "log10_lr": lr,
                "log10_damping": damping,
                "final_loss": best,
                "num_ties": len(ties),
                "published": list(published) if published else None,
                "published_final_loss": published_loss,
                "published_ties": published_ties,
                "sign_flipped_final_loss": flipped_loss,
                "sign_flipped_ties": flipped in ties if published else None,
            }
            trajectory = run_batch(
                model, method, torch.tensor([lr], dtype=torch.float64), damping, cfg.iterations
            )
            curves[method] = [float(v) for v in trajectory.losses[:, 0]]
            if published is not None:
                trajectory = run_batch(
                    model,
                    method,
                    torch.tensor([published[0]], dtype=torch.float64),
                    published[1],
                    cfg.iterations,
                )
                curves[f"{method} (Table D.5)"] = [float(v) for v in trajectory.losses[:, 0]]
            rows.append(
                [
                    name,
                    method,
                    lr,
                    damping,
                    best,
                    len(ties),
                    None if published is None else published[0],
                    None if published is None else published[1],
                    published_loss,
                    published_ties,
                ]
            )
        target = min(selected[m]["final_loss"] for m in ("NGD", "EFGD"))
        results.setdefault("speed", {})[name] = {
            "target": target,
            **{
                m: fastest_tie(model, m, all_ties[m], target, cfg.tie_rtol, cfg.iterations)
                for m in ("NGD", "EFGD")
            },
        }
        efgd = selected["EFGD"]
        curves["cosine_EF_NGD"], curves["cosine_resolved"] = cosine_path(
            model, efgd["log10_lr"], efgd["log10_damping"], cfg.iterations
        )
        results["selected"][name] = selected
        results["curves"][name] = curves
        results["published"][name] = {"N": data.N, "D": data.D, "task": data.task}
    results["tables"] = {
        "Selected hyperparameters (log10) vs Table D.5": {
            "columns": [
                "data set",
                "method",
                "log10 lr",
                "log10 damping",
                "final loss",
                "# ties",
                "Table D.5 lr",
                "Table D.5 damping",
                "final loss at Table D.5 cell",
                "Table D.5 cell ties with our optimum",
            ],
            "rows": rows,
        }
    }
    results["protocol"] = {
        "bias": "column of ones appended last" if cfg.add_bias else "no bias",
        "loss": "mean over samples; Gaussian sigma=1 (half squared error); Bernoulli logits",
        "tie_break": "exactly lowest final loss (equal values: grid order); ties within tie_rtol",
        "features": "raw (not standardized)",
    }
    return results


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Loss curves (top) and EF/NGD cosine along the EFGD path (bottom), per data set.

    Solid: our selected hyperparameters; dashed: the published ones where they differ.
    """
    from fisherlab.plotting import method_color, new_figure, save_figure

    names = list(results["curves"])
    fig, axes = new_figure(nrows=2, ncols=len(names), squeeze=False, sharex="col")
    for column, name in enumerate(names):
        curves = results["curves"][name]
        ax = axes[0][column]
        for method in METHODS:
            ax.plot(curves[method], color=method_color(method), label=method)
            published = curves.get(f"{method} (Table D.5)")
            if published is not None and published != curves[method]:
                ax.plot(
                    published,
                    color=method_color(method),
                    ls="--",
                    lw=1,
                    label=f"{method} at Table D.5 values",
                )
        ax.set_yscale("log")
        ax.set_title(name)
        ax.legend()
        cos_ax = axes[1][column]
        resolved = curves.get("cosine_resolved", [True] * len(curves["cosine_EF_NGD"]))
        cosines = curves["cosine_EF_NGD"]
        for keep, style in ((True, "o"), (False, "x")):
            steps = [t for t, r in enumerate(resolved) if r == keep]
            if steps:
                cos_ax.plot(
                    steps,
                    [cosines[t] for t in steps],
                    style,
                    ms=2.5,
                    color=method_color("EFGD") if keep else "grey",
                    ls="none",
                    label=None if keep else "gradient at round-off",
                )
        if not all(resolved):
            cos_ax.legend()
        cos_ax.axhline(0.0, color="grey", lw=0.5)
        cos_ax.set_ylim(-1.05, 1.05)
        cos_ax.set_xlabel("iteration")
    axes[0][0].set_ylabel("loss")
    axes[1][0].set_ylabel("cos(EF step, NG step), damped")
    fig.suptitle("GD, NGD and EFGD at the selected hyper-parameters; cosine along EFGD's path")
    path = Path(out_dir) / "fig3.png"
    save_figure(fig, path)
    return [path]


def _damping_text(damping: float | None) -> str:
    return "-" if damping is None else f"10^{damping}"


def _table_claim(results: dict[str, Any], name: str, method: str) -> Claim:
    """Claim: the published Table D.5 cell ties with our grid minimum."""
    s = results["selected"][name][method]
    lr, damping = s["published"]
    tie = results.get("tie_rtol", 1e-6)
    curves = results["curves"][name]
    alone = curves[method][-1]
    published_alone = curves.get(f"{method} (Table D.5)", [alone])[-1]
    on_grid = s["published_final_loss"] is not None
    inside = interior(s["log10_lr"], results["lr_grid"]) if "lr_grid" in results else True
    # run alone, our selection must reproduce its grid value, and the published cell, if it
    # does not tie, must not beat it: otherwise the ranking is an artefact of rounding
    reproducible = abs(alone - s["final_loss"]) <= tie * abs(s["final_loss"]) and (
        s["published_ties"] or not published_alone <= alone * (1 + tie)
    )
    measured = (
        f"ours: lr 10^{s['log10_lr']}, damping {_damping_text(s['log10_damping'])}, final loss "
        f"{fmt(s['final_loss'], 7)} ({s['num_ties']} tying cells); at the published cell: "
        f"{'not on the grid' if not on_grid else fmt(s['published_final_loss'], 7)}"
    )
    if on_grid and not (s["published_ties"] and reproducible):
        measured += f"; run alone: published cell {fmt(published_alone, 7)}, ours {fmt(alone, 7)}"
        flipped = s.get("sign_flipped_final_loss")
        if lr != 0 and flipped is not None:
            measured += (
                f"; at lr 10^{-lr} (the published value with the opposite sign), damping "
                f"{_damping_text(damping)}: {fmt(flipped, 7)}"
                + (", which ties with the minimum" if s.get("sign_flipped_ties") else "")
            )
    return Claim(
        claim=f"Table D.5, {name} {method}: grid search selects lr 10^{lr}"
        + ("" if damping is None else f", damping 10^{damping}"),
        measured=measured,
        holds=bool(s["published_ties"]),
        source=SOURCE,
        criterion=f"the published cell's final loss after the 100 iterations ties with the "
        f"grid minimum: |L(published) − L_min| ≤ {tie:g}·L_min",
        premise="the published cell is on the grid, our selected step size is strictly inside "
        "the step-size grid, and the ranking is not an artefact of rounding: run alone, our "
        "selection reproduces its grid value within the tie tolerance and the published cell "
        "does not beat it",
        premise_holds=on_grid and inside and reproducible,
    )


def _resolved_cosines(curves: dict[str, Any]) -> list[float]:
    cosines = curves["cosine_EF_NGD"]
    resolved = curves.get("cosine_resolved", [True] * len(cosines))
    return [c for c, r in zip(cosines, resolved, strict=True) if r and math.isfinite(c)]


def _speed_text(speed: dict[str, Any]) -> str:
    if speed["iterations"] is None:
        return "never"
    return (
        f"{speed['iterations']} (lr 10^{speed['log10_lr']}, damping "
        f"{_damping_text(speed['log10_damping'])})"
    )


def claims(results: dict[str, Any]) -> list[Claim]:
    """Table D.5 agreement, NGD vs EFGD final losses, and the cosine along EFGD's path."""
    out = []
    tie = results.get("tie_rtol", 1e-6)
    for name, selected in results["selected"].items():
        for method, s in selected.items():
            if s["published"] is not None:
                out.append(_table_claim(results, name, method))
    lr_grid = results.get("lr_grid")
    for name, selected in results["selected"].items():
        speed = results["speed"][name]
        reached = {m: speed[m]["iterations"] for m in ("NGD", "EFGD")}
        inside = lr_grid is None or all(
            interior(selected[m]["log10_lr"], lr_grid) for m in ("NGD", "EFGD")
        )
        out.append(
            Claim(
                claim=f"{name}: EF-preconditioned GD compares unfavourably to NGD (tuned "
                "hyper-parameters, 100 iterations from θ = 0)",
                measured=f"grid minimum NGD {fmt(selected['NGD']['final_loss'], 7)}, EFGD "
                f"{fmt(selected['EFGD']['final_loss'], 7)}; iterations to reach "
                f"{fmt(speed['target'], 7)} (within {tie:g}), fastest tying cell: "
                + ", ".join(f"{m} {_speed_text(speed[m])}" for m in ("NGD", "EFGD")),
                holds=reached["NGD"] is not None
                and (reached["EFGD"] is None or reached["NGD"] < reached["EFGD"]),
                source=SOURCE,
                criterion="NGD reaches L_best = min(grid minimum of NGD, of EFGD) within the "
                "tie tolerance in fewer iterations than EFGD, each with its fastest cell "
                "among those tying at its grid minimum (never counts as infinitely many)",
                premise="both selected step sizes are strictly inside the step-size grid",
                premise_holds=inside,
            )
        )
    curves = results["curves"]
    if "boston" in curves:
        cos = _resolved_cosines(curves["boston"])
        out.append(
            Claim(
                claim="Boston: along the EFGD path the EF direction can point almost opposite "
                "to the natural gradient",
                measured=f"minimum damped cosine along the path "
                f"{fmt(min(cos), 3) if cos else 'nan'} over {len(cos)} points with a "
                "resolved gradient",
                holds=bool(cos) and min(cos) <= -0.9,
                source="Kunstner et al. 2019, Fig. 3 (bottom row) and Sec. 4.3",
                criterion="min cos((EF + λI)⁻¹∇L, (F + λI)⁻¹∇L) along EFGD's path ≤ −0.9",
                premise="at least ten points of EFGD's path have a gradient resolved above "
                "round-off",
                premise_holds=len(cos) >= 10,
            )
        )
    if "breast-cancer" in curves:
        cos = _resolved_cosines(curves["breast-cancer"])
        ngd = curves["breast-cancer"]["NGD"][-1]
        efgd = curves["breast-cancer"]["EFGD"][-1]
        out.append(
            Claim(
                claim="BreastCancer: even when the EF direction is correct, the magnitude of "
                "the steps leads to poor performance",
                measured=f"damped cosine along EFGD's path in [{fmt(min(cos), 3)}, "
                f"{fmt(max(cos), 3)}] over {len(cos)} resolved points; final loss at the "
                f"selected cells EFGD {fmt(efgd, 7)} vs NGD {fmt(ngd, 7)}"
                if cos
                else "no resolved points",
                holds=bool(cos) and min(cos) > 0 and efgd - ngd > tie * ngd,
                source="Kunstner et al. 2019, Fig. 3 (caption)",
                criterion=f"every judged cosine > 0 and L_EFGD − L_NGD > {tie:g}·L_NGD",
                premise="at least ten points of EFGD's path have a gradient resolved above "
                "round-off",
                premise_holds=len(cos) >= 10,
            )
        )
    return out


EXPERIMENT = register(
    Experiment(
        name="kunstner-fig3",
        full_seconds=95,
        title="GD vs NGD vs EF-preconditioned GD on linear models (grid search)",
        paper="Kunstner et al. 2019, Fig. 3 and Table D.5",
        description=(
            "Linear/logistic regression on raw features with a bias column, 100 iterations "
            "from θ=0 for every cell of the step-size × damping grid of Table D.4 "
            "(quick: a sub-grid containing all published values, lr 1e-6..1e2, damping "
            "1e-10..1e-6), selection by lowest final loss, curves at the selected values and "
            "the damped EF/NG cosine along EFGD's path. Data sets: Boston, BreastCancer and "
            "Wine (a1a and the other App. D sets need a download)."
        ),
        config_class=Fig3Config,
        run=run,
        plot=plot,
        claims=claims,
        captions={
            "fig3.png": "Kunstner et al. Fig. 3 / thesis Fig. 7.3: loss of GD, NGD and EFGD at "
            "the grid-selected hyper-parameters (dashed: the Table D.5 cell where it "
            "differs), and below the cosine between the damped EF and NG directions along "
            "EFGD's path (grey crosses: gradient at round-off, not judged).",
        },
    )
)
