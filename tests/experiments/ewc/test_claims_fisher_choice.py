"""ewc-fisher-choice claims on synthetic results: a pass, a fail, and failed premises."""

import pytest

from fisherlab.experiments.ewc import fisher_choice

GRID = [0.0, 1.0, 2.0, 3.0]
SEEDS = [0, 1, 2]


def _results(ef_ratio=0.01, train_acc=1.0, gain=0.4, ef_penalty=0.05, selected=None, seeds=SEEDS):
    """Synthetic runs: task-A accuracy 0.9 before B, 0.4 after B without a penalty."""
    selected = selected or {"exact": 2.0, "mc": 2.0, "empirical": 2.0}
    per_seed, runs = [], []
    for seed in seeds:
        noise = 0.01 * seed
        per_seed.append(
            {
                "seed": seed,
                "train_accuracy_a": train_acc,
                "test_accuracy_a_before_b": 0.9 + noise,
                "fisher_trace": {"exact": 1.0, "mc": 0.8, "empirical": ef_ratio + noise / 10},
            }
        )
        acc = {"val_a": 0.4 + noise, "val_b": 0.95, "test_a": 0.4 + noise, "test_b": 0.95}
        runs.append({"seed": seed, "fisher": "none", "log10_strength": None, **acc})
        for kind in ("exact", "mc", "empirical"):
            for k in GRID:
                a = 0.4 + noise
                if k == selected[kind]:
                    a += (
                        gain
                        + 0.01 * seed**2
                        - (ef_penalty * (1 + seed) if kind == "empirical" else 0)
                    )
                acc = {"val_a": a, "val_b": 0.9, "test_a": a, "test_b": 0.9}
                runs.append({"seed": seed, "fisher": kind, "log10_strength": k, **acc})
    return {
        "seeds": list(seeds),
        "log10_strengths": GRID,
        "per_seed": per_seed,
        "runs": runs,
        "selected": selected,
    }


@pytest.mark.parametrize(
    ("results", "holds", "premise"),
    [
        (_results(), [True, True, True], [True, True, True]),
        (_results(ef_ratio=0.9, gain=-0.1, ef_penalty=-0.05), [False] * 3, [True] * 3),
        (_results(train_acc=0.9), [None, True, True], [False, True, True]),
        (
            _results(selected={"exact": 3.0, "mc": 2.0, "empirical": 0.0}),
            [True, None, None],
            [True, False, False],
        ),
        (_results(seeds=[0, 1]), [None, None, None], [False, False, False]),
    ],
    ids=["pass", "fail", "not-fitted", "edge-of-grid", "two-seeds"],
)
def test_claims_follow_the_numbers(results, holds, premise):
    claims = fisher_choice.claims(results)
    assert [c.holds for c in claims] == holds
    assert [c.premise_holds for c in claims] == premise
    assert all(c.criterion and c.premise for c in claims)


def test_no_forgetting_makes_the_protection_claim_undecidable():
    res = _results()
    for r in res["runs"]:
        if r["fisher"] == "none":
            r["test_a"] = 0.9 + 0.01 * r["seed"]
    assert fisher_choice.claims(res)[1].holds is None
