"""balles-figB2 and balles-figB3 in (further shrunk) quick mode: files, numbers, claims."""

import json

import pytest
import torch

from fisherlab.experiments.balles import fig5_4
from fisherlab.experiments.runner import run_experiment

TINY = {"lrs_non_sign": [0.3], "lrs_sign": [0.003], "steps": 40, "eval_every": 20}


@pytest.mark.parametrize(
    ("name", "png", "methods"),
    [
        ("balles-figB2", "figB2_svag_and_adam_star.png", {"M-SVAG", "SVAG", "ADAM", "ADAM*"}),
        ("balles-figB3", "figB3_minibatch_msvag.png", {"M-SVAG", "M-SVAG-mb"}),
    ],
)
def test_quick_runs(tmp_path, name, png, methods):
    run_dir = run_experiment(name, tmp_path, quick=True, overrides=TINY, show_progress=False)
    assert (run_dir / png).stat().st_size > 1000
    res = json.loads((run_dir / "results.json").read_text())
    digits = res["problems"]["digits-mlp"]
    assert set(digits) == methods
    for s in digits.values():
        assert s["step"] == [0, 20, 40]
        assert s["train_loss_mean"][-1] < s["train_loss_mean"][0]
    claims = json.loads((run_dir / "claims.json").read_text())
    assert claims and all(c["holds"] is None for c in claims)  # one-point grids: not decidable


def _first_batch_per_sample_gradients(batch_size):
    from fisherlab.experiments.balles.training import load_problem, make_model

    problem = load_problem("digits-mlp")
    gen = torch.Generator().manual_seed(0)  # the minibatch order of train(..., seed=0)
    idx = torch.randperm(problem.X_train.shape[0], generator=gen)[:batch_size]
    model = make_model(problem, 0)
    rows = []
    for i in idx:
        model.zero_grad()
        out = model(problem.X_train[i : i + 1])
        torch.nn.functional.cross_entropy(out, problem.y_train[i : i + 1]).backward()
        rows.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    return torch.stack(rows).double()


def test_minibatch_msvag_first_step_uses_the_variance_of_the_mean_gradient():
    # first step of Alg. 6 from zero state: m = g, rho(beta, 0) = 1, r = s_mb = s / m, so
    # the step is -alpha * g^2 / (g^2 + s_mb) * g; its shrinkage is |g^3/(g^2+s_mb)|_1 / |g|_1
    G = _first_batch_per_sample_gradients(16)
    g, s_mb = G.mean(0), G.var(0, correction=1) / 16
    denom = g**2 + s_mb
    step = torch.where(denom > 0, g**3 / denom.clamp(min=1e-300), 0.0)  # 0/0: no update
    expected = float(step.abs().sum() / g.abs().sum())
    rec = fig5_4.train("digits-mlp", "M-SVAG-mb", 0.1, 0, 1, 16, 1, 0.9)
    assert 0 < expected < 1
    assert rec["shrinkage"][0] == pytest.approx(expected, rel=1e-4)


def test_msvag_first_step_is_an_sgd_step():
    # §5.4.4: s_0 = 0, so the first M-SVAG step is unshrunk
    rec = fig5_4.train("digits-mlp", "M-SVAG", 0.1, 0, 1, 16, 1, 0.9)
    assert rec["shrinkage"][0] == pytest.approx(1.0, rel=1e-6)
