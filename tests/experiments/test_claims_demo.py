"""demo claims on synthetic results: a pass, a fail, and failed premises."""

import pytest

from fisherlab.experiments import demo


def _run(dataset, seed, ratios, losses=(1.0, 0.1)):
    """One run whose tr EF / tr F is ``ratios`` at the checkpoints (tr F = 2)."""
    return {
        "dataset": dataset,
        "seed": seed,
        "step": list(range(len(ratios))),
        "loss": list(losses),
        "trace_fisher": [2.0] * len(ratios),
        "trace_ef": [2.0 * r for r in ratios],
        "grad_norm_sq": [1.0] * len(ratios),
    }


def _results(ratios_per_seed, losses=(1.0, 0.1)):
    runs = {}
    for dataset in ("blobs", "xor"):
        for seed, ratios in enumerate(ratios_per_seed):
            runs[f"{dataset}-seed{seed}"] = _run(dataset, seed, ratios, losses)
    return {"runs": runs}


SHRINKS = [(1.0, 0.30), (1.1, 0.35), (0.9, 0.28)]  # EF falls to about a third of F
EQUAL = [(1.0, 1.02), (1.0, 0.98), (1.0, 1.0)]  # EF stays equal to F


@pytest.mark.parametrize(
    ("results", "holds", "premise"),
    [
        (_results(SHRINKS), [True, True], [True, True]),
        (_results(EQUAL), [False, False], [True, True]),
        (_results(SHRINKS, losses=(1.0, 1.0)), [True, None], [True, False]),
        (_results(SHRINKS[:1]), [None, None], [False, False]),
    ],
    ids=["pass", "fail", "no-fit", "one-seed"],
)
def test_claims_follow_the_numbers(results, holds, premise):
    claims = demo.claims(results)
    assert [c.holds for c in claims] == holds
    assert [c.premise_holds for c in claims] == premise
    assert all(c.criterion and c.premise for c in claims)
