"""The hooks collector: no retained graph, no silently wrong statistics, clear errors."""

from __future__ import annotations

import gc
import warnings

import pytest
import torch
from torch import nn

import fisherlab as fl
from fisherlab.engine.hooks import FallbackWarning, collect, compute

DT = torch.float64


def _live_tensors() -> tuple[int, int]:
    """Number and storage bytes of the tensors Python can reach, after a full collection."""
    gc.collect()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tensors = [o for o in gc.get_objects() if isinstance(o, torch.Tensor)]
    return len(tensors), sum(t.untyped_storage().nbytes() for t in tensors)


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 3)).to(
        DT
    )


STATISTIC_SETS = {
    "first-order": ("gradient", "second_moment", "variance", "l2_norm"),
    "per-sample": ("per_sample_gradients", "variance"),
    "curvature": ("ggn_diag", "fisher_mc_diag", "kflr", "kfac"),
}


@pytest.mark.parametrize("name", list(STATISTIC_SETS))
def test_fifty_collected_steps_retain_no_memory(name):
    model, lik = _cnn(), fl.likelihoods.Categorical()
    X, y = torch.randn(16, 1, 6, 6, dtype=DT), torch.randint(0, 3, (16,))
    stats = STATISTIC_SETS[name]

    def step() -> None:
        with collect(model, lik, statistics=stats, generator=torch.Generator()) as col:
            col.loss(model(X), y).backward()
        col["gradient" if "gradient" in stats else stats[0]]
        model.zero_grad(set_to_none=True)

    step()
    before = _live_tensors()
    for _ in range(50):
        step()
    assert _live_tensors() == before


def test_kept_collector_releases_the_graph_when_the_backward_ends():
    model, lik = _cnn(), fl.likelihoods.Categorical()
    X, y = torch.randn(8, 1, 6, 6, dtype=DT), torch.randint(0, 3, (8,))
    kept = []
    with collect(model, lik, statistics=("variance",)) as col:
        col.loss(model(X), y).backward()
    kept.append(col)
    model.zero_grad(set_to_none=True)
    before = _live_tensors()
    for _ in range(10):
        with collect(model, lik, statistics=("variance",)) as col:
            col.loss(model(X), y).backward()
        kept[0] = col  # the last collector stays alive and readable
        model.zero_grad(set_to_none=True)
    assert _live_tensors() == before
    assert kept[0].flat("variance").shape == (sum(p.numel() for p in model.parameters()),)


def test_curvature_and_operators_retain_no_memory():
    model, lik = _cnn(), fl.likelihoods.Categorical()
    X, y = torch.randn(8, 1, 6, 6, dtype=DT), torch.randint(0, 3, (8,))

    def step() -> None:
        c = fl.Curvature(model, lik, X, y)
        v = torch.ones(c.num_params, dtype=DT)
        c.variance()
        c.ggn(form="diag")
        c.ggn(form="operator") @ v
        c.ggn(form="kfac") @ v

    step()
    before = _live_tensors()
    for _ in range(5):
        step()
    assert _live_tensors() == before


def test_monitored_steps_retain_no_memory():
    model, lik = _cnn(), fl.likelihoods.Categorical()
    X, y = torch.randn(16, 1, 6, 6, dtype=DT), torch.randint(0, 3, (16,))
    monitor = fl.Monitor(model, lik, every=1)

    def step() -> None:
        with monitor.step(X, y) as s:
            s.loss(model(X), y).backward()
        model.zero_grad(set_to_none=True)

    step()
    before = _live_tensors()
    for _ in range(20):
        step()
    assert _live_tensors() == before
    assert len(monitor.records) == 21


# -- coverage decided per parameter ----------------------------------------------------------
def _weight_norm_models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        old = nn.utils.weight_norm(nn.Linear(4, 3))
    new = nn.utils.parametrizations.weight_norm(nn.Linear(4, 3))
    return {
        "weight_norm-hooks": nn.Sequential(old, nn.Tanh(), nn.Linear(3, 3)).to(DT),
        "weight_norm-parametrization": nn.Sequential(new, nn.Tanh(), nn.Linear(3, 3)).to(DT),
    }


@pytest.mark.parametrize("name", ["weight_norm-hooks", "weight_norm-parametrization"])
def test_reparametrised_layer_falls_back_with_the_right_numbers(name):
    model = _weight_norm_models()[name]
    lik = fl.likelihoods.Categorical()
    X, y = torch.randn(6, 4, dtype=DT), torch.randint(0, 3, (6,))
    with pytest.warns(FallbackWarning, match="not covered|parametrized"):
        stats = compute(model, lik, X, y, ("gradient", "second_moment", "variance"))
    G = fl.Curvature(model, lik, X, y, engine="generic").per_sample_gradients()
    torch.testing.assert_close(stats.flat("second_moment"), G.square().mean(0))
    torch.testing.assert_close(stats.flat("variance"), G.square().mean(0) - G.mean(0).square())
    assert (stats.flat("variance") >= -1e-12).all()


@pytest.mark.parametrize("name", ["weight_norm-hooks", "weight_norm-parametrization"])
def test_reparametrised_layer_diagonals_of_curvature_match_the_generic_engine(name):
    model = _weight_norm_models()[name]
    lik = fl.likelihoods.Categorical()
    X, y = torch.randn(6, 4, dtype=DT), torch.randint(0, 3, (6,))
    auto = fl.Curvature(model, lik, X, y)
    generic = fl.Curvature(model, lik, X, y, engine="generic")
    assert auto.diagonal_engine == "generic"
    torch.testing.assert_close(auto.ggn(form="diag"), generic.ggn(form="diag"))
    with pytest.raises(NotImplementedError, match="weight"):
        auto.ggn(form="kfac")


# -- normalisation with batch statistics ------------------------------------------------------
def _bn_without_running_stats() -> nn.Module:
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3, track_running_stats=False))
    return model.to(DT).eval()


def test_batchnorm_without_running_statistics_is_refused_in_eval_mode():
    model, lik = _bn_without_running_stats(), fl.likelihoods.Categorical()
    X, y = torch.randn(6, 4, dtype=DT), torch.randint(0, 3, (6,))
    with pytest.raises(ValueError, match="track_running_stats=False"):
        fl.Curvature(model, lik, X, y)
    with pytest.raises(ValueError, match="track_running_stats=False"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FallbackWarning)
            with collect(model, lik) as col:
                col.loss(model(X), y).backward()


# -- outputs, targets and inputs --------------------------------------------------------------
class Transposed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x).T


class Doubled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.lin(x), self.lin(x)])


class Scalar(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x).sum()


class Pair(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.lin(x), x


BAD_OUTPUTS = {
    "transposed": (Transposed, ValueError, "first dimension"),
    "doubled": (Doubled, ValueError, "first dimension"),
    "scalar": (Scalar, ValueError, "scalar"),
    "tuple": (Pair, TypeError, "returns a tuple"),
}


@pytest.mark.parametrize("name", list(BAD_OUTPUTS))
def test_outputs_without_one_row_per_sample_are_refused(name):
    make, error, phrase = BAD_OUTPUTS[name]
    model = make().to(DT)
    X = torch.randn(4, 4, dtype=DT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FallbackWarning)
        with collect(model, fl.likelihoods.Categorical()):
            with pytest.raises(error, match=phrase):
                model(X)


def test_loss_refuses_broadcasting_targets_and_nan_inputs():
    model = nn.Linear(4, 2).to(DT)
    lik = fl.likelihoods.Gaussian()
    X = torch.randn(5, 4, dtype=DT)
    with collect(model, lik) as col:
        with pytest.raises(ValueError, match="do not match"):
            col.loss(model(X), torch.randn(5, 1, dtype=DT))
        with pytest.raises(ValueError, match="number of samples"):
            col.loss(model(X), torch.randn(1, 2, dtype=DT))
        bad = X.clone()
        bad[2, 1] = float("nan")
        with pytest.raises(ValueError, match="input data X contains 1 NaN"):
            model(bad)


def test_metric_forward_between_forward_and_backward_changes_nothing():
    model, lik = _cnn(), fl.likelihoods.Categorical()
    X, y = torch.randn(8, 1, 6, 6, dtype=DT), torch.randint(0, 3, (8,))
    other = torch.randn(3, 1, 6, 6, dtype=DT)
    stats = ("gradient", "variance", "ggn_diag")
    reference = compute(model, lik, X, y, stats)
    for metric in ("grad", "no_grad"):
        with collect(model, lik, statistics=stats) as col:
            loss = col.loss(model(X), y)
            if metric == "no_grad":
                with torch.no_grad():
                    model(other)
            else:
                model(other).sum()
            loss.backward()
        model.zero_grad(set_to_none=True)
        assert col.num_samples == 8
        for s in stats:
            torch.testing.assert_close(col.flat(s), reference.flat(s))
