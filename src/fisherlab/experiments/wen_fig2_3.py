r"""``wen-fig2-3``: SB, LB, LB + full and LB + diagonal Fisher noise (Wen et al. Fig. 2, 3, 5a).

Reduced scale: an MLP (40-32-32-10, ReLU) on MNIST-1D (4000 training signals) instead of
ResNet-44 on CIFAR-10; :math:`M_S = 32`, :math:`M_L = 1000` (ratio ≈ 31, the paper's is
4096/128 = 32); no batch normalization (so no Ghost BN). Four regimes with the same
constant step size (the paper uses the same schedule for all four):

- **SB**: SGD with batches of :math:`M_S`; **LB**: SGD with batches of :math:`M_L`;
- **LB+full F**, **LB+diag F**: :class:`fisherlab.optim.CovarianceNoiseSGD` on batches of
  :math:`M_L` with ``noise="full"`` (Eq. 5) or ``"diag"`` (Algorithm 1), the noise on
  during the whole run, :math:`F` recomputed on every large batch.

:math:`F` is the empirical Fisher (``fisher="empirical"``), as the paper states (Sec. 2.2);
the full-Fisher draws are the Rademacher combinations of App. F.

- Fig. 3: training loss and error on the whole training set per parameter update, mean
  over seeds.
- Fig. 2: at a partially trained network (the SB run of the first seed after a quarter of
  its updates, frozen), the per-parameter variance of each regime's update direction
  (mini-batch gradient, plus the injected noise for the noisy regimes) over independent
  draws of the batch and the noise, averaged within each layer.
- Fig. 5a: :math:`\|F\|_F` and :math:`\|\mathrm{diag}(F)\|_F` of the empirical Fisher
  on a fixed subset of training samples, along the LB+diag F run of the first seed
  (dense :math:`D\times D` matrix, :func:`fisherlab.linalg.frobenius_norm`).

Every training run and the variance measurement are resumable cells. ``--quick``: 150
updates, one seed, 30 variance draws, 5 Frobenius checkpoints on 256 samples; full: 600
updates, 3 seeds, 100 draws, 10 checkpoints on 512 samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fisherlab.experiments.base import Claim, Experiment, RunContext
from fisherlab.experiments.registry import register
from fisherlab.experiments.wen_common import Regime, evaluate, load_data, make_cnn, train

__all__ = ["EXPERIMENT", "Fig23Config", "REGIMES"]

SOURCE = "Wen et al. 2020, Fig. 2, 3 and 5a"
REGIMES = ("SB", "LB", "LB+full F", "LB+diag F")
COLORS = {"SB": "#0072B2", "LB": "#000000", "LB+full F": "#009E73", "LB+diag F": "#D55E00"}


@dataclass
class Fig23Config:
    """Configuration of ``wen-fig2-3``.

    Attributes
    ----------
    num_samples : int
        MNIST-1D signals generated (80 % for training).
    hidden : int
        Width of the two hidden layers.
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

    num_samples: int = 5000
    hidden: int = 32
    small_batch_size: int = 32
    large_batch_size: int = 1000
    lr: float = 0.5
    updates: int = 600
    eval_every: int = 10
    seeds: int = 3
    variance_draws: int = 100
    frobenius_points: int = 10
    frobenius_samples: int = 512
    fisher: str = "empirical"
    seed: int = 0

    @classmethod
    def preset(cls, quick: bool, seed: int) -> Fig23Config:
        """Full: 600 updates × 3 seeds; quick: 150 updates, one seed (module docstring)."""
        if quick:
            return cls(
                updates=150, seeds=1, variance_draws=30, frobenius_points=5,
                frobenius_samples=256, seed=seed,
            )  # fmt: skip
        return cls(seed=seed)


def _regime(name: str, cfg: Fig23Config) -> Regime:
    noise = {"SB": None, "LB": None, "LB+full F": "full", "LB+diag F": "diag"}[name]
    size = cfg.small_batch_size if name == "SB" else cfg.large_batch_size
    return Regime(name, size, noise, cfg.lr)


def _frobenius(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, fisher: str):
    from fisherlab import Curvature
    from fisherlab.likelihoods import Categorical
    from fisherlab.linalg import frobenius_norm

    c = Curvature(model, Categorical(), X, y)
    F = c.empirical_fisher(form="dense") if fisher == "empirical" else c.fisher(form="dense")
    return frobenius_norm(F).value, frobenius_norm(F.diagonal()).value


def _train_cell(cfg: Fig23Config, data: Any, name: str, seed: int, fro: bool) -> dict[str, Any]:
    model = make_mlp(data.X.shape[1], cfg.hidden, 10, seed)
    curve: dict[str, list] = {"update": [], "loss": [], "error": []}
    frobenius: dict[str, list] = {"update": [], "full": [], "diag": []}
    points = max(cfg.frobenius_points, 2)
    checkpoints = {round(i * cfg.updates / (points - 1)) for i in range(points)}
    Xf, yf = data.X[: cfg.frobenius_samples], data.y[: cfg.frobenius_samples]

    def callback(step: int, m: torch.nn.Module) -> None:
        if step % cfg.eval_every == 0 or step == cfg.updates:
            loss, error = evaluate(m, data.X, data.y)
            curve["update"].append(step)
            curve["loss"].append(loss)
            curve["error"].append(error)
        if fro and step in checkpoints:
            full, diag = _frobenius(m, Xf, yf, cfg.fisher)
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

    model = make_mlp(data.X.shape[1], cfg.hidden, 10, seed)
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
    return {"layers": layers, "variance": variance}


def run(cfg: Fig23Config, ctx: RunContext) -> dict[str, Any]:
    """Training runs of the four regimes, the variance measurement and Frobenius norms."""
    data = load_data(cfg.num_samples)
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
        "tables": {
            "Training loss/error per regime (mean over seeds)": {
                "columns": [
                    "regime",
                    "final train loss",
                    "final train error",
                    "mean train loss, last quarter",
                    "mean gradient variance (Fig. 2)",
                ],
                "rows": [
                    [
                        n,
                        curves[n]["final_loss"],
                        curves[n]["final_error"],
                        curves[n]["tail_loss"],
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


def claims(results: dict[str, Any]) -> list[Claim]:
    """Claims of Sec. 3 and 5.2, with the numbers from the results."""
    c = results["curves"]
    tail = {n: c[n]["tail_loss"] for n in REGIMES}
    mv = results["mean_variance"]
    var_ratio = {n: mv[n] / mv["SB"] for n in REGIMES}
    fro = results["frobenius"]
    ratios = [f / d for f, d in zip(fro["full"], fro["diag"], strict=True)]
    sb, lb, full, diag = (tail[n] for n in REGIMES)
    gap = full - lb
    return [
        Claim(
            claim="LB with diagonal and with full Fisher noise have roughly the same average "
            "gradient variance as SB; LB's is much smaller (Fig. 2)",
            measured="mean per-parameter variance relative to SB: "
            + ", ".join(f"{n} {var_ratio[n]:.3g}" for n in REGIMES),
            holds=all(0.5 <= var_ratio[n] <= 2.0 for n in ("LB+full F", "LB+diag F"))
            and var_ratio["LB"] < 0.2,
            source="Wen et al. 2020, Fig. 2",
        ),
        Claim(
            claim="LB with full Fisher noise matches the convergence of SB (Fig. 3)",
            measured=f"mean training loss over the last quarter of the updates: SB {sb:.4g}, "
            f"LB+full F {full:.4g} (ratio {full / sb:.3f})",
            holds=abs(full / sb - 1.0) < 0.25,
            source="Wen et al. 2020, Fig. 3",
        ),
        Claim(
            claim="LB with diagonal Fisher noise trains much faster than LB with full Fisher "
            "noise, close to LB (Fig. 3)",
            measured=f"mean training loss over the last quarter: LB {lb:.4g}, LB+diag F "
            f"{diag:.4g}, LB+full F {full:.4g}; (diag − LB)/(full − LB) = "
            f"{(diag - lb) / gap if gap != 0 else float('nan'):.3f}",
            holds=diag < full and gap > 0 and (diag - lb) / gap < 0.5,
            source="Wen et al. 2020, Fig. 3",
        ),
        Claim(
            claim="The full Fisher has a much larger Frobenius norm than the diagonal Fisher "
            "along training (Fig. 5a)",
            measured=f"‖F‖_F / ‖diag F‖_F along the LB+diag F run: min {min(ratios):.3g}, "
            f"max {max(ratios):.3g} ({len(ratios)} checkpoints)",
            holds=min(ratios) > 2.0,
            source="Wen et al. 2020, Fig. 5a",
        ),
    ]


EXPERIMENT = register(
    Experiment(
        name="wen-fig2-3",
        title="SB vs LB vs LB + full / diagonal Fisher noise (MLP on MNIST-1D)",
        paper=SOURCE,
        description=(
            "Reduced scale (MLP 40-32-32-10 on MNIST-1D instead of ResNet-44 on CIFAR-10; "
            "M_S = 32, M_L = 1000): gradient variance per layer at a frozen network (Fig. 2), "
            "training loss/error per update (Fig. 3), Frobenius norms of the full and "
            "diagonal empirical Fisher along training (Fig. 5a)."
        ),
        config_class=Fig23Config,
        run=run,
        plot=plot,
        claims=claims,
    )
)
