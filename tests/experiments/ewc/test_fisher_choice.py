"""ewc-fisher-choice in a reduced quick mode."""

import json

from fisherlab.experiments.ewc import fisher_choice
from fisherlab.experiments.runner import run_experiment


def test_ewc_experiment_runs_and_claims_follow_results(tmp_path):
    overrides = {
        "steps_a": 150,
        "steps_b": 40,
        "log10_strengths": (1.0, 2.0, 3.0),
        "hidden": 16,
        "seeds": (0, 1, 2),
    }
    run_dir = run_experiment(
        "ewc-fisher-choice", tmp_path, quick=True, overrides=overrides, show_progress=False
    )
    results = json.loads((run_dir / "results.json").read_text())
    assert (run_dir / "ewc_accuracy.png").stat().st_size > 0
    assert len(results["runs"]) == 3 * (1 + 3 * 3)
    assert set(results["selected"]) == {"exact", "mc", "empirical"}
    for s in results["per_seed"]:
        # the EF is far below the Fisher where the model fits A
        assert s["train_accuracy_a"] > 0.95
        assert s["fisher_trace"]["empirical"] < 0.5 * s["fisher_trace"]["exact"]
    # the selected strength maximises the validation score of its Fisher
    for kind, k in results["selected"].items():
        val = {
            s: sum(
                (r["val_a"] + r["val_b"]) / 2
                for r in results["runs"]
                if r["fisher"] == kind and r["log10_strength"] == s
            )
            for s in results["log10_strengths"]
        }
        assert val[k] == max(val.values())
    claims = fisher_choice.claims(results)
    assert len(claims) == 3
    assert claims[1].premise_holds and claims[1].holds  # the Fisher penalty reduces forgetting
