r"""``balles-figB3``: M-SVAG with minibatch variance estimates (Balles 2021, §B.4, Fig. B.3).

M-SVAG (Alg. 2, variance from moving averages of :math:`g` and :math:`g^2`) against its
minibatch variant (Alg. 6, :class:`fisherlab.optim.MinibatchMSVAG`), which receives the
local variance of the minibatch gradient :math:`\hat s^{\mathrm{mb}} = s/m` (Eq. B.31,
computed during the backward pass by :func:`fisherlab.engine.hooks.collect`) and tracks
:math:`\operatorname{Var}[m_t]` with the :math:`\beta^2` moving average of Eq. B.34. Both
are trained and tuned exactly as in ``balles-fig5-4``
(:func:`~fisherlab.experiments.balles.fig5_4.tune_and_replicate`). Each run also records
the step shrinkage :math:`\|\Delta\theta\|_1/(\alpha\|m\|_1)`, the :math:`|m|`-weighted
mean adaptation factor :math:`\gamma`, to show that variance adaptation is active.

Reduced with respect to the thesis, which uses P1 (a CNN on Fashion-MNIST) and P2 (a CNN
on CIFAR-10) with ten seeds: here the digits MLP and the MNIST-1D MLP of
:mod:`~fisherlab.experiments.balles.training` (the per-sample variance of the digits CNN
costs about ten times a plain step on one CPU core), batch size 64, 1000 steps, 3 seeds
(quick: digits MLP, 200 steps, 3 step sizes, 2 seeds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fisherlab.experiments.balles.fig5_4 import (
    TUNING_PREMISE,
    TuningConfig,
    _problems_with,
    _values,
    plot_methods,
    tune_and_replicate,
    tuning_premise,
)
from fisherlab.experiments.base import Claim, Experiment, RunContext
from fisherlab.experiments.registry import register
from fisherlab.experiments.verdicts import fmt, fmt_mean_se, mean_se, se_of_difference

__all__ = ["EXPERIMENT", "FigB3Config", "LOSS_MARGIN", "ACC_MARGIN", "MAX_SHRINKAGE"]

SOURCE = "Balles 2021, §B.4.2 and Fig. B.3"
METHODS = ("M-SVAG", "M-SVAG-mb")
#: equivalence margin for "almost identical" training loss, in decades (a factor 1.26)
LOSS_MARGIN = 0.1
#: equivalence margin for "almost identical" best test accuracy (one percentage point)
ACC_MARGIN = 0.01
#: variance adaptation counts as active when the mean step shrinkage is below this
MAX_SHRINKAGE = 0.9


@dataclass
class FigB3Config(TuningConfig):
    """Configuration of ``balles-figB3`` (see :class:`TuningConfig` for the fields)."""

    problems: list[str] = field(default_factory=lambda: ["digits-mlp", "mnist1d-mlp"])
    methods: list[str] = field(default_factory=lambda: list(METHODS))


def run(cfg: FigB3Config, ctx: RunContext) -> dict[str, Any]:
    """Tune and replicate M-SVAG and minibatch M-SVAG on every problem."""
    return tune_and_replicate(cfg, ctx)


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Fig. B.3: training loss and test accuracy of both M-SVAG variants per problem."""
    return [plot_methods(results, Path(out_dir) / "figB3_minibatch_msvag.png", "Fig. B.3")]


def _within(a: list[float], b: list[float], margin: float) -> tuple[bool, float, float]:
    """Whether ``|mean(a) - mean(b)| + 2 se`` lies below ``margin``; the difference and se."""
    diff = mean_se(a)[0] - mean_se(b)[0]
    se = se_of_difference(a, b)
    return math.isfinite(se) and abs(diff) + 2 * se < margin, diff, se


def claims(results: dict[str, Any]) -> list[Claim]:
    """§B.4.2: the minibatch variant and the moving-average M-SVAG perform almost identically."""
    problems = _problems_with(results, METHODS)
    if not problems:
        return []
    ok, note = tuning_premise(results, problems, METHODS)
    shrink = {
        (p, m): mean_se(_values(results, p, m, "shrinkage"))[0] for p in problems for m in METHODS
    }
    active = all(v < MAX_SHRINKAGE for v in shrink.values())
    parts, verdicts = [], []
    key = "log10_final_train_loss"
    for p in problems:
        mb, ma = _values(results, p, "M-SVAG-mb", key), _values(results, p, "M-SVAG", key)
        lk, ld, lse = _within(mb, ma, LOSS_MARGIN)
        ak, ad, ase = _within(
            _values(results, p, "M-SVAG-mb", "max_test_acc"),
            _values(results, p, "M-SVAG", "max_test_acc"),
            ACC_MARGIN,
        )
        verdicts.append(lk and ak)
        parts.append(
            f"{p}: log10 final loss mb {fmt_mean_se(mb, 3)} vs {fmt_mean_se(ma, 3)} (difference "
            f"{fmt(ld, 3)}±{fmt(lse, 2)}); max test acc difference {fmt(ad, 3)}±{fmt(ase, 2)}; "
            f"step shrinkage mb {fmt(shrink[p, 'M-SVAG-mb'], 3)}, M-SVAG "
            f"{fmt(shrink[p, 'M-SVAG'], 3)}"
        )
    return [
        Claim(
            claim="M-SVAG with minibatch variance estimates (Alg. 6) and M-SVAG with "
            "moving-average estimates (Alg. 2) have almost identical performance",
            measured="; ".join(parts) + f" ({note})",
            holds=all(verdicts),
            source=SOURCE,
            criterion=f"on every problem, |difference of the mean log10 final training losses| "
            f"+ 2 standard errors < {LOSS_MARGIN:g} decades, and |difference of the mean best "
            f"test accuracies| + 2 standard errors < {ACC_MARGIN:g} (an equivalence test)",
            premise=TUNING_PREMISE + f"; variance adaptation is active: the mean step shrinkage "
            f"‖Δθ‖₁/(α‖m‖₁) of both variants is below {MAX_SHRINKAGE:g} on every problem",
            premise_holds=ok and active,
        )
    ]


EXPERIMENT = register(
    Experiment(
        name="balles-figB3",
        full_seconds=50,
        title="M-SVAG with minibatch variance estimates (Alg. 6) vs moving averages",
        paper="Balles 2021, Fig. B.3",
        description=(
            "Reduced: MLPs on UCI digits and MNIST-1D instead of the thesis' Fashion-MNIST and "
            "CIFAR-10 CNNs; batch 64, 1000 constant-step-size steps, 3 seeds instead of 10; "
            "step sizes tuned as in balles-fig5-4 (quick: digits MLP, 3 step sizes, 200 steps, "
            "2 seeds)."
        ),
        config_class=FigB3Config,
        run=run,
        plot=plot,
        claims=claims,
        captions={
            "figB3_minibatch_msvag.png": "Thesis Fig. B.3: training loss (top, log scale) and "
            "test accuracy (bottom) against steps for M-SVAG and its minibatch-variance variant "
            "(mb) at their tuned step sizes, mean ± 1 std over seeds, one column per problem."
        },
    )
)
