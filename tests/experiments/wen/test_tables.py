"""wen-tables in (shrunk) quick mode: files, numbers, claims from results."""

from __future__ import annotations

from fisherlab.experiments.wen import tables

from ..runs import quick_run


def test_tables_methods(tmp_path):
    _, status, results, stored = quick_run(
        "wen-tables",
        tmp_path,
        train_samples=400,
        channels=3,
        small_batch_size=16,
        large_batch_size=200,
        epochs=4,
        sharpness_samples=16,
    )
    assert status["figures"] == ["tables_val_accuracy.png", "fig5b_hessian_lambda_max.png"]
    methods = results["methods"]
    assert list(methods) == list(tables.METHODS)
    for m in methods.values():
        assert len(m["val_accuracy"]) == 2 and len(m["train_accuracy"]) == 2
        assert all(0.0 <= a <= 100.0 for a in m["val_accuracy"] + m["train_accuracy"])
    assert methods["SB"]["updates"] == 4 * (400 // 16)
    assert methods["LB"]["updates"] == 4 * (400 // 200)
    assert methods["BatchChange"]["updates"] == 400 // 16 + 3 * (400 // 200)
    tuning = results["tuning"]
    assert methods["SB"]["lr"] == tuning["SB"]["selected"] in tuning["SB"]["grid"]
    assert methods["LB+diag F"]["lr"] == methods["LB"]["lr"] == tuning["LB"]["selected"]
    assert methods["BatchChange"]["lr"] == methods["SB"]["lr"]
    for name in tables.SHARPNESS:
        assert all(v > 0 for v in methods[name]["lambda_max"])
    claims = tables.claims(results)
    assert [c.to_dict() | {"scale": ""} for c in claims] == [d | {"scale": ""} for d in stored]
    assert all(not (c.holds and not c.premise_holds) for c in claims)
