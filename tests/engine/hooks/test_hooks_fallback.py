"""Models outside the fast path: a warning and the generic engine's numbers, or a clear error."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import fisherlab as fl
from fisherlab.engine.hooks import FallbackWarning, compute

DT = torch.float64
STATS = ("gradient", "variance", "l2_norm", "per_sample_gradients", "ggn_diag", "fisher_mc_diag")


class Scale(nn.Module):
    """A parameterised layer without a closed form in the fast engine."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class TwiceCalled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(4, 3)
        self.shared = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shared(torch.tanh(self.shared(self.inp(x))))


class TiedOutsideForward(nn.Module):
    """A weight used by its layer and again directly by the parent (tied weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Linear(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(torch.tanh(self.up(x)), self.up.weight.T)


MODELS = {
    "unknown-layer": lambda: nn.Sequential(nn.Linear(4, 3), Scale(3), nn.Linear(3, 3)),
    "conv-transpose": lambda: nn.Sequential(
        nn.ConvTranspose1d(4, 2, 3, padding=1), nn.Flatten(), nn.Linear(2, 3)
    ),
    "called-twice": TwiceCalled,
    "tied-outside-forward": TiedOutsideForward,
}


@pytest.mark.parametrize("name", list(MODELS))
def test_fallback_warns_and_matches_generic_engine(name):
    torch.manual_seed(0)
    model = MODELS[name]().to(DT)
    in_shape = (
        (4, 1) if name == "conv-transpose" else (4,) if name != "tied-outside-forward" else (3,)
    )
    X = torch.randn(5, *in_shape, dtype=DT)
    y = torch.randint(0, 3, (5,))
    lik = fl.likelihoods.Categorical()
    with pytest.warns(FallbackWarning):
        stats = compute(model, lik, X, y, STATS, generator=torch.Generator().manual_seed(2))
    curv = fl.Curvature(model, lik, X, y)
    G = curv.per_sample_gradients()
    mc = curv.fisher(form="diag", mc_samples=1, generator=torch.Generator().manual_seed(2))
    expected = {
        "gradient": curv.gradient(),
        "variance": curv.variance(form="diag"),
        "l2_norm": G.norm(dim=1),
        "per_sample_gradients": G,
        "ggn_diag": curv.ggn(form="diag"),
        "fisher_mc_diag": mc,
    }
    for stat, value in expected.items():
        torch.testing.assert_close(stats.flat(stat), value, rtol=1e-10, atol=1e-12, msg=stat)


def test_supported_model_does_not_warn(recwarn):
    model = nn.Sequential(nn.Linear(4, 3)).to(DT)
    compute(model, fl.likelihoods.Categorical(), torch.randn(5, 4, dtype=DT), torch.zeros(5).long())
    assert not [w for w in recwarn if issubclass(w.category, FallbackWarning)]


def test_kronecker_factors_without_fast_path_raise():
    model = MODELS["unknown-layer"]().to(DT)
    with pytest.raises(NotImplementedError, match="Scale"):
        fl.engine.hooks.collect(model, fl.likelihoods.Categorical(), ("kfac",))


def test_batchnorm_in_training_mode_raises():
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)).to(DT).train()
    with pytest.raises(ValueError, match="training mode"):
        compute(
            model,
            fl.likelihoods.Gaussian(),
            torch.randn(5, 4, dtype=DT),
            torch.randn(5, 3, dtype=DT),
        )


def test_bad_arguments():
    model = nn.Linear(4, 3).to(DT)
    lik = fl.likelihoods.Categorical()
    with pytest.raises(ValueError, match="known statistics"):
        fl.engine.hooks.collect(model, lik, ("hessian_diag",))
    with pytest.raises(ValueError, match="reduction"):
        fl.engine.hooks.collect(model, lik, reduction="avg")
    with pytest.raises(TypeError, match="Likelihood"):
        fl.engine.hooks.collect(model, nn.CrossEntropyLoss())
    stats = fl.engine.hooks.collect(model, lik, ("gradient",))
    with pytest.raises(RuntimeError, match="backward"):
        stats.flat("gradient")
    stats = compute(model, lik, torch.randn(5, 4, dtype=DT), torch.zeros(5).long(), ("gradient",))
    with pytest.raises(ValueError, match="not requested"):
        stats.flat("variance")


class SharedPositions(nn.Module):
    """Position embeddings of ``arange(T)``: one (T, d) table broadcast over the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens = nn.Embedding(5, 3)
        self.positions = nn.Embedding(4, 3)
        self.out = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.tokens(x) + self.positions(torch.arange(x.shape[1]))
        return self.out(h.mean(1))


def test_a_layer_without_one_row_per_sample_falls_back_with_the_oracle_numbers():
    import oracles

    torch.manual_seed(0)
    model = SharedPositions().to(DT)
    X, y = torch.randint(0, 5, (6, 4)), torch.randint(0, 2, (6,))
    lik = fl.likelihoods.Categorical()
    with pytest.warns(
        FallbackWarning, match=r"Embedding layer 'positions' gets an input of shape \(4,\)"
    ):
        with fl.engine.hooks.collect(model, lik, statistics=("variance", "ggn_diag")) as col:
            col.loss(model(X), y).backward()
    brute = oracles.BruteForce(model, lik, X, y, "mean")
    ef, grad = brute.empirical_fisher, brute.gradient
    torch.testing.assert_close(
        col.flat("variance"), ef.diagonal() - grad**2, rtol=1e-10, atol=1e-12
    )
    torch.testing.assert_close(col.flat("ggn_diag"), brute.ggn.diagonal(), rtol=1e-10, atol=1e-12)


class SharedInputLayer(nn.Module):
    """A Linear layer applied to one (1, 1) tensor shared by every sample."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(3, 2)
        self.shared = nn.Linear(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) + self.shared(torch.ones(1, 1, dtype=x.dtype))


def test_kfac_refuses_a_layer_without_one_row_per_sample():
    torch.manual_seed(0)
    model = SharedInputLayer().to(DT)
    X, y = torch.randn(6, 3, dtype=DT), torch.randint(0, 2, (6,))
    c = fl.Curvature(model, fl.likelihoods.Categorical(), X, y)
    with pytest.raises(NotImplementedError, match=r"'shared' gets an input of shape \(1, 1\)"):
        c.ggn(form="kfac")
    with pytest.raises(NotImplementedError, match="Kronecker factors need the fast path"):
        with fl.engine.hooks.collect(
            model, fl.likelihoods.Categorical(), statistics=("kflr",)
        ) as col:
            col.loss(model(X), y).backward()
