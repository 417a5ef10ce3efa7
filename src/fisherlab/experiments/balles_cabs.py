r"""``balles-cabs``: Coupled Adaptive Batch Size (Balles 2021, §4.4, Fig. 4.2 and Fig. 4.3).

SGD whose batch size follows CABS (Alg. 1, :class:`fisherlab.optim.CABS`,
:math:`m = \alpha\,\operatorname{tr}\Sigma / f` with EMA smoothing, rounding and clipping),
compared with constant batch sizes and with the "Competitor" of §4.4.4, the norm test of
Eq. 4.18 realised with the same predictive update (:class:`fisherlab.optim.NormTest`,
:math:`\theta \in \{0.6, 0.8, 1.0\}`). Batches come from
:class:`fisherlab.optim.AdaptiveBatchSampler`. The per-sample gradient variance
:math:`s` of Eq. 3.30 is computed during the ordinary backward pass by
:func:`fisherlab.engine.hooks.collect` (population variance times :math:`m/(m-1)`).
Performance is tracked against the number of training examples accessed.

Reduced with respect to the thesis. The thesis trains CNNs on MNIST, SVHN, CIFAR-10 and
CIFAR-100 with constant batch sizes 32, 128, 512. Here: a ReLU MLP 64-64-10 on UCI
digits (1438 training / 359 test images), a budget of 20 epochs (about 28 800 examples),
constant batch sizes 16, 64, 256 (scaled down with the data set), :math:`m_{\min} = 4`,
:math:`m_{\max} = 1024`, running-average constant :math:`\mu = 0.9` (the thesis does not
state its :math:`m_{\min}, m_{\max}, \mu`). Learning rates
:math:`\alpha \in \{0.3, 0.1, 0.06, 0.03, 0.01, 0.006\}` as in the thesis; for every method
the learning rate (and for the Competitor :math:`\theta`) with the highest test accuracy
reached within the budget is selected (Fig. 4.2). The learning-rate sensitivity (Fig. 4.3)
uses :math:`\alpha \in \{0.1, 0.06, 0.03, 0.01, 0.006\}`, the Competitor's best
:math:`\theta` and constant batch size 64, and measures the spread of the final training
losses across learning rates as :math:`\log_{10}(\max/\min)`. One seed per cell.
``--quick``: budget 2 epochs, batch size 64 only, Competitor :math:`\theta = 1`,
:math:`\alpha \in \{0.3, 0.1, 0.03\}`.

On this problem :math:`\alpha\operatorname{tr}\Sigma/f` is small (CABS picks batch sizes
of about 2-20 for :math:`\alpha \le 0.3`), so :math:`m_{\min}` is set to 4 rather than a
typical 16; a larger :math:`m_{\min}` clips CABS to a constant batch size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fisherlab.experiments.base import Claim, Experiment, RunContext
from fisherlab.experiments.registry import register

__all__ = ["CABSConfig", "EXPERIMENT", "train"]

SOURCE_42 = "Balles 2021, §4.4.4 and Fig. 4.2"
SOURCE_43 = "Balles 2021, §4.4.4 and Fig. 4.3"


@dataclass
class CABSConfig:
    """Configuration of ``balles-cabs``.

    Attributes
    ----------
    problem : str
        Problem of :mod:`fisherlab.experiments.balles_training`.
    epochs : float
        Budget in passes over the training set (examples accessed / N).
    lrs : list of float
        Learning rates tried for every method.
    sensitivity_lrs : list of float
        Learning rates of the sensitivity comparison (subset of ``lrs``).
    constant_batch_sizes : list of int
        Constant batch sizes compared against.
    sensitivity_batch_size : int
        The constant batch size shown in the sensitivity comparison.
    thetas : list of float
        Noise tolerances θ of the Competitor (norm test).
    min_batch, max_batch : int
        Batch-size bounds of CABS and the Competitor.
    mu : float
        Running-average constant of CABS and the Competitor.
    num_evals : int
        Evaluations (full training loss, test accuracy) over the budget.
    seed : int
        Seed (initialisation and batches).
    """

    problem: str = "digits-mlp"
    epochs: float = 20.0
    lrs: list[float] = field(default_factory=lambda: [0.3, 0.1, 0.06, 0.03, 0.01, 0.006])
    sensitivity_lrs: list[float] = field(default_factory=lambda: [0.1, 0.06, 0.03, 0.01, 0.006])
    constant_batch_sizes: list[int] = field(default_factory=lambda: [16, 64, 256])
    sensitivity_batch_size: int = 64
    thetas: list[float] = field(default_factory=lambda: [0.6, 0.8, 1.0])
    min_batch: int = 4
    max_batch: int = 1024
    mu: float = 0.9
    num_evals: int = 40
    seed: int = 0

    @classmethod
    def preset(cls, quick: bool, seed: int) -> CABSConfig:
        """Full: 20 epochs, 6 lrs, 3 constant sizes, 3 θ; quick: 2 epochs, 3 lrs, 1 each."""
        if quick:
            return cls(
                epochs=2.0,
                lrs=[0.3, 0.1, 0.03],
                sensitivity_lrs=[0.3, 0.1, 0.03],
                constant_batch_sizes=[64],
                thetas=[1.0],
                num_evals=16,
                seed=seed,
            )
        return cls(seed=seed)


class _ConstantBatch:
    """A batch-size "rule" with a fixed size (for :class:`AdaptiveBatchSampler`)."""

    def __init__(self, size: int) -> None:
        self.next_batch_size = int(size)


def train(
    cfg: CABSConfig, method: str, lr: float, *, batch_size: int = 0, theta: float = 1.0
) -> dict[str, Any]:
    """One SGD run of ``method`` (``"CABS"``, ``"constant"``, ``"competitor"``) at ``lr``.

    Returns the number of examples, full training loss, test accuracy and current batch
    size at each evaluation, and the number of steps.
    """
    import fisherlab as fl
    from fisherlab.experiments.balles_training import evaluate, load_problem, make_model
    from fisherlab.optim import CABS, AdaptiveBatchSampler, NormTest

    problem = load_problem(cfg.problem)
    N = problem.X_train.shape[0]
    budget = int(cfg.epochs * N)
    model = make_model(problem, cfg.seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    lik = fl.likelihoods.Categorical()
    if method == "CABS":
        rule: Any = CABS(lr, min_batch=cfg.min_batch, max_batch=cfg.max_batch, mu=cfg.mu)
    elif method == "competitor":
        rule = NormTest(theta, min_batch=cfg.min_batch, max_batch=cfg.max_batch, mu=cfg.mu)
    elif method == "constant":
        rule = _ConstantBatch(batch_size)
    else:
        raise ValueError(f"unknown method {method!r}")
    sampler = AdaptiveBatchSampler(
        N,
        rule,
        num_batches=budget // cfg.min_batch + 1,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    checkpoints = [round(budget * (k + 1) / cfg.num_evals) for k in range(cfg.num_evals)]
    rec: dict[str, list[float]] = {"examples": [], "train_loss": [], "test_acc": [], "batch": []}

    def log(examples: int) -> None:
        loss, _ = evaluate(model, problem.X_train, problem.y_train)
        _, acc = evaluate(model, problem.X_test, problem.y_test)
        rec["examples"].append(examples)
        rec["train_loss"].append(loss if math.isfinite(loss) else float("inf"))
        rec["test_acc"].append(acc)
        rec["batch"].append(int(rule.next_batch_size))

    log(0)
    seen, steps, nxt = 0, 0, 0
    adaptive = method != "constant"
    for idx in sampler:
        X, y = problem.X_train[idx], problem.y_train[idx]
        m = len(idx)
        opt.zero_grad()
        if adaptive:
            with fl.engine.hooks.collect(model, lik, statistics=("gradient", "variance")) as st:
                loss = torch.nn.functional.cross_entropy(model(X), y)
                loss.backward()
            variance = st.flat("variance") * (m / (m - 1))
            gradient = st.flat("gradient")
        else:
            loss = torch.nn.functional.cross_entropy(model(X), y)
            loss.backward()
        opt.step()
        if adaptive:
            rule.update(variance=variance, loss=loss.item(), gradient=gradient)
        seen += m
        steps += 1
        while nxt < len(checkpoints) and seen >= checkpoints[nxt]:
            log(checkpoints[nxt])
            nxt += 1
        if nxt == len(checkpoints) or not math.isfinite(rec["train_loss"][-1]):
            break
    while nxt < len(checkpoints):  # diverged: keep the curve length
        rec["examples"].append(checkpoints[nxt])
        rec["train_loss"].append(float("inf"))
        rec["test_acc"].append(rec["test_acc"][-1])
        rec["batch"].append(rec["batch"][-1])
        nxt += 1
    rec["steps"] = steps  # type: ignore[assignment]
    return rec


def _variants(cfg: CABSConfig) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, method, kwargs) of every batch-size strategy."""
    out = [("CABS", "CABS", {})]
    out += [(f"constant {b}", "constant", {"batch_size": b}) for b in cfg.constant_batch_sizes]
    out += [(f"competitor θ={t:g}", "competitor", {"theta": t}) for t in cfg.thetas]
    return out


def run(cfg: CABSConfig, ctx: RunContext) -> dict[str, Any]:
    """Every strategy at every learning rate (one resumable cell each), then selection."""
    store = ctx.cells("runs")
    jobs = [(v, lr) for v in _variants(cfg) for lr in cfg.lrs]
    runs: dict[str, dict[str, Any]] = {}
    for (label, method, kw), lr in ctx.progress(jobs, total=len(jobs), desc="runs"):
        key = f"{label}/lr={lr:g}"
        value = store.get(key)
        if value is None:
            value = train(cfg, method, lr, **kw)
            store.put(key, value)
        runs.setdefault(label, {})[f"{lr:g}"] = value

    def best(labels: list[str]) -> tuple[str, str]:
        cands = [(max(r["test_acc"]), lab, lr) for lab in labels for lr, r in runs[lab].items()]
        _, lab, lr = max(cands, key=lambda c: c[0])
        return lab, lr

    selected: dict[str, dict[str, Any]] = {}
    groups = {"CABS": ["CABS"]}
    groups.update({f"constant {b}": [f"constant {b}"] for b in cfg.constant_batch_sizes})
    groups["competitor"] = [f"competitor θ={t:g}" for t in cfg.thetas]
    for name, labels in groups.items():
        lab, lr = best(labels)
        r = runs[lab][lr]
        selected[name] = {
            "variant": lab,
            "lr": float(lr),
            "final_train_loss": r["train_loss"][-1],
            "max_test_acc": max(r["test_acc"]),
            "steps": r["steps"],
        }
    competitor_variant = selected["competitor"]["variant"]
    sens_labels = {
        "CABS": "CABS",
        f"constant {cfg.sensitivity_batch_size}": f"constant {cfg.sensitivity_batch_size}",
        "competitor": competitor_variant,
    }
    sensitivity = {}
    for name, lab in sens_labels.items():
        finals = {f"{lr:g}": runs[lab][f"{lr:g}"]["train_loss"][-1] for lr in cfg.sensitivity_lrs}
        vals = list(finals.values())
        spread = math.log10(max(vals) / min(vals)) if min(vals) > 0 else math.inf
        sensitivity[name] = {"variant": lab, "final_train_loss": finals, "log10_spread": spread}
    rows = [
        [name, s["variant"], s["lr"], s["final_train_loss"], s["max_test_acc"], s["steps"]]
        for name, s in selected.items()
    ]
    sens_rows = [
        [name, s["variant"], *s["final_train_loss"].values(), s["log10_spread"]]
        for name, s in sensitivity.items()
    ]
    return {
        "budget_examples": runs["CABS"][f"{cfg.lrs[0]:g}"]["examples"][-1],
        "runs": runs,
        "selected": selected,
        "sensitivity": sensitivity,
        "sensitivity_lrs": list(cfg.sensitivity_lrs),
        "tables": {
            "Best learning rate per strategy (by max test accuracy), at the budget": {
                "columns": [
                    "strategy",
                    "variant",
                    "lr",
                    "final train loss",
                    "max test acc",
                    "steps",
                ],
                "rows": rows,
            },
            "Learning-rate sensitivity: final training loss per lr": {
                "columns": [
                    "strategy",
                    "variant",
                    *[f"α={lr:g}" for lr in cfg.sensitivity_lrs],
                    "log10(max/min)",
                ],
                "rows": sens_rows,
            },
        },
    }


def _color(name: str) -> str:
    colors = {"CABS": "#D55E00", "competitor": "#009E73"}
    if name in colors:
        return colors[name]
    from fisherlab.plotting import method_color

    return method_color(name)


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Fig. 4.2 (loss, accuracy, CABS batch size vs examples) and Fig. 4.3 (lr families)."""
    import numpy as np

    from fisherlab.plotting import new_figure, save_figure

    runs, sel = results["runs"], results["selected"]
    shades = ["#0072B2", "#56B4E9", "#332288", "#88CCEE"]
    fig, axes = new_figure(nrows=3, ncols=1, panel_size=(5.5, 2.4), sharex=True)
    k = 0
    for name, s in sel.items():
        r = runs[s["variant"]][f"{s['lr']:g}"]
        if name.startswith("constant"):
            color, k = shades[k % len(shades)], k + 1
        else:
            color = _color(name)
        x = np.asarray(r["examples"])
        label = f"{s['variant']} (α={s['lr']:g})"
        axes[0].plot(x, r["train_loss"], color=color, label=label)
        axes[1].plot(x, r["test_acc"], color=color, label=label)
        if name == "CABS":
            axes[2].step(x, r["batch"], where="post", color=color, label=label)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("training loss")
    axes[0].legend(fontsize=7)
    accs = [v for s in sel.values() for v in runs[s["variant"]][f"{s['lr']:g}"]["test_acc"][1:]]
    axes[1].set_ylim(max(0.0, min(accs) - 0.01), min(1.0, max(accs) + 0.01))
    axes[1].set_ylabel("test accuracy")
    axes[2].set_ylabel("CABS batch size")
    axes[2].set_xlabel("training examples accessed")
    axes[0].set_title("Strategies at their best learning rate (digits MLP)")
    p1 = Path(out_dir) / "fig4_2_cabs_vs_constant.png"
    save_figure(fig, p1)

    sens = results["sensitivity"]
    lrs = results["sensitivity_lrs"]
    fig, axes = new_figure(ncols=len(sens), sharey=True, panel_size=(3.4, 2.8))
    cmap = __import__("matplotlib").colormaps["viridis"]
    for ax, s in zip(np.atleast_1d(axes), sens.values(), strict=True):
        for i, lr in enumerate(lrs):
            r = runs[s["variant"]][f"{lr:g}"]
            ax.plot(
                r["examples"],
                r["train_loss"],
                color=cmap(i / max(len(lrs) - 1, 1)),
                label=f"α={lr:g}",
            )
        ax.set_yscale("log")
        ax.set_title(f"{s['variant']}\nspread {s['log10_spread']:.2f} decades")
        ax.set_xlabel("examples")
    np.atleast_1d(axes)[0].set_ylabel("training loss")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    p2 = Path(out_dir) / "fig4_3_lr_sensitivity.png"
    save_figure(fig, p2)
    return [p1, p2]


def claims(results: dict[str, Any]) -> list[Claim]:
    """§4.4.4: CABS trains faster, reaches the best accuracy, is less lr-sensitive."""
    sel = results["selected"]
    others = {k: v for k, v in sel.items() if k != "CABS"}
    cabs = sel["CABS"]
    best_other_loss = min(others.items(), key=lambda kv: kv[1]["final_train_loss"])
    best_other_acc = max(others.items(), key=lambda kv: kv[1]["max_test_acc"])
    sens = results["sensitivity"]
    spreads = {k: v["log10_spread"] for k, v in sens.items()}
    cabs_run = results["runs"]["CABS"][f"{cabs['lr']:g}"]
    batches = cabs_run["batch"]
    q = max(1, len(batches) // 5)
    early, late = sum(batches[:q]) / q, sum(batches[-q:]) / q
    return [
        Claim(
            claim="CABS yields a faster decrease of the training loss than constant batch sizes "
            "and the Competitor (on 3 of the thesis' 4 problems; not on MNIST)",
            measured=f"final training loss at the budget: CABS {cabs['final_train_loss']:.4g} "
            f"vs best other {best_other_loss[1]['variant']} "
            f"{best_other_loss[1]['final_train_loss']:.4g}",
            holds=cabs["final_train_loss"] < best_other_loss[1]["final_train_loss"],
            source=SOURCE_42,
        ),
        Claim(
            claim="CABS achieves the best test accuracy of all batch-size strategies (on 3 of 4 "
            "problems)",
            measured=f"max test accuracy: CABS {cabs['max_test_acc']:.4f} vs best other "
            f"{best_other_acc[1]['variant']} {best_other_acc[1]['max_test_acc']:.4f}",
            holds=cabs["max_test_acc"] >= best_other_acc[1]["max_test_acc"],
            source=SOURCE_42,
        ),
        Claim(
            claim="CABS chooses increasing batch sizes as training proceeds (Fig. 4.2, bottom)",
            measured=f"mean CABS batch size at the first / last fifth of the evaluations: "
            f"{early:.1f} / {late:.1f}",
            holds=late > early,
            source=SOURCE_42,
        ),
        Claim(
            claim="With CABS the training-loss curves for different learning rates cluster much "
            "more closely than with a constant batch size or the Competitor",
            measured="spread log10(max/min) of the final training loss over α ∈ {"
            + ", ".join(f"{lr:g}" for lr in results["sensitivity_lrs"])
            + "}: "
            + ", ".join(f"{sens[k]['variant']} {v:.3f}" for k, v in spreads.items()),
            holds=all(spreads["CABS"] < v for k, v in spreads.items() if k != "CABS"),
            source=SOURCE_43,
        ),
    ]


EXPERIMENT = register(
    Experiment(
        name="balles-cabs",
        title="CABS vs constant batch sizes and the norm-test Competitor",
        paper="Balles 2021, Fig. 4.2 and Fig. 4.3",
        description=(
            "Reduced: SGD on a digits MLP (instead of CNNs on MNIST/SVHN/CIFAR), 20 epochs "
            "budget; CABS vs constant batch sizes 16/64/256 vs the norm test (θ ∈ {0.6, 0.8, "
            "1}), α ∈ {0.3, …, 0.006}, best α by test accuracy; lr sensitivity over "
            "α ∈ {0.1, …, 0.006} (quick: 2 epochs, 3 α, batch 64, θ = 1)."
        ),
        config_class=CABSConfig,
        run=run,
        plot=plot,
        claims=claims,
    )
)
