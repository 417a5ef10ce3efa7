r"""``balles-figB2``: SVAG and ADAM* against M-SVAG and ADAM (Balles 2021, §B.3.3, Fig. B.2).

SVAG (Alg. 4, variance adaptation of plain SGD without momentum), M-SVAG (Alg. 2), ADAM*
(Alg. 5: one :math:`\beta`, bias-corrected variance estimate with :math:`\rho(\beta, t)`,
no :math:`\varepsilon`) and ADAM (:class:`torch.optim.Adam`, default hyper-parameters),
trained and tuned exactly as in ``balles-fig5-4``
(:func:`~fisherlab.experiments.balles.fig5_4.tune_and_replicate`).

Reduced with respect to the thesis, which uses P2 (a CNN on CIFAR-10) and P3 (WRN-40-4 on
CIFAR-100) with ten seeds: here the 8x8-digits CNN and the MNIST-1D MLP of
:mod:`~fisherlab.experiments.balles.training`, batch size 64, 1000 steps, 3 seeds (quick:
digits MLP, 200 steps, 3 step sizes, 2 seeds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fisherlab.experiments.balles.fig5_4 import (
    TUNING_PREMISE,
    TuningConfig,
    _problems_with,
    _values,
    better_by_se,
    plot_methods,
    tune_and_replicate,
    tuning_premise,
)
from fisherlab.experiments.base import Claim, Experiment, RunContext
from fisherlab.experiments.registry import register
from fisherlab.experiments.verdicts import fmt_mean_se

__all__ = ["EXPERIMENT", "FigB2Config"]

SOURCE = "Balles 2021, §B.3.3 and Fig. B.2"
METHODS = ("M-SVAG", "SVAG", "ADAM", "ADAM*")


@dataclass
class FigB2Config(TuningConfig):
    """Configuration of ``balles-figB2`` (see :class:`TuningConfig` for the fields)."""

    problems: list[str] = field(default_factory=lambda: ["digits-cnn", "mnist1d-mlp"])
    methods: list[str] = field(default_factory=lambda: list(METHODS))


def run(cfg: FigB2Config, ctx: RunContext) -> dict[str, Any]:
    """Tune and replicate M-SVAG, SVAG, ADAM and ADAM* on every problem."""
    return tune_and_replicate(cfg, ctx)


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Fig. B.2: training loss and test accuracy of the four methods per problem."""
    return [plot_methods(results, Path(out_dir) / "figB2_svag_and_adam_star.png", "Fig. B.2")]


def claims(results: dict[str, Any]) -> list[Claim]:
    """§B.3.3: SVAG can beat M-SVAG; ADAM*'s adjustments improve on ADAM."""
    out: list[Claim] = []
    key = "log10_final_train_loss"
    problems = _problems_with(results, ("M-SVAG", "SVAG"))
    if problems:
        ok, note = tuning_premise(results, problems, ("M-SVAG", "SVAG"))
        svag_better = [p for p in problems if better_by_se(results, p, "SVAG", "M-SVAG", key, True)]
        svag_worse = [p for p in problems if better_by_se(results, p, "M-SVAG", "SVAG", key, True)]
        out.append(
            Claim(
                claim="SVAG is a viable alternative to M-SVAG: it reaches a lower training loss "
                "than M-SVAG on some problems (thesis: better on P2, slightly worse on P3)",
                measured="log10 final training loss, mean±se: "
                + "; ".join(
                    f"{p}: SVAG {fmt_mean_se(_values(results, p, 'SVAG', key), 3)}, M-SVAG "
                    f"{fmt_mean_se(_values(results, p, 'M-SVAG', key), 3)}"
                    for p in problems
                )
                + f" → SVAG lower on: {', '.join(svag_better) or 'none'}; higher on: "
                f"{', '.join(svag_worse) or 'none'} ({note})",
                holds=bool(svag_better),
                source=SOURCE,
                criterion="on at least one problem SVAG's mean log10 final training loss is below "
                "M-SVAG's by more than 2 standard errors over seeds",
                premise=TUNING_PREMISE,
                premise_holds=ok,
            )
        )
    problems = _problems_with(results, ("ADAM", "ADAM*"))
    if problems:
        key = "min_train_loss"
        ok, note = tuning_premise(results, problems, ("ADAM", "ADAM*"))
        logs = {(p, m): _values(results, p, m, key) for p in problems for m in ("ADAM", "ADAM*")}
        star_better = [p for p in problems if better_by_se(results, p, "ADAM*", "ADAM", key, True)]
        star_worse = [p for p in problems if better_by_se(results, p, "ADAM", "ADAM*", key, True)]
        out.append(
            Claim(
                claim="The adjustments of §5.4 help: ADAM* reaches lower minimal training loss "
                "values than ADAM (thesis: on P2; on par on P3)",
                measured="minimal training loss, mean±se: "
                + "; ".join(
                    f"{p}: ADAM* {fmt_mean_se(logs[p, 'ADAM*'], 3)}, "
                    f"ADAM {fmt_mean_se(logs[p, 'ADAM'], 3)}"
                    for p in problems
                )
                + f" → ADAM* lower on: {', '.join(star_better) or 'none'}; higher on: "
                f"{', '.join(star_worse) or 'none'} ({note})",
                holds=bool(star_better) and not star_worse,
                source=SOURCE,
                criterion="on at least one problem ADAM*'s mean minimal training loss is below "
                "ADAM's by more than 2 standard errors over seeds, and on no problem above it "
                "by more than 2 standard errors",
                premise=TUNING_PREMISE,
                premise_holds=ok,
            )
        )
    return out


EXPERIMENT = register(
    Experiment(
        name="balles-figB2",
        full_seconds=105,
        title="SVAG and ADAM* against M-SVAG and ADAM",
        paper="Balles 2021, Fig. B.2",
        description=(
            "Reduced: the 8x8-digits CNN and the MNIST-1D MLP instead of the thesis' CIFAR-10 "
            "CNN (P2) and CIFAR-100 WRN (P3); batch 64, 1000 constant-step-size steps, 3 seeds "
            "instead of 10; step sizes tuned as in balles-fig5-4 (quick: digits MLP, 3 step "
            "sizes, 200 steps, 2 seeds)."
        ),
        config_class=FigB2Config,
        run=run,
        plot=plot,
        claims=claims,
        captions={
            "figB2_svag_and_adam_star.png": "Thesis Fig. B.2: training loss (top, log scale) and "
            "test accuracy (bottom) against steps for M-SVAG, SVAG, ADAM and ADAM* at their "
            "tuned step sizes, mean ± 1 std over seeds, one column per problem."
        },
    )
)
