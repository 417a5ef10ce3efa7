r"""``kunstner-variance-adaptation``: the EF as gradient-noise information (Kunstner et al. §5).

Two measurements on the linear models of ``kunstner-fig3`` (same protocol: raw features,
a bias column appended last, mean reduction):

1. **Expected error of variance-adapted stochastic gradients.** For a stochastic gradient
   :math:`g` with mean :math:`\mu = \nabla L` and covariance :math:`\Sigma_B` and a matrix
   :math:`M`,

   .. math:: E(M) = \mathbb E\|M g - \mu\|^2 = \|(M - I)\mu\|^2 + \mathrm{tr}(M\Sigma_B M^\top),

   computed exactly for :math:`M = I` (plain), the diagonal factors
   :math:`D_{ii} = \mu_i^2 / (\mu_i^2 + [\Sigma_B]_{ii})` of Schaul et al. / Balles &
   Hennig (optimal among diagonal matrices), Eq. 19 as printed,
   :math:`M_{19} = (\Sigma_B + \mu\mu^\top)^{-1}\mu\mu^\top`, and the minimiser over all
   matrices :math:`M^\star`. :math:`\Sigma` is the one-sample gradient covariance of
   :class:`fisherlab.engine.glm.LinearModel` (``EF − ∇L∇Lᵀ``, Eq. 18).

   *Derivation of* :math:`M^\star`. With :math:`S = \mathbb E[g g^\top] = \Sigma_B +
   \mu\mu^\top`, :math:`E(M) = \mathrm{tr}(M S M^\top) - 2\mu^\top M\mu + \|\mu\|^2`, a convex
   quadratic in :math:`M` (:math:`S \succ 0`) with gradient :math:`2MS - 2\mu\mu^\top`.
   Setting it to zero gives

   .. math:: M^\star = \mu\mu^\top S^{-1} = \nabla L\nabla L^\top (N\tilde F)^{-1}
             = M_{19}^\top,

   the transpose of Eq. 19: the two agree only when :math:`S^{-1}` and
   :math:`\mu\mu^\top` commute, i.e. when :math:`\mu` is an eigenvector of
   :math:`\Sigma`. The minimum is :math:`E(M^\star) = \|\mu\|^2(1 - \mu^\top S^{-1}\mu) =
   \|\mu\|^2 / (1 + \mu^\top\Sigma_B^{-1}\mu)` (Sherman-Morrison), and :math:`M^\star g =
   \mu\,(\mu^\top S^{-1} g)` is a rescaled *true* gradient, while :math:`M_{19} g =
   S^{-1}\mu\,(\mu^\top g)` points along the EF-preconditioned gradient; its error
   :math:`E(M_{19}) = (\mu^\top S\mu)\,\|S^{-1}\mu\|^2 - 2\|\mu\|^2\mu^\top S^{-1}\mu +
   \|\mu\|^2` grows with the conditioning of :math:`S`.

   *Controlled noise-to-signal ratios.* The errors are evaluated at the iterates of GD
   (its Table D.5 step size, 100 iterations from :math:`\theta = 0`: GD moves slowly, so
   its gradient stays far from zero), with the covariance rescaled to a prescribed
   noise-to-signal ratio :math:`r = \mathrm{tr}\,\Sigma_B / \|\nabla L\|^2 \in \{10^{-2},
   \ldots, 10^2\}` (:math:`\Sigma_B = c\,\Sigma`, i.e. a batch size :math:`B = 1/c`).
   Points are used only where the gradient is resolved above round-off
   (:func:`~fisherlab.experiments.kunstner.preconditioning.gradient_resolved`) and :math:`S` is
   numerically invertible (condition number ≤ ``max_condition``); medians and 10 %/90 %
   quantiles over the points are reported per data set and ratio.
2. **Scaling of EF-preconditioned steps (§4.3).** At points
   :math:`\theta^* + s\,d` on a ray from the optimum (:math:`s` log-spaced over five
   decades, :math:`d` a fixed random direction), the norms of :math:`\tilde F^{-1}\nabla L`
   and of the variance-adapted step :math:`\tilde F^{-1}\nabla L\,\|\nabla L\|^2` against
   :math:`\|\nabla L\|`: far from the optimum the first scales like
   :math:`\|\nabla L\|^{-1}` ("inverse gradient" scaling), the second like
   :math:`\|\nabla L\|` — the multiplication by :math:`\nabla L\nabla L^\top` counteracts
   the poor scaling. Slopes are fitted on the farthest decade.

Claims (criteria fixed before the run): per data set, "Eq. 19 is the full-matrix
extension of the diagonal argument" (minimises :math:`E`): :math:`E(M_{19}) \le (1 +
10^{-6})\,E(M^\star)` at every point and ratio; "EF-based variance adaptation attenuates
the noise": the median of :math:`E(M_{19}) / E(I)` is below 1 at every ratio. Premise:
at least 10 usable points at every ratio. That :math:`D` and :math:`M^\star` never
increase the error holds by construction (:math:`I` is a candidate of both minimisations)
and is reported, not claimed. Ray: slopes within 0.1 of -1 and +1; premise: the
farthest decade is in the far regime (slope of :math:`\|\nabla L\|` against :math:`s`
within 0.1 of 1).

``--quick`` evaluates every 4th GD iterate and 21 ray points instead of every iterate and 51.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from fisherlab.experiments.base import Claim, Experiment, RunContext
from fisherlab.experiments.kunstner.common import loglog_slope
from fisherlab.experiments.kunstner.fig3 import PUBLISHED
from fisherlab.experiments.kunstner.preconditioning import (
    gradient_resolved,
    linear_problem,
    optimum,
    run_batch,
)
from fisherlab.experiments.registry import register
from fisherlab.experiments.verdicts import fmt

__all__ = ["VarianceAdaptationConfig", "EXPERIMENT", "adaptation_matrices", "expected_error"]

SOURCE = "Kunstner et al. 2019, Sec. 5 (Eq. 18-19) and Sec. 4.3"
ADAPTATIONS = ("plain", "diagonal", "Eq. 19", "optimal matrix")
#: Relative excess over the minimal error within which Eq. 19 counts as the minimiser.
OPTIMALITY_RTOL = 1e-6
#: Usable points per data set and ratio required by the premise.
MIN_POINTS = 10


@dataclass
class VarianceAdaptationConfig:
    """Configuration of ``kunstner-variance-adaptation``.

    Attributes
    ----------
    datasets : tuple of str
        Data sets (regression and classification).
    ratios : tuple of float
        Noise-to-signal ratios ``tr Σ_B / ‖∇L‖²`` at which the errors are evaluated.
    iterations : int
        Length of the GD path whose iterates are the evaluation points.
    path_stride : int
        Use every ``path_stride``-th iterate.
    max_condition : float
        Points where ``Σ_B + ∇L∇Lᵀ`` has a larger condition number are not used.
    ray_points : int
        Points on the ray ``θ* + s d``.
    seed : int
        Seed of the ray direction.
    """

    datasets: tuple[str, ...] = ("boston", "wine", "breast-cancer")
    ratios: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0)
    iterations: int = 100
    path_stride: int = 1
    max_condition: float = 1e12
    ray_points: int = 51
    seed: int = 0

    @classmethod
    def preset(cls, quick: bool, seed: int) -> VarianceAdaptationConfig:
        """Full: every iterate, 51 ray points; quick: every 4th iterate, 21 points."""
        if quick:
            return cls(path_stride=4, ray_points=21, seed=seed)
        return cls(seed=seed)


def expected_error(M: Tensor, gradient: Tensor, covariance: Tensor) -> Tensor:
    r""":math:`\mathbb E\|M g - \nabla L\|^2 = \|(M-I)\nabla L\|^2 + \mathrm{tr}(M\Sigma M^\top)`.

    ``covariance`` is the covariance of the stochastic gradient ``g`` (mean ``∇L``).
    """
    bias = M @ gradient - gradient
    return bias @ bias + torch.trace(M @ covariance @ M.T)


def adaptation_matrices(gradient: Tensor, covariance: Tensor) -> dict[str, Tensor]:
    r"""The matrices :math:`I`, :math:`D`, :math:`M_{19}` and :math:`M^\star = M_{19}^\top`.

    :math:`M_{19} = S^{-1}\nabla L\nabla L^\top` with :math:`S = \Sigma + \nabla L\nabla
    L^\top` (a linear solve; :math:`S` must be invertible), :math:`D_{ii} = [\nabla L]_i^2 /
    S_{ii}`.
    """
    outer = torch.outer(gradient, gradient)
    second_moment = covariance + outer
    eq19 = torch.linalg.solve(second_moment, outer)
    diagonal = gradient**2 / second_moment.diagonal().clamp_min(torch.finfo(gradient.dtype).tiny)
    return {
        "plain": torch.eye(gradient.shape[0], dtype=gradient.dtype),
        "diagonal": torch.diag(diagonal),
        "Eq. 19": eq19,
        "optimal matrix": eq19.T,
    }


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"median": math.nan, "q10": math.nan, "q90": math.nan}
    t = torch.tensor(values, dtype=torch.float64)
    q = torch.quantile(t, torch.tensor([0.5, 0.1, 0.9], dtype=torch.float64)).tolist()
    return {"median": q[0], "q10": q[1], "q90": q[2]}


def _errors_at_ratios(model: Any, cfg: VarianceAdaptationConfig, name: str) -> dict[str, Any]:
    """Error ratios E(M)/E(I) at the GD iterates, per noise-to-signal ratio."""
    lr, _ = PUBLISHED[name]["GD"]
    trajectory = run_batch(
        model, "GD", torch.tensor([lr], dtype=torch.float64), None, cfg.iterations, keep_thetas=True
    )
    thetas = trajectory.thetas[:: cfg.path_stride, 0]
    resolved = gradient_resolved(model, thetas)
    out: dict[str, Any] = {"points": int(thetas.shape[0]), "resolved": int(resolved.sum())}
    per_ratio = {}
    for r in cfg.ratios:
        ratios: dict[str, list[float]] = {a: [] for a in ADAPTATIONS[1:]}
        excess: list[float] = []
        for theta in thetas[resolved]:
            gradient = model.gradient(theta)
            covariance = model.covariance(theta)
            covariance = covariance * (r * float(gradient @ gradient) / float(covariance.trace()))
            second_moment = covariance + torch.outer(gradient, gradient)
            if float(torch.linalg.cond(second_moment)) > cfg.max_condition:
                continue
            errors = {
                a: float(expected_error(M, gradient, covariance))
                for a, M in adaptation_matrices(gradient, covariance).items()
            }
            for a in ADAPTATIONS[1:]:
                ratios[a].append(errors[a] / errors["plain"])
            excess.append(errors["Eq. 19"] / errors["optimal matrix"] - 1)
        per_ratio[str(r)] = {
            "usable": len(excess),
            "ratio_to_plain": {a: _quantiles(v) for a, v in ratios.items()},
            "max_ratio_to_plain": {a: max(v, default=math.nan) for a, v in ratios.items()},
            "max_excess_eq19": max(excess, default=math.nan),
        }
    out["ratios"] = per_ratio
    return out


def _scaling_on_ray(model: Any, cfg: VarianceAdaptationConfig, theta_star: Tensor) -> dict:
    generator = torch.Generator().manual_seed(cfg.seed)
    direction = torch.randn(theta_star.shape[0], generator=generator, dtype=torch.float64)
    direction = direction / direction.norm() * theta_star.norm()
    scales = torch.logspace(-3, 2, cfg.ray_points, dtype=torch.float64)
    thetas = theta_star + scales.unsqueeze(1) * direction
    gradient = model.gradient(thetas)
    ef = model.empirical_fisher(thetas)
    ef_step = torch.linalg.solve(ef, gradient.unsqueeze(-1)).squeeze(-1)
    adapted = ef_step * (gradient**2).sum(-1, keepdim=True)
    return {
        "s": scales.tolist(),
        "gradient_norm": gradient.norm(dim=-1).tolist(),
        "ef_step_norm": ef_step.norm(dim=-1).tolist(),
        "adapted_step_norm": adapted.norm(dim=-1).tolist(),
    }


def run(cfg: VarianceAdaptationConfig, ctx: RunContext) -> dict[str, Any]:
    """Expected errors at controlled noise-to-signal ratios; step norms along a ray."""
    results: dict[str, Any] = {"errors": {}, "ray": {}, "ratios": list(cfg.ratios)}
    error_rows, slope_rows = [], []
    decade = max(2, (cfg.ray_points - 1) // 5 + 1)
    for name in ctx.progress(cfg.datasets, total=len(cfg.datasets), desc="variance adaptation"):
        model, data = linear_problem(name)
        errors = _errors_at_ratios(model, cfg, name)
        results["errors"][name] = errors
        for r in cfg.ratios:
            cell = errors["ratios"][str(r)]
            error_rows.append(
                [name, r, cell["usable"]]
                + [
                    f"{fmt(q['median'], 3)} [{fmt(q['q10'], 3)}, {fmt(q['q90'], 3)}]"
                    for q in cell["ratio_to_plain"].values()
                ]
            )
        if data.task == "regression":
            ray = _scaling_on_ray(model, cfg, optimum(model))
            far = slice(-decade, None)  # the farthest decade of the ray
            g = ray["gradient_norm"][far]
            ray["slope_gradient"] = loglog_slope(ray["s"][far], g)
            ray["slope_ef"] = loglog_slope(g, ray["ef_step_norm"][far])
            ray["slope_adapted"] = loglog_slope(g, ray["adapted_step_norm"][far])
            results["ray"][name] = ray
            slope_rows.append([name, ray["slope_gradient"], ray["slope_ef"], ray["slope_adapted"]])
    results["tables"] = {
        "E(M) / E(I) at the GD iterates: median [10 %, 90 % quantile]": {
            "columns": ["data set", "tr Σ_B / ‖∇L‖²", "points", *ADAPTATIONS[1:]],
            "rows": error_rows,
        },
        "log-log slopes on the farthest decade of the ray": {
            "columns": [
                "data set",
                "‖∇L‖ vs s",
                "EF step F̃⁻¹∇L vs ‖∇L‖",
                "variance-adapted step vs ‖∇L‖",
            ],
            "rows": slope_rows,
        },
    }
    return results


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Error ratios against the noise-to-signal ratio; step norms against the gradient norm."""
    from fisherlab.plotting import new_figure, save_figure

    paths = []
    names = list(results["errors"])
    ratios = results["ratios"]
    fig, axes = new_figure(ncols=len(names), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], names, strict=True):
        cells = results["errors"][name]["ratios"]
        usable = [r for r in ratios if cells[str(r)]["usable"] > 0]
        for adaptation in ADAPTATIONS[1:] if usable else ():
            q = [cells[str(r)]["ratio_to_plain"][adaptation] for r in usable]
            line = ax.plot(usable, [x["median"] for x in q], "-o", ms=3, label=adaptation)
            ax.fill_between(
                usable,
                [x["q10"] for x in q],
                [x["q90"] for x in q],
                color=line[0].get_color(),
                alpha=0.2,
                lw=0,
            )
        ax.axhline(1.0, color="grey", lw=0.8, label="plain stochastic gradient")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(name if usable else f"{name}: no usable point")
        ax.set_xlabel(r"noise-to-signal $\mathrm{tr}\,\Sigma_B / \|\nabla L\|^2$")
    axes[0][0].set_ylabel("expected error / plain (median, 10-90 %)")
    axes[0][0].legend()
    fig.suptitle("Variance adaptation: expected error of M g at the GD iterates")
    paths.append(save_figure(fig, Path(out_dir) / "expected_error.png"))

    rays = results["ray"]
    if rays:
        fig, axes = new_figure(ncols=len(rays), squeeze=False)
        for ax, (name, ray) in zip(axes[0], rays.items(), strict=True):
            ax.loglog(ray["gradient_norm"], ray["ef_step_norm"], label=r"$\|\tilde F^{-1}g\|$")
            ax.loglog(
                ray["gradient_norm"],
                ray["adapted_step_norm"],
                label=r"$\|\tilde F^{-1}g\|\,\|g\|^2$ (Eq. 19)",
            )
            ax.set_xlabel(r"$\|\nabla L\|$")
            ax.set_title(name)
            ax.legend()
        axes[0][0].set_ylabel("step norm")
        fig.suptitle("EF-preconditioned step norms along a ray from the optimum")
        paths.append(save_figure(fig, Path(out_dir) / "ef_step_scaling.png"))
    return paths


def claims(results: dict[str, Any]) -> list[Claim]:
    """Eq. 19 against the minimal error and against plain; EF step scaling on a ray."""
    out = []
    ratios = results["ratios"]
    for name, errors in results["errors"].items():
        cells = [errors["ratios"][str(r)] for r in ratios]
        usable = min(c["usable"] for c in cells)
        premise = (
            f"at least {MIN_POINTS} GD iterates per ratio with a gradient resolved above "
            "round-off and an invertible Σ_B + ∇L∇Lᵀ"
        )
        excess = max(c["max_excess_eq19"] for c in cells)
        medians = [c["ratio_to_plain"]["Eq. 19"]["median"] for c in cells]
        optimal = [c["ratio_to_plain"]["optimal matrix"]["median"] for c in cells]
        out.append(
            Claim(
                claim=f"{name}: Eq. 19, M = (Σ + ∇L∇Lᵀ)⁻¹∇L∇Lᵀ, is the full-matrix extension "
                "of the diagonal factors: it minimises the expected error E‖Mg − ∇L‖²",
                measured=f"largest relative excess of E(Eq. 19) over the minimal error "
                f"E(∇L∇Lᵀ(Σ + ∇L∇Lᵀ)⁻¹) over ≥ {usable} points per ratio: {fmt(excess, 3)}; "
                "median E/E(plain) of Eq. 19 vs the minimiser: "
                + ", ".join(
                    f"r = {r:g}: {fmt(a, 3)} vs {fmt(b, 3)}"
                    for r, a, b in zip(ratios, medians, optimal, strict=True)
                ),
                holds=excess <= OPTIMALITY_RTOL,
                source=SOURCE,
                criterion=f"E(Eq. 19) ≤ (1 + {OPTIMALITY_RTOL:g})·E(M*) at every point and "
                "ratio, M* = ∇L∇Lᵀ(Σ + ∇L∇Lᵀ)⁻¹ the minimiser derived in the docstring",
                premise=premise,
                premise_holds=usable >= MIN_POINTS,
            )
        )
        out.append(
            Claim(
                claim=f"{name}: the EF carries gradient-noise information: adapting the "
                "stochastic gradient with Eq. 19 attenuates the noise (lower expected error "
                "than the plain stochastic gradient)",
                measured="median E(Eq. 19)/E(plain) "
                + ", ".join(
                    f"r = {r:g}: {fmt(m, 3)}" for r, m in zip(ratios, medians, strict=True)
                ),
                holds=all(m < 1 for m in medians),
                source=SOURCE,
                criterion="the median over the points of E(Eq. 19)/E(plain) is below 1 at every "
                "noise-to-signal ratio",
                premise=premise,
                premise_holds=usable >= MIN_POINTS,
            )
        )
    for name, ray in results["ray"].items():
        out.append(
            Claim(
                claim=f"{name}: far from the optimum, EF-preconditioned updates have a magnitude "
                "almost inversely proportional to the gradient's; multiplying by ∇L∇Lᵀ "
                "(Eq. 19) counteracts this",
                measured=f"log-log slope on the farthest decade: ‖F̃⁻¹∇L‖ vs ‖∇L‖ "
                f"{fmt(ray['slope_ef'], 3)}; variance-adapted step {fmt(ray['slope_adapted'], 3)}"
                f"; ‖∇L‖ vs s {fmt(ray['slope_gradient'], 3)}",
                holds=abs(ray["slope_ef"] + 1) < 0.1 and abs(ray["slope_adapted"] - 1) < 0.1,
                source="Kunstner et al. 2019, Sec. 4.3 and 5",
                criterion="slope of the EF step within 0.1 of −1 and of the variance-adapted "
                "step within 0.1 of +1 (the asymptotic values: EF ∝ s², ∇L ∝ s)",
                premise="the farthest decade is in the far regime: ‖∇L‖ grows like s there "
                "(slope within 0.1 of 1)",
                premise_holds=abs(ray["slope_gradient"] - 1) < 0.1,
            )
        )
    return out


EXPERIMENT = register(
    Experiment(
        name="kunstner-variance-adaptation",
        title="Variance adaptation: the EF as the gradient's second moment",
        paper="Kunstner et al. 2019, Sec. 5 (Eq. 18-19) and Sec. 4.3",
        description=(
            "Exact expected errors of plain, diagonally and matrix variance-adapted "
            "stochastic gradients (Eq. 19 as printed and its transpose, the minimiser) at "
            "the GD iterates of the linear problems of Fig. 3, at controlled "
            "noise-to-signal ratios 0.01-100 (medians and 10-90 % quantiles), and the "
            "scaling of EF-preconditioned steps with the gradient norm along a ray. Not in "
            "the paper as an experiment (Sec. 5 has no figure); quick: every 4th iterate."
        ),
        config_class=VarianceAdaptationConfig,
        run=run,
        plot=plot,
        claims=claims,
        captions={
            "expected_error.png": "Kunstner et al. Sec. 5 (Eq. 19): expected error of the "
            "variance-adapted stochastic gradient relative to the plain one, median and "
            "10-90 % band over the GD iterates, against the noise-to-signal ratio.",
            "ef_step_scaling.png": "Kunstner et al. Sec. 4.3/5: norm of the EF-preconditioned "
            "step and of the variance-adapted step against the gradient norm along a ray "
            "from the optimum.",
        },
    )
)
