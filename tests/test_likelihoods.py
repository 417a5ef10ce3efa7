"""Likelihoods: closed forms against autograd and enumeration, sampling statistics."""

from __future__ import annotations

import math

import pytest
import torch

import fisherlab as fl
from oracles import OracleLikelihood, assert_close

LIKELIHOODS = {
    "gaussian": lambda: fl.likelihoods.Gaussian(sigma=0.7),
    "gaussian_mean": lambda: fl.likelihoods.Gaussian(sigma=1.3, output_reduction="mean"),
    "categorical": fl.likelihoods.Categorical,
    "bernoulli": fl.likelihoods.Bernoulli,
    "bernoulli_mean": lambda: fl.likelihoods.Bernoulli(output_reduction="mean"),
}


def _data(name: str, n: int = 5, c: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    f = 1.5 * torch.randn(n, c, generator=g, dtype=torch.float64)
    if name.startswith("gaussian"):
        y = torch.randn(n, c, generator=g, dtype=torch.float64)
    elif name == "categorical":
        y = torch.randint(0, c, (n,), generator=g)
    else:
        y = torch.rand(n, c, generator=g, dtype=torch.float64)
    return f, y


@pytest.fixture(params=list(LIKELIHOODS))
def name(request):
    return request.param


def test_nll_matches_definition(name):
    lik = LIKELIHOODS[name]()
    oracle = OracleLikelihood(lik)
    f, y = _data(name)
    expected = torch.stack([oracle.nll(f[n], y[n]) for n in range(f.shape[0])])
    assert_close(lik.nll(f, y), expected, 1e-13)


def test_output_gradient_matches_autograd(name):
    lik = LIKELIHOODS[name]()
    f, y = _data(name)
    f_req = f.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(lik.nll(f_req, y).sum(), f_req)
    assert_close(lik.output_gradient(f, y), expected, 1e-12)


def test_output_hessian_matches_autograd(name):
    lik = LIKELIHOODS[name]()
    oracle = OracleLikelihood(lik)
    f, y = _data(name)
    expected = torch.stack([oracle.output_hessian(f[n], y[n]) for n in range(f.shape[0])])
    assert_close(lik.output_hessian(f, y), expected, 1e-12)


def test_fisher_output_matches_enumeration(name):
    lik = LIKELIHOODS[name]()
    oracle = OracleLikelihood(lik)
    f, _ = _data(name)
    expected = torch.stack([oracle.fisher_output(f[n]) for n in range(f.shape[0])])
    assert_close(lik.fisher_output(f), expected, 1e-12)


def test_fisher_output_equals_output_hessian(name):
    """Exponential families in f: ∇²_f l = Λ for every label (Kunstner et al. Prop. 1)."""
    lik = LIKELIHOODS[name]()
    f, y = _data(name)
    assert_close(lik.output_hessian(f, y), lik.fisher_output(f), 1e-12)


def test_sqrt_fisher_output_is_a_factor(name):
    lik = LIKELIHOODS[name]()
    f, _ = _data(name)
    S = lik.sqrt_fisher_output(f)
    assert S.shape[:2] == f.shape
    assert_close(S @ S.transpose(1, 2), lik.fisher_output(f), 1e-12)


def test_known_closed_forms():
    f, y = _data("gaussian")
    gauss = fl.likelihoods.Gaussian(sigma=0.7)
    assert_close(gauss.fisher_output(f), torch.eye(3).double().expand(5, 3, 3) / 0.49, 1e-14)
    assert_close(gauss.nll(f, y), ((f - y) ** 2).sum(1) / (2 * 0.49), 1e-14)
    f, y = _data("categorical")
    p = f.softmax(1)
    cat = fl.likelihoods.Categorical()
    assert_close(cat.fisher_output(f), torch.diag_embed(p) - p[:, :, None] * p[:, None], 1e-14)
    f, _ = _data("bernoulli")
    p = torch.sigmoid(f)
    bern = fl.likelihoods.Bernoulli(output_reduction="mean")
    assert_close(bern.fisher_output(f), torch.diag_embed(p * (1 - p)) / 3, 1e-14)


# -- sampling -------------------------------------------------------------------------------
SAMPLES = 40_000


def test_categorical_sampling_frequencies():
    """Frequencies within 5 binomial standard deviations of the probabilities."""
    lik = fl.likelihoods.Categorical()
    f = torch.tensor([[0.3, -1.0, 1.2, 0.0]], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    labels = lik.sample(f.expand(SAMPLES, 4), generator=g)
    assert labels.shape == (SAMPLES,) and labels.dtype == torch.int64
    p = f.softmax(1)[0]
    freq = torch.bincount(labels, minlength=4).double() / SAMPLES
    std = torch.sqrt(p * (1 - p) / SAMPLES)
    assert torch.all((freq - p).abs() <= 5 * std), (freq, p)


def test_bernoulli_sampling_frequencies():
    lik = fl.likelihoods.Bernoulli()
    f = torch.tensor([[-2.0, 0.0, 0.7]], dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    labels = lik.sample(f.expand(SAMPLES, 3), generator=g)
    assert set(labels.unique().tolist()) <= {0.0, 1.0}
    p = torch.sigmoid(f)[0]
    freq = labels.mean(0)
    std = torch.sqrt(p * (1 - p) / SAMPLES)
    assert torch.all((freq - p).abs() <= 5 * std), (freq, p)


def test_gaussian_sampling_moments():
    lik = fl.likelihoods.Gaussian(sigma=0.5)
    f = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    g = torch.Generator().manual_seed(2)
    draws = lik.sample(f.expand(SAMPLES, 2), generator=g)
    mean_std = 0.5 / math.sqrt(SAMPLES)
    assert torch.all((draws.mean(0) - f[0]).abs() <= 5 * mean_std)
    # the sample variance of a normal has std σ²·√(2/(n−1))
    var_std = 0.25 * math.sqrt(2 / (SAMPLES - 1))
    assert torch.all((draws.var(0) - 0.25).abs() <= 5 * var_std)


def test_sampled_output_gradient_outer_products_average_to_fisher(name):
    """Mean of q qᵀ over 10k draws within 5 standard errors of Λ, entrywise."""
    lik = LIKELIHOODS[name]()
    f, _ = _data(name, n=2)
    g = torch.Generator().manual_seed(3)
    draws = 10_000
    q = lik.sampled_output_gradient(f, mc_samples=draws, generator=g)
    assert q.shape == (draws, 2, 3)
    outer = q[..., :, None] * q[..., None, :]
    estimate = outer.mean(0)
    stderr = outer.std(0) / math.sqrt(draws)
    Lam = lik.fisher_output(f)
    assert torch.all((estimate - Lam).abs() <= 5 * stderr + 1e-12), (estimate, Lam)
    assert_close(estimate, Lam, 0.08)


def test_sampling_is_reproducible_with_a_generator(name):
    lik = LIKELIHOODS[name]()
    f, _ = _data(name)
    first = lik.sampled_output_gradient(f, 4, torch.Generator().manual_seed(5))
    again = lik.sampled_output_gradient(f, 4, torch.Generator().manual_seed(5))
    other = lik.sampled_output_gradient(f, 4, torch.Generator().manual_seed(6))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_sampled_output_gradient_rejects_bad_mc_samples():
    lik = fl.likelihoods.Categorical()
    with pytest.raises(ValueError, match="mc_samples must be a positive integer"):
        lik.sampled_output_gradient(torch.zeros(2, 3), mc_samples=0)


# -- construction and from_loss ---------------------------------------------------------------
@pytest.mark.parametrize("sigma", [0.0, -1.0, float("nan"), float("inf"), "1"])
def test_gaussian_rejects_bad_sigma(sigma):
    with pytest.raises(ValueError, match="sigma must be a positive finite number"):
        fl.likelihoods.Gaussian(sigma=sigma)


def test_bad_output_reduction_and_reduction():
    with pytest.raises(ValueError, match="output_reduction must be"):
        fl.likelihoods.Bernoulli(output_reduction="none")
    with pytest.raises(ValueError, match="reduction must be"):
        fl.likelihoods.Categorical(reduction="none")


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_from_loss_maps_losses(reduction):
    mse = fl.likelihoods.from_loss(torch.nn.MSELoss(reduction=reduction))
    assert isinstance(mse, fl.likelihoods.Gaussian)
    assert mse.sigma == pytest.approx(math.sqrt(0.5))
    assert mse.output_reduction == reduction and mse.reduction == reduction
    ce = fl.likelihoods.from_loss(torch.nn.CrossEntropyLoss(reduction=reduction))
    assert isinstance(ce, fl.likelihoods.Categorical) and ce.reduction == reduction
    bce = fl.likelihoods.from_loss(torch.nn.BCEWithLogitsLoss(reduction=reduction))
    assert isinstance(bce, fl.likelihoods.Bernoulli)
    assert bce.output_reduction == reduction and bce.reduction == reduction


@pytest.mark.parametrize(
    "loss_fn", [torch.nn.L1Loss(), torch.nn.NLLLoss(), torch.nn.BCELoss(), torch.nn.Linear(2, 2)]
)
def test_from_loss_rejects_other_modules(loss_fn):
    with pytest.raises(TypeError, match=f"cannot map {type(loss_fn).__name__} to a likelihood"):
        fl.likelihoods.from_loss(loss_fn)


@pytest.mark.parametrize(
    "loss_fn, phrase",
    [
        (torch.nn.CrossEntropyLoss(weight=torch.ones(3)), "class weights"),
        (torch.nn.CrossEntropyLoss(label_smoothing=0.1), "label_smoothing"),
        (torch.nn.CrossEntropyLoss(ignore_index=0), "ignore_index"),
        (torch.nn.BCEWithLogitsLoss(pos_weight=torch.ones(3)), "pos_weight"),
        (torch.nn.BCEWithLogitsLoss(weight=torch.ones(3)), "weight"),
        (torch.nn.MSELoss(reduction="none"), "reduction='none'"),
        (torch.nn.CrossEntropyLoss(reduction="none"), "reduction='none'"),
    ],
)
def test_from_loss_rejects_options_that_are_not_likelihoods(loss_fn, phrase):
    with pytest.raises(ValueError, match=phrase):
        fl.likelihoods.from_loss(loss_fn)


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.uint8])
def test_categorical_accepts_any_integer_label_dtype(dtype):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 4).double()
    X, y = torch.randn(5, 3, dtype=torch.float64), torch.randint(0, 4, (5,))
    lik = fl.likelihoods.Categorical()
    expected = fl.Curvature(model, lik, X, y)
    got = fl.Curvature(model, lik, X, y.to(dtype))
    assert_close(got.gradient(), expected.gradient())
    assert_close(got.per_sample_gradients(), expected.per_sample_gradients())
    assert_close(got.ggn(form="diag"), expected.ggn(form="diag"))
    v = torch.ones(got.num_params, dtype=torch.float64)
    assert_close(got.ggn(form="operator") @ v, expected.ggn(form="operator") @ v)
    assert_close(
        got.empirical_fisher(form="kfac").to_dense(), expected.empirical_fisher("kfac").to_dense()
    )
