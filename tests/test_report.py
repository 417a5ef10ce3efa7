import json
import re

import pytest

from fisherlab.experiments.base import atomic_write_json
from fisherlab.plotting import METHOD_COLORS, method_color, new_figure, save_figure
from fisherlab.report import collect_runs, render_report, write_report


def _fake_run(
    root,
    name,
    status="ok",
    figure=True,
    claims=(),
    tables=None,
    title=None,
    scale="full",
    findings=(),
    figures_extra=(),
    captions=None,
):
    run_dir = root / name
    run_dir.mkdir(parents=True)
    atomic_write_json(
        run_dir / "config.json",
        {"experiment": name, "scale": scale, "seed": 0, "config": {"lr": 0.125, "n": [1, 2]}},
    )
    figures = []
    if figure:
        fig, ax = new_figure()
        ax.plot([0, 1], [1, 0])
        save_figure(fig, run_dir / "curve.png")
        figures = ["curve.png"]
    figures += list(figures_extra)
    atomic_write_json(
        run_dir / "run.json",
        {
            "experiment": name,
            "title": title or f"Title of {name}",
            "paper": "Someone et al. 2020, Fig. 4",
            "description": f"Description of {name}.",
            "scale": scale,
            "seed": 0,
            "status": status,
            "captions": captions or {},
            "wall_time_s": 1.5,
            "figures": figures,
            "versions": {"fisherlab": "0.1.0"},
        },
    )
    if status == "ok":
        results = {"tables": tables or {}, "findings": list(findings)}
        atomic_write_json(run_dir / "results.json", results)
        atomic_write_json(run_dir / "claims.json", [dict(c, scale=scale) for c in claims])
    return run_dir


def _claim(text, holds, premise_holds=True):
    return {
        "claim": text,
        "measured": f"measured {text}",
        "holds": holds,
        "source": "S 2020",
        "criterion": f"rule of {text}",
        "premise": f"premise of {text}",
        "premise_holds": premise_holds,
    }


def test_report_contents(tmp_path):
    table = {"columns": ["method", "loss"], "rows": [["NGD", 0.123456789], ["EFGD", 12]]}
    _fake_run(
        tmp_path,
        "exp-a",
        claims=[_claim("A holds", True), _claim("A fails", False)],
        tables={"Final losses": table},
    )
    _fake_run(tmp_path, "exp-b", claims=[_claim("B undecided <b>x</b>", None)])
    _fake_run(tmp_path, "exp-skip", status="skipped: data set 'a1a' is not available offline")
    _fake_run(tmp_path, "exp-fail", status="failed: ValueError: oops", figure=False)
    (tmp_path / "not-a-run").mkdir()

    path = write_report(tmp_path)
    assert path == tmp_path / "report.html"
    html = path.read_text(encoding="utf-8")

    # summary at the top, before the first experiment
    summary = html[html.index('id="summary"') : html.index('<section id="exp-a"')]
    assert re.search(r"<b>2</b> experiments finished", summary)
    assert re.search(r"<b>3</b> claims", summary)
    assert re.search(r"<b>1</b> ✔", summary) and re.search(r"<b>1</b> ✘", summary)
    assert re.search(r"<b>1</b> not decidable", summary)
    assert re.search(r"<b>1</b> skipped", summary)

    # per experiment: title, paper, description, scale, config
    for text in ("Title of exp-a", "Someone et al. 2020, Fig. 4", "Description of exp-a."):
        assert text in html
    assert "scale <b>full</b>" in html
    assert "<th>lr</th><td>0.125</td>" in html and "<td>[1, 2]</td>" in html

    # claims table with criterion, premise and symbols, HTML escaped
    assert re.search(r'class="holds">✔</td>\s*<td>S 2020', html)
    assert re.search(r'class="fails">✘</td>', html)
    assert re.search(r'class="na">not decidable</td>', html)
    assert "rule of A holds" in html and "premise of A holds (met)" in html
    assert "B undecided &lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html

    # figures embedded, tables rendered
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 2 and all(i.startswith("iVBORw0KGgo") for i in images)
    assert "<h3>Final losses</h3>" in html
    assert '<td class="num">0.1235</td>' in html and "<td>NGD</td>" in html

    # skipped and failed runs listed with reasons, not as experiments
    skipped = html[html.index('id="skipped"') :]
    assert "data set &#39;a1a&#39; is not available offline" in skipped
    assert "failed: ValueError: oops" in html
    assert '<section id="exp-skip"' not in html
    assert "not-a-run" not in html


def test_collect_runs_orders_registered_first(tmp_path):
    _fake_run(tmp_path, "aaa-unregistered")
    _fake_run(tmp_path, "demo")
    runs = collect_runs(tmp_path)
    assert [r.name for r in runs] == ["demo", "aaa-unregistered"]
    assert runs[0].state == "ok" and runs[0].figures and runs[0].config["lr"] == 0.125


def test_empty_report(tmp_path):
    html = write_report(tmp_path).read_text()
    assert "No runs found" in html
    assert render_report([]).startswith("<!DOCTYPE html>")
    with pytest.raises(FileNotFoundError):
        write_report(tmp_path / "missing")


def test_report_is_self_contained(tmp_path):
    _fake_run(tmp_path, "exp-a", claims=[_claim("x", True)])
    html = write_report(tmp_path).read_text()
    srcs = re.findall(r'(?:src|href)="([^"#][^"]*)"', html)
    assert srcs and all(s.startswith("data:") for s in srcs)


def test_save_figure_atomic_and_colors(tmp_path):
    fig, axes = new_figure(ncols=2, squeeze=False)
    assert axes.shape == (1, 2)
    path = save_figure(fig, tmp_path / "sub" / "f.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["f.png"]
    assert method_color("NGD") == METHOD_COLORS["NGD"]
    assert method_color("ef") == method_color("EF") == METHOD_COLORS["EF"]
    assert method_color("efgd") == METHOD_COLORS["EFGD"]
    assert len({method_color(m) for m in ("GD", "NGD", "EFGD")}) == 3
    assert method_color("something new") == method_color("something new")
    json.dumps(METHOD_COLORS)


def test_open_claims_are_summarised_with_links_and_findings_come_from_full_runs(tmp_path):
    _fake_run(
        tmp_path,
        "exp-full",
        claims=[_claim("F holds", True), _claim("F fails", False)],
        findings=["Table 3 has a misprint"],
    )
    _fake_run(
        tmp_path,
        "exp-quick",
        scale="quick",
        claims=[_claim("Q fails", False), _claim("Q premise", None, premise_holds=False)],
        findings=["quick note"],
    )
    html = write_report(tmp_path).read_text(encoding="utf-8")
    top = html[: html.index('<section id="exp-full"')]
    open_table = top[top.index('id="open-claims"') : top.index('id="findings"')]
    assert 'href="#exp-full-claim-2"' in open_table and "F fails" in open_table
    assert "Q fails" in open_table and "Q premise" in open_table
    assert "F holds" not in open_table
    findings = top[top.index('id="findings"') :]
    assert "F fails" in findings and "Table 3 has a misprint" in findings
    listed = findings[: findings.index("<details>")]
    assert "Q fails" not in listed and "quick note" not in listed
    assert "quick note" in findings[findings.index("<details>") :]
    # quick verdicts are greyed and labelled; a failed premise is marked
    assert re.search(r'<tr id="exp-quick-claim-1" class="smoke">', html)
    assert re.search(r'<tr id="exp-full-claim-1" class="">', html)
    assert "smoke run" in html and "(not met)" in html


def test_only_png_files_inside_the_run_directory_are_embedded(tmp_path):
    outside = tmp_path / "secret.png"
    fig, ax = new_figure()
    save_figure(fig, outside)
    run_dir = _fake_run(
        tmp_path,
        "exp-a",
        figures_extra=[str(outside), "../secret.png", "notes.txt"],
        captions={"curve.png": "Fig. 4 of Someone et al.: the curve"},
    )
    (run_dir / "notes.txt").write_text("not an image")
    runs = collect_runs(tmp_path)
    assert [f["name"] for f in runs[0].figures] == ["curve"]
    html = render_report(runs)
    assert "<figcaption>Fig. 4 of Someone et al.: the curve</figcaption>" in html
