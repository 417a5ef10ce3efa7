r"""``kunstner-fig1``: gradient, natural-gradient and EF-preconditioned vector fields.

Kunstner et al. (2019), Fig. 1 and App. D.3.1 (Balles' thesis App. D.3.1): linear least
squares on :math:`N = 1000` points :math:`x \sim \mathrm{Lognormal}(0, 3/4)`,
:math:`y = 2 + 2x + \epsilon` (``fisherlab.datasets.load("kunstner-fig1")``), with
:math:`\theta = (b, w)` (intercept, slope). For each of GD, NGD and EF-preconditioned GD
(Eq. D.30-D.32) the figure shows the vector field of the update direction and four
trajectories.

Protocol (the choices the paper leaves open are marked *ours*):

- loss: mean reduction, Gaussian likelihood with :math:`\sigma = 1`, i.e.
  :math:`L = \frac{1}{2N}\sum_n (x_n^\top\theta - y_n)^2` (the thesis's convention,
  App. D.3); :math:`F`, :math:`\tilde F` and :math:`\nabla L` from
  :class:`~fisherlab.engine.glm.LinearModel`, the damped solve from
  :func:`fisherlab.optim.preconditioned.damped_direction`;
- trajectories: :func:`~fisherlab.experiments.kunstner.preconditioning.run_batch` from the four
  starts (2, 4.5), (1, 0), (4.5, 3), (-0.5, 3) with step :math:`\gamma = 10^{-4}`, damping
  :math:`\lambda = 10^{-8}` and 50,000 iterations (as in the thesis; the authors' released
  code uses :math:`\gamma = 10^{-3}`); no early stopping;
- vector fields (*ours*): the negative update directions :math:`-\nabla L`,
  :math:`-(F + \lambda I)^{-1}\nabla L`, :math:`-(\tilde F + \lambda I)^{-1}\nabla L` with
  the same damping, multiplied by the paper's relative factors 1/3, 1 and 3, on a
  15 × 15 grid over the window :math:`[-1, 5]^2` (= the true parameter (2, 2) ± 3, the
  window of the released code). Arrows are *not* normalised: all three panels share one
  arrow scale, chosen so that the 95th percentile of the displayed arrow lengths (over
  all three fields) is 1.1 grid spacings, so arrow lengths compare across panels as in
  the paper;
- field statistics (*ours*): on a finer 61 × 61 grid over the same window, the cosine
  between the EF-preconditioned and the natural-gradient direction, and the cosine of
  each direction with the direction to the least-squares optimum :math:`\theta^*`
  (which the natural gradient points to exactly: here :math:`F = \nabla^2 L`);
- path straightness :math:`\|\theta_T - \theta_0\| / \sum_t \|\theta_{t+1} - \theta_t\|`
  over the full trajectory; the trajectories are stored thinned to at most 1,000 points
  per run for the figure.

Claims (criteria fixed before the run): NGD's paths are straight (straightness ≥ 0.99)
and end within 5 % of their initial distance to :math:`\theta^*`, with the premise that
some GD path is bent (so curvature matters; on this quadratic :math:`F = \nabla^2 L` and
NGD's straightness is exact); EFGD's closest end point is farther from :math:`\theta^*`
than NGD's farthest (premise: NGD converges); the EF field differs from the NG field
(more than 10 % of the grid with cosine < 0.9, minimum < 0.5) and is on average less
aligned with :math:`\theta^* - \theta` than the GD field (premise: the NG field points at
:math:`\theta^*` everywhere, cosine ≥ 0.999).

``--quick`` runs 5,000 iterations with :math:`\gamma = 10^{-3}`, i.e. the same
integration time :math:`\gamma T = 5` with ten times fewer, larger steps (the full run
takes about 35 s on one idle core, the quick one a few seconds); every other setting
is the full one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fisherlab.experiments.base import Claim, Experiment, RunContext
from fisherlab.experiments.kunstner.preconditioning import METHODS, run_batch
from fisherlab.experiments.registry import register
from fisherlab.experiments.verdicts import fmt

__all__ = ["Fig1Config", "EXPERIMENT", "STARTS", "FIELD_SCALES"]

SOURCE = "Kunstner et al. 2019, Fig. 1 / App. D.3.1"

#: Starting points of the trajectories (App. D.3.1), as (intercept, slope).
STARTS: tuple[tuple[float, float], ...] = ((2.0, 4.5), (1.0, 0.0), (4.5, 3.0), (-0.5, 3.0))

#: Relative display factors of the three vector fields (App. D.3.1).
FIELD_SCALES: dict[str, float] = {"GD": 1.0 / 3.0, "NGD": 1.0, "EFGD": 3.0}

#: Straightness above which a path counts as (nearly) straight.
STRAIGHT = 0.99
#: Cosine below which two directions count as different.
COSINE_THRESHOLD = 0.9


@dataclass
class Fig1Config:
    """Configuration of ``kunstner-fig1``.

    Attributes
    ----------
    seed : int
        Seed of the data set.
    n : int
        Number of samples.
    starts : tuple of (float, float)
        Starting points ``(intercept, slope)``.
    log10_lr : float
        Step size exponent.
    log10_damping : float
        Damping exponent (trajectories and fields).
    iterations : int
        Iterations per trajectory.
    window : tuple of (float, float)
        Range of both parameters for the fields and the panels.
    grid : int
        Arrows per axis in the figure.
    stats_grid : int
        Points per axis of the grid for the field statistics.
    max_points : int
        Trajectories are stored thinned to at most this many points.
    """

    seed: int = 0
    n: int = 1000
    starts: tuple[tuple[float, float], ...] = STARTS
    log10_lr: float = -4.0
    log10_damping: float = -8.0
    iterations: int = 50_000
    window: tuple[float, float] = (-1.0, 5.0)
    grid: int = 15
    stats_grid: int = 61
    max_points: int = 1000

    @classmethod
    def preset(cls, quick: bool, seed: int) -> Fig1Config:
        """Full protocol, or quick: same γT with 10× fewer, 10× larger steps."""
        if quick:
            return cls(seed=seed, log10_lr=-3.0, iterations=5_000)
        return cls(seed=seed)


def _model(cfg: Fig1Config) -> tuple[Any, Any]:
    from fisherlab import datasets
    from fisherlab.engine.glm import LinearModel
    from fisherlab.likelihoods import Gaussian

    data = datasets.load("kunstner-fig1", seed=cfg.seed, n=cfg.n)
    return LinearModel(data.X, data.y, Gaussian(sigma=1.0)), data


def _directions(model: Any, theta: torch.Tensor, damping: float) -> dict[str, torch.Tensor]:
    """Update directions of GD, NGD and EFGD at ``theta`` ``(..., 2)`` (before the minus)."""
    from fisherlab.experiments.kunstner.preconditioning import preconditioner
    from fisherlab.optim.preconditioned import damped_direction

    gradient = model.gradient(theta)
    out = {"GD": gradient}
    for method in ("NGD", "EFGD"):
        out[method] = damped_direction(preconditioner(model, method, theta), gradient, damping)
    return out


def _grid(window: tuple[float, float], num: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Axis values ``(num,)`` and points ``(num, num, 2)`` with ``[i, j] = (b_j, w_i)``."""
    axis = torch.linspace(window[0], window[1], num, dtype=torch.float64)
    w, b = torch.meshgrid(axis, axis, indexing="ij")
    return axis, torch.stack([b, w], dim=-1)


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))


def run(cfg: Fig1Config, ctx: RunContext) -> dict[str, Any]:
    """Optimum, fields on the grids and trajectories of the three methods."""
    model, data = _model(cfg)
    damping = 10.0**cfg.log10_damping
    zero = torch.zeros(2, dtype=torch.float64)
    # the loss is quadratic: one Newton step from anywhere lands on the optimum
    optimum = zero - torch.linalg.solve(model.hessian(zero), model.gradient(zero))
    optimum_loss = float(model.loss(optimum))

    axis, points = _grid(cfg.window, cfg.grid)
    directions = _directions(model, points, damping)
    fields = {m: (-FIELD_SCALES[m] * directions[m]).permute(2, 0, 1).tolist() for m in METHODS}
    loss_axis, loss_points = _grid(cfg.window, 101)
    loss_grid = model.loss(loss_points)

    _, stats_points = _grid(cfg.window, cfg.stats_grid)
    stats = _directions(model, stats_points, damping)
    to_optimum = optimum - stats_points
    cos_ef_ngd = _cosine(stats["EFGD"], stats["NGD"])
    cos_to_optimum = {m: _cosine(-stats[m], to_optimum) for m in METHODS}

    starts = torch.tensor(cfg.starts, dtype=torch.float64)
    R = starts.shape[0]
    stride = max(1, math.ceil(cfg.iterations / cfg.max_points))
    trajectories: dict[str, list[dict[str, Any]]] = {}
    rows = []
    for method in ctx.progress(METHODS, total=len(METHODS), desc="fig1"):
        trajectory = run_batch(
            model,
            method,
            torch.full((R,), cfg.log10_lr, dtype=torch.float64),
            None if method == "GD" else cfg.log10_damping,
            cfg.iterations,
            theta0=starts,
            divergence_factor=math.inf,
            keep_thetas=True,
        )
        thetas = trajectory.thetas  # (T + 1, R, 2)
        steps = (thetas[1:] - thetas[:-1]).norm(dim=-1)
        path_length = steps.sum(0)
        keep = list(range(0, cfg.iterations + 1, stride))
        if keep[-1] != cfg.iterations:
            keep.append(cfg.iterations)
        runs = []
        for r in range(R):
            run_record = {
                "start": thetas[0, r].tolist(),
                "final": thetas[-1, r].tolist(),
                "path_length": float(path_length[r]),
                "initial_loss": float(trajectory.losses[0, r]),
                "final_loss": float(trajectory.losses[-1, r]),
                "path": thetas[keep, r].tolist(),
            }
            runs.append(run_record)
            distance = math.dist(run_record["final"], optimum.tolist())
            straightness = math.dist(run_record["final"], run_record["start"]) / float(
                path_length[r]
            )
            rows.append(
                [
                    method,
                    f"({cfg.starts[r][0]:g}, {cfg.starts[r][1]:g})",
                    straightness,
                    math.dist(run_record["start"], optimum.tolist()),
                    distance,
                    run_record["final_loss"] - optimum_loss,
                ]
            )
        trajectories[method] = runs

    def fraction_below(c: torch.Tensor) -> float:
        return float((c < COSINE_THRESHOLD).double().mean())

    field_rows = [
        [
            "cos(EF step, NG step)",
            float(cos_ef_ngd.min()),
            float(cos_ef_ngd.mean()),
            fraction_below(cos_ef_ngd),
        ],
    ] + [
        [f"cos({m} step, θ* − θ)", float(c.min()), float(c.mean()), fraction_below(c)]
        for m, c in cos_to_optimum.items()
    ]
    return {
        "data": {
            "x": [round(v, 5) for v in data.X[:, 1].tolist()],
            "y": [round(v, 5) for v in data.y.tolist()],
        },
        "optimum": optimum.tolist(),
        "optimum_loss": optimum_loss,
        "lr": 10.0**cfg.log10_lr,
        "damping": damping,
        "iterations": cfg.iterations,
        "field": {
            "axis": axis.tolist(),
            "scales": FIELD_SCALES,
            "vectors": fields,  # method -> [component][i (slope)][j (intercept)]
        },
        "loss_grid": {"axis": loss_axis.tolist(), "values": loss_grid.tolist()},
        "field_stats": {
            "grid": cfg.stats_grid,
            "cos_ef_ngd": cos_ef_ngd.flatten().tolist(),
            "cos_to_optimum": {m: c.flatten().tolist() for m, c in cos_to_optimum.items()},
        },
        "trajectories": trajectories,
        "tables": {
            "Trajectories": {
                "columns": [
                    "method",
                    "start",
                    "straightness",
                    "‖θ_0 − θ*‖",
                    "‖θ_T − θ*‖",
                    "L(θ_T) − L(θ*)",
                ],
                "rows": rows,
            },
            f"Update directions over the window ({cfg.stats_grid}² grid)": {
                "columns": ["cosine", "min", "mean", f"fraction < {COSINE_THRESHOLD}"],
                "rows": field_rows,
            },
        },
    }


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Four panels: data and fit; GD, NGD and EF-preconditioned fields with trajectories."""
    import numpy as np

    from fisherlab.plotting import method_color, new_figure, save_figure

    fig, axes = new_figure(ncols=4, panel_size=(3.2, 3.2))
    b_star, w_star = results["optimum"]

    ax = axes[0]
    x, y = np.asarray(results["data"]["x"]), np.asarray(results["data"]["y"])
    ax.plot(x, y, ".", ms=2, alpha=0.35, color="#56B4E9")
    xs = np.linspace(-1, 10, 2)
    ax.plot(xs, b_star + w_star * xs, "--", color="k", lw=2, label=r"$y = b + w x$ (fit)")
    ax.set_xlim(-1, 10)
    ax.set_ylim(-2, 22)
    ax.set_xlabel("$x$")
    ax.set_ylabel("$y$")
    ax.set_title("Data")
    ax.legend(loc="upper left")

    axis = np.asarray(results["field"]["axis"])
    vectors = {m: np.asarray(v) for m, v in results["field"]["vectors"].items()}
    spacing = axis[1] - axis[0]
    lengths = np.concatenate([np.hypot(v[0], v[1]).ravel() for v in vectors.values()])
    scale = float(np.quantile(lengths, 0.95)) / (1.1 * spacing)  # vector units per data unit
    loss_axis = np.asarray(results["loss_grid"]["axis"])
    loss = np.asarray(results["loss_grid"]["values"])
    levels = results["optimum_loss"] + np.geomspace(0.05, 0.5, 5) * (
        loss.max() - results["optimum_loss"]
    )
    titles = {"GD": "GD", "NGD": "NGD", "EFGD": "EF"}
    for ax, method in zip(axes[1:], METHODS, strict=True):
        ax.contour(loss_axis, loss_axis, loss, levels=levels, colors="k", alpha=0.25, linewidths=1)
        u, v = vectors[method]
        ax.quiver(
            axis,
            axis,
            u,
            v,
            angles="xy",
            scale_units="xy",
            scale=scale,
            color="#444444",
            width=0.005,
            headwidth=3,
            headlength=3.5,
            headaxislength=3,
        )
        for run_record in results["trajectories"][method]:
            path = np.asarray(run_record["path"])
            ax.plot(path[:, 0], path[:, 1], "-", color=method_color(method), lw=3, alpha=0.9)
            ax.plot(*path[0], "h", color="k", ms=6)
            ax.plot(*path[-1], "*", color="k", ms=8)
        ax.plot(b_star, w_star, "+", color="k", ms=10, mew=2)
        ax.set_xlim(axis[0], axis[-1])
        ax.set_ylim(axis[0], axis[-1])
        ax.set_aspect("equal")
        ax.grid(False)
        ax.set_xlabel("intercept $b$")
        ax.set_ylabel("slope $w$")
        factor = results["field"]["scales"][method]
        ax.set_title(f"{titles[method]} (field × {factor:.3g})")
    fig.suptitle("Linear least squares: GD, NGD and EF-preconditioned fields and trajectories")
    path_out = Path(out_dir) / "fig1.png"
    save_figure(fig, path_out)
    return [path_out]


def _summary(results: dict[str, Any], method: str) -> dict[str, float]:
    optimum = results["optimum"]
    runs = results["trajectories"][method]
    straight = [
        math.dist(r["final"], r["start"]) / r["path_length"] if r["path_length"] > 0 else 1.0
        for r in runs
    ]
    distance = [math.dist(r["final"], optimum) for r in runs]
    start_distance = [math.dist(r["start"], optimum) for r in runs]
    return {
        "min_straightness": min(straight),
        "max_distance": max(distance),
        "min_distance": min(distance),
        "max_relative_distance": max(d / s for d, s in zip(distance, start_distance, strict=True)),
    }


#: Cosine with the direction to θ* that the natural-gradient field must reach everywhere.
NG_ALIGNED = 0.999


def claims(results: dict[str, Any]) -> list[Claim]:
    """Straight NGD paths to θ*, EFGD ends far from θ*, EF vs NG field directions."""
    ngd, efgd, gd = (_summary(results, m) for m in ("NGD", "EFGD", "GD"))
    T, lr = results["iterations"], results["lr"]
    ngd_converges = ngd["max_relative_distance"] < 0.05
    stats = results["field_stats"]
    to_opt = stats["cos_to_optimum"]
    ng_aligned = min(to_opt["NGD"]) >= NG_ALIGNED
    premise_field = (
        f"the natural-gradient field points at θ* over the whole window (cos ≥ {NG_ALIGNED}), "
        "so it is the curvature-adapted reference"
    )
    out = [
        Claim(
            claim="NGD adapts to the curvature: its trajectories run along nearly straight "
            "lines to the optimum.",
            measured=f"after {T} steps of {lr:g}: min straightness {fmt(ngd['min_straightness'])}"
            f"; max ‖θ_T − θ*‖ {fmt(ngd['max_distance'], 3)} "
            f"({fmt(100 * ngd['max_relative_distance'], 2)} % of the initial distance); GD's "
            f"min straightness {fmt(gd['min_straightness'])}",
            holds=ngd["min_straightness"] >= STRAIGHT and ngd_converges,
            source=SOURCE,
            criterion=f"every NGD path has straightness ≥ {STRAIGHT} and ends within 5 % of its "
            "initial distance to θ*",
            premise=f"the curvature matters: some GD path from the same starts is bent "
            f"(straightness < {STRAIGHT})",
            premise_holds=gd["min_straightness"] < STRAIGHT,
        ),
        Claim(
            claim="Preconditioning with the EF distorts the optimization: with the same step "
            "size and number of steps EFGD ends farther from the optimum than NGD.",
            measured=f"‖θ_T − θ*‖: EFGD in [{fmt(efgd['min_distance'], 3)}, "
            f"{fmt(efgd['max_distance'], 3)}] (up to {fmt(100 * efgd['max_relative_distance'], 3)}"
            f" % of the initial distance; min straightness {fmt(efgd['min_straightness'])}), "
            f"NGD at most {fmt(ngd['max_distance'], 3)}",
            holds=efgd["min_distance"] > ngd["max_distance"],
            source=SOURCE,
            criterion="the closest EFGD end point is farther from θ* than the farthest NGD end "
            "point",
            premise="NGD converges with this step size and number of steps (every run ends "
            "within 5 % of its initial distance to θ*)",
            premise_holds=ngd_converges,
        ),
    ]
    cos = stats["cos_ef_ngd"]
    fraction = sum(c < COSINE_THRESHOLD for c in cos) / len(cos)
    out.append(
        Claim(
            claim="The EF-preconditioned gradient field is distorted: over the window its "
            "direction differs from the natural gradient's.",
            measured=f"cos(EF step, NG step) on a {stats['grid']}² grid: minimum "
            f"{fmt(min(cos), 3)}, {fmt(100 * fraction, 3)} % of the points below "
            f"{COSINE_THRESHOLD}",
            holds=fraction > 0.1 and min(cos) < 0.5,
            source=SOURCE,
            criterion=f"more than 10 % of the grid points have cos < {COSINE_THRESHOLD} and "
            "the minimum cosine is below 0.5",
            premise=premise_field,
            premise_holds=ng_aligned,
        )
    )
    mean = {m: sum(v) / len(v) for m, v in to_opt.items()}
    out.append(
        Claim(
            claim="The EF distorts the gradient field in a way that leads to worse updates "
            "than gradient descent (measured: alignment with the direction to θ*).",
            measured="mean cos(update, θ* − θ) over the grid: "
            + ", ".join(f"{m} {fmt(mean[m], 3)}" for m in METHODS)
            + f"; minimum for EF {fmt(min(to_opt['EFGD']), 3)}, for GD "
            f"{fmt(min(to_opt['GD']), 3)}",
            holds=mean["EFGD"] < mean["GD"],
            source="Kunstner et al. 2019, Sec. 1 (Fig. 1)",
            criterion="the grid mean of cos(EF step, θ* − θ) is below that of the GD step",
            premise=premise_field,
            premise_holds=ng_aligned,
        )
    )
    return out


EXPERIMENT = register(
    Experiment(
        name="kunstner-fig1",
        full_seconds=40,
        title="Vector fields of GD, NGD and EF-preconditioned GD on linear regression",
        paper="Kunstner et al. 2019, Fig. 1 (App. D.3.1)",
        description=(
            "Linear least squares (N = 1000, y = 2 + 2x + ε, mean loss, σ = 1): the fields "
            "−∇L, −(F+λI)⁻¹∇L, −(EF+λI)⁻¹∇L (λ = 1e-8, shown × 1/3, 1, 3) on [−1, 5]² and "
            "trajectories from four starts, γ = 1e-4 for 50,000 iterations (quick: γ = 1e-3 "
            "for 5,000, the same γT); path straightness, distance to θ*, and the cosine "
            "between the EF and NG directions over the window."
        ),
        config_class=Fig1Config,
        run=run,
        plot=plot,
        claims=claims,
        captions={
            "fig1.png": "Kunstner et al. Fig. 1: the data and least-squares fit, then the "
            "vector fields of −∇L (× 1/3), the natural gradient and the EF-preconditioned "
            "gradient (× 3) with trajectories from the four starts of App. D.3.1 (hexagon: "
            "start, star: end, +: θ*).",
        },
    )
)
