r"""``kunstner-variance-adaptation``: the EF as gradient-noise information (Kunstner et al. §5).

Two measurements on the linear models of ``kunstner-fig3`` (same protocol: raw features,
a bias column appended last, mean reduction):

1. **Expected error of variance-adapted minibatch gradients.** For a minibatch gradient
   :math:`g_B` (``B`` samples drawn with replacement, :math:`\mathrm{Cov}[g_B] = \Sigma/B`)
   and a matrix :math:`M`, :math:`\mathbb E\|M g_B - \nabla L\|^2 = \|(M - I)\nabla L\|^2 +
   \mathrm{tr}(M\,\Sigma_B M^\top)`, computed exactly at every iterate of NGD's path
   (Table D.5 hyperparameters, 100 iterations from θ = 0) for :math:`M = I` (plain),
   the diagonal factors :math:`D_{ii} = [\nabla L]_i^2 / ([\nabla L]_i^2 + [\Sigma_B]_{ii})`
   of Schaul et al. / Balles & Hennig (optimal among diagonal matrices), Eq. 19's
   :math:`M = (\Sigma_B + \nabla L\nabla L^\top)^{-1}\nabla L\nabla L^\top`, and the matrix
   that minimises the error over all matrices,
   :math:`M^\star = \nabla L\nabla L^\top(\Sigma_B + \nabla L\nabla L^\top)^{-1}` (the
   transpose of Eq. 19). :math:`\Sigma` is the gradient covariance of
   :class:`fisherlab.engine.glm.LinearModel` (``EF − ∇L∇Lᵀ``, Eq. 18).
2. **Scaling of EF-preconditioned steps (§4.3).** At points
   :math:`\theta^* + s\,d` on a ray from the optimum (:math:`s` log-spaced over five
   decades, :math:`d` a fixed random direction), the norms of :math:`\tilde F^{-1}\nabla L`
   and of the variance-adapted step :math:`\tilde F^{-1}\nabla L\,\|\nabla L\|^2` against
   :math:`\|\nabla L\|`: far from the optimum the first scales like
   :math:`\|\nabla L\|^{-1}` ("inverse gradient" scaling), the second like
   :math:`\|\nabla L\|` — the multiplication by :math:`\nabla L\nabla L^\top` counteracts
   the poor scaling. Slopes are fitted on the farthest decade.

``--quick`` evaluates every 4th iterate and 21 ray points instead of every iterate and 51.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from fisherlab.experiments.base import Claim, Experiment, RunContext
from fisherlab.experiments.kunstner_fig3 import PUBLISHED
from fisherlab.experiments.preconditioning import linear_problem, run_batch
from fisherlab.experiments.registry import register

__all__ = ["VarianceAdaptationConfig", "EXPERIMENT", "expected_error"]

SOURCE = "Kunstner et al. 2019, Sec. 5 (Eq. 18-19) and Sec. 4.3"
ADAPTATIONS = ("plain", "diagonal", "Eq. 19", "optimal matrix")


@dataclass
class VarianceAdaptationConfig:
    """Configuration of ``kunstner-variance-adaptation``.

    Attributes
    ----------
    datasets : tuple of str
        Data sets (regression and classification).
    batch_size : int
        Minibatch size ``B`` of the stochastic gradient.
    iterations : int
        Length of the NGD path along which the errors are evaluated.
    path_stride : int
        Evaluate every ``path_stride``-th iterate.
    ray_points : int
        Points on the ray ``θ* + s d``.
    seed : int
        Seed of the ray direction.
    """

    datasets: tuple[str, ...] = ("boston", "wine", "breast-cancer")
    batch_size: int = 32
    iterations: int = 100
    path_stride: int = 1
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


def _adaptation_matrices(gradient: Tensor, covariance: Tensor) -> dict[str, Tensor]:
    outer = torch.outer(gradient, gradient)
    second_moment = covariance + outer
    inverse = torch.linalg.pinv(second_moment, hermitian=True)
    diagonal = gradient**2 / second_moment.diagonal().clamp_min(torch.finfo(gradient.dtype).tiny)
    return {
        "plain": torch.eye(gradient.shape[0], dtype=gradient.dtype),
        "diagonal": torch.diag(diagonal),
        "Eq. 19": inverse @ outer,
        "optimal matrix": outer @ inverse,
    }


def _errors_along_path(model: Any, cfg: VarianceAdaptationConfig, name: str) -> dict[str, Any]:
    lr, damping = PUBLISHED[name]["NGD"]
    trajectory = run_batch(
        model,
        "NGD",
        torch.tensor([lr], dtype=torch.float64),
        damping,
        cfg.iterations,
        keep_thetas=True,
    )
    thetas = trajectory.thetas[:: cfg.path_stride, 0]
    errors: dict[str, list[float]] = {a: [] for a in ADAPTATIONS}
    for theta in thetas:
        gradient = model.gradient(theta)
        covariance = model.covariance(theta) / cfg.batch_size
        for adaptation, M in _adaptation_matrices(gradient, covariance).items():
            errors[adaptation].append(float(expected_error(M, gradient, covariance)))
    iterations = list(range(0, cfg.iterations + 1, cfg.path_stride))
    return {"iteration": iterations, "errors": errors}


def _scaling_on_ray(model: Any, cfg: VarianceAdaptationConfig, optimum: Tensor) -> dict:
    generator = torch.Generator().manual_seed(cfg.seed)
    direction = torch.randn(optimum.shape[0], generator=generator, dtype=torch.float64)
    direction = direction / direction.norm() * optimum.norm()
    scales = torch.logspace(-3, 2, cfg.ray_points, dtype=torch.float64)
    thetas = optimum + scales.unsqueeze(1) * direction
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


def _loglog_slope(x: list[float], y: list[float], points: int) -> float:
    lx, ly = torch.tensor(x[-points:]).log(), torch.tensor(y[-points:]).log()
    lx, ly = lx - lx.mean(), ly - ly.mean()
    return float((lx @ ly) / (lx @ lx))


def run(cfg: VarianceAdaptationConfig, ctx: RunContext) -> dict[str, Any]:
    """Expected errors along NGD's path and step norms along a ray, per data set."""
    results: dict[str, Any] = {"path": {}, "ray": {}}
    error_rows, slope_rows = [], []
    decade = max(2, (cfg.ray_points - 1) // 5 + 1)
    for name in ctx.progress(cfg.datasets, total=len(cfg.datasets), desc="variance adaptation"):
        model, data = linear_problem(name)
        regression = data.task == "regression"
        path = _errors_along_path(model, cfg, name)
        results["path"][name] = path
        plain = torch.tensor(path["errors"]["plain"])
        ratios = {a: torch.tensor(path["errors"][a]) / plain for a in ADAPTATIONS[1:]}
        error_rows.append(
            [name] + [f"{float(r.mean()):.3g} (max {float(r.max()):.3g})" for r in ratios.values()]
        )
        if regression:
            optimum = torch.linalg.lstsq(data.X, data.y.unsqueeze(1)).solution[:, 0]
            ray = _scaling_on_ray(model, cfg, optimum)
            ray["slope_ef"] = _loglog_slope(ray["gradient_norm"], ray["ef_step_norm"], decade)
            ray["slope_adapted"] = _loglog_slope(
                ray["gradient_norm"], ray["adapted_step_norm"], decade
            )
            results["ray"][name] = ray
            slope_rows.append([name, ray["slope_ef"], ray["slope_adapted"]])
    results["batch_size"] = cfg.batch_size
    results["tables"] = {
        f"E‖M g_B − ∇L‖² / E‖g_B − ∇L‖² along NGD's path (B = {cfg.batch_size}), mean (max)": {
            "columns": ["data set", *ADAPTATIONS[1:]],
            "rows": error_rows,
        },
        "log-log slope of step norm vs ‖∇L‖, farthest decade": {
            "columns": ["data set", "EF step  F̃⁻¹∇L", "variance-adapted step (Eq. 19)"],
            "rows": slope_rows,
        },
    }
    return results


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Relative expected errors along the path; step norms against the gradient norm."""
    from fisherlab.plotting import new_figure, save_figure

    paths = []
    names = list(results["path"])
    fig, axes = new_figure(ncols=len(names), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], names, strict=True):
        path = results["path"][name]
        plain = path["errors"]["plain"]
        for adaptation in ADAPTATIONS[1:]:
            ratio = [e / p for e, p in zip(path["errors"][adaptation], plain, strict=True)]
            ax.plot(path["iteration"], ratio, label=adaptation)
        ax.axhline(1.0, color="grey", lw=0.8, label="plain minibatch gradient")
        ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("NGD iteration")
    axes[0][0].set_ylabel(f"expected error / plain (B = {results['batch_size']})")
    axes[0][0].legend()
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
        paths.append(save_figure(fig, Path(out_dir) / "ef_step_scaling.png"))
    return paths


def claims(results: dict[str, Any]) -> list[Claim]:
    """Error reduction by variance adaptation; inverse-gradient scaling of EF steps."""
    out = []
    ratios = {a: [] for a in ADAPTATIONS[1:]}
    for path in results["path"].values():
        plain = path["errors"]["plain"]
        for adaptation in ADAPTATIONS[1:]:
            ratios[adaptation] += [
                e / p for e, p in zip(path["errors"][adaptation], plain, strict=True)
            ]
    diagonal, eq19, optimal = ratios["diagonal"], ratios["Eq. 19"], ratios["optimal matrix"]
    tolerance = 1 + 1e-9
    out.append(
        Claim(
            claim="The diagonal variance-adaptation factors [∇L]²/([∇L]² + Σ_ii) reduce the "
            "expected squared error of a stochastic gradient (optimal among diagonal matrices)",
            measured=f"error ratio to the plain minibatch gradient over {len(diagonal)} points: "
            f"max {max(diagonal):.3g}, mean {sum(diagonal) / len(diagonal):.3g}",
            holds=max(diagonal) <= tolerance,
            source="Balles & Hennig 2018 via Kunstner et al. 2019, Sec. 5",
        )
    )
    out.append(
        Claim(
            claim="The full-matrix extension, Eq. 19 M = (Σ + ∇L∇Lᵀ)⁻¹∇L∇Lᵀ, reduces the "
            "expected error of a stochastic gradient like the diagonal factors do",
            measured=f"error ratio of Eq. 19: max {max(eq19):.3g}, mean "
            f"{sum(eq19) / len(eq19):.3g}; of the error-minimising matrix ∇L∇Lᵀ(Σ + ∇L∇Lᵀ)⁻¹ "
            f"(Eq. 19 transposed): max {max(optimal):.3g}",
            holds=max(eq19) <= tolerance,
            source=SOURCE,
        )
    )
    for name, ray in results["ray"].items():
        out.append(
            Claim(
                claim=f"{name}: far from the optimum, EF-preconditioned updates have a magnitude "
                "almost inversely proportional to the gradient's; multiplying by ∇L∇Lᵀ "
                "(Eq. 19) counteracts this",
                measured=f"log-log slope of ‖F̃⁻¹∇L‖ vs ‖∇L‖ on the farthest decade "
                f"{ray['slope_ef']:.3f}; of the variance-adapted step {ray['slope_adapted']:.3f}",
                holds=abs(ray["slope_ef"] + 1) < 0.1 and ray["slope_adapted"] > 0.5,
                source="Kunstner et al. 2019, Sec. 4.3 and 5",
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
            "minibatch gradients along NGD's path on the linear problems of Fig. 3, and the "
            "scaling of EF-preconditioned steps with the gradient norm along a ray."
        ),
        config_class=VarianceAdaptationConfig,
        run=run,
        plot=plot,
        claims=claims,
    )
)
