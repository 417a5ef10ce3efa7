r"""``wen-tables``: accuracy of SB, LB and the noise variants (Wen et al. Tables 1-2, Fig. 5b).

Reduced scale (:mod:`fisherlab.experiments.wen.common`): a 1-D CNN (3 conv layers, 16
channels) on 2000 MNIST-1D training signals, the generator's 1000 test signals for
validation, instead of LeNet/AlexNet/VGG/ResNet on MNIST/CIFAR; :math:`M_S = 32`,
:math:`M_L = 128` (ratio 4 instead of the paper's 32: with :math:`M_L = 256`, plain
large-batch SGD at step sizes 0.3-0.6 either under-fitted the training set in 700 updates
or diverged, depending on the seed; with 128 it fits it in 1500 updates); no batch
normalization (so no Ghost BN). All methods train for the same number of epochs (SB makes
4× more updates than the LB methods):

- **SB**, **LB**: plain SGD with batches of :math:`M_S` / :math:`M_L`; LB with a linear
  warm-up over the first 10 % of its updates (App. E.1: 10 of 200 epochs);
- **LB+diag F** (Algorithm 1), **K-FAC**, **Fisher trace**, **Multiplicative**:
  :class:`fisherlab.optim.CovarianceNoiseSGD` with ``noise="diag"``, ``"kfac"``,
  ``"trace"``, ``"multiplicative"`` on batches of :math:`M_L`, the noise on during the
  first quarter of the updates, plain LB afterwards (Sec. 5.4, App. E.1), LB's warm-up;
- **BatchChange**: :class:`fisherlab.optim.BatchChangeSampler`, SB during the first quarter
  of the epochs, then LB (App. E.2), at SB's step size.

Step sizes: the paper tunes the schedule of every method (App. E.1). Here SB and LB are
tuned on the first seed over the grids ``lr_small_grid`` / ``lr_large_grid`` (best
validation accuracy; the selected value must lie strictly inside its grid); the noise
variants use LB's step size and BatchChange SB's (a batch-size increase replaces a
step-size decay, Smith et al. 2017). Constant step sizes after the warm-up, no decay.
:math:`F` is the empirical Fisher (Sec. 2.2); the multiplicative noise multiplies the
gradient by :math:`1 + s\varepsilon`, :math:`\varepsilon\sim\mathcal N(0, \sigma^2)`,
:math:`s = \sqrt{(M_L-M_S)/(M_LM_S)}`, σ = ``multiplicative_std``.

Fig. 5b: at the end of training of SB, LB and LB+diag F, the largest eigenvalue of the
Hessian of the training loss (on ``sharpness_samples`` training signals) by Lanczos, after
a temperature fitted on the validation set (Sec. 5.3; the paper also folds batch norm into
the weights, which this network does not have).

Every claim rests on the premise of Sec. 5.4: SB generalizes better than LB (validation
accuracy higher by more than two standard errors over seeds) at comparable training
accuracy (means within 2 points) with both tuned step sizes inside their grids. If it does
not hold, the claims are not decidable. Every run is a resumable cell; the tuning runs of
the first seed are reused as that seed's SB and LB runs. ``--quick``: 400 training
signals, 6 epochs, 2 seeds, 32 Hessian samples (a smoke run); full: 2000 signals, 100
epochs, 3 seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fisherlab.experiments.base import Claim, Experiment, RunContext
from fisherlab.experiments.registry import register
from fisherlab.experiments.verdicts import (
    fmt,
    greater_by_se,
    interior,
    mean_se,
    se_of_difference,
)
from fisherlab.experiments.wen.common import (
    Data,
    Regime,
    gap_fraction,
    load_data,
    loss_and_accuracy,
    make_cnn,
    sharpness,
    train,
)

__all__ = ["EXPERIMENT", "METHODS", "TablesConfig", "premise"]

SOURCE = "Wen et al. 2020, Tables 1 and 2, Fig. 5b"
METHODS = ("SB", "LB", "LB+diag F", "BatchChange", "Multiplicative", "K-FAC", "Fisher trace")
NOISE = {"LB+diag F": "diag", "Multiplicative": "multiplicative", "K-FAC": "kfac"}
NOISE["Fisher trace"] = "trace"
SHARPNESS = ("SB", "LB", "LB+diag F")
COLORS = {
    "SB": "#0072B2",
    "LB": "#000000",
    "LB+diag F": "#D55E00",
    "BatchChange": "#56B4E9",
    "Multiplicative": "#CC79A7",
    "K-FAC": "#E69F00",
    "Fisher trace": "#009E73",
}
TRAIN_TOLERANCE = 2.0  # points of training accuracy within which SB and LB count as comparable


@dataclass
class TablesConfig:
    """Configuration of ``wen-tables``.

    Attributes
    ----------
    train_samples : int
        MNIST-1D training signals used (of the ``num_samples · 0.8`` generated).
    num_samples : int
        MNIST-1D signals generated (80 % training, 20 % validation).
    channels : int
        Channels of the three convolutions.
    small_batch_size, large_batch_size : int
        :math:`M_S`, :math:`M_L`.
    lr_small_grid, lr_large_grid : tuple of float
        Step sizes tried for SB and for LB on the first seed.
    warmup_fraction : float
        Linear warm-up of the large-batch methods, as a fraction of their updates.
    epochs : int
        Epochs of every method.
    noise_fraction : float
        Fraction of the updates with noise (and of the epochs with SB for BatchChange).
    multiplicative_std : float
        σ of the multiplicative noise.
    seeds : int
        Seeds per method (``seed, seed+1, ...``).
    fisher : str
        ``"empirical"`` (the paper's F) or ``"exact"``.
    sharpness_samples : int
        Training signals on which the Hessian of Fig. 5b is taken.
    seed : int
        Base seed.
    """

    train_samples: int = 2000
    num_samples: int = 5000
    channels: int = 16
    small_batch_size: int = 32
    large_batch_size: int = 128
    lr_small_grid: tuple[float, ...] = (0.1, 0.2, 0.4)
    lr_large_grid: tuple[float, ...] = (0.15, 0.3, 0.6)
    warmup_fraction: float = 0.1
    epochs: int = 100
    noise_fraction: float = 0.25
    multiplicative_std: float = 1.0
    seeds: int = 3
    fisher: str = "empirical"
    sharpness_samples: int = 256
    seed: int = 0

    @classmethod
    def preset(cls, quick: bool, seed: int) -> TablesConfig:
        """Full: 2000 signals, 3 seeds × 100 epochs; quick: 400 signals, 2 seeds × 6 epochs."""
        if quick:
            return cls(train_samples=400, epochs=6, seeds=2, sharpness_samples=32, seed=seed)
        return cls(seed=seed)


def _regime(name: str, cfg: TablesConfig, lr_small: float, lr_large: float) -> Regime:
    if name == "SB":
        return Regime(name, cfg.small_batch_size, None, lr_small)
    if name == "BatchChange":
        return Regime(
            name, cfg.large_batch_size, None, lr_small, early_batch_size=cfg.small_batch_size
        )
    return Regime(
        name, cfg.large_batch_size, NOISE.get(name), lr_large, warmup_fraction=cfg.warmup_fraction
    )


def _cell(cfg: TablesConfig, data: Data, regime: Regime, seed: int) -> dict[str, Any]:
    model = make_cnn(cfg.channels, 10, seed)
    updates = train(
        model, data, regime, small_batch_size=cfg.small_batch_size,
        large_batch_size=cfg.large_batch_size, fisher=cfg.fisher, seed=seed,
        epochs=cfg.epochs, noise_fraction=cfg.noise_fraction,
        switch_fraction=cfg.noise_fraction, multiplicative_std=cfg.multiplicative_std,
    )  # fmt: skip
    train_loss, train_accuracy = loss_and_accuracy(model, data.X, data.y)
    val_loss, val_accuracy = loss_and_accuracy(model, data.X_test, data.y_test)
    out: dict[str, Any] = {
        "lr": regime.lr,
        "updates": updates,
        "diverged": not math.isfinite(train_loss),
        "train_loss": train_loss,
        "train_accuracy": 100.0 * train_accuracy,
        "val_loss": val_loss,
        "val_accuracy": 100.0 * val_accuracy,
    }
    if regime.name in SHARPNESS and not out["diverged"]:
        out.update(sharpness(model, data, cfg.sharpness_samples))
    return out


def _key(name: str, lr: float, seed: int) -> str:
    return f"{name}/lr={lr:g}/seed={seed}"


def run(cfg: TablesConfig, ctx: RunContext) -> dict[str, Any]:
    """Tune SB and LB on the first seed, train every method for every seed, tabulate."""
    data = load_data(cfg.train_samples, cfg.num_samples)
    store = ctx.cells("runs")
    s0 = cfg.seed
    grids = {"SB": cfg.lr_small_grid, "LB": cfg.lr_large_grid}
    tuning: dict[str, Any] = {}
    for name, grid in ctx.progress(list(grids.items()), desc="wen-tables tuning"):
        for lr in grid:
            key = _key(name, lr, s0)
            if key not in store:
                store.put(key, _cell(cfg, data, _regime(name, cfg, lr, lr), s0))
        accs = [store.get(_key(name, lr, s0))["val_accuracy"] for lr in grid]
        best = max(range(len(grid)), key=lambda i: (accs[i], -i))
        tuning[name] = {"grid": list(grid), "val_accuracy": accs, "selected": grid[best]}
    lr_small, lr_large = tuning["SB"]["selected"], tuning["LB"]["selected"]
    regimes = {name: _regime(name, cfg, lr_small, lr_large) for name in METHODS}
    seeds = [s0 + s for s in range(cfg.seeds)]
    jobs = [(name, seed) for seed in seeds for name in METHODS]
    for name, seed in ctx.progress(jobs, desc="wen-tables"):
        key = _key(name, regimes[name].lr, seed)
        if key not in store:
            store.put(key, _cell(cfg, data, regimes[name], seed))
    methods: dict[str, Any] = {}
    for name in METHODS:
        cells = [store.get(_key(name, regimes[name].lr, seed)) for seed in seeds]
        entry = {
            "lr": regimes[name].lr,
            "updates": cells[0]["updates"],
            "diverged": sum(bool(c["diverged"]) for c in cells),
        }
        for field in ("val_accuracy", "train_accuracy", "val_loss", "train_loss"):
            entry[field] = [c[field] for c in cells]
        if name in SHARPNESS:
            entry["lambda_max"] = [c.get("lambda_max", math.nan) for c in cells]
            entry["temperature"] = [c.get("temperature", math.nan) for c in cells]
        methods[name] = entry

    def cell(values: list[float], digits: int = 2) -> str:
        m, se = mean_se(values)
        return f"{m:.{digits}f} ± {se:.{digits}f}" if math.isfinite(se) else f"{m:.{digits}f}"

    rows = [
        [
            name,
            m["lr"],
            cell(m["val_accuracy"]),
            ", ".join(f"{a:.1f}" for a in m["val_accuracy"]),
            cell(m["train_accuracy"]),
            cell(m["train_loss"], 4),
            m["updates"],
            m["diverged"],
        ]
        for name, m in methods.items()
    ]
    tables = {
        f"Validation and training accuracy (%) after {cfg.epochs} epochs, mean ± se over "
        f"{cfg.seeds} seed(s)": {
            "columns": [
                "method",
                "lr",
                "validation accuracy",
                "per seed",
                "train accuracy",
                "train loss",
                "updates",
                "diverged runs",
            ],
            "rows": rows,
        },
        f"Step-size tuning on seed {s0} (validation accuracy, %)": {
            "columns": ["method", "lr", "validation accuracy", "selected"],
            "rows": [
                [name, lr, acc, lr == t["selected"]]
                for name, t in tuning.items()
                for lr, acc in zip(t["grid"], t["val_accuracy"], strict=True)
            ],
        },
        "Fig. 5b: largest Hessian eigenvalue at the end of training (temperature-scaled)": {
            "columns": ["method", "λ_max (mean ± se)", "per seed", "temperature"],
            "rows": [
                [
                    name,
                    cell(methods[name]["lambda_max"], 3),
                    ", ".join(fmt(v, 3) for v in methods[name]["lambda_max"]),
                    ", ".join(fmt(v, 3) for v in methods[name]["temperature"]),
                ]
                for name in SHARPNESS
            ],
        },
    }
    return {
        "methods": methods,
        "tuning": tuning,
        "num_seeds": cfg.seeds,
        "epochs": cfg.epochs,
        "tables": tables,
    }


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Validation and training accuracy per method (Tables 1-2) and λ_max (Fig. 5b)."""
    from fisherlab.plotting import new_figure, save_figure

    methods = results["methods"]
    names = list(methods)
    fig, axes = new_figure(1, 2, panel_size=(5.2, 3.2))
    for ax, field, label in zip(
        axes, ("val_accuracy", "train_accuracy"), ("validation", "training"), strict=True
    ):
        for i, n in enumerate(names):
            values = methods[n][field]
            m, se = mean_se(values)
            se = se if math.isfinite(se) else 0.0
            ax.bar(i, m, yerr=se, color=COLORS.get(n, "#999999"), alpha=0.8, capsize=3)
            ax.plot([i] * len(values), values, ".", color="0.3", ms=4)
        low = min(min(methods[n][field]) for n in names)
        high = max(max(methods[n][field]) for n in names)
        ax.set_ylim(max(0.0, low - max(2.0, 0.3 * (high - low))), min(100.0, high + 2.0) + 0.5)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_ylabel(f"{label} accuracy (%)")
        ax.set_title(f"{label} accuracy, {results['epochs']} epochs")
    fig.suptitle(f"Tables 1-2 analogue (1-D CNN on MNIST-1D, {results['num_seeds']} seed(s))")
    paths = [save_figure(fig, Path(out_dir) / "tables_val_accuracy.png")]

    fig, ax = new_figure(1, 1, panel_size=(4.2, 3.0))
    for i, n in enumerate(SHARPNESS):
        values = [v for v in methods[n]["lambda_max"] if math.isfinite(v)]
        if values:
            m, se = mean_se(values)
            se = se if math.isfinite(se) else 0.0
            ax.bar(i, m, yerr=se, color=COLORS[n], alpha=0.8, capsize=3)
            ax.plot([i] * len(values), values, ".", color="0.3", ms=4)
    ax.set_xticks(range(len(SHARPNESS)), SHARPNESS)
    ax.set_ylabel(r"$\lambda_{\max}$ of the Hessian")
    ax.set_title("Fig. 5b: sharpness at the end of training")
    paths.append(save_figure(fig, Path(out_dir) / "fig5b_hessian_lambda_max.png"))
    return paths


def premise(results: dict[str, Any]) -> tuple[bool, str, str]:
    """Sec. 5.4's premise: SB generalizes better than LB at comparable training accuracy.

    Returns (holds, the premise sentence, the numbers behind it).
    """
    m, tuning = results["methods"], results["tuning"]
    sb, lb = m["SB"], m["LB"]
    train_sb, train_lb = mean_se(sb["train_accuracy"])[0], mean_se(lb["train_accuracy"])[0]
    comparable = abs(train_sb - train_lb) <= TRAIN_TOLERANCE
    inside = {n: interior(t["selected"], t["grid"]) for n, t in tuning.items()}
    gap = greater_by_se(sb["val_accuracy"], lb["val_accuracy"])
    text = (
        f"the SB/LB generalization gap exists: SB's validation accuracy above LB's by more than "
        f"2 standard errors over seeds, at comparable training accuracy (means within "
        f"{TRAIN_TOLERANCE:g} points), both tuned step sizes strictly inside their grids"
    )
    (vs, ss), (vl, sl) = mean_se(sb["val_accuracy"]), mean_se(lb["val_accuracy"])
    numbers = (
        f"premise: validation SB {fmt(vs)} ± {fmt(ss, 2)}, LB {fmt(vl)} ± {fmt(sl, 2)}; training "
        f"SB {fmt(train_sb)}, LB {fmt(train_lb)}; selected lr SB {tuning['SB']['selected']:g} "
        f"of {tuning['SB']['grid']}, LB {tuning['LB']['selected']:g} of {tuning['LB']['grid']}"
    )
    return gap and comparable and all(inside.values()), text, numbers


def _acc(m: dict[str, Any], name: str, field: str = "val_accuracy") -> str:
    mean, se = mean_se(m[name][field])
    return f"{name} {fmt(mean)} ± {fmt(se, 2)}"


def claims(results: dict[str, Any]) -> list[Claim]:
    """Table 1 (gap, diag noise), Table 2 (BatchChange, variants) and Fig. 5b (λ_max)."""
    m, n = results["methods"], results["num_seeds"]
    ok, text, numbers = premise(results)
    val = {k: v["val_accuracy"] for k, v in m.items()}
    train_sb = mean_se(m["SB"]["train_accuracy"])[0]
    train_lb = mean_se(m["LB"]["train_accuracy"])[0]
    comparable = abs(train_sb - train_lb) <= TRAIN_TOLERANCE
    inside = all(interior(t["selected"], t["grid"]) for t in results["tuning"].values())
    lam = {k: [v for v in m[k]["lambda_max"] if math.isfinite(v)] for k in SHARPNESS}
    lam_ok = all(len(v) == n for v in lam.values())
    closed_diag, closed_bc = gap_fraction(val, "LB+diag F"), gap_fraction(val, "BatchChange")
    variants = ("K-FAC", "Fisher trace")
    better = {k: greater_by_se(val[k], val["LB+diag F"]) for k in variants}
    se_diff = {k: se_of_difference(val[k], val["LB+diag F"]) for k in variants}
    gap = mean_se(val["SB"])[0] - mean_se(val["LB"])[0]
    lam_text = "; ".join(
        f"{k} {fmt(mean_se(v)[0], 3)} ± {fmt(mean_se(v)[1], 2)}" if v else f"{k} n/a"
        for k, v in lam.items()
    )
    return [
        Claim(
            claim="Large batches generalize worse than small batches trained for the same "
            "number of epochs with tuned step sizes (the generalization gap, Table 1: SB > LB)",
            measured=f"{numbers.removeprefix('premise: ')} ({n} seed(s))",
            holds=greater_by_se(val["SB"], val["LB"]),
            source="Wen et al. 2020, Table 1, Sec. 5.4",
            criterion="mean SB validation accuracy − mean LB's > 2 standard errors of the "
            "difference over seeds",
            premise=f"SB and LB reach comparable training accuracy (means within "
            f"{TRAIN_TOLERANCE:g} points) and both tuned step sizes lie strictly inside "
            "their grids",
            premise_holds=comparable and inside,
        ),
        Claim(
            claim="LB + diagonal Fisher noise (first quarter of training) improves LB's "
            "validation accuracy (Table 1)",
            measured=f"{_acc(m, 'LB+diag F')} (training "
            f"{fmt(mean_se(m['LB+diag F']['train_accuracy'])[0])}), {_acc(m, 'LB')}; {numbers}",
            holds=greater_by_se(val["LB+diag F"], val["LB"]),
            source="Wen et al. 2020, Table 1",
            criterion="mean LB+diag F validation accuracy − mean LB's > 2 standard errors of "
            "the difference",
            premise=text,
            premise_holds=ok,
        ),
        Claim(
            claim="LB + diagonal Fisher noise closes most of the generalization gap (Table 1: "
            "0.47-1.05 of SB − LB in the paper's nine rows, median 0.86)",
            measured=f"fraction closed (diag − LB)/(SB − LB) = {fmt(closed_diag, 3)}; "
            f"{_acc(m, 'SB')}, {_acc(m, 'LB+diag F')}, {_acc(m, 'LB')}; {numbers}",
            holds=closed_diag >= 0.5,
            source="Wen et al. 2020, Table 1",
            criterion="(mean diag − mean LB)/(mean SB − mean LB) ≥ 0.5",
            premise=text,
            premise_holds=ok,
        ),
        Claim(
            claim="BatchChange (SB for the first quarter of the epochs, then LB) improves on LB "
            "and closes most of the gap (Table 2: within 0.4 points of SB, 0.73-0.97 of the "
            "gap)",
            measured=f"{_acc(m, 'BatchChange')} (training "
            f"{fmt(mean_se(m['BatchChange']['train_accuracy'])[0])}); fraction of the gap "
            f"closed {fmt(closed_bc, 3)}; {numbers}",
            holds=greater_by_se(val["BatchChange"], val["LB"]) and closed_bc >= 0.5,
            source="Wen et al. 2020, Table 2",
            criterion="BatchChange above LB by > 2 standard errors and (BC − LB)/(SB − LB) ≥ 0.5",
            premise=text,
            premise_holds=ok,
        ),
        Claim(
            claim="Diagonal Fisher noise generalizes better than multiplicative Gaussian noise "
            "(Table 2: by 1.6-3.3 points)",
            measured=f"{_acc(m, 'LB+diag F')}, {_acc(m, 'Multiplicative')}; {numbers}",
            holds=greater_by_se(val["LB+diag F"], val["Multiplicative"]),
            source="Wen et al. 2020, Table 2",
            criterion="mean diag validation accuracy − mean multiplicative's > 2 standard "
            "errors of the difference",
            premise=text,
            premise_holds=ok,
        ),
        Claim(
            claim="Diagonal Fisher noise is at least as good as K-FAC and Fisher-trace noise "
            "(Table 2)",
            measured=f"{_acc(m, 'LB+diag F')}, "
            + ", ".join(_acc(m, k) for k in variants)
            + f"; significantly better than diag: {better}; 2 se of the differences "
            + ", ".join(f"{k} {fmt(2 * v, 3)}" for k, v in se_diff.items())
            + f" vs half the gap {fmt(0.5 * gap, 3)}; {numbers}",
            holds=not any(better.values()),
            source="Wen et al. 2020, Table 2",
            criterion="neither variant's mean validation accuracy exceeds diag's by more than "
            "2 standard errors of the difference",
            premise=text + "; the comparison can see a difference of half the gap: 2 standard "
            "errors of each difference below (SB − LB)/2",
            premise_holds=ok and all(2.0 * se_diff[k] < 0.5 * gap for k in variants),
        ),
        Claim(
            claim="The largest Hessian eigenvalue at the end of training is lower for LB + "
            "diagonal Fisher noise than for LB (Fig. 5b)",
            measured=f"temperature-scaled λ_max: {lam_text}; {numbers}",
            holds=greater_by_se(lam["LB"], lam["LB+diag F"]) if lam_ok else None,
            source="Wen et al. 2020, Fig. 5b, Sec. 5.3",
            criterion="mean λ_max of LB − mean λ_max of LB+diag F > 2 standard errors of the "
            "difference",
            premise=text + "; λ_max computed for every seed",
            premise_holds=ok and lam_ok,
        ),
        Claim(
            claim="LB ends at a sharper minimum than SB (larger λ_max; Fig. 5b and the "
            "sharpness heuristic of Sec. 5.3)",
            measured=f"temperature-scaled λ_max: {lam_text}; {numbers}",
            holds=greater_by_se(lam["LB"], lam["SB"]) if lam_ok else None,
            source="Wen et al. 2020, Fig. 5b, Sec. 5.3",
            criterion="mean λ_max of LB − mean λ_max of SB > 2 standard errors of the difference",
            premise=text + "; λ_max computed for every seed",
            premise_holds=ok and lam_ok,
        ),
    ]


EXPERIMENT = register(
    Experiment(
        name="wen-tables",
        full_seconds=220,
        title="Validation accuracy of SB, LB and noise variants; sharpness (1-D CNN, MNIST-1D)",
        paper=SOURCE,
        description=(
            "Reduced scale: a 3-layer 1-D CNN on 2000 MNIST-1D signals (1000 for validation) "
            "instead of LeNet/VGG/ResNet on MNIST/CIFAR; M_S = 32, M_L = 128 (ratio 4, not 32); "
            "100 epochs for every method, no batch norm (no Ghost BN), constant step sizes "
            "(SB and LB tuned on one seed over 3-point grids, LB with 10 % linear warm-up; "
            "noise variants at LB's, BatchChange at SB's), noise in the first quarter; "
            "3 seeds; λ_max on 256 training signals, no batch-norm folding."
        ),
        config_class=TablesConfig,
        run=run,
        plot=plot,
        claims=claims,
        captions={
            "tables_val_accuracy.png": "Wen et al. Tables 1-2 analogue: validation (left) and "
            "training (right) accuracy at the end of training for every method, mean ± "
            "standard error over seeds, dots = seeds.",
            "fig5b_hessian_lambda_max.png": "Wen et al. Fig. 5b analogue: largest eigenvalue of "
            "the training-loss Hessian (Lanczos, temperature fitted on the validation set) at "
            "the end of training for SB, LB and LB + diagonal Fisher noise; dots = seeds.",
        },
    )
)
