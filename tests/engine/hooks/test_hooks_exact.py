"""The fast engine against the generic torch.func engine, in float64 at 1e-10."""

from __future__ import annotations

import pytest
import torch
from hook_cases import MODEL_CASES, make_model, make_targets

import fisherlab as fl
from fisherlab.engine.hooks import FIRST_ORDER, compute

LIKELIHOODS = {
    "categorical": lambda: fl.likelihoods.Categorical(),
    "gaussian": lambda: fl.likelihoods.Gaussian(sigma=0.7),
    "bernoulli": lambda: fl.likelihoods.Bernoulli(),
}
N = 6


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    assert actual.shape == expected.shape, what
    scale = expected.abs().max().clamp_min(1.0)
    err = (actual - expected).abs().max() / scale
    assert err < 1e-10, f"{what}: relative error {err:.2e}"


def _problem(case, lik_name, reduction):
    model = make_model(case)
    gen = torch.Generator().manual_seed(7)
    X = case.inputs(gen, N)
    y = make_targets(lik_name, gen, N, case.outputs)
    likelihood = LIKELIHOODS[lik_name]()
    return model, likelihood, X, y, fl.Curvature(model, likelihood, X, y, reduction=reduction)


FULL_GRID = [(lik, red) for lik in LIKELIHOODS for red in ("mean", "sum")]
SMALL_GRID = [("categorical", "mean"), ("gaussian", "sum"), ("bernoulli", "mean")]
GRID = [
    pytest.param(case, lik, red, id=f"{case.name}-{lik}-{red}")
    for case in MODEL_CASES
    for lik, red in (FULL_GRID if case.name in ("mlp", "conv2d", "residual") else SMALL_GRID)
]


@pytest.mark.parametrize("case, lik_name, reduction", GRID)
def test_statistics_match_generic_engine(case, lik_name, reduction):
    """Every statistic of every layer family, likelihood and reduction, at 1e-10.

    Two passes: the first-order set alone (closed forms without per-sample gradients),
    then per-sample gradients with the exact GGN diagonal and the MC Fisher diagonal
    (same generator, so the same sampled labels as the generic engine).
    """
    model, likelihood, X, y, curv = _problem(case, lik_name, reduction)
    G = curv.per_sample_gradients()
    ef = curv.empirical_fisher(form="diag")
    first = compute(model, likelihood, X, y, FIRST_ORDER, reduction=reduction)
    _assert_close(first.flat("gradient"), curv.gradient(), "gradient")
    _assert_close(first.flat("second_moment"), ef, "EF diag")
    _assert_close(first.flat("variance"), curv.variance(form="diag"), "variance")
    _assert_close(first.flat("l2_norm"), G.norm(dim=1), "l2 norms")
    assert all(norms.shape == (N,) for norms in first["l2_norm"].values())

    second = compute(
        model,
        likelihood,
        X,
        y,
        ("per_sample_gradients", "second_moment", "l2_norm", "ggn_diag", "fisher_mc_diag"),
        reduction=reduction,
        mc_samples=2,
        generator=torch.Generator().manual_seed(11),
    )
    _assert_close(second.flat("per_sample_gradients"), G, "per-sample gradients")
    _assert_close(second.flat("second_moment"), ef, "EF diag")
    _assert_close(second.flat("l2_norm"), G.norm(dim=1), "l2 norms")
    _assert_close(second.flat("ggn_diag"), curv.ggn(form="diag"), "GGN diag")
    mc = curv.fisher(form="diag", mc_samples=2, generator=torch.Generator().manual_seed(11))
    _assert_close(second.flat("fisher_mc_diag"), mc, "MC Fisher diag")


def test_exact_diagonal_is_the_fisher_diagonal():
    model, likelihood, X, y, curv = _problem(MODEL_CASES[-1], "categorical", "mean")
    stats = compute(model, likelihood, X, y, ("ggn_diag",))
    _assert_close(stats.flat("ggn_diag"), curv.fisher(form="diag"), "Fisher diag")


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_per_sample_gradients_reduce_to_gradient(reduction):
    case = MODEL_CASES[3]
    model, likelihood, X, y, _ = _problem(case, "categorical", reduction)
    stats = compute(model, likelihood, X, y, ("gradient", "per_sample_gradients"), reduction)
    c = 1.0 / N if reduction == "mean" else 1.0
    for p, grad in stats["gradient"].items():
        _assert_close(c * stats["per_sample_gradients"][p].sum(0), grad, "Σ g_n")


def test_ordinary_training_step_with_torch_loss():
    """One `loss.backward()` with a torch loss fills the collector; `.grad` is the usual one."""
    case = MODEL_CASES[0]
    model, _, X, y, curv = _problem(case, "gaussian", "mean")
    likelihood = fl.likelihoods.from_loss(torch.nn.MSELoss())
    curv = fl.Curvature(model, likelihood, X, y)
    with fl.engine.hooks.collect(model, likelihood, ("gradient", "variance", "ggn_diag")) as s:
        loss = torch.nn.MSELoss()(model(X), y)
        loss.backward()
    flat_grad = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    _assert_close(s.flat("gradient"), flat_grad, ".grad")
    _assert_close(s.flat("variance"), curv.variance(form="diag"), "variance")
    _assert_close(s.flat("ggn_diag"), curv.ggn(form="diag"), "GGN diag")
    # hooks are gone after the context: another backward leaves the results unchanged
    before = s.flat("variance").clone()
    torch.nn.MSELoss()(model(X * 2), y).backward()
    assert torch.equal(s.flat("variance"), before)


def test_second_backward_replaces_results():
    case = MODEL_CASES[0]
    model, likelihood, X, y, _ = _problem(case, "categorical", "mean")
    with fl.engine.hooks.collect(model, likelihood, ("gradient", "second_moment")) as s:
        for scale in (1.0, 2.0):
            Xs = X * scale
            s.loss(model(Xs), y).backward()
    curv = fl.Curvature(model, likelihood, X * 2.0, y)
    _assert_close(s.flat("second_moment"), curv.empirical_fisher(form="diag"), "EF diag")


def _single_layer_kron(lik_name, kind):
    """One Linear layer: G = c Σ_n s s^T over columns, A = (1/N) Σ_n a a^T."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3).to(torch.float64)
    gen = torch.Generator().manual_seed(3)
    X = torch.randn(N, 4, generator=gen, dtype=torch.float64)
    y = make_targets(lik_name, gen, N, 3)
    likelihood = LIKELIHOODS[lik_name]()
    stats = compute(
        model,
        likelihood,
        X,
        y,
        (kind,),
        reduction="sum",
        mc_samples=3,
        generator=torch.Generator().manual_seed(5),
    )
    with torch.no_grad():
        f = model(X)
    if kind == "kflr":
        S = likelihood.sqrt_fisher_output(f)  # (N, C, K)
        G = torch.einsum("nck,ndk->cd", S, S)
    else:
        q = likelihood.sampled_output_gradient(f, 3, torch.Generator().manual_seed(5))
        G = torch.einsum("snc,snd->cd", q, q) / 3
    A = X.T @ X / N
    return stats, model, G, A


@pytest.mark.parametrize("kind", ["kfac", "kflr"])
@pytest.mark.parametrize("lik_name", list(LIKELIHOODS))
def test_kronecker_factors_of_one_linear_layer(lik_name, kind):
    stats, model, G, A = _single_layer_kron(lik_name, kind)
    G_w, A_w = stats[kind][model.weight]
    _assert_close(G_w, G, "G")
    _assert_close(A_w, A, "A")
    (G_b,) = stats[kind][model.bias]
    _assert_close(G_b, G, "G (bias)")


def test_kflr_is_exact_for_gaussian_linear_regression():
    """Λ is constant for the Gaussian, so G ⊗ A is the exact GGN of a linear model."""
    stats, model, G, A = _single_layer_kron("gaussian", "kflr")
    G_w, A_w = stats["kflr"][model.weight]
    gen = torch.Generator().manual_seed(3)
    X = torch.randn(N, 4, generator=gen, dtype=torch.float64)
    y = make_targets("gaussian", gen, N, 3)
    dense = fl.Curvature(model, LIKELIHOODS["gaussian"](), X, y, reduction="sum").ggn("dense")
    _assert_close(torch.kron(G_w, A_w), dense[:12, :12], "weight block")


@pytest.mark.parametrize(
    "conv",
    [
        torch.nn.Conv1d(4, 6, 2, padding="same", dilation=3, groups=2),
        torch.nn.Conv2d(2, 4, (2, 3), stride=(2, 1), padding=(0, 2), dilation=(2, 1)),
        torch.nn.Conv2d(2, 2, 4, padding="same"),
        torch.nn.Conv3d(3, 3, (2, 1, 2), padding="same", groups=3),
        torch.nn.Conv3d(2, 2, 2, stride=2, padding="valid"),
    ],
    ids=["1d-same-even", "2d-strided", "2d-same-even", "3d-same-grouped", "3d-valid"],
)
def test_unfolded_input_reproduces_the_convolution(conv):
    from fisherlab.engine.kronecker import unfold_input

    conv = conv.to(torch.float64)
    x = torch.randn(3, conv.in_channels, *([6] * (len(conv.kernel_size))), dtype=torch.float64)
    z = conv(x)
    rows = unfold_input(conv, x)  # (N, T, C_in·∏k), channel-major: groups are contiguous
    U = rows.reshape(rows.shape[0], rows.shape[1], conv.groups, -1).permute(0, 2, 3, 1)
    W = conv.weight.reshape(conv.groups, conv.out_channels // conv.groups, -1)
    z_unfolded = torch.einsum("goi,ngit->ngot", W, U).reshape(z.shape[0], conv.out_channels, -1)
    z_unfolded = z_unfolded + conv.bias.reshape(1, -1, 1)
    _assert_close(z_unfolded, z.reshape(z.shape[0], conv.out_channels, -1), "unfolded conv")


@pytest.mark.parametrize("name", ["mlp", "linear_positions", "conv2d"])
def test_reused_buffers_give_the_same_per_sample_gradients(name):
    case = next(c for c in MODEL_CASES if c.name == name)
    model, likelihood, X, y, curv = _problem(case, "categorical", "mean")
    stats = fl.engine.hooks.collect(
        model, likelihood, ("per_sample_gradients", "second_moment"), reuse_buffers=True
    )
    storage = []
    with stats:
        for scale in (2.0, 1.0):  # the second pass overwrites the first one's buffers
            stats.loss(model(X * scale), y).backward()
            first = stats.flat("per_sample_gradients")
            weights = [stats["per_sample_gradients"][p] for p in model.parameters() if p.ndim > 1]
            storage.append([w.data_ptr() for w in weights])
    _assert_close(first, curv.per_sample_gradients(), "per-sample gradients")
    _assert_close(stats.flat("second_moment"), curv.empirical_fisher(form="diag"), "EF diag")
    assert storage[0] == storage[1]  # every weight's per-sample gradients in the same buffer


@pytest.mark.parametrize("small_channels", [0, 64], ids=["grouped-backward", "input-as-batch"])
def test_conv_per_sample_paths_and_chunks(monkeypatch, small_channels):
    """Both convolution formulas, with per-sample gradients formed one sample at a time."""
    from fisherlab.engine.hooks import conv

    monkeypatch.setattr(conv, "CHUNK_ELEMENTS", 1)
    monkeypatch.setattr(conv, "SMALL_INPUT_CHANNELS", small_channels)
    case = next(c for c in MODEL_CASES if c.name == "conv2d")
    model, likelihood, X, y, curv = _problem(case, "categorical", "sum")
    stats = compute(model, likelihood, X, y, ("per_sample_gradients", "l2_norm", "ggn_diag"), "sum")
    first = compute(model, likelihood, X, y, FIRST_ORDER, "sum")
    G = curv.per_sample_gradients()
    _assert_close(stats.flat("per_sample_gradients"), G, "per-sample gradients")
    _assert_close(first.flat("second_moment"), curv.empirical_fisher(form="diag"), "EF diag")
    _assert_close(first.flat("l2_norm"), G.norm(dim=1), "l2 norms")
    _assert_close(stats.flat("ggn_diag"), curv.ggn(form="diag"), "GGN diag")
