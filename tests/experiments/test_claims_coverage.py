"""Every experiment's claims are tested both ways, in a file of their own."""

from pathlib import Path

import pytest

from fisherlab.experiments import all_experiments

HERE = Path(__file__).parent


@pytest.mark.parametrize("experiment", all_experiments(), ids=lambda e: e.name)
def test_every_experiment_has_a_claims_test(experiment):
    module = experiment.claims.__module__.rsplit(".", 1)[-1]
    path = HERE / f"test_claims_{module}.py"
    assert path.is_file(), f"{experiment.name}: no {path.name} tests its claims both ways"
    text = path.read_text(encoding="utf-8")
    assert "holds" in text and "False" in text and "True" in text, path.name
