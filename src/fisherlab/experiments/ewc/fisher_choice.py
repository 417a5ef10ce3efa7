r"""``ewc-fisher-choice``: EWC with the Fisher, its Monte-Carlo estimate, or the empirical Fisher.

Elastic Weight Consolidation (Kirkpatrick et al. 2017; the study notes in ``papers/``)
penalises :math:`\frac\lambda2\sum_i F_i(\theta_i - \theta^*_{A,i})^2` while training task
B. Which labels the diagonal Fisher uses matters: the Fisher samples them from the model,
the empirical Fisher uses the training labels (Kunstner et al. 2019 list EWC among the
algorithms re-implemented with the EF). Once a flexible model fits task A, its per-sample
gradients and so the EF nearly vanish, while the Fisher does not.

Protocol (small scale; the EWC paper uses permuted MNIST with larger networks): task A is
the 8×8 ``digits`` training split, task B the same images under a fixed random pixel
permutation; 20% of the training split is held out for validation. An MLP
64-``hidden``-10 (tanh, float32) is trained on A with full-batch Adam, the diagonal Fisher
is computed at :math:`\theta^*_A` in the three ways (MC with one sampled label per input),
and task B is trained from :math:`\theta^*_A` with the EWC penalty. The three Fishers
differ in scale by orders of magnitude, so each is compared at its own tuned strength:
:math:`\lambda = 10^k/\operatorname{tr}F` for every :math:`k` of a grid (the penalty of a
unit-trace Fisher times :math:`10^k`), and :math:`k` is selected per Fisher by the
validation accuracy averaged over both tasks and over seeds. Every seed draws its own
initialisation, permutation, validation split and MC labels. Claims compare per-seed test
accuracies at the selected :math:`k` with standard errors over seeds (paired where the
arms share a seed); a selected :math:`k` on the edge of its grid makes the comparison not
decidable. Full: 3 seeds, 400/300 Adam steps, :math:`k \in \{0, \dots, 5\}`; ``--quick``:
hidden width 32, 150/80 steps, :math:`k \in \{1, 2, 3\}` (a smoke run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fisherlab.experiments.base import Claim, Experiment, RunContext
from fisherlab.experiments.common import evaluate, make_mlp
from fisherlab.experiments.registry import register
from fisherlab.experiments.verdicts import fmt, interior, mean_se

__all__ = ["EWCConfig", "EXPERIMENT"]

SOURCE = "EWC (Kirkpatrick et al. 2017) study notes; Kunstner et al. 2019, Sec. 1"
FISHERS = ("exact", "mc", "empirical")


@dataclass
class EWCConfig:
    r"""Configuration of ``ewc-fisher-choice``.

    Attributes
    ----------
    hidden : int
        Width of the hidden layer.
    steps_a, steps_b : int
        Full-batch Adam steps on task A and on task B.
    lr : float
        Adam step size.
    log10_strengths : tuple of float
        Grid of :math:`k`; the penalty weight is :math:`\lambda = 10^k / \operatorname{tr}F`
        for each Fisher (``λ = 0`` is always run as the baseline).
    seeds : tuple of int
        One replicate per seed (initialisation, permutation, split, MC labels).
    val_fraction : float
        Fraction of the training split held out for selecting :math:`k`.
    """

    hidden: int = 64
    steps_a: int = 400
    steps_b: int = 300
    lr: float = 1e-2
    log10_strengths: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0)
    seeds: tuple[int, ...] = (0, 1, 2)
    val_fraction: float = 0.2

    @classmethod
    def preset(cls, quick: bool, seed: int) -> EWCConfig:
        """Full: 3 seeds, 400/300 steps, k = 0 … 5; quick: width 32, 150/80 steps, k = 1, 2, 3."""
        if quick:
            return cls(
                hidden=32,
                steps_a=150,
                steps_b=80,
                log10_strengths=(1.0, 2.0, 3.0),
                seeds=(seed, seed + 1, seed + 2),
            )
        return cls(seeds=(seed, seed + 1, seed + 2))

    def __post_init__(self) -> None:
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must lie in (0, 1), got {self.val_fraction}")
        if not self.seeds:
            raise ValueError("seeds must name at least one seed")


def _tasks(seed: int, val_fraction: float) -> dict[str, dict[str, tuple[torch.Tensor, ...]]]:
    from fisherlab import datasets

    train, test = datasets.load("digits", split="train"), datasets.load("digits", split="test")
    g = torch.Generator().manual_seed(1000 + seed)
    permutation = torch.randperm(64, generator=g)
    order = torch.randperm(train.X.shape[0], generator=g)
    n_val = round(val_fraction * train.X.shape[0])
    val, fit = order[:n_val], order[n_val:]
    X, y = train.X.float(), train.y
    Xt = test.X.float()
    out = {}
    for task, cols in (("A", slice(None)), ("B", permutation)):
        out[task] = {
            "train": (X[fit][:, cols], y[fit]),
            "val": (X[val][:, cols], y[val]),
            "test": (Xt[:, cols], test.y),
        }
    return out


def _train(model, X, y, steps: int, lr: float, penalty=None) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(X), y)
        if penalty is not None:
            loss = loss + penalty()
        loss.backward()
        optimizer.step()


def _scores(model: torch.nn.Module, tasks: dict) -> dict[str, float]:
    return {
        f"{split}_{task.lower()}": evaluate(model, *tasks[task][split])[1]
        for task in ("A", "B")
        for split in ("val", "test")
    }


def _run_seed(cfg: EWCConfig, seed: int, store) -> dict[str, Any]:
    """Train A, consolidate with each Fisher, train B at every strength (cells resume)."""
    import fisherlab as fl
    from fisherlab.continual import EWC

    tasks = _tasks(seed, cfg.val_fraction)
    XA, yA = tasks["A"]["train"]
    XB, yB = tasks["B"]["train"]
    model = make_mlp([64, cfg.hidden, 10], torch.nn.Tanh, seed)
    _train(model, XA, yA, cfg.steps_a, cfg.lr)
    theta_a = {k: v.clone() for k, v in model.state_dict().items()}
    info = {
        "seed": seed,
        "train_accuracy_a": evaluate(model, XA, yA)[1],
        "test_accuracy_a_before_b": evaluate(model, *tasks["A"]["test"])[1],
    }
    likelihood = fl.likelihoods.Categorical()
    diagonals, anchors = {}, {}
    for kind in FISHERS:
        ewc = EWC(model, lam=1.0)
        generator = torch.Generator().manual_seed(seed) if kind == "mc" else None
        diagonals[kind] = ewc.consolidate(likelihood, XA, yA, fisher=kind, generator=generator)
        anchors[kind] = ewc.state_dict()["anchors"][0]
    info["fisher_trace"] = {k: float(d.sum()) for k, d in diagonals.items()}
    runs = []
    cells = [("none", None)] + [(k, s) for k in FISHERS for s in cfg.log10_strengths]
    for kind, strength in cells:
        key = f"seed={seed}/{kind}/{strength}"
        value = store.get(key)
        if value is None:
            model.load_state_dict(theta_a)
            penalty = None
            if strength is not None:
                ewc = EWC(model)
                ewc.load_state_dict(
                    {
                        "lam": 10.0**strength / info["fisher_trace"][kind],
                        "online": False,
                        "gamma": 1.0,
                        "fishers": [diagonals[kind]],
                        "anchors": [anchors[kind]],
                    }
                )
                penalty = ewc.penalty
            _train(model, XB, yB, cfg.steps_b, cfg.lr, penalty)
            value = _scores(model, tasks)
            store.put(key, value)
        runs.append({"seed": seed, "fisher": kind, "log10_strength": strength, **value})
    info["runs"] = runs
    return info


def _select(runs: list[dict], kind: str, strengths: list[float]) -> float:
    """The k with the best validation accuracy (mean of both tasks, averaged over seeds)."""

    def val(s: float) -> float:
        rs = [r for r in runs if r["fisher"] == kind and r["log10_strength"] == s]
        return sum((r["val_a"] + r["val_b"]) / 2 for r in rs) / len(rs)

    return max(strengths, key=val)


def run(cfg: EWCConfig, ctx: RunContext) -> dict[str, Any]:
    """Every seed: train A, three Fishers, B at every strength; select k per Fisher."""
    store = ctx.cells("task-b")
    per_seed = [
        _run_seed(cfg, seed, store)
        for seed in ctx.progress(cfg.seeds, total=len(cfg.seeds), desc="EWC seeds")
    ]
    runs = [r for s in per_seed for r in s["runs"]]
    strengths = list(cfg.log10_strengths)
    selected = {kind: _select(runs, kind, strengths) for kind in FISHERS}

    def at(kind: str, strength: float | None, field: str) -> list[float]:
        return [r[field] for r in runs if r["fisher"] == kind and r["log10_strength"] == strength]

    summary_rows = []
    for kind in ("none", *FISHERS):
        k = selected.get(kind)
        row = [kind, k]
        for field in ("test_a", "test_b"):
            m, se = mean_se(at(kind, k, field))
            row += [m, se]
        summary_rows.append(row)
    return {
        "seeds": list(cfg.seeds),
        "log10_strengths": strengths,
        "per_seed": [{k: v for k, v in s.items() if k != "runs"} for s in per_seed],
        "runs": runs,
        "selected": selected,
        "tables": {
            "Test accuracy after training B at the selected strength (mean, se over seeds)": {
                "columns": ["Fisher", "k", "task A", "se", "task B", "se"],
                "rows": summary_rows,
            },
            "All runs": {
                "columns": ["seed", "Fisher", "k", "val A", "val B", "test A", "test B"],
                "rows": [
                    [
                        r["seed"],
                        r["fisher"],
                        r["log10_strength"],
                        r["val_a"],
                        r["val_b"],
                        r["test_a"],
                        r["test_b"],
                    ]
                    for r in runs
                ],
            },
            "Diagonal Fisher at θ*_A (trace)": {
                "columns": ["seed", "train accuracy A", *FISHERS],
                "rows": [
                    [s["seed"], s["train_accuracy_a"], *(s["fisher_trace"][k] for k in FISHERS)]
                    for s in per_seed
                ],
            },
        },
    }


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Task-A and task-B test accuracy against k (mean ± se over seeds), one line per Fisher."""
    from fisherlab.plotting import method_color, new_figure, save_figure

    fig, axes = new_figure(ncols=2, squeeze=False, sharey=True)
    runs = results["runs"]
    strengths = results["log10_strengths"]
    colors = {"exact": "Fisher", "mc": "MC", "empirical": "EF"}
    for ax, task in zip(axes[0], ("a", "b"), strict=True):
        for kind in FISHERS:
            stats = [
                mean_se(
                    [
                        r[f"test_{task}"]
                        for r in runs
                        if r["fisher"] == kind and r["log10_strength"] == s
                    ]
                )
                for s in strengths
            ]
            ax.errorbar(
                strengths,
                [m for m, _ in stats],
                yerr=[se if math.isfinite(se) else 0.0 for _, se in stats],
                fmt="-o",
                capsize=2,
                color=method_color(colors[kind]),
                label=f"{kind} Fisher (selected k = {results['selected'][kind]:g})",
            )
        base = mean_se([r[f"test_{task}"] for r in runs if r["fisher"] == "none"])[0]
        ax.axhline(base, color="grey", ls="--", label="no penalty")
        ax.set_xlabel(r"$k$, penalty $\lambda = 10^k / \mathrm{tr}\,F$")
        ax.set_title(f"task {task.upper()} test accuracy after training B")
    axes[0][0].set_ylabel(f"accuracy (mean ± se over {len(results['seeds'])} seeds)")
    axes[0][0].legend()
    return [save_figure(fig, Path(out_dir) / "ewc_accuracy.png")]


def _at(results: dict[str, Any], kind: str, field: str) -> dict[int, float]:
    k = results["selected"].get(kind)
    return {
        r["seed"]: r[field]
        for r in results["runs"]
        if r["fisher"] == kind and r["log10_strength"] == k
    }


def _paired(a: dict[int, float], b: dict[int, float]) -> tuple[float, float]:
    return mean_se([a[s] - b[s] for s in sorted(a) if s in b])


def claims(results: dict[str, Any]) -> list[Claim]:
    """EF ≪ F at a fitted optimum; EWC with the Fisher reduces forgetting; EF vs F tuned."""
    per_seed = results["per_seed"]
    n = len(per_seed)
    grid = results["log10_strengths"]
    sel = results["selected"]
    enough = n >= 3
    seeds_text = f"at least 3 seeds (got {n})"

    def inner(kind: str) -> bool:
        return interior(sel[kind], grid)

    ratios = [s["fisher_trace"]["empirical"] / s["fisher_trace"]["exact"] for s in per_seed]
    mc_ratios = [s["fisher_trace"]["mc"] / s["fisher_trace"]["exact"] for s in per_seed]
    r_mean, r_se = mean_se(ratios)
    fits = min(s["train_accuracy_a"] for s in per_seed)

    def score(kind: str) -> dict[int, float]:
        a, b = _at(results, kind, "test_a"), _at(results, kind, "test_b")
        return {s: (a[s] + b[s]) / 2 for s in a}

    before = {s["seed"]: s["test_accuracy_a_before_b"] for s in per_seed}
    none_a = _at(results, "none", "test_a")
    forget_m, forget_se = _paired(before, none_a)
    exact_a = _at(results, "exact", "test_a")
    gain_m, gain_se = _paired(exact_a, none_a)
    diff_ef_m, diff_ef_se = _paired(score("exact"), score("empirical"))
    mean_score = {k: mean_se(list(score(k).values())) for k in FISHERS}
    sel_text = ", ".join(f"{k} {sel[k]:g}" for k in FISHERS)
    return [
        Claim(
            claim="Where the model fits task A, the empirical Fisher is much smaller than "
            "the Fisher: it is not an estimate of it",
            measured=f"tr EF / tr F at θ*_A = {fmt(r_mean, 3)} ± {fmt(r_se, 3)} (mean ± se "
            f"over {n} seeds; per seed {', '.join(fmt(r, 3) for r in ratios)}); one-sample "
            f"MC / F per seed {', '.join(fmt(r, 3) for r in mc_ratios)}; lowest train accuracy "
            f"on A {fmt(fits, 4)}",
            holds=r_mean + 2 * r_se < 0.5,
            source=SOURCE,
            criterion="the mean over seeds of tr EF / tr F plus 2 standard errors is below 1/2 "
            "('much smaller' read as less than half)",
            premise=f"the model fits task A (train accuracy ≥ 0.99 in every seed) and {seeds_text}",
            premise_holds=fits >= 0.99 and enough,
        ),
        Claim(
            claim="EWC with the Fisher reduces forgetting of task A compared with no penalty",
            measured=f"task-A test accuracy after B: gain of the exact-Fisher penalty at its "
            f"selected k = {sel['exact']:g} over no penalty {fmt(gain_m, 3)} ± "
            f"{fmt(gain_se, 3)} (paired over {n} seeds); forgetting without a penalty "
            f"{fmt(forget_m, 3)} ± {fmt(forget_se, 3)}",
            holds=gain_m > 2 * gain_se,
            source=SOURCE,
            criterion="task-A test accuracy after training B with the exact-Fisher penalty at "
            "its selected strength exceeds that without a penalty by more than 2 standard "
            "errors (paired over seeds)",
            premise=f"training B without a penalty forgets A (test accuracy on A falls by more "
            f"than 2 standard errors), the selected k is inside its grid "
            f"[{min(grid):g}, {max(grid):g}], and {seeds_text}",
            premise_holds=forget_m > 2 * forget_se and inner("exact") and enough,
        ),
        Claim(
            claim="Which Fisher is used matters: even with λ tuned for each, the empirical "
            "Fisher gives a worse trade-off between the tasks than the Fisher",
            measured=f"mean test accuracy over both tasks at the selected k ({sel_text}): "
            + ", ".join(f"{k} {fmt(m, 4)} ± {fmt(se, 2)}" for k, (m, se) in mean_score.items())
            + f"; exact − empirical {fmt(diff_ef_m, 3)} ± {fmt(diff_ef_se, 3)} (paired)",
            holds=diff_ef_m > 2 * diff_ef_se,
            source=SOURCE,
            criterion="at the k selected for each on validation data, the mean test accuracy "
            "over both tasks with the exact Fisher exceeds that with the empirical Fisher by "
            "more than 2 standard errors (paired over seeds)",
            premise=f"the selected k of the exact and the empirical Fisher are both inside the "
            f"grid [{min(grid):g}, {max(grid):g}], and {seeds_text}",
            premise_holds=inner("exact") and inner("empirical") and enough,
        ),
    ]


EXPERIMENT = register(
    Experiment(
        name="ewc-fisher-choice",
        full_seconds=35,
        title="EWC with the exact, Monte-Carlo or empirical Fisher (permuted digits)",
        paper="EWC (Kirkpatrick et al. 2017) notes; Kunstner et al. 2019",
        description=(
            "Two tasks (digits and pixel-permuted digits) instead of permuted MNIST, a "
            "64-64-10 MLP trained on A, EWC on B with the diagonal Fisher computed exactly, by "
            "Monte Carlo, or as the empirical Fisher, each at its own penalty strength "
            "selected on validation data; test accuracy on both tasks over 3 seeds (quick: "
            "width 32, fewer steps, a 3-point strength grid)."
        ),
        config_class=EWCConfig,
        run=run,
        plot=plot,
        claims=claims,
        captions={
            "ewc_accuracy.png": "EWC (Kirkpatrick et al. 2017) with three diagonal Fishers: "
            "test accuracy on task A (left) and task B (right) after training B, against the "
            "penalty strength k (λ = 10^k / tr F), mean ± se over seeds; dashed: no penalty.",
        },
    )
)
