"""A tiny experiment for the runner, CLI and report tests: counts its computed cells."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from fisherlab.experiments import Claim, Experiment, RunContext, registry

NAME = "toy-cells"


@dataclass
class ToyConfig:
    n_cells: int = 5
    scale: float = 2.0
    label: str = "toy"
    datasets: tuple[str, ...] = ("a", "b")
    verbose: bool = False
    limit: int | None = None

    @classmethod
    def preset(cls, quick: bool, seed: int) -> ToyConfig:
        return cls(n_cells=4 if quick else 6)


class Counter:
    """Counts computed cells; raises once after ``fail_after`` computed cells if set."""

    def __init__(self) -> None:
        self.computed: list[str] = []
        self.fail_after: int | None = None

    def compute(self, key: str, value: float) -> dict:
        if self.fail_after is not None and len(self.computed) >= self.fail_after:
            self.fail_after = None
            raise RuntimeError("simulated crash in the middle of the run")
        self.computed.append(key)
        return {"value": value}


COUNTER = Counter()


def run(cfg: ToyConfig, ctx: RunContext) -> dict:
    store = ctx.cells("squares")
    values = {}
    for d in cfg.datasets:
        for i in ctx.progress(range(cfg.n_cells), total=cfg.n_cells, desc=d):
            key = f"{d}/{i}"
            cell = store.get(key)
            if cell is None:
                cell = COUNTER.compute(key, cfg.scale * i * i + ctx.seed)
                store.put(key, cell)
            values[key] = cell["value"]
    total = sum(values.values())
    return {
        "values": values,
        "total": total,
        "tables": {
            "Cells": {
                "columns": ["cell", "value"],
                "rows": [[k, v] for k, v in values.items()],
            }
        },
    }


def plot(results: dict, out_dir: Path) -> list[Path]:
    from fisherlab.plotting import new_figure, save_figure

    fig, ax = new_figure()
    ax.plot(list(results["values"].values()), "o-")
    return [save_figure(fig, Path(out_dir) / "values.png")]


def claims(results: dict) -> list[Claim]:
    return [
        Claim(
            claim="The toy total is positive.",
            measured=f"total = {results['total']:.3g}",
            holds=results["total"] > 0,
            source="Toy et al. 2024, Eq. 1",
            criterion="the total of the cells is above 0",
            premise="at least one cell ran",
            premise_holds=len(results["values"]) > 0,
        ),
        Claim(
            "Undecidable toy claim.",
            "nothing measured",
            None,
            "Toy et al. 2024, Fig. 2",
            criterion="never decided",
            premise="a measurement exists",
            premise_holds=True,
        ),
    ]


def make(name: str = NAME, **kwargs) -> Experiment:
    fields = dict(
        name=name,
        title="Toy cells",
        paper="Toy et al. 2024, Fig. 1",
        description="Squares of cell indices; used to test the runner.",
        config_class=ToyConfig,
        run=run,
        plot=plot,
        claims=claims,
    )
    fields.update(kwargs)
    return Experiment(**fields)


@contextlib.contextmanager
def registered(*experiments: Experiment):
    """Register experiments for the duration of a test."""
    for e in experiments:
        registry.register(e)
    try:
        yield
    finally:
        for e in experiments:
            registry.unregister(e.name)
