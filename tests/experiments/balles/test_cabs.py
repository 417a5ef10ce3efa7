"""balles-cabs in (further shrunk) quick mode: files, numbers, claims."""

from fisherlab.experiments.balles import cabs

from ..runs import assert_figures, quick_run


def test_cabs(tmp_path):
    overrides = {"epochs": 0.5, "lrs": [0.3, 0.1], "num_evals": 5}
    run_dir, _, res, _ = quick_run("balles-cabs", tmp_path, **overrides)
    assert_figures(run_dir, ["fig4_2_cabs_vs_constant.png", "fig4_3_lr_sensitivity.png"])
    assert set(res["selected"]) == {"CABS", "constant 64", "competitor"}
    cabs_run = res["runs"]["CABS"]["0.3"]
    assert cabs_run["examples"][-1] == int(0.5 * 1438)
    assert all(2 <= b <= 1024 for b in cabs_run["batch"])
    assert 0.0 <= cabs_run["clipped_min_fraction"] <= 1.0
    assert len(res["selected"]["CABS"]["final_train_loss"]) == 2
    assert res["sensitivity_lrs"] == [0.1]
    claims = cabs.claims(res)
    assert len(claims) == 4
    assert claims[0].premise_holds is False  # a two-point grid has no interior


def test_cabs_stops_a_failed_run():
    cfg = cabs.CABSConfig(epochs=3.0, num_evals=10, constant_batch_sizes=[16])
    rec = cabs.train(cfg, "constant", 50.0, batch_size=16)
    assert rec["stopped"]
    assert len(rec["train_loss"]) == 11 and rec["train_loss"][-1] == rec["train_loss"][-2]
