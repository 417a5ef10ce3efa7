r"""``wen-fig2-3``: SB, LB, LB + full and LB + diagonal Fisher noise (Wen et al. Fig. 2, 3, 5a).

Reduced scale, on the setup of ``wen-tables`` (:mod:`fisherlab.experiments.wen.common`,
where the SB/LB generalization gap that motivates the paper is tested): a 1-D CNN (3 conv
layers, 16 channels) on 2000 MNIST-1D training signals instead of ResNet-44 on CIFAR-10;
:math:`M_S = 32`, :math:`M_L = 256` (ratio 8, the paper's is 4096/128 = 32; ``wen-tables``
uses 128, with which LB's gradient variance would be only 4× below SB's); no batch
normalization (so no Ghost BN). Four regimes with the same constant step size (the paper
uses the same schedule for all four), 300 updates instead of 8000:

- **SB**: SGD with batches of :math:`M_S`; **LB**: SGD with batches of :math:`M_L`;
- **LB+full F**, **LB+diag F**: :class:`fisherlab.optim.CovarianceNoiseSGD` on batches of
  :math:`M_L` with ``noise="full"`` (Eq. 5) or ``"diag"`` (Algorithm 1), the noise on
  during the whole run, :math:`F` recomputed on every large batch.

:math:`F` is the empirical Fisher (``fisher="empirical"``), as the paper states (Sec. 2.2);
the full-Fisher draws are the Rademacher combinations of App. F.

- Fig. 3: training loss and error on the whole training set per parameter update, mean
  over seeds; the claims compare the mean training loss over the last quarter of the
  updates, per seed.
- Fig. 2: at a partially trained network (the SB run of the first seed after a quarter of
  its updates, frozen), the per-parameter variance of each regime's update direction
  (mini-batch gradient, plus the injected noise for the noisy regimes) over independent
  draws of the batch and the noise, averaged within each layer. Full and diagonal noise
  have the same per-parameter variance by construction (the same diagonal): Fig. 2 cannot
  tell them apart, which is the paper's point (same variance, different convergence).
- Fig. 5a: :math:`\|F\|_F` and :math:`\|\mathrm{diag}(F)\|_F` of the empirical Fisher
  :math:`F = \frac1n G^\top G` (:math:`G`: the per-sample gradients of ``n`` fixed
  training signals) along the LB+diag F run of the first seed, through the Gram matrix:
  :math:`\|F\|_F = \frac1n\|GG^\top\|_F` (no :math:`D\times D` matrix).

Every training run and the variance measurement are resumable cells. ``--quick``: 500
training signals, 40 updates, one seed, 12 variance draws, 3 Frobenius checkpoints on 32
signals (a smoke run); full: 300 updates, 3 seeds, 60 draws, 6 checkpoints on 256 signals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fisherlab.experiments.base import Claim, Experiment, RunContext
from fisherlab.experiments.registry import register
from fisherlab.experiments.verdicts import fmt, fmt_mean_se, greater_by_se
from fisherlab.experiments.wen.common import (
    Regime,
    gap_fraction,
    load_data,
    loss_and_accuracy,
    make_cnn,
    train,
)

__all__ = ["EXPERIMENT", "Fig23Config", "REGIMES", "fisher_frobenius"]

SOURCE = "Wen et al. 2020, Fig. 2, 3 and 5a"
REGIMES = ("SB", "LB", "LB+full F", "LB+diag F")
COLORS = {"SB": "#0072B2", "LB": "#000000", "LB+full F": "#009E73", "LB+diag F": "#D55E00"}


@dataclass
class Fig23Config:
    """Configuration of ``wen-fig2-3``.

    Attributes
    ----------
    train_samples : int
        MNIST-1D training signals used.
    num_samples : int
        MNIST-1D signals generated (80 % training).
    channels : int
        Channels of the three convolutions.
    small_batch_size, large_batch_size : int
        :math:`M_S`, :math:`M_L`.
    lr : float
        Step size of all four regimes.
    updates : int
        Parameter updates per run.
    eval_every : int
        Training loss/error are measured every this many updates.
    seeds : int
        Runs per regime (seeds ``seed, seed+1, ...``).
    variance_draws : int
        Draws of each regime's update direction for Fig. 2.
    frobenius_points : int
        Checkpoints of Fig. 5a.
    frobenius_samples : int
        Training samples on which the Fisher of Fig. 5a is computed.
    fisher : str
        ``"empirical"`` (the paper's F) or ``"exact"``.
    seed : int
        Base seed.
    """

    train_samples: int = 2000
    num_samples: int = 5000
    channels: int = 16
    small_batch_size: int = 32
    large_batch_size: int = 256
    lr: float = 0.15
    updates: int = 300
    eval_every: int = 15
    seeds: int = 3
    variance_draws: int = 60
    frobenius_points: int = 6
    frobenius_samples: int = 256
    fisher: str = "empirical"
    seed: int = 0

    @classmethod
    def preset(cls, quick: bool, seed: int) -> Fig23Config:
        """Full: 300 updates × 3 seeds; quick: 40 updates, one seed (module docstring)."""
        if quick:
            return cls(
                train_samples=500, updates=40, eval_every=10, seeds=1, variance_draws=12,
                frobenius_points=3, frobenius_samples=32, seed=seed,
            )  # fmt: skip
        return cls(seed=seed)


def _regime(name: str, cfg: Fig23Config) -> Regime:
    noise = {"SB": None, "LB": None, "LB+full F": "full", "LB+diag F": "diag"}[name]
    size = cfg.small_batch_size if name == "SB" else cfg.large_batch_size
    return Regime(name, size, noise, cfg.lr)


def fisher_frobenius(
    model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, fisher: str
) -> tuple[float, float]:
    r"""Return :math:`(\|F\|_F, \|\mathrm{diag}\,F\|_F)` of the Fisher on ``(X, y)``.

    Empirical Fisher: :math:`F = \frac1n G^\top G` with the per-sample gradients
    :math:`G \in \mathbb R^{n\times D}`, so :math:`\|F\|_F = \frac1n \|GG^\top\|_F` and
    :math:`\mathrm{diag}\,F = \frac1n\sum_i g_i^2`. ``fisher="exact"`` uses the dense
    Fisher (small models only).
    """
    from fisherlab import Curvature
    from fisherlab.likelihoods import Categorical
    from fisherlab.linalg import frobenius_norm

    c = Curvature(model, Categorical(), X, y)
    if fisher == "empirical":
        G = c.per_sample_gradients().double()
        n = G.shape[0]
        return float((G @ G.T).norm() / n), float(G.square().sum(0).norm() / n)
    F = c.fisher(form="dense")
    return frobenius_norm(F).value, frobenius_norm(F.diagonal()).value


def _train_cell(cfg: Fig23Config, data: Any, name: str, seed: int, fro: bool) -> dict[str, Any]:
    model = make_cnn(cfg.channels, 10, seed)
    curve: dict[str, list] = {"update": [], "loss": [], "error": []}
    frobenius: dict[str, list] = {"update": [], "full": [], "diag": []}
    points = max(cfg.frobenius_points, 2)
    checkpoints = {round(i * cfg.updates / (points - 1)) for i in range(points)}
    Xf, yf = data.X[: cfg.frobenius_samples], data.y[: cfg.frobenius_samples]

    def callback(step: int, m: torch.nn.Module) -> None:
        if step % cfg.eval_every == 0 or step == cfg.updates:
            loss, accuracy = loss_and_accuracy(m, data.X, data.y)
            curve["update"].append(step)
            curve["loss"].append(loss)
            curve["error"].append(1.0 - accuracy)
        if fro and step in checkpoints:
            full, diag = fisher_frobenius(m, Xf, yf, cfg.fisher)
            frobenius["update"].append(step)
            frobenius["full"].append(full)
            frobenius["diag"].append(diag)

    train(
        model, data, _regime(name, cfg), small_batch_size=cfg.small_batch_size,
        large_batch_size=cfg.large_batch_size, fisher=cfg.fisher, seed=seed,
        updates=cfg.updates, callback=callback,
    )  # fmt: skip
    out: dict[str, Any] = {"curve": curve}
    if fro:
        out["frobenius"] = frobenius
    return out


def _variance_cell(cfg: Fig23Config, data: Any, seed: int) -> dict[str, Any]:
    """Per-layer mean variance of each regime's update direction at a frozen network."""
    from fisherlab import Curvature
    from fisherlab.likelihoods import Categorical
    from fisherlab.noise import EmpiricalFisherNoise, FisherNoise
    from fisherlab.optim.noisy import noise_scale

    model = make_cnn(cfg.channels, 10, seed)
    train(
        model, data, _regime("SB", cfg), small_batch_size=cfg.small_batch_size,
        large_batch_size=cfg.large_batch_size, fisher=cfg.fisher, seed=seed,
        updates=max(cfg.updates // 4, 1),
    )  # fmt: skip
    lik = Categorical()
    scale = noise_scale(cfg.large_batch_size, cfg.small_batch_size)
    g = torch.Generator().manual_seed(seed + 104729)
    N = data.X.shape[0]
    draws: dict[str, list[torch.Tensor]] = {name: [] for name in REGIMES}
    for _ in range(cfg.variance_draws):
        for name in REGIMES:
            size = cfg.small_batch_size if name == "SB" else cfg.large_batch_size
            idx = torch.randperm(N, generator=g)[:size]
            c = Curvature(model, lik, data.X[idx], data.y[idx])
            direction = c.gradient()
            if name in ("LB+full F", "LB+diag F"):
                structure = "full" if name == "LB+full F" else "diag"
                cls = EmpiricalFisherNoise if cfg.fisher == "empirical" else FisherNoise
                kwargs = {} if cfg.fisher == "empirical" else {"method": "sampled_labels"}
                sampler = cls(model, lik, data.X[idx], data.y[idx], structure=structure, **kwargs)
                direction = direction - scale * sampler.sample(g)
            draws[name].append(direction.detach())
    sizes = [p.numel() for p in model.parameters()]
    layers = [f"layer {i // 2 + 1} {'weight' if i % 2 == 0 else 'bias'}" for i in range(len(sizes))]
    variance: dict[str, list[float]] = {}
    for name in REGIMES:
        var = torch.stack(draws[name]).var(0)
        variance[name] = [float(v.mean()) for v in var.split(sizes)]
    return {"layers": layers, "variance": variance, "draws": cfg.variance_draws}


def run(cfg: Fig23Config, ctx: RunContext) -> dict[str, Any]:
    """Training runs of the four regimes, the variance measurement and Frobenius norms."""
    data = load_data(cfg.train_samples, cfg.num_samples)
    store = ctx.cells("runs")
    jobs = [(name, cfg.seed + s) for s in range(cfg.seeds) for name in REGIMES]
    for name, seed in ctx.progress(jobs, desc="wen-fig2-3"):
        key = f"{name}/seed={seed}"
        if key not in store:
            fro = name == "LB+diag F" and seed == cfg.seed
            store.put(key, _train_cell(cfg, data, name, seed, fro))
    variance_store = ctx.cells("variance")
    if "variance" not in variance_store:
        variance_store.put("variance", _variance_cell(cfg, data, cfg.seed))
    variance = variance_store.get("variance")

    curves: dict[str, Any] = {}
    for name in REGIMES:
        runs = [store.get(f"{name}/seed={cfg.seed + s}")["curve"] for s in range(cfg.seeds)]
        loss = torch.tensor([r["loss"] for r in runs], dtype=torch.float64)
        error = torch.tensor([r["error"] for r in runs], dtype=torch.float64)
        tail = max(loss.shape[1] // 4, 1)
        curves[name] = {
            "update": runs[0]["update"],
            "loss": loss.mean(0).tolist(),
            "error": error.mean(0).tolist(),
            "final_loss": float(loss[:, -1].mean()),
            "final_error": float(error[:, -1].mean()),
            "tail_loss": float(loss[:, -tail:].mean()),
            "tail_loss_per_seed": loss[:, -tail:].mean(1).tolist(),
        }
    frobenius = store.get(f"LB+diag F/seed={cfg.seed}")["frobenius"]
    mean_var = {n: sum(v) / len(v) for n, v in variance["variance"].items()}
    return {
        "curves": curves,
        "variance": variance,
        "mean_variance": mean_var,
        "frobenius": frobenius,
        "batch_sizes": [cfg.small_batch_size, cfg.large_batch_size],
        "tables": {
            "Training loss/error per regime (mean over seeds)": {
                "columns": [
                    "regime",
                    "final train loss",
                    "final train error",
                    "mean train loss, last quarter (mean ± se over seeds)",
                    "mean gradient variance (Fig. 2)",
                ],
                "rows": [
                    [
                        n,
                        curves[n]["final_loss"],
                        curves[n]["final_error"],
                        fmt_mean_se(curves[n]["tail_loss_per_seed"]),
                        mean_var[n],
                    ]
                    for n in REGIMES
                ],
            },
            "Frobenius norms along the LB+diag F run (Fig. 5a)": {
                "columns": ["update", "‖F‖_F", "‖diag F‖_F"],
                "rows": [
                    list(row)
                    for row in zip(
                        frobenius["update"], frobenius["full"], frobenius["diag"], strict=True
                    )
                ],
            },
        },
    }


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Fig. 2 (variance per layer), Fig. 3 (training curves) and Fig. 5a (Frobenius norms)."""
    import numpy as np

    from fisherlab.plotting import new_figure, save_figure

    out = []
    var = results["variance"]
    fig, ax = new_figure(1, 1, panel_size=(6.0, 3.2))
    layers = var["layers"]
    width = 0.8 / len(REGIMES)
    x = np.arange(len(layers))
    for i, name in enumerate(REGIMES):
        ax.bar(x + (i - 1.5) * width, var["variance"][name], width, label=name, color=COLORS[name])
    ax.set_xticks(x, layers, rotation=20)
    ax.set_yscale("log")
    ax.set_ylabel("mean per-parameter variance")
    ax.set_title("Fig. 2: variance of the update direction at a frozen network")
    ax.legend(ncols=4, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    out.append(save_figure(fig, Path(out_dir) / "fig2_gradient_variance.png"))

    fig, axes = new_figure(1, 2, panel_size=(4.0, 3.0))
    for name in REGIMES:
        c = results["curves"][name]
        axes[0].plot(c["update"], c["loss"], color=COLORS[name], label=name)
        axes[1].plot(c["update"], c["error"], color=COLORS[name], label=name)
    axes[0].set_ylabel("training loss")
    axes[1].set_ylabel("training error")
    for ax in axes:
        ax.set_xlabel("parameter update")
    axes[0].legend()
    fig.suptitle("Fig. 3: training per parameter update (mean over seeds)")
    out.append(save_figure(fig, Path(out_dir) / "fig3_training_curves.png"))

    fro = results["frobenius"]
    fig, ax = new_figure(1, 1, panel_size=(4.2, 3.0))
    ax.plot(fro["update"], fro["full"], "-o", color="#009E73", label=r"$\|F\|_F$")
    ax.plot(fro["update"], fro["diag"], "-o", color="#D55E00", label=r"$\|\mathrm{diag}(F)\|_F$")
    ax.set_yscale("log")
    ax.set_xlabel("parameter update (LB+diag F run)")
    ax.set_ylabel("Frobenius norm")
    ax.set_title("Fig. 5a: full vs diagonal Fisher")
    ax.legend()
    out.append(save_figure(fig, Path(out_dir) / "fig5a_frobenius.png"))
    return out


VARIANCE_FACTOR = 2.0  # "roughly the same" variance: within this factor of SB's
MAX_VARIANCE_RSE = 0.25  # largest relative standard error of a variance estimate allowed


def claims(results: dict[str, Any]) -> list[Claim]:
    """Fig. 2 (variance), Fig. 3 (convergence per update) and Fig. 5a (Frobenius norms)."""
    c = results["curves"]
    tail = {n: c[n]["tail_loss_per_seed"] for n in REGIMES}
    seeds = len(tail["SB"])
    mv = results["mean_variance"]
    ratio = {n: mv[n] / mv["SB"] for n in REGIMES}
    draws = int(results["variance"]["draws"])
    rse = math.sqrt(2.0 / (draws - 1)) if draws > 1 else math.inf
    fro = results["frobenius"]
    ratios = [f / d if d > 0 else math.nan for f, d in zip(fro["full"], fro["diag"], strict=True)]
    p_full, p_diag = gap_fraction(tail, "LB+full F"), gap_fraction(tail, "LB+diag F")
    lb_faster = greater_by_se(tail["SB"], tail["LB"])
    tails = "; ".join(f"{n} {fmt_mean_se(tail[n])}" for n in REGIMES)
    convergence_premise = (
        "LB trains faster per update than SB: SB's mean training loss over the last quarter "
        "of the updates exceeds LB's by more than 2 standard errors over seeds"
    )
    M_S, M_L = results["batch_sizes"]
    return [
        Claim(
            claim="LB with diagonal and with full Fisher noise has roughly the same average "
            "gradient variance as SB; LB's is much smaller (Fig. 2)",
            measured="mean per-parameter variance relative to SB: "
            + ", ".join(f"{n} {fmt(ratio[n], 3)}" for n in REGIMES)
            + f" ({draws} draws; M_S/M_L = {fmt(M_S / M_L, 3)}; full and diag share the "
            "diagonal by construction)",
            holds=all(
                1.0 / VARIANCE_FACTOR <= ratio[n] <= VARIANCE_FACTOR
                for n in ("LB+full F", "LB+diag F")
            )
            and ratio["LB"] < 1.0 / (2.0 * VARIANCE_FACTOR),
            source="Wen et al. 2020, Fig. 2",
            criterion=f"both noisy regimes' variance within a factor {VARIANCE_FACTOR:g} of "
            f"SB's and LB's below 1/{2 * VARIANCE_FACTOR:g} of SB's",
            premise=f"the draws resolve a factor {VARIANCE_FACTOR:g}: relative standard error "
            f"of a variance estimate √(2/(draws−1)) ≤ {MAX_VARIANCE_RSE:g}",
            premise_holds=rse <= MAX_VARIANCE_RSE,
        ),
        Claim(
            claim="LB with full Fisher noise matches the convergence of SB (Fig. 3)",
            measured=f"mean training loss over the last quarter of the updates: {tails}; "
            f"position of LB+full F between LB (0) and SB (1): {fmt(p_full, 3)}",
            holds=0.5 <= p_full <= 1.5,
            source="Wen et al. 2020, Fig. 3",
            criterion="(full − LB)/(SB − LB) of the mean tail losses lies in [0.5, 1.5]: "
            "LB+full F is nearer SB than LB",
            premise=convergence_premise,
            premise_holds=lb_faster,
        ),
        Claim(
            claim="LB with diagonal Fisher noise trains much faster than LB with full Fisher "
            "noise, close to LB (Fig. 3)",
            measured=f"mean training loss over the last quarter: {tails}; position of LB+diag "
            f"F between LB (0) and SB (1): {fmt(p_diag, 3)}",
            holds=greater_by_se(tail["LB+full F"], tail["LB+diag F"]) and p_diag < 0.5,
            source="Wen et al. 2020, Fig. 3",
            criterion="LB+full F's mean tail loss above LB+diag F's by > 2 standard errors, "
            "and (diag − LB)/(SB − LB) < 0.5",
            premise=convergence_premise + f" ({seeds} seed(s))",
            premise_holds=lb_faster,
        ),
        Claim(
            claim="The full Fisher has a much larger Frobenius norm than the diagonal Fisher "
            "along training (Fig. 5a)",
            measured=f"‖F‖_F / ‖diag F‖_F along the LB+diag F run: min {fmt(min(ratios), 3)}, "
            f"max {fmt(max(ratios), 3)} ({len(ratios)} checkpoints)",
            holds=min(ratios) > 2.0,
            source="Wen et al. 2020, Fig. 5a",
            criterion="the ratio exceeds 2 at every checkpoint (it is ≥ 1 for any Fisher)",
            premise="the Fisher is not at round-off zero: ‖diag F‖_F > 1e-12 at every checkpoint",
            premise_holds=all(d > 1e-12 for d in fro["diag"]),
        ),
    ]


EXPERIMENT = register(
    Experiment(
        name="wen-fig2-3",
        full_seconds=45,
        title="SB vs LB vs LB + full / diagonal Fisher noise (1-D CNN on MNIST-1D)",
        paper=SOURCE,
        description=(
            "Reduced scale (3-layer 1-D CNN on 2000 MNIST-1D signals instead of ResNet-44 on "
            "CIFAR-10; M_S = 32, M_L = 256, ratio 8 instead of 32; 300 updates instead of 8000; "
            "no batch norm): gradient variance per layer at a frozen network (Fig. 2), "
            "training loss/error per update at one constant step size (Fig. 3), Frobenius "
            "norms of the full and diagonal empirical Fisher along training (Fig. 5a)."
        ),
        config_class=Fig23Config,
        run=run,
        plot=plot,
        claims=claims,
        captions={
            "fig2_gradient_variance.png": "Wen et al. Fig. 2 analogue: mean per-parameter "
            "variance of the update direction of SB, LB, LB + full and LB + diagonal Fisher "
            "noise, per layer, at a partially trained network.",
            "fig3_training_curves.png": "Wen et al. Fig. 3 analogue: training loss and error "
            "on the whole training set per parameter update, mean over seeds.",
            "fig5a_frobenius.png": "Wen et al. Fig. 5a analogue: Frobenius norms of the full "
            "and of the diagonal empirical Fisher along the LB + diagonal Fisher run.",
        },
    )
)
