"""ewc-fisher-choice in a reduced quick mode."""

import copy
import json

from fisherlab.experiments import ewc_fisher_choice
from fisherlab.experiments.runner import run_experiment


def test_ewc_experiment_runs_and_claims_follow_results(tmp_path):
    overrides = {"steps_a": 200, "steps_b": 120, "log10_lams": (0.0, 2.0, 4.0), "hidden": 32}
    run_dir = run_experiment(
        "ewc-fisher-choice", tmp_path, quick=True, overrides=overrides, show_progress=False
    )
    results = json.loads((run_dir / "results.json").read_text())
    assert (run_dir / "ewc_accuracy.png").stat().st_size > 0
    assert len(results["runs"]) == 1 + 3 * 3
    assert results["task_a"]["train_accuracy"] > 0.95
    claims = ewc_fisher_choice.claims(results)
    assert claims[0].holds  # EF ≪ F where the model fits task A
    assert claims[1].holds  # the Fisher penalty reduces forgetting
    # the verdicts are computed from the results
    swapped = copy.deepcopy(results)
    swapped["fisher_trace"]["empirical"] = 2 * swapped["fisher_trace"]["exact"]
    for r in swapped["runs"]:
        r["accuracy_a"] = 0.5
    assert not any(c.holds for c in ewc_fisher_choice.claims(swapped))
