"""Test problems as data: models, likelihoods, reductions; turned into fixtures in conftest.py.

Every model is small (D <= ~120), float64 and built from a fixed seed, so that brute-force
oracles (explicit loops over samples and parameters) stay cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

import fisherlab as fl

NUM_SAMPLES = 7  # odd, so that chunks of 2 or 3 leave a ragged last batch
NUM_OUTPUTS = 3
DTYPE = torch.float64


# -- models -----------------------------------------------------------------------------
class Branched(nn.Module):
    """Not a Sequential: two branches and a free-standing parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(4, 5)
        self.out = nn.Linear(5, NUM_OUTPUTS)
        self.skip = nn.Linear(4, NUM_OUTPUTS, bias=False)
        self.gate = nn.Parameter(torch.randn(NUM_OUTPUTS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.hidden(x))
        return self.out(h) + torch.sigmoid(self.gate) * self.skip(x) ** 2


class Tied(nn.Module):
    """Two layers sharing one weight tensor (``second.weight is first.weight``)."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(4, 4)
        self.second = nn.Linear(4, 4)
        self.second.weight = self.first.weight
        self.head = nn.Linear(4, NUM_OUTPUTS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.first(x))
        h = torch.tanh(self.second(h))
        return self.head(h)


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, NUM_OUTPUTS)
    )


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 3, kernel_size=3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(3, 2, kernel_size=2, padding=1),
        nn.Tanh(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(8, NUM_OUTPUTS),
    )


def frozen() -> nn.Module:
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, NUM_OUTPUTS))
    model[0].weight.requires_grad_(False)
    return model


def batchnorm_eval() -> nn.Module:
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Tanh(), nn.Linear(5, NUM_OUTPUTS))
    bn = model[1]
    bn.running_mean.copy_(torch.randn(5) * 0.3)
    bn.running_var.copy_(torch.rand(5) + 0.5)
    nn.init.normal_(bn.weight, 1.0, 0.2)
    nn.init.normal_(bn.bias, 0.0, 0.2)
    return model.eval()


@dataclass(frozen=True)
class ModelCase:
    name: str
    build: Callable[[], nn.Module]
    input_shape: tuple[int, ...]


MODELS = [
    ModelCase("mlp", mlp, (4,)),
    ModelCase("cnn", cnn, (1, 8, 8)),
    ModelCase("frozen", frozen, (4,)),
    ModelCase("branched", Branched, (4,)),
    ModelCase("tied", Tied, (4,)),
    ModelCase("batchnorm_eval", batchnorm_eval, (4,)),
]


# -- likelihoods ----------------------------------------------------------------------------
@dataclass(frozen=True)
class LikelihoodCase:
    name: str
    build: Callable[[], fl.likelihoods.Likelihood]


LIKELIHOODS = [
    LikelihoodCase("gaussian", lambda: fl.likelihoods.Gaussian(sigma=0.8)),
    LikelihoodCase("categorical", fl.likelihoods.Categorical),
    LikelihoodCase("bernoulli", fl.likelihoods.Bernoulli),
]

REDUCTIONS = ["mean", "sum"]


def make_targets(likelihood: str, f: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Targets of the right format for outputs ``f`` of shape ``(N, C)``."""
    n, c = f.shape
    if likelihood == "gaussian":
        return f.detach() + torch.randn(n, c, generator=generator, dtype=f.dtype)
    if likelihood == "categorical":
        return torch.randint(0, c, (n,), generator=generator)
    if likelihood == "bernoulli":
        return torch.randint(0, 2, (n, c), generator=generator).to(f.dtype)
    raise ValueError(likelihood)


@dataclass
class Problem:
    """A model, a likelihood, data and a reduction."""

    model: nn.Module
    likelihood: fl.likelihoods.Likelihood
    likelihood_name: str
    X: torch.Tensor
    y: torch.Tensor
    reduction: str

    def curvature(self, **kwargs) -> fl.Curvature:
        return fl.Curvature(
            self.model, self.likelihood, self.X, self.y, reduction=self.reduction, **kwargs
        )


def make_problem(
    model_case: ModelCase,
    likelihood_case: LikelihoodCase,
    reduction: str,
    num_samples: int = NUM_SAMPLES,
    seed: int = 0,
) -> Problem:
    """Build a problem deterministically from its cases and a seed."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = model_case.build().to(DTYPE)
    g = torch.Generator().manual_seed(seed + 1)
    X = torch.randn(num_samples, *model_case.input_shape, generator=g, dtype=DTYPE)
    with torch.no_grad():
        f = model(X).reshape(num_samples, -1)
    y = make_targets(likelihood_case.name, f, g)
    return Problem(model, likelihood_case.build(), likelihood_case.name, X, y, reduction)


def problem_id(model_case: ModelCase, likelihood_case: LikelihoodCase, reduction: str) -> str:
    return f"{model_case.name}-{likelihood_case.name}-{reduction}"


PROBLEM_CASES = [(m, lik, r) for m in MODELS for lik in LIKELIHOODS for r in REDUCTIONS]
PROBLEM_IDS = [problem_id(*case) for case in PROBLEM_CASES]

MLP_CASES = [case for case in PROBLEM_CASES if case[0].name == "mlp"]
MLP_IDS = [problem_id(*case) for case in MLP_CASES]

# every model with every likelihood; each model and each likelihood meets both reductions
COVERING_CASES = [
    (m, lik, REDUCTIONS[(i + j) % 2])
    for i, m in enumerate(MODELS)
    for j, lik in enumerate(LIKELIHOODS)
]
COVERING_IDS = [problem_id(*case) for case in COVERING_CASES]


# -- quantities ----------------------------------------------------------------------------
# quantity name -> how to get it from a Curvature in a form
QUANTITIES: dict[str, Callable[[fl.Curvature, str], object]] = {
    "empirical_fisher": lambda c, form: c.empirical_fisher(form=form),
    "fisher": lambda c, form: c.fisher(form=form),
    "ggn": lambda c, form: c.ggn(form=form),
    "hessian": lambda c, form: c.hessian(form=form),
    "covariance": lambda c, form: c.covariance(form=form),
    "variance": lambda c, form: c.variance(form=form),
}
