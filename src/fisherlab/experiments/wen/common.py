r"""Shared pieces of the Wen et al. 2020 classifier experiments (``wen-fig2-3``, ``wen-tables``).

The setup, chosen because it shows the premise of the paper's Sec. 5.4 — small batches
generalize better than large batches at comparable training accuracy, with tuned step
sizes — on a CPU budget: a small 1-D CNN (three 5-tap convolutions with 16 channels,
ReLU, a linear read-out; He-normal convolutions, zero biases and a zero read-out) on
MNIST-1D (:func:`fisherlab.datasets.load`, generator seed 0) with few training signals
(2000 of the generator's 4000) and the generator's 1000 test signals for validation. An
MLP (40-64-64-10) on 4000 signals showed the opposite (LB 66.8 % vs SB 62.8 % validation
accuracy); the CNN on 4000 signals and a small 2-D CNN on the 8×8 ``digits`` images showed
no gap larger than its standard error (2 seeds each).

Training is plain mini-batch SGD (SB, LB, BatchChange) or
:class:`fisherlab.optim.CovarianceNoiseSGD` (Algorithm 1 and its variants), with an
optional linear warm-up of the step size (App. E.1: the large-batch methods need it).
:func:`sharpness` is Fig. 5b's measurement: the largest Hessian eigenvalue of the training
loss by Lanczos, after a temperature is fitted on the validation set (Sec. 5.3). This
module is not an experiment; it registers nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from fisherlab.experiments.common import evaluate, seeded
from fisherlab.experiments.verdicts import mean_se

__all__ = [
    "Data",
    "Regime",
    "fit_temperature",
    "gap_fraction",
    "load_data",
    "loss_and_accuracy",
    "make_cnn",
    "make_noisy_optimizer",
    "sharpness",
    "train",
]


@dataclass(frozen=True)
class Data:
    """Training and test tensors (float32 inputs of shape ``(N, 1, 40)``, int64 labels)."""

    X: torch.Tensor
    y: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor


@dataclass(frozen=True)
class Regime:
    """How one training run draws its batches, step sizes and noise.

    Attributes
    ----------
    name : str
        Label in tables and plots.
    batch_size : int
        Batch size after the BatchChange switch (and before it, unless ``early_batch_size``).
    noise : str or None
        ``None`` (plain SGD) or a :class:`fisherlab.optim.NoiseType` value.
    lr : float
        Step size after the warm-up.
    early_batch_size : int or None
        BatchChange: this batch size during the first ``switch_fraction`` of the epochs.
    warmup_fraction : float
        The step size grows linearly from ``lr / W`` to ``lr`` over the first
        ``W = round(warmup_fraction · updates)`` updates (0: no warm-up).
    """

    name: str
    batch_size: int
    noise: str | None
    lr: float
    early_batch_size: int | None = None
    warmup_fraction: float = 0.0


def load_data(train_samples: int = 2000, num_samples: int = 5000, data_seed: int = 0) -> Data:
    """MNIST-1D: the first ``train_samples`` of the generator's training split, all its test split.

    ``num_samples`` signals are generated (80 % training, 20 % test); using fewer training
    signals than generated keeps the test set large while the training set stays small.
    """
    from fisherlab import datasets

    train = datasets.load("mnist1d", split="train", num_samples=num_samples, seed=data_seed)
    test = datasets.load("mnist1d", split="test", num_samples=num_samples, seed=data_seed)
    if not 1 <= train_samples <= train.X.shape[0]:
        raise ValueError(
            f"train_samples must lie in [1, {train.X.shape[0]}] for num_samples={num_samples}, "
            f"got {train_samples}"
        )
    X = train.X[:train_samples].float().unsqueeze(1)
    return Data(X, train.y[:train_samples], test.X.float().unsqueeze(1), test.y)


def make_cnn(channels: int, classes: int, seed: int, length: int = 40) -> torch.nn.Module:
    """Three 5-tap Conv1d layers (strides 1, 2, 2), ReLU, a linear read-out.

    He-normal convolution weights, zero biases and a zero read-out layer (the network
    starts at the uniform prediction; large-batch SGD is then less prone to diverge),
    drawn under :func:`fisherlab.experiments.common.seeded` with ``seed``.
    """
    return seeded(seed, lambda: _cnn(channels, classes, length))


def _cnn(channels: int, classes: int, length: int) -> torch.nn.Module:
    nn = torch.nn
    out_length = math.ceil(math.ceil(length / 2) / 2)
    model = nn.Sequential(
        nn.Conv1d(1, channels, 5, padding=2),
        nn.ReLU(),
        nn.Conv1d(channels, channels, 5, stride=2, padding=2),
        nn.ReLU(),
        nn.Conv1d(channels, channels, 5, stride=2, padding=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(channels * out_length, classes),
    )
    for module in model:
        if isinstance(module, nn.Conv1d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)
    nn.init.zeros_(model[-1].weight)
    nn.init.zeros_(model[-1].bias)
    return model


def loss_and_accuracy(
    model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (:func:`fisherlab.experiments.common.evaluate`).

    A diverged model (loss not finite) counts as accuracy 0.
    """
    loss, accuracy = evaluate(model, X, y)
    return loss, (accuracy if math.isfinite(loss) else 0.0)


def gap_fraction(values: Mapping[str, Sequence[float]], name: str) -> float:
    r"""Fraction of the SB-LB gap that regime ``name`` closes (Wen et al. Tables 1-2).

    :math:`(\bar x - \bar x_{LB}) / (\bar x_{SB} - \bar x_{LB})` with the means over
    seeds of ``values[name]``, ``values["LB"]`` and ``values["SB"]`` (0 at LB, 1 at SB);
    NaN when the SB and LB means are equal.
    """
    sb, lb = mean_se(values["SB"])[0], mean_se(values["LB"])[0]
    return (mean_se(values[name])[0] - lb) / (sb - lb) if sb != lb else math.nan


def make_noisy_optimizer(
    model: torch.nn.Module,
    noise: str,
    lr: float,
    large_batch_size: int,
    small_batch_size: int,
    fisher: str,
    generator: torch.Generator,
    total_steps: int | None = None,
    noise_fraction: float | None = None,
    multiplicative_std: float = 1.0,
) -> Any:
    """Algorithm 1 (or a variant) as :class:`fisherlab.optim.CovarianceNoiseSGD`.

    The optimizer adds its noise to the gradients in ``.grad`` (``gradient="grad"``): the
    caller back-propagates the large-batch loss before each ``step(X, y)``.
    """
    from fisherlab.likelihoods import Categorical
    from fisherlab.optim import CovarianceNoiseSGD

    return CovarianceNoiseSGD(
        model.parameters(),
        model,
        Categorical(),
        lr=lr,
        large_batch_size=large_batch_size,
        small_batch_size=small_batch_size,
        noise=noise,
        fisher=fisher,
        multiplicative_std=multiplicative_std,
        total_steps=total_steps,
        noise_fraction=noise_fraction,
        generator=generator,
        gradient="grad",
    )


def train(
    model: torch.nn.Module,
    data: Data,
    regime: Regime,
    *,
    small_batch_size: int,
    large_batch_size: int,
    fisher: str,
    seed: int,
    epochs: int | None = None,
    updates: int | None = None,
    noise_fraction: float | None = None,
    switch_fraction: float = 0.25,
    multiplicative_std: float = 1.0,
    callback: Callable[[int, torch.nn.Module], None] | None = None,
) -> int:
    r"""Train ``model`` in place for ``epochs`` epochs or ``updates`` parameter updates.

    Plain SGD for ``regime.noise is None``; otherwise :class:`CovarianceNoiseSGD` with the
    noise on during the first ``noise_fraction`` of the updates (``None``: always). The
    step size of update :math:`k` (1-based) is :math:`\alpha\min(1, k/W)` with the warm-up
    length :math:`W` of ``regime``. Training stops early once the parameters are not finite
    (a diverged run). ``callback(update, model)`` runs before the first update and after
    every update. Returns the number of updates made.
    """
    from fisherlab.optim import BatchChangeSampler

    if (epochs is None) == (updates is None):
        raise ValueError("give exactly one of epochs and updates")
    N = data.X.shape[0]
    g = torch.Generator().manual_seed(seed)
    noise_g = torch.Generator().manual_seed(seed + 7919)
    early = regime.early_batch_size
    if early is not None:
        sampler = BatchChangeSampler(
            N, early, regime.batch_size, total_epochs=epochs, switch_fraction=switch_fraction,
            generator=g, drop_last=True,
        )  # fmt: skip
        batch_size_at = sampler.batch_size_at
    else:

        def batch_size_at(epoch: int) -> int:
            return regime.batch_size

    if epochs is not None:
        total = sum(N // batch_size_at(e) for e in range(epochs))
    else:
        total = int(updates)
    warmup = round(regime.warmup_fraction * total)
    if regime.noise is None:
        opt = torch.optim.SGD(model.parameters(), lr=regime.lr, foreach=True)
    else:
        opt = make_noisy_optimizer(
            model, regime.noise, regime.lr, large_batch_size, small_batch_size, fisher,
            noise_g, total_steps=total if noise_fraction is not None else None,
            noise_fraction=noise_fraction, multiplicative_std=multiplicative_std,
        )  # fmt: skip
    step = 0
    if callback is not None:
        callback(0, model)
    epoch = 0
    while step < total:
        if early is not None:
            sampler.set_epoch(epoch)
            batches = list(sampler)
        else:
            order = torch.randperm(N, generator=g)
            size = regime.batch_size
            batches = [order[i : i + size] for i in range(0, N - size + 1, size)]
        for idx in batches:
            for group in opt.param_groups:
                group["lr"] = regime.lr * min(1.0, (step + 1) / warmup) if warmup else regime.lr
            Xb, yb = data.X[idx], data.y[idx]
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(Xb), yb).backward()
            if regime.noise is None:
                opt.step()
            else:
                opt.step(Xb, yb)
            step += 1
            if callback is not None:
                callback(step, model)
            if step >= total or not _finite(model):
                return step
        epoch += 1
    return step


def _finite(model: torch.nn.Module) -> bool:
    """Whether every parameter entry is finite (:func:`fisherlab.validation.all_finite`)."""
    from fisherlab.validation import all_finite

    return all_finite(p.detach() for p in model.parameters())


def fit_temperature(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    r"""Temperature :math:`T` minimising the cross-entropy of ``model(X) / T`` on ``(X, y)``.

    Wen et al. Sec. 5.3 fit a temperature on the test set before measuring the Hessian, so
    that a network's confidence (which a rescaling of its last layer changes without
    changing its predictions) does not decide its curvature. The loss is convex in
    :math:`1/T`; a golden-section search over :math:`\log T \in [-4, 4]` finds it.
    """
    with torch.no_grad():
        logits = model(X).double()

    def loss(log_t: float) -> float:
        return float(torch.nn.functional.cross_entropy(logits / math.exp(log_t), y))

    lo, hi = -4.0, 4.0
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = loss(a), loss(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = loss(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = loss(b)
    return math.exp(0.5 * (lo + hi))


class _Tempered(torch.nn.Module):
    """``model(x) / T`` with a fixed temperature (no parameters of its own)."""

    def __init__(self, model: torch.nn.Module, temperature: float) -> None:
        super().__init__()
        self.model = model
        self.temperature = float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) / self.temperature


def sharpness(
    model: torch.nn.Module, data: Data, samples: int, tol: float = 1e-4
) -> dict[str, float]:
    r"""Largest eigenvalue of the training-loss Hessian after temperature scaling (Fig. 5b).

    :math:`\lambda_{\max}\big(\nabla^2_\theta \frac1n\sum_{i\le n}
    \ell(f_\theta(x_i)/T, y_i)\big)` on the first ``n = samples`` training signals, with
    :math:`T` from :func:`fit_temperature` on the validation set, by Lanczos
    (:func:`fisherlab.linalg.top_eigenpairs` on ``Curvature.hessian(form="operator")``,
    relative tolerance ``tol``) in float64.
    """
    import copy

    from fisherlab import Curvature
    from fisherlab.likelihoods import Categorical
    from fisherlab.linalg import top_eigenpairs

    net = copy.deepcopy(model).double()
    X, y = data.X[:samples].double(), data.y[:samples]
    temperature = fit_temperature(net, data.X_test.double(), data.y_test)
    H = Curvature(_Tempered(net, temperature), Categorical(), X, y).hessian(form="operator")
    values, _ = top_eigenpairs(H, k=1, which="LA", method="lanczos", tol=tol)
    return {"temperature": temperature, "lambda_max": float(values[0])}
