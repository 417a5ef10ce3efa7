"""Property-based tests: random small models of the covered layers against the brute-force
oracle, and random bad inputs that must raise the library's own errors."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import fisherlab as fl
from fisherlab.engine.hooks import FallbackWarning, compute
from oracles import BruteForce, relative_error

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LIBRARY_ERRORS = (ValueError, TypeError, NotImplementedError, MemoryError)


@st.composite
def problems(draw: st.DrawFn) -> dict:
    """A small random model of covered layers, a likelihood, data, a reduction, a dtype."""
    seed = draw(st.integers(0, 2**16))
    torch.manual_seed(seed)
    dtype = draw(st.sampled_from([torch.float64, torch.float32]))
    n = draw(st.integers(2, 5))
    c = draw(st.integers(1, 3))
    kind = draw(st.sampled_from(["mlp", "conv", "embedding"]))
    bias = draw(st.booleans())
    act = draw(st.sampled_from([nn.Tanh, nn.Sigmoid, nn.Softplus]))
    if kind == "mlp":
        d, h = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        layers: list[nn.Module] = [nn.Linear(d, h, bias=bias)]
        norm = draw(st.sampled_from(["none", "layer", "batch"]))
        if norm == "layer":
            layers.append(nn.LayerNorm(h))
        elif norm == "batch":
            bn = nn.BatchNorm1d(h)
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            layers.append(bn)
        layers += [act(), nn.Linear(h, c)]
        X = torch.randn(n, d)
    elif kind == "conv":
        channels, length = draw(st.integers(1, 2)), draw(st.integers(3, 5))
        k = draw(st.integers(1, 3))
        padding = draw(st.integers(0, 1))
        stride = draw(st.integers(1, 2))
        conv = nn.Conv1d(channels, 2, k, stride=stride, padding=padding, bias=bias)
        out_len = (length + 2 * padding - k) // stride + 1
        layers = [conv, act(), nn.Flatten(), nn.Linear(2 * out_len, c)]
        X = torch.randn(n, channels, length)
    else:
        vocab, tokens = draw(st.integers(2, 5)), draw(st.integers(1, 3))
        layers = [nn.Embedding(vocab, 2), nn.Flatten(), act(), nn.Linear(2 * tokens, c)]
        X = torch.randint(0, vocab, (n, tokens))
    model = nn.Sequential(*layers).to(dtype).eval()
    if torch.is_floating_point(X):
        X = X.to(dtype)
    likelihood = draw(st.sampled_from(["categorical", "gaussian", "bernoulli"]))
    if likelihood == "categorical":
        lik = fl.likelihoods.Categorical()
        y = torch.randint(0, c, (n,))
    elif likelihood == "gaussian":
        lik = fl.likelihoods.Gaussian(sigma=draw(st.sampled_from([0.5, 1.0, 2.0])))
        y = torch.randn(n, c, dtype=dtype)
    else:
        lik = fl.likelihoods.Bernoulli()
        y = torch.randint(0, 2, (n, c)).to(dtype)
    reduction = draw(st.sampled_from(["mean", "sum"]))
    return {"model": model, "lik": lik, "X": X, "y": y, "reduction": reduction, "dtype": dtype}


def _oracle(p: dict) -> BruteForce:
    """The oracle runs in float64 on a float64 copy of the model."""
    model = p["model"].to(torch.float64)
    X = p["X"].double() if torch.is_floating_point(p["X"]) else p["X"]
    y = p["y"].double() if torch.is_floating_point(p["y"]) else p["y"]
    return BruteForce(model, p["lik"], X, y, p["reduction"])


def _check(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, what: str) -> None:
    rtol = 1e-9 if dtype == torch.float64 else 2e-4
    actual = actual.double()
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    if torch.linalg.norm(expected) < 1e-12:  # all zeros: an absolute bound
        assert torch.linalg.norm(actual) < 1e-6, what
        return
    error = relative_error(actual, expected)
    assert math.isfinite(error) and error <= rtol, f"{what}: relative error {error:.2e}"


@SETTINGS
@given(problems())
def test_every_quantity_and_form_matches_the_oracle(p):
    c = fl.Curvature(p["model"], p["lik"], p["X"], p["y"], reduction=p["reduction"])
    computed = {
        "gradient": c.gradient(),
        "per_sample_gradients": c.per_sample_gradients(),
        "empirical_fisher": c.empirical_fisher(),
        "fisher": c.fisher(),
        "ggn": c.ggn(),
        "hessian": c.hessian(),
        "covariance": c.covariance(),
    }
    diagonals = {
        "empirical_fisher": c.empirical_fisher(form="diag"),
        "fisher": c.fisher(form="diag"),
        "ggn": c.ggn(form="diag"),
        "hessian": c.hessian(form="diag"),
        "covariance": c.variance(form="diag"),
    }
    v = torch.randn(c.num_params, dtype=p["dtype"])
    products = {
        "ggn": c.ggn(form="operator") @ v,
        "hessian": c.hessian(form="operator") @ v,
        "empirical_fisher": c.empirical_fisher(form="operator") @ v,
    }
    p["model"].to(torch.float64)
    oracle = _oracle(p)
    for name, value in computed.items():
        _check(value, oracle.dense(name), p["dtype"], name)
    for name, value in diagonals.items():
        _check(value, oracle.dense(name).diagonal(), p["dtype"], f"{name} diag")
    for name, value in products.items():
        _check(value, oracle.dense(name) @ v.double(), p["dtype"], f"{name} operator")


@SETTINGS
@given(problems())
def test_collected_statistics_match_the_oracle(p):
    stats = ("gradient", "second_moment", "variance", "l2_norm", "per_sample_gradients")
    stats += ("ggn_diag",)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FallbackWarning)  # every drawn model is covered
        col = compute(p["model"], p["lik"], p["X"], p["y"], stats, reduction=p["reduction"])
    p["model"].to(torch.float64)
    oracle = _oracle(p)
    G = oracle.per_sample_gradients
    N = G.shape[0]
    a = 1.0 / N if p["reduction"] == "mean" else float(N)
    dt = p["dtype"]
    _check(col.flat("gradient"), oracle.gradient, dt, "gradient")
    _check(col.flat("per_sample_gradients"), G, dt, "per-sample gradients")
    _check(col.flat("second_moment"), oracle.empirical_fisher.diagonal(), dt, "second moment")
    _check(col.flat("variance"), a * G.square().sum(0) - oracle.gradient**2, dt, "variance")
    _check(col.flat("l2_norm"), G.norm(dim=1), dt, "l2 norm")
    _check(col.flat("ggn_diag"), oracle.ggn.diagonal(), dt, "ggn diag")


# -- fuzz: bad inputs get the library's errors ------------------------------------------------
def _base():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    return model, torch.randn(5, 3, dtype=torch.float64), torch.randint(0, 2, (5,))


def _nan_input(draw):
    model, X, y = _base()
    X[draw(st.integers(0, 4)), draw(st.integers(0, 2))] = draw(
        st.sampled_from([float("nan"), float("inf"), -float("inf")])
    )
    return lambda: fl.Curvature(model, fl.Categorical(), X, y).gradient()


def _bad_labels(draw):
    model, X, y = _base()
    y[draw(st.integers(0, 4))] = draw(st.sampled_from([-1, 2, 7]))
    return lambda: fl.Curvature(model, fl.Categorical(), X, y).gradient()


def _bad_target_shape(draw):
    model, X, _ = _base()
    shape = draw(st.sampled_from([(5, 1), (1, 2), (4, 2), (5, 2, 1), (2, 5)]))
    y = torch.randn(*shape, dtype=torch.float64)
    return lambda: fl.Curvature(model, fl.Gaussian(), X, y).gradient()


def _bad_collect_targets(draw):
    model, X, _ = _base()
    shape = draw(st.sampled_from([(5, 1), (1, 2), (4, 2), (2, 5)]))
    y = torch.randn(*shape, dtype=torch.float64)

    def run():
        with fl.engine.hooks.collect(model, fl.Gaussian()) as col:
            col.loss(model(X), y).backward()

    return run


def _integer_input(draw):
    model, X, y = _base()
    dtype = draw(st.sampled_from([torch.int64, torch.int32, torch.uint8]))
    return lambda: fl.Curvature(model, fl.Categorical(), X.abs().to(dtype), y).gradient()


def _bad_argument(draw):
    model, X, y = _base()
    lik = fl.Categorical()
    choice = draw(st.sampled_from(["reduction", "form", "mc", "engine", "batch", "statistic"]))
    value = draw(st.sampled_from([0, -1, "x", None, 1.5]))
    if choice == "reduction":
        return lambda: fl.Curvature(model, lik, X, y, reduction=str(value))
    if choice == "form":
        return lambda: fl.Curvature(model, lik, X, y).ggn(form=f"bogus{value}")
    if choice == "mc":
        mc = -1 if value is None else value
        return lambda: fl.Curvature(model, lik, X, y).fisher(form="diag", mc_samples=mc)
    if choice == "engine":
        return lambda: fl.Curvature(model, lik, X, y, engine=str(value))
    if choice == "batch":
        size = 0 if value is None else value
        return lambda: fl.Curvature(model, lik, X, y, batch_size=size)
    return lambda: fl.engine.hooks.collect(model, lik, statistics=(f"bogus{value}",))


def _bad_hyperparameter(draw):
    cls = draw(st.sampled_from([fl.optim.MSVAG, fl.optim.MSGD, fl.optim.AdamStar]))
    key = draw(st.sampled_from(["lr", "beta"]))
    value = draw(st.sampled_from([-1.0, float("nan"), float("inf"), "abc", 1.0, None]))
    if key == "beta" and value is None:
        value = 2.0
    if key == "lr" and value == 1.0:
        value = -0.5
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(3))
    where = draw(st.sampled_from(["init", "group", "add"]))
    if where == "init":
        return lambda: cls([a], **{key: value})
    if where == "group":
        return lambda: cls([{"params": [a]}, {"params": [b], key: value}])
    return lambda: cls([a]).add_param_group({"params": [b], key: value})


def _bad_model(draw):
    model, X, y = _base()
    choice = draw(st.sampled_from(["bn-train", "bn-batch-stats", "dropout", "nan-param"]))
    if choice == "bn-train":
        model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).double()
    elif choice == "bn-batch-stats":
        bn = nn.BatchNorm1d(4, track_running_stats=False)
        model = nn.Sequential(nn.Linear(3, 4), bn, nn.Linear(4, 2)).double().eval()
    elif choice == "dropout":
        model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.3), nn.Linear(4, 2)).double()
    else:
        with torch.no_grad():
            model[0].weight[0, 0] = float("nan")
    return lambda: fl.Curvature(model, fl.Categorical(), X, y).gradient()


BAD_INPUTS = [
    _nan_input,
    _bad_labels,
    _bad_target_shape,
    _bad_collect_targets,
    _integer_input,
    _bad_argument,
    _bad_hyperparameter,
    _bad_model,
]


@SETTINGS
@given(st.sampled_from(BAD_INPUTS), st.data())
def test_bad_inputs_raise_the_library_errors(make, data):
    run = make(data.draw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FallbackWarning)
        with pytest.raises(LIBRARY_ERRORS) as info:
            run()
    assert str(info.value), "the error has a message"
