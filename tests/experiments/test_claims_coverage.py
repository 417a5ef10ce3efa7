"""Every experiment's claims are tested both ways, in a file of their own.

The tests mirror the source tree: the claims of ``fisherlab.experiments.<paper>.<module>``
are tested in ``tests/experiments/<paper>/test_claims_<module>.py`` (and those of a module
directly under ``fisherlab.experiments`` in ``tests/experiments/test_claims_<module>.py``).
"""

from pathlib import Path

import pytest

from fisherlab.experiments import all_experiments

HERE = Path(__file__).parent
PACKAGE = "fisherlab.experiments."


def claims_test_path(module: str) -> Path:
    """The claims test file of the experiment module ``module`` (a dotted name)."""
    if not module.startswith(PACKAGE):
        raise ValueError(f"{module!r} is not a module of {PACKAGE.rstrip('.')}")
    *packages, name = module.removeprefix(PACKAGE).split(".")
    return HERE.joinpath(*packages, f"test_claims_{name}.py")


def test_claims_test_path_mirrors_the_package_tree():
    kunstner = claims_test_path("fisherlab.experiments.kunstner.fig1")
    wen = claims_test_path("fisherlab.experiments.wen.fig1")
    assert kunstner == HERE / "kunstner" / "test_claims_fig1.py"
    assert wen == HERE / "wen" / "test_claims_fig1.py"
    assert claims_test_path("fisherlab.experiments.demo") == HERE / "test_claims_demo.py"
    with pytest.raises(ValueError, match="not a module"):
        claims_test_path("fisherlab.curvature")


@pytest.mark.parametrize("experiment", all_experiments(), ids=lambda e: e.name)
def test_every_experiment_has_a_claims_test(experiment):
    path = claims_test_path(experiment.claims.__module__)
    assert path.is_file(), f"{experiment.name}: no {path.relative_to(HERE)} tests its claims"
    assert (path.parent / "__init__.py").is_file(), f"{path.parent} is not a test package"
    text = path.read_text(encoding="utf-8")
    assert "holds" in text and "False" in text and "True" in text, path.name
