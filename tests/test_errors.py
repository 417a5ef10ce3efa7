"""Bad input gets a clear error: the type is checked AND a phrase of the message."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import fisherlab as fl


def _setup(likelihood: str = "categorical", n: int = 5):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    X = torch.randn(n, 3, dtype=torch.float64)
    if likelihood == "categorical":
        return model, fl.Categorical(), X, torch.randint(0, 2, (n,))
    if likelihood == "bernoulli":
        return model, fl.Bernoulli(), X, torch.randint(0, 2, (n, 2)).double()
    return model, fl.Gaussian(), X, torch.randn(n, 2, dtype=torch.float64)


QUANTITY_CALLS = {
    "loss": lambda c: c.loss(),
    "gradient": lambda c: c.gradient(),
    "per_sample_gradients": lambda c: c.per_sample_gradients(),
    "empirical_fisher": lambda c: c.empirical_fisher(),
    "fisher": lambda c: c.fisher(form="diag"),
    "fisher_mc": lambda c: c.fisher(mc_samples=2, generator=torch.Generator().manual_seed(0)),
    "ggn": lambda c: c.ggn(form="diag"),
    "hessian": lambda c: c.hessian(),
    "covariance": lambda c: c.covariance(),
    "variance": lambda c: c.variance(),
    "operator": lambda c: c.ggn(form="operator") @ torch.ones(c.num_params, dtype=torch.float64),
}


def _raises_on_use(c, exc, phrase):
    """Lazily validated input fails in every quantity."""
    for name, call in QUANTITY_CALLS.items():
        with pytest.raises(exc, match=phrase):
            call(c)
            pytest.fail(f"{name} accepted bad input")


# -- data ---------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_inputs(bad):
    model, lik, X, y = _setup()
    X[2, 1] = bad
    with pytest.raises(ValueError, match="input data X contains 1 NaN or inf"):
        fl.Curvature(model, lik, X, y)
    loader = DataLoader(TensorDataset(X, y), batch_size=2)
    _raises_on_use(fl.Curvature(model, lik, loader), ValueError, "input data X contains")


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_non_finite_targets(likelihood):
    model, lik, X, y = _setup(likelihood)
    y[0, 0] = float("nan")
    with pytest.raises(ValueError, match="targets y contains 1 NaN or inf"):
        fl.Curvature(model, lik, X, y)
    loader = DataLoader(TensorDataset(X, y), batch_size=3)
    _raises_on_use(fl.Curvature(model, lik, loader), ValueError, "targets y contains")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_parameters(bad):
    model, lik, X, y = _setup()
    with torch.no_grad():
        model[2].bias[0] = bad
    with pytest.raises(ValueError, match=r"parameter '2.bias' contains 1 NaN or inf"):
        fl.Curvature(model, lik, X, y)


def test_parameters_becoming_non_finite_after_construction():
    model, lik, X, y = _setup()
    c = fl.Curvature(model, lik, X, y)
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    _raises_on_use(c, ValueError, r"parameter '0.weight' contains")


def test_non_finite_outputs():
    _, lik, X, y = _setup()
    model = nn.Linear(3, 2).double()
    nn.init.ones_(model.weight)
    X[0] = 1e308  # finite input, overflowing output
    c = fl.Curvature(model, lik, X, y)
    _raises_on_use(c, ValueError, "model outputs contain NaN or inf")


def test_sample_count_mismatch():
    model, lik, X, y = _setup()
    with pytest.raises(ValueError, match="disagree in the number of samples"):
        fl.Curvature(model, lik, X, y[:4])
    bad_batches = [(X[:3], y[:2])]
    with pytest.raises(ValueError, match="disagree in the number of samples"):
        fl.Curvature(model, lik, bad_batches).gradient()


@pytest.mark.parametrize(
    "likelihood, targets, phrase",
    [
        ("gaussian", lambda y: y[:, :1], r"Gaussian: targets of shape \(5, 1\) do not match"),
        ("gaussian", lambda y: y.long(), "Gaussian: targets must be floating point"),
        ("bernoulli", lambda y: torch.cat([y, y], 1), "Bernoulli: targets of shape"),
        ("categorical", lambda y: y[:, None], r"Categorical: targets must be class indices"),
        ("categorical", lambda y: y.double(), "Categorical: targets must be integer class"),
    ],
)
def test_targets_do_not_match_outputs(likelihood, targets, phrase):
    model, lik, X, y = _setup(likelihood)
    c = fl.Curvature(model, lik, X, targets(y))
    _raises_on_use(c, ValueError, phrase)


@pytest.mark.parametrize("label", [-1, 2, 7])
def test_categorical_labels_out_of_range(label):
    model, lik, X, y = _setup("categorical")
    y[3] = label
    c = fl.Curvature(model, lik, X, y)
    _raises_on_use(c, ValueError, r"Categorical: labels must lie in \[0, 1\] for 2 classes")


@pytest.mark.parametrize("label", [-0.5, 1.5, 2.0])
def test_bernoulli_labels_out_of_range(label):
    model, lik, X, y = _setup("bernoulli")
    y[1, 0] = label
    c = fl.Curvature(model, lik, X, y)
    _raises_on_use(c, ValueError, r"Bernoulli: labels must lie in \[0, 1\]")


def test_empty_tensor_data():
    model, lik, X, y = _setup()
    with pytest.raises(ValueError, match="data is empty"):
        fl.Curvature(model, lik, X[:0], y[:0])


def test_empty_data_loader():
    model, lik, X, y = _setup()
    with pytest.raises(ValueError, match="data is empty"):
        fl.Curvature(model, lik, DataLoader(TensorDataset(X[:0], y[:0]), batch_size=2))
    with pytest.raises(ValueError, match="data is empty"):
        fl.Curvature(model, lik, [])
    with pytest.raises(ValueError, match="data is empty"):
        fl.Curvature(
            model, lik, DataLoader(TensorDataset(X[:1], y[:1]), batch_size=2, drop_last=True)
        )


def test_bad_batches_in_a_loader():
    model, lik, X, y = _setup()
    with pytest.raises(TypeError, match=r"must be a pair \(inputs, targets\)"):
        fl.Curvature(model, lik, [X])
    with pytest.raises(TypeError, match="must be torch.Tensors"):
        fl.Curvature(model, lik, [(X.numpy(), y)]).gradient()


def test_batchnorm_in_training_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).double()
    X, y = torch.randn(5, 3, dtype=torch.float64), torch.randint(0, 2, (5,))
    with pytest.raises(
        ValueError, match=r"BatchNorm layer '1' is in training mode.*model\.eval\(\)"
    ):
        fl.Curvature(model, fl.Categorical(), X, y)
    c = fl.Curvature(model.eval(), fl.Categorical(), X, y)
    c.gradient()
    model.train()  # switched back after construction
    with pytest.raises(ValueError, match=r"model\.eval\(\)"):
        c.fisher()


def test_dropout_in_training_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 2)).double()
    X, y = torch.randn(5, 3, dtype=torch.float64), torch.randint(0, 2, (5,))
    with pytest.raises(ValueError, match=r"Dropout layer '1' is in training mode.*model\.eval\(\)"):
        fl.Curvature(model, fl.Categorical(), X, y)
    c = fl.Curvature(model.eval(), fl.Categorical(), X, y)
    c.gradient()
    model.train()  # switched back after construction
    with pytest.raises(ValueError, match=r"model\.eval\(\)"):
        c.gradient()
    # a Dropout with p=0 is the identity in either mode
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.0), nn.Linear(4, 2)).double().train()
    fl.Curvature(model, fl.Categorical(), X, y).gradient()


def test_unknown_form_lists_available_forms():
    model, lik, X, y = _setup()
    c = fl.Curvature(model, lik, X, y)
    for call in (c.fisher, c.ggn, c.hessian, c.empirical_fisher, c.covariance, c.variance):
        with pytest.raises(
            ValueError,
            match=r"unknown form 'sparse'; available forms: .*dense, "
            r"diag.*operator",
        ):
            call(form="sparse")


@pytest.mark.parametrize("mc_samples", [0, -3, 1.5, 2.0, "2", True])
def test_bad_mc_samples(mc_samples):
    model, lik, X, y = _setup()
    c = fl.Curvature(model, lik, X, y)
    with pytest.raises(ValueError, match="mc_samples must be a positive integer"):
        c.fisher(form="diag", mc_samples=mc_samples)


def test_generator_without_mc_samples():
    model, lik, X, y = _setup()
    c = fl.Curvature(model, lik, X, y)
    with pytest.raises(ValueError, match="pass mc_samples as well"):
        c.fisher(generator=torch.Generator())


def test_dtype_mismatch():
    model, lik, X, y = _setup()
    c = fl.Curvature(model, lik, X.float(), y)
    _raises_on_use(c, ValueError, r"input dtype torch.float32 differs from the parameters' dtype")


@pytest.mark.parametrize("damping", [-1e-3, float("nan"), float("inf")])
@pytest.mark.parametrize("method", ["dense", "cg", "auto"])
def test_bad_damping_in_solve(damping, method):
    model, lik, X, y = _setup()
    op = fl.Curvature(model, lik, X, y).ggn(form="operator")
    with pytest.raises(ValueError, match="damping must be a finite number >= 0"):
        op.solve(torch.ones(op.dim, dtype=torch.float64), damping=damping, method=method)


def test_bad_reduction_batch_size_and_likelihood():
    model, lik, X, y = _setup()
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum'"):
        fl.Curvature(model, lik, X, y, reduction="none")
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        fl.Curvature(model, lik, X, y, batch_size=0)
    with pytest.raises(TypeError, match="likelihood must be a fisherlab Likelihood.*from_loss"):
        fl.Curvature(model, nn.CrossEntropyLoss(), X, y)
    with pytest.raises(ValueError, match="contradicts the loss"):
        fl.Curvature(
            model, fl.from_loss(nn.CrossEntropyLoss(reduction="sum")), X, y, reduction="mean"
        )
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        fl.Curvature(lambda x: x, lik, X, y)
    with pytest.raises(TypeError, match="targets y must be a torch.Tensor"):
        fl.Curvature(model, lik, X)
    with pytest.raises(ValueError, match="pass y only with tensor inputs"):
        fl.Curvature(model, lik, [(X, y)], y)


def test_model_without_trainable_parameters():
    model, lik, X, y = _setup()
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no parameters with requires_grad=True"):
        fl.Curvature(model, lik, X, y)
