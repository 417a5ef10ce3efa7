"""The generated claims page, on a synthetic results directory."""

import json
import subprocess
import sys

import pytest

from fisherlab.claims_page import claims_markdown, main, verdict


def _claim(text, holds, premise_holds=True, scale="quick"):
    return {
        "claim": text,
        "measured": "x = 1",
        "holds": holds,
        "source": "Paper 2020, Fig. 1",
        "criterion": f"rule of {text}",
        "premise": f"premise of {text} | with a pipe",
        "premise_holds": premise_holds,
        "scale": scale,
    }


def _write(root, name, claims, scale="quick", title="A title"):
    d = root / name
    d.mkdir(parents=True)
    (d / "claims.json").write_text(json.dumps(claims))
    run = {"experiment": name, "title": title, "paper": "Paper 2020", "scale": scale}
    (d / "run.json").write_text(json.dumps(run))


@pytest.fixture
def results(tmp_path):
    _write(tmp_path, "zeta", [_claim("Z holds", True), _claim("Z fails", False)])
    _write(tmp_path, "alpha", [_claim("A undecidable", None, premise_holds=False)])
    (tmp_path / "not-a-run").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "run.json").write_text(json.dumps({"status": "failed: TypeError: x"}))
    return tmp_path


def test_page_lists_every_claim_with_criterion_premise_and_verdict(results):
    page = claims_markdown(results)
    assert page.startswith("# Claims")
    assert "generated from a `--quick` run" in page
    assert "2 experiments, 3 claims: 1 ✔ holds, 1 ✘ does not hold, 1 not decidable" in page
    # experiments sorted by name, one table each
    assert page.index("## alpha: A title") < page.index("## zeta: A title")
    assert page.count("| claim | criterion | premise | verdict |") == 2
    row = next(line for line in page.splitlines() if line.startswith("| Z fails"))
    cells = [c.strip() for c in row.strip("|").split(" | ")]
    assert cells == [
        "Z fails (Paper 2020, Fig. 1)",
        "rule of Z fails",
        "premise of Z fails \\| with a pipe",
        "✘ does not hold",
    ]
    assert "| A undecidable (Paper 2020, Fig. 1) |" in page
    assert "not decidable (premise fails) |" in page
    assert page.rstrip().endswith("## Runs without claims\n\n- broken: failed: TypeError: x")


def test_full_and_mixed_scales_are_named(tmp_path):
    _write(tmp_path, "a", [_claim("A", True, scale="full")], scale="full")
    assert "generated from a `--full` run" in claims_markdown(tmp_path)
    _write(tmp_path, "b", [_claim("B", True)])
    assert "mixed scales (full, quick)" in claims_markdown(tmp_path)


def test_verdict_of_a_failed_premise_ignores_holds():
    assert verdict(_claim("x", True, premise_holds=False)) == "not decidable (premise fails)"
    assert verdict(_claim("x", None)) == "undecided"


def test_errors_name_the_argument(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="run_root"):
        claims_markdown(tmp_path / "missing")
    with pytest.raises(ValueError, match="run_root"):
        claims_markdown(tmp_path)
    assert main([]) == 2
    assert main([str(tmp_path)]) == 1
    assert "run_root" in capsys.readouterr().err


def test_module_entry_point_prints_the_page(results):
    out = subprocess.run(
        [sys.executable, "-m", "fisherlab.claims_page", str(results)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == claims_markdown(results)
