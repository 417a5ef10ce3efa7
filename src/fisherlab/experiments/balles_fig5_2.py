r"""``balles-fig5-2``: variance adaptation factors as functions of η (Balles 2021, Fig. 5.2).

Analytic curves of the three factors of §5.3,

* :math:`\operatorname{erf}[(\sqrt2\eta)^{-1}]`, optimal for the sign of a Gaussian
  stochastic gradient (Lemma 5.2, Eq. 5.10);
* :math:`(1+\eta^2)^{-1/2}`, the factor Adam applies implicitly (Eq. 5.5);
* :math:`(1+\eta^2)^{-1}`, optimal for the stochastic gradient itself (Lemma 5.1),

plus a Monte-Carlo check of Lemma 5.2: for :math:`\hat p \sim \mathcal N(p, \sigma^2)` with
:math:`p = 1, \sigma = \eta`, estimate :math:`\rho = \mathbf P[\operatorname{sign}\hat p
= \operatorname{sign} p]` and the mean squared error
:math:`\mathbf E[(\gamma\operatorname{sign}\hat p - \operatorname{sign}p)^2]` on a grid of
:math:`\gamma \in [0, 1]`; its empirical minimiser should be :math:`2\rho - 1 =
\operatorname{erf}[(\sqrt2\eta)^{-1}]`. The MSE of the same kind for the gradient itself,
:math:`\mathbf E[(\gamma\hat p - p)^2]/p^2`, is minimised at :math:`(1+\eta^2)^{-1}`.

Protocol choices: η on a log grid over :math:`[10^{-1.5}, 10^{1.5}]` for the curves, 15
values for the Monte-Carlo check with 200 000 draws each (quick: 7 values, 50 000
draws), γ grid of step 0.001. Nothing is reduced with respect to the thesis (which shows
the analytic curves only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fisherlab.experiments.base import Claim, Experiment, RunContext
from fisherlab.experiments.registry import register

__all__ = ["EXPERIMENT", "Fig52Config", "factors"]

SOURCE = "Balles 2021, §5.3, Lemma 5.2 and Fig. 5.2"


@dataclass
class Fig52Config:
    r"""Configuration of ``balles-fig5-2``.

    Attributes
    ----------
    num_curve_points : int
        Points of the analytic curves.
    num_mc_etas : int
        η values of the Monte-Carlo check.
    mc_samples : int
        Draws of :math:`\hat p` per η.
    gamma_step : float
        Step of the γ grid on which the MSE is minimised.
    seed : int
        Random seed.
    """

    num_curve_points: int = 301
    num_mc_etas: int = 15
    mc_samples: int = 200_000
    gamma_step: float = 0.001
    seed: int = 0

    @classmethod
    def preset(cls, quick: bool, seed: int) -> Fig52Config:
        """Full: 15 η values x 200 000 draws; quick: 7 x 50 000."""
        if quick:
            return cls(num_mc_etas=7, mc_samples=50_000, seed=seed)
        return cls(seed=seed)


def factors(eta: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""The three variance adaptation factors of Fig. 5.2 at relative std ``eta``."""
    return {
        "erf": torch.special.erf(1.0 / (math.sqrt(2.0) * eta)),
        "adam": (1.0 + eta**2).rsqrt(),
        "sgd": 1.0 / (1.0 + eta**2),
    }


def run(cfg: Fig52Config, ctx: RunContext) -> dict[str, Any]:
    """Analytic curves and the Monte-Carlo optimal factors."""
    eta = torch.logspace(-1.5, 1.5, cfg.num_curve_points, dtype=torch.float64)
    curves = {k: v.tolist() for k, v in factors(eta).items()}
    diff = (factors(eta)["erf"] - factors(eta)["adam"]).abs()
    generator = torch.Generator().manual_seed(cfg.seed)
    mc_eta = torch.logspace(-1.0, 1.0, cfg.num_mc_etas, dtype=torch.float64)
    gammas = torch.arange(0.0, 1.0 + cfg.gamma_step / 2, cfg.gamma_step, dtype=torch.float64)
    mc: list[dict[str, float]] = []
    for e in ctx.progress(mc_eta.tolist(), desc="eta"):
        p_hat = 1.0 + e * torch.randn(cfg.mc_samples, generator=generator, dtype=torch.float64)
        s = p_hat.sign()
        rho = float((s == 1.0).double().mean())
        # E[(γ s − 1)²] = γ² − 2γ E[s] + 1 on the grid (s² = 1 almost surely)
        mse_sign = gammas**2 - 2 * gammas * s.mean() + 1
        # E[(γ p̂ − p)²] / p² = γ² E[p̂²] − 2γ E[p̂] + 1
        mse_grad = gammas**2 * p_hat.square().mean() - 2 * gammas * p_hat.mean() + 1
        ana = {k: float(v) for k, v in factors(torch.tensor(e, dtype=torch.float64)).items()}
        mc.append(
            {
                "eta": e,
                "rho": rho,
                "two_rho_minus_one": 2 * rho - 1,
                "argmin_sign": float(gammas[mse_sign.argmin()]),
                "argmin_gradient": float(gammas[mse_grad.argmin()]),
                "erf": ana["erf"],
                "adam": ana["adam"],
                "sgd": ana["sgd"],
                "mse_sign_at_erf": float(ana["erf"] ** 2 - 2 * ana["erf"] * s.mean() + 1),
                "mse_sign_at_adam": float(ana["adam"] ** 2 - 2 * ana["adam"] * s.mean() + 1),
                "mse_sign_at_one": float(2 - 2 * s.mean()),
            }
        )
    rows = [
        [
            r["eta"],
            r["two_rho_minus_one"],
            r["argmin_sign"],
            r["erf"],
            r["adam"],
            r["argmin_gradient"],
            r["sgd"],
        ]
        for r in mc
    ]
    return {
        "eta": eta.tolist(),
        "curves": curves,
        "max_abs_erf_minus_adam": float(diff.max()),
        "eta_at_max_abs_diff": float(eta[diff.argmax()]),
        "monte_carlo": mc,
        "mc_samples": cfg.mc_samples,
        "tables": {
            "Monte-Carlo optimal factors vs the closed forms": {
                "columns": [
                    "η",
                    "2ρ̂−1",
                    "argmin_γ MSE(sign)",
                    "erf[(√2η)⁻¹]",
                    "(1+η²)^(−1/2)",
                    "argmin_γ MSE(grad)",
                    "(1+η²)⁻¹",
                ],
                "rows": rows,
            }
        },
    }


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """The three factors against η (log axis) with the Monte-Carlo minimisers as markers."""
    from fisherlab.plotting import new_figure, save_figure

    fig, ax = new_figure(panel_size=(5.0, 3.4))
    eta = results["eta"]
    labels = {
        "erf": (r"$\mathrm{erf}[(\sqrt{2}\eta)^{-1}]$ (optimal for sign)", "#D55E00"),
        "adam": (r"$(1+\eta^2)^{-1/2}$ (Adam)", "#CC79A7"),
        "sgd": (r"$(1+\eta^2)^{-1}$ (optimal for SGD)", "#0072B2"),
    }
    for key, (label, color) in labels.items():
        ax.plot(eta, results["curves"][key], color=color, label=label)
    mc = results["monte_carlo"]
    ax.plot(
        [r["eta"] for r in mc],
        [r["argmin_sign"] for r in mc],
        "o",
        color="#D55E00",
        mfc="none",
        label="MC argmin of sign MSE",
    )
    ax.plot(
        [r["eta"] for r in mc],
        [r["argmin_gradient"] for r in mc],
        "s",
        color="#0072B2",
        mfc="none",
        label="MC argmin of gradient MSE",
    )
    ax.set_xscale("log")
    ax.set_xlabel(r"relative standard deviation $\eta$")
    ax.set_ylabel(r"variance adaptation factor $\gamma$")
    ax.legend(loc="lower left")
    path = Path(out_dir) / "fig5_2_variance_adaptation_factors.png"
    save_figure(fig, path)
    return [path]


def claims(results: dict[str, Any]) -> list[Claim]:
    """The erf factor is the MC-optimal sign factor; Adam's factor approximates it closely."""
    mc = results["monte_carlo"]
    err_sign = max(abs(r["argmin_sign"] - r["erf"]) for r in mc)
    err_rho = max(abs(r["two_rho_minus_one"] - r["erf"]) for r in mc)
    err_grad = max(abs(r["argmin_gradient"] - r["sgd"]) for r in mc)
    excess_adam = max(r["mse_sign_at_adam"] - r["mse_sign_at_erf"] for r in mc)
    worst = max(mc, key=lambda r: r["mse_sign_at_adam"] - r["mse_sign_at_erf"])
    diff = results["max_abs_erf_minus_adam"]
    n = results["mc_samples"]
    tol = 4.0 / math.sqrt(n) + 0.002
    return [
        Claim(
            claim="For a Gaussian stochastic gradient, the MSE-optimal factor for its sign is "
            "2ρ − 1 = erf[(√2η)⁻¹] (Lemma 5.2, Eq. 5.10)",
            measured=f"over {len(mc)} η values and {n} draws each: max |argmin_γ MSE − erf| = "
            f"{err_sign:.4f}, max |2ρ̂ − 1 − erf| = {err_rho:.4f} (tolerance {tol:.4f})",
            holds=err_sign <= tol and err_rho <= tol,
            source=SOURCE,
        ),
        Claim(
            claim="(1+η²)⁻¹ is the MSE-optimal factor for the stochastic gradient itself "
            "(Lemma 5.1)",
            measured=f"max |argmin_γ E[(γĝ − g)²] − (1+η²)⁻¹| = {err_grad:.4f}",
            holds=err_grad <= tol,
            source=SOURCE,
        ),
        Claim(
            claim="The optimal sign factor erf[(√2η)⁻¹] is closely approximated by Adam's "
            "(1+η²)^(−1/2)",
            measured=f"max |erf[(√2η)⁻¹] − (1+η²)^(−1/2)| = {diff:.4f} at η = "
            f"{results['eta_at_max_abs_diff']:.3g}; largest excess sign MSE of Adam's factor "
            f"over the optimum {excess_adam:.4f} (at η = {worst['eta']:.3g}, vs "
            f"{worst['mse_sign_at_one']:.3f} without adaptation)",
            holds=diff < 0.1 and excess_adam < 0.1 * worst["mse_sign_at_one"],
            source=SOURCE,
        ),
    ]


EXPERIMENT = register(
    Experiment(
        name="balles-fig5-2",
        title="Variance adaptation factors vs the relative standard deviation η",
        paper="Balles 2021, Fig. 5.2",
        description=(
            "Closed-form factors erf[(√2η)⁻¹], (1+η²)^(−1/2), (1+η²)⁻¹ and a Monte-Carlo "
            "check that erf[(√2η)⁻¹] = 2ρ − 1 minimises E[(γ sign ĝ − sign g)²] "
            "(Gaussian ĝ, 200 000 draws per η; quick: 50 000)."
        ),
        config_class=Fig52Config,
        run=run,
        plot=plot,
        claims=claims,
    )
)
