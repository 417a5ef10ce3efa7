"""balles-fig5-4 in (further shrunk) quick mode: files, numbers, claims."""

import math

import pytest

from fisherlab.experiments.balles import fig5_4

from ..runs import assert_figures, quick_run


def test_fig5_4(tmp_path):
    overrides = {
        "problems": ["digits-mlp"],
        "lrs_non_sign": [0.3],
        "lrs_sign": [0.003],
        "steps": 60,
        "eval_every": 20,
    }
    run_dir, _, res, _ = quick_run("balles-fig5-4", tmp_path, **overrides)
    assert_figures(run_dir, ["fig5_4_sign_and_variance_adaptation.png"])
    digits = res["problems"]["digits-mlp"]
    assert set(digits) == {"M-SGD", "M-SSD", "M-SVAG", "ADAM"}
    for s in digits.values():
        assert s["step"] == [0, 20, 40, 60]
        assert s["train_loss_mean"][-1] < s["train_loss_mean"][0]
        assert len(s["final_train_loss"]) == 2  # the quick preset's 2 seeds
        assert not s["lr_interior"]  # a one-point grid has no interior
    assert 0.0 < digits["M-SVAG"]["shrinkage"][0] <= 1.0
    claims = fig5_4.claims(res)
    assert len(claims) == 4
    assert all(c.holds is None and not c.premise_holds for c in claims)


def test_fig5_4_zero_step_size_leaves_the_model_unchanged():
    rec = fig5_4.train("digits-mlp", "M-SGD", 0.0, 0, 5, 16, 5, 0.9)
    assert rec["train_loss"][0] == pytest.approx(rec["train_loss"][-1])  # lr 0: no change
    assert math.isfinite(rec["train_loss"][-1])
