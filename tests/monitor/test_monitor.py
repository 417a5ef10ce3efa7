"""fl.Monitor: every tracked value against the library's direct computation (float64)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import fisherlab as fl
from fisherlab.engine.hooks import FallbackWarning
from fisherlab.monitor import (
    INSTRUMENTS,
    CABSBatchSize,
    EdgeOfStability,
    EFvsFisher,
    GGNMaxEigenvalue,
    GradientHistogram,
    HessianMaxEigenvalue,
    Monitor,
    NormTestBatchSize,
    read_log,
)
from fisherlab.optim.batch_size import CABS, NormTest

D_MLP = 4 * 6 + 6 + 6 * 3 + 3  # 51 parameters


def mlp(dtype=torch.float64):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)).to(
        dtype
    )


def loader(n=72, batch_size=16, dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    X = torch.randn(n, 4, generator=g, dtype=dtype)
    y = torch.randint(0, 3, (n,), generator=g)
    return DataLoader(TensorDataset(X, y), batch_size=batch_size)  # last batch: 8 samples


def all_instruments(seed=3):
    return (
        "loss",
        "gradient_norm",
        "variance_trace",
        "noise_to_signal",
        "layer_snr",
        EFvsFisher(damping=1e-3, mc_samples=2, seed=seed, every=1),
        HessianMaxEigenvalue(num_steps=D_MLP + 5, seed=seed, every=1),
        GGNMaxEigenvalue(num_steps=D_MLP + 5, seed=seed, every=1),
        EdgeOfStability(num_steps=D_MLP + 5, seed=seed, every=1),
        CABSBatchSize(min_batch=1, max_batch=10_000),
        NormTestBatchSize(theta=0.8, min_batch=1, max_batch=10_000),
        GradientHistogram(low=-6.0, high=1.0, bins=14, every=1),
    )


def direct_values(model, lik, X, y, lr, step, seed, cabs, norm_test):
    """The same quantities from fl.Curvature, dense matrices and the batch-size rules."""
    c = fl.Curvature(model, lik, X, y)
    g = c.gradient()
    var = c.variance()
    ef = c.empirical_fisher("dense")
    gen = torch.Generator().manual_seed(seed + step)
    fmc = c.fisher("dense", mc_samples=2, generator=gen)
    eye = torch.eye(g.numel(), dtype=g.dtype)
    d_ef = torch.linalg.solve(ef + 1e-3 * eye, g)
    d_nat = torch.linalg.solve(fmc + 1e-3 * eye, g)
    lam_h = float(torch.linalg.eigvalsh(c.hessian("dense")).max())
    lam_g = float(torch.linalg.eigvalsh(c.ggn("dense")).max())
    loss = float(torch.nn.functional.cross_entropy(model(X), y).detach())
    N = X.shape[0]
    layers = {}
    offset = 0
    for name, p in model.named_parameters():
        layer = f"{name.rsplit('.', 1)[0]} (Linear)"
        sl = slice(offset, offset + p.numel())
        offset += p.numel()
        s, n = layers.get(layer, (0.0, 0.0))
        layers[layer] = (s + float(g[sl].square().sum()), n + float(var[sl].sum()))
    magnitude = g.abs().numpy()
    exponent = np.clip(np.log10(magnitude[magnitude > 0]), -6.0, 1.0)
    counts, _ = np.histogram(exponent, bins=14, range=(-6.0, 1.0))
    return {
        "loss": loss,
        "gradient_norm": float(g.norm()),
        "variance_trace": float(var.sum()),
        "noise_to_signal": float(var.sum() / g.square().sum()),
        "layer_snr": {k: s / n for k, (s, n) in layers.items()},
        "ef_fisher_trace_ratio": float(ef.trace() / fmc.trace()),
        "ef_fisher_frobenius_ratio": float(
            torch.linalg.matrix_norm(ef) / torch.linalg.matrix_norm(fmc)
        ),
        "ef_natural_cosine": float(d_ef @ d_nat / (d_ef.norm() * d_nat.norm())),
        "hessian_max_eigenvalue": lam_h,
        "ggn_max_eigenvalue": lam_g,
        "lr_times_max_eigenvalue": lr * lam_h,
        "cabs_batch_size": float(cabs.update(loss=loss, variance=c.variance(unbiased=True))),
        "norm_test_batch_size": float(norm_test.update(variance=var * N / (N - 1), gradient=g)),
        "gradient_histogram": {
            "low": -6.0,
            "high": 1.0,
            "counts": counts.tolist(),
            "zeros": int((magnitude == 0).sum()),
        },
    }


def assert_close(measured, expected, key):
    if isinstance(expected, dict) and "counts" in expected:
        assert measured == expected, key
    elif isinstance(expected, dict):
        assert measured.keys() == expected.keys(), key
        for k in expected:
            assert measured[k] == pytest.approx(expected[k], rel=1e-9, abs=1e-12), (key, k)
    else:
        assert measured == pytest.approx(expected, rel=1e-8, abs=1e-12), key


def test_five_steps_match_direct_computation(tmp_path):
    model, lik = mlp(), fl.likelihoods.Categorical()
    opt = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    log = tmp_path / "run.jsonl"
    mon = Monitor(model, lik, track=all_instruments(), optimizer=opt, log=log)
    assert {i.name for i in mon.instruments} == set(INSTRUMENTS)
    cabs = CABS(0.3, min_batch=1, max_batch=10_000)
    norm_test = NormTest(0.8, min_batch=1, max_batch=10_000)
    expected = []
    for step, (X, y) in enumerate(loader()):
        opt.zero_grad()
        with mon.step(X, y) as s:
            s.loss(model(X), y).backward()
        expected.append(direct_values(model, lik, X, y, 0.3, step, 3, cabs, norm_test))
        opt.step()
    assert len(mon.records) == 5 and [r["step"] for r in mon.records] == list(range(5))
    for record, want in zip(mon.records, expected, strict=True):
        assert set(record) == {"step", *want}
        for key, value in want.items():
            assert_close(record[key], value, key)
    # the lr moved the parameters: the steps measured different points
    assert len({r["loss"] for r in mon.records}) == 5
    mon.close()
    assert read_log(log) == json.loads(json.dumps(mon.records))


def test_lanczos_with_few_steps_is_a_lower_bound():
    model, lik = mlp(), fl.likelihoods.Categorical()
    X, y = next(iter(loader()))
    mon = Monitor(model, lik, track=(HessianMaxEigenvalue(num_steps=3, every=1),))
    with mon.step(X, y) as s:
        s.loss(model(X), y).backward()
    exact = float(torch.linalg.eigvalsh(fl.Curvature(model, lik, X, y).hessian()).max())
    assert mon.records[0]["hessian_max_eigenvalue"] <= exact * (1 + 1e-12)


def test_periods():
    model, lik = mlp(), fl.likelihoods.Categorical()
    track = ("loss", "variance_trace", HessianMaxEigenvalue(num_steps=4, every=3))
    mon = Monitor(model, lik, track=track, every=2)
    assert HessianMaxEigenvalue().every == 50 and EFvsFisher().every == 100
    assert GradientHistogram().every == 10
    for X, y in loader(n=112):  # 7 steps
        with mon.step(X, y) as s:
            s.loss(model(X), y).backward()
    assert mon.num_steps == 7
    keys = {r["step"]: set(r) - {"step"} for r in mon.records}
    assert keys == {
        0: {"loss", "variance_trace", "hessian_max_eigenvalue"},
        2: {"loss", "variance_trace"},
        3: {"hessian_max_eigenvalue"},
        4: {"loss", "variance_trace"},
        6: {"loss", "variance_trace", "hessian_max_eigenvalue"},
    }


def test_steps_without_instruments_hook_nothing():
    model, lik = mlp(), fl.likelihoods.Categorical()
    mon = Monitor(model, lik, track=("variance_trace",), every=2)
    X, y = next(iter(loader()))
    for _ in range(2):
        with mon.step(X, y) as s:
            s.loss(model(X), y).backward()
            if mon.num_steps == 1:
                assert not model[0]._forward_hooks
    assert [r["step"] for r in mon.records] == [0]
    assert not model._forward_hooks and not model._forward_pre_hooks


def test_log_is_appended_and_survives_a_cut_line(tmp_path):
    model, lik = mlp(), fl.likelihoods.Categorical()
    log = tmp_path / "sub" / "run.jsonl"
    X, y = next(iter(loader()))
    for _ in range(2):
        with Monitor(model, lik, log=log) as mon:
            with mon.step(X, y) as s:
                s.loss(model(X), y).backward()
            # flushed at once: readable while the monitor is open
            assert len(read_log(log)) >= 1
    records = read_log(log)
    assert len(records) == 2 and records[0] == records[1]
    with open(log, "a") as f:
        f.write('{"step": 2, "loss": 0.')  # a killed process
    assert len(read_log(log)) == 2
    with open(log, "a") as f:
        f.write("\n[1, 2]\n")
    with pytest.raises(ValueError, match="line 3"):
        read_log(log)


def test_an_exception_in_the_step_records_nothing():
    model, lik = mlp(), fl.likelihoods.Categorical()
    mon = Monitor(model, lik)
    X, y = next(iter(loader()))
    with pytest.raises(ZeroDivisionError):
        with mon.step(X, y) as s:
            s.loss(model(X), y)
            raise ZeroDivisionError
    assert mon.records == [] and mon.num_steps == 0
    assert not model[0]._forward_hooks


def test_a_step_without_backward_is_an_error():
    model, lik = mlp(), fl.likelihoods.Categorical()
    mon = Monitor(model, lik)
    X, y = next(iter(loader()))
    with pytest.raises(RuntimeError, match="backward"):
        with mon.step(X, y) as s:
            s.loss(model(X), y)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"track": ("nope",)}, ValueError, "unknown instrument 'nope'"),
        ({"track": ()}, ValueError, "track is empty"),
        ({"track": ("loss", "loss")}, ValueError, "tracked twice: loss"),
        ({"track": (3,)}, TypeError, "names or Instrument"),
        ({"every": 0}, ValueError, "every must be a positive int"),
        ({"lr": -1.0}, ValueError, "lr must be a positive number"),
        ({"track": ("cabs",), "reduction": "sum"}, ValueError, "reduction='mean'"),
        ({"optimizer": "sgd"}, TypeError, "optimizer must be"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        Monitor(mlp(), fl.likelihoods.Categorical(), **kwargs)


def test_step_needs_a_nonempty_tensor_batch():
    mon = Monitor(mlp(), fl.likelihoods.Categorical())
    with pytest.raises(ValueError, match="non-empty batch"):
        mon.step(torch.zeros(0, 4, dtype=torch.float64), torch.zeros(0, dtype=torch.long))
    with pytest.raises(TypeError, match="must be tensors"):
        mon.step([[0.0] * 4], torch.zeros(1, dtype=torch.long))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: EFvsFisher(damping=0.0), "damping"),
        (lambda: HessianMaxEigenvalue(num_steps=0), "num_steps"),
        (lambda: GradientHistogram(low=1.0, high=0.0), "low must be < high"),
        (lambda: GradientHistogram(bins=0), "bins"),
        (lambda: EFvsFisher(every=0), "every must be >= 1"),
    ],
)
def test_bad_instrument_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("name", ["edge_of_stability", "cabs"])
def test_learning_rate_instruments_need_a_learning_rate(name):
    model, lik = mlp(), fl.likelihoods.Categorical()
    mon = Monitor(model, lik, track=(INSTRUMENTS[name](every=1),))
    X, y = next(iter(loader()))
    with pytest.raises(RuntimeError, match="learning rate"):
        with mon.step(X, y) as s:
            s.loss(model(X), y).backward()


def test_lr_schedule_is_followed():
    model, lik = mlp(), fl.likelihoods.Categorical()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    mon = Monitor(model, lik, track=(EdgeOfStability(num_steps=D_MLP + 5, every=1),), optimizer=opt)
    X, y = next(iter(loader()))
    for lr in (1.0, 0.25):
        opt.param_groups[0]["lr"] = lr
        with mon.step(X, y) as s:
            s.loss(model(X), y).backward()
    first, second = (r["lr_times_max_eigenvalue"] for r in mon.records)
    assert second == pytest.approx(first / 4, rel=1e-9)


class Scale(torch.nn.Module):
    """A layer the fast engine has no rule for: the monitor falls back with a warning."""

    def __init__(self, width):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.linspace(0.5, 1.5, width, dtype=torch.float64))

    def forward(self, x):
        return x * self.weight


def test_generic_fallback_gives_the_same_numbers():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), Scale(3)).double()
    lik = fl.likelihoods.Categorical()
    X, y = next(iter(loader()))
    mon = Monitor(model, lik, track=("gradient_norm", "variance_trace", "noise_to_signal"))
    with pytest.warns(FallbackWarning):
        with mon.step(X, y) as s:
            s.loss(model(X), y).backward()
    c = fl.Curvature(model, lik, X, y)
    assert mon.records[0]["variance_trace"] == pytest.approx(float(c.variance().sum()), rel=1e-9)
    assert mon.records[0]["gradient_norm"] == pytest.approx(float(c.gradient().norm()), rel=1e-9)


def test_float32_and_gaussian_sum_reduction():
    model = mlp(torch.float32)
    lik = fl.likelihoods.from_loss(torch.nn.MSELoss(reduction="sum"))
    X = torch.randn(10, 4)
    y = torch.randn(10, 3)
    mon = Monitor(model, lik, track=("loss", "variance_trace", "noise_to_signal"))
    with mon.step(X, y) as s:
        loss = s.loss(model(X), y)
        expected = torch.nn.MSELoss(reduction="sum")(model(X), y).detach()
        assert float(loss.detach()) == pytest.approx(float(expected))
        loss.backward()
    c = fl.Curvature(model, lik, X, y)
    assert mon.records[0]["variance_trace"] == pytest.approx(float(c.variance().sum()), rel=1e-4)


def test_dashboard_and_html(tmp_path):
    model, lik = mlp(), fl.likelihoods.Categorical()
    opt = torch.optim.SGD(model.parameters(), lr=0.3)
    mon = Monitor(model, lik, track=all_instruments(), optimizer=opt)
    for X, y in loader(n=48):
        opt.zero_grad()
        with mon.step(X, y) as s:
            s.loss(model(X), y).backward()
        opt.step()
    png = mon.plot(tmp_path / "d.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    page = mon.to_html(tmp_path / "d.html").read_text()
    assert '<img alt="monitor dashboard" src="data:image/png;base64,iVBOR' in page
    assert "http" not in page.replace("data:image", "")  # self-contained
    for panel in mon.panels():
        assert panel.key in page
    with pytest.raises(ValueError, match="no records"):
        Monitor(model, lik).plot(tmp_path / "empty.png")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    lik = fl.likelihoods.Categorical()
    X, y = next(iter(loader()))
    values = []
    for device in ("cpu", "cuda"):
        model = mlp().to(device)
        mon = Monitor(model, lik, track=all_instruments(), lr=0.1)
        Xd, yd = X.to(device), y.to(device)
        with mon.step(Xd, yd) as s:
            s.loss(model(Xd), yd).backward()
        values.append(mon.records[0])
    for key, value in values[0].items():
        if isinstance(value, float) and math.isfinite(value):
            assert values[1][key] == pytest.approx(value, rel=1e-6), key


class FakeWriter:
    """Stands in for torch.utils.tensorboard.SummaryWriter: records the calls."""

    instances: list = []

    def __init__(self, logdir):
        self.logdir, self.scalars, self.closed = logdir, [], False
        FakeWriter.instances.append(self)

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def flush(self):
        pass

    def close(self):
        self.closed = True


def test_tensorboard_scalars(tmp_path, monkeypatch):
    import sys
    import types

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = FakeWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    model, lik = mlp(), fl.likelihoods.Categorical()
    track = ("loss", "layer_snr", GradientHistogram(every=1))
    mon = Monitor(model, lik, track=track, tensorboard=tmp_path / "tb")
    X, y = next(iter(loader()))
    with mon.step(X, y) as s:
        s.loss(model(X), y).backward()
    mon.close()
    writer = FakeWriter.instances[-1]
    assert writer.logdir == str(tmp_path / "tb") and writer.closed
    tags = {tag for tag, _, _ in writer.scalars}
    assert tags == {"loss", "layer_snr/0 (Linear)", "layer_snr/2 (Linear)"}  # no histogram
    assert ("loss", mon.records[0]["loss"], 0) in writer.scalars


def test_tensorboard_missing_is_a_clear_error(tmp_path):
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("tensorboard is installed")
    with pytest.raises(ImportError, match="pip install tensorboard"):
        Monitor(mlp(), fl.likelihoods.Categorical(), tensorboard=tmp_path / "tb")
