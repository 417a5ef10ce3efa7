"""``Curvature`` and the generic engine: the right N, reverse mode where forward AD is missing,
the library's errors instead of ``torch.func`` tracebacks."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset, default_collate

import fisherlab as fl

DT = torch.float64


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).to(DT)


def test_number_of_samples_comes_from_the_batches_yielded():
    model, lik = _mlp(), fl.likelihoods.Categorical()
    X, y = torch.randn(8, 3, dtype=DT), torch.randint(0, 2, (8,))

    def keep_first_half(items):
        return default_collate(items[: len(items) // 2])

    loader = DataLoader(TensorDataset(X, y), batch_size=4, collate_fn=keep_first_half)
    c = fl.Curvature(model, lik, loader)
    kept = torch.cat([X[0:2], X[4:6]]), torch.cat([y[0:2], y[4:6]])
    reference = fl.Curvature(model, lik, *kept)
    assert c.num_samples == 4
    torch.testing.assert_close(c.gradient(), reference.gradient())
    torch.testing.assert_close(c.variance(), reference.variance())


class FunctionalDropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(F.dropout(x, 0.5, training=True))


class Attention(nn.Module):
    def __init__(self, dropout: float) -> None:
        super().__init__()
        self.att = nn.MultiheadAttention(4, 2, dropout=dropout, batch_first=True)
        self.lin = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(self.att(x, x, x)[0][:, -1])


RANDOM_MODELS = {
    "functional-dropout": (FunctionalDropout, (3,)),
    "attention-dropout": (lambda: Attention(0.5).train(), (5, 4)),
}
CALLS = {
    "gradient": lambda c: c.gradient(),
    "ggn-diag": lambda c: c.ggn(form="diag"),
    "per-sample": lambda c: c.per_sample_gradients(),
}


@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("name", list(RANDOM_MODELS))
def test_random_operations_inside_the_model_get_the_dropout_message(name, call):
    make, shape = RANDOM_MODELS[name]
    torch.manual_seed(0)
    model = make().to(DT)
    X, y = torch.randn(6, *shape, dtype=DT), torch.randint(0, 2, (6,))
    c = fl.Curvature(model, fl.likelihoods.Categorical(), X, y)
    with pytest.raises(ValueError, match="random operation.*call model.eval"):
        CALLS[call](c)


def _reverse_only_models() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        old = nn.utils.weight_norm(nn.Linear(3, 3))
    return {
        "attention-fused": (Attention(0.0).to(DT).eval(), (5, 4)),
        "weight_norm": (nn.Sequential(old, nn.Tanh(), nn.Linear(3, 2)).to(DT), (3,)),
    }


@pytest.mark.parametrize("name", ["attention-fused", "weight_norm"])
def test_products_fall_back_to_reverse_mode_without_forward_ad(name):
    model, shape = _reverse_only_models()[name]
    X, y = torch.randn(4, *shape, dtype=DT), torch.randint(0, 2, (4,))
    c = fl.Curvature(model, fl.likelihoods.Categorical(), X, y)
    v = torch.randn(c.num_params, dtype=DT)
    G = c.per_sample_gradients()
    torch.testing.assert_close(c.empirical_fisher(form="operator") @ v, G.T @ (G @ v) / 4)
    torch.testing.assert_close(c.ggn(form="operator") @ v, c.ggn(form="dense") @ v)
    if name == "weight_norm":
        # torch's double backward of weight normalisation is wrong: refused
        with pytest.raises(NotImplementedError, match="weight normalisation"):
            c.hessian(form="dense")
        with pytest.raises(NotImplementedError, match="weight normalisation"):
            c.hessian(form="operator") @ v
        return
    H = c.hessian(form="dense")
    torch.testing.assert_close(c.hessian(form="operator") @ v, H @ v)
    torch.testing.assert_close(H, _central_difference_hessian(c))


def _central_difference_hessian(c: fl.Curvature, eps: float = 1e-6) -> torch.Tensor:
    """Columns ``(∇L(θ + ε e_j) − ∇L(θ − ε e_j)) / 2ε``, from first derivatives only."""
    params = [p for p in c.model.parameters() if p.requires_grad]
    theta = torch.nn.utils.parameters_to_vector(params).detach()
    columns = []
    for j in range(theta.numel()):
        grads = []
        for sign in (1.0, -1.0):
            shifted = theta.clone()
            shifted[j] += sign * eps
            torch.nn.utils.vector_to_parameters(shifted, params)
            grads.append(c.gradient())
        columns.append((grads[0] - grads[1]) / (2 * eps))
    torch.nn.utils.vector_to_parameters(theta, params)
    return torch.stack(columns, 1)


class Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.RNN(3, 4, batch_first=True)
        self.lin = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(self.rnn(x)[0][:, -1])


def test_recurrent_layer_inside_vmap_is_named():
    model = Recurrent().to(DT)
    X, y = torch.randn(4, 5, 3, dtype=DT), torch.randint(0, 2, (4,))
    c = fl.Curvature(model, fl.likelihoods.Categorical(), X, y)
    with pytest.raises(NotImplementedError, match="'rnn' \\(RNN\\).*vmap"):
        c.per_sample_gradients()
    with pytest.raises(NotImplementedError, match="'rnn' \\(RNN\\)"):
        c.ggn(form="diag")
    c.ggn(form="operator") @ torch.ones(c.num_params, dtype=DT)  # no per-sample evaluation


def test_integer_inputs_to_a_float_model_name_the_dtype():
    model = _mlp()
    X, y = torch.randint(0, 3, (5, 3)), torch.randint(0, 2, (5,))
    c = fl.Curvature(model, fl.likelihoods.Categorical(), X, y)
    with pytest.raises(TypeError, match="inputs X have dtype torch.int64"):
        c.gradient()


class TupleOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.lin(x), x


class ScalarOut(TupleOut):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.lin(x).sum()


@pytest.mark.parametrize(
    ("make", "error", "phrase"),
    [(TupleOut, TypeError, "returns a tuple"), (ScalarOut, ValueError, "first dimension")],
)
def test_scalar_or_tuple_outputs_are_refused(make, error, phrase):
    model = make().to(DT)
    X, y = torch.randn(5, 3, dtype=DT), torch.randint(0, 2, (5,))
    with pytest.raises(error, match=phrase):
        fl.Curvature(model, fl.likelihoods.Categorical(), X, y).gradient()


@pytest.mark.parametrize("width", [1, 3])
def test_dense_hessian_through_layer_norm_matches_central_differences(width):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, width), nn.LayerNorm(width), nn.Tanh(), nn.Linear(width, 2))
    model = model.to(DT)
    X, y = torch.randn(4, 2, dtype=DT), torch.randint(0, 2, (4,))
    c = fl.Curvature(model, fl.likelihoods.Categorical(), X, y)
    H = c.hessian(form="dense")
    torch.testing.assert_close(H, _central_difference_hessian(c), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(c.hessian(form="diag"), H.diagonal())
