"""Brute-force float64 references, independent of fisherlab's engine.

Nothing here calls ``fisherlab``'s engine, quantities or likelihood methods. The negative
log-likelihoods are re-stated from their definitions, per-sample quantities come from
explicit loops over samples with :func:`torch.autograd.grad` on the model's own
parameters, Jacobians from one backward pass per output entry, output Hessians from
:func:`torch.autograd.functional.hessian`, the parameter Hessian from one
double-backward pass per parameter entry, and the output Fisher ``Λ`` by enumerating all
labels (Categorical, Bernoulli) or from the known closed form ``s I / σ²`` (Gaussian).
The likelihood objects are only read for their hyper-parameters (``sigma``,
``output_reduction``).
"""

from __future__ import annotations

import itertools
import math
from functools import cached_property

import torch
from torch import Tensor, nn


def trainable_parameters(model: nn.Module) -> list[Tensor]:
    """Parameters with ``requires_grad`` in ``model.parameters()`` order (tied ones once)."""
    return [p for p in model.parameters() if p.requires_grad]


def flat_params(model: nn.Module) -> Tensor:
    """All parameters of ``model``, detached and flattened in ``model.parameters()`` order."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def unflat_params(model: nn.Module, theta: Tensor) -> dict[str, Tensor]:
    """Split a flat vector into ``{name: tensor}`` for :func:`torch.func.functional_call`."""
    out, start = {}, 0
    for name, p in model.named_parameters():
        out[name] = theta[start : start + p.numel()].view_as(p)
        start += p.numel()
    return out


def flat_grad(
    output: Tensor, params: list[Tensor], create_graph: bool = False, retain_graph: bool = True
) -> Tensor:
    grads = torch.autograd.grad(
        output, params, create_graph=create_graph, retain_graph=retain_graph, allow_unused=True
    )
    return torch.cat(
        [
            (torch.zeros_like(p) if g is None else g).reshape(-1)
            for g, p in zip(grads, params, strict=True)
        ]
    )


class OracleLikelihood:
    """Per-sample negative log-likelihood re-stated from its definition.

    Works on one sample: outputs ``f`` of shape ``(C,)`` and its label.
    """

    def __init__(self, likelihood) -> None:
        self.kind = type(likelihood).__name__
        assert self.kind in ("Gaussian", "Categorical", "Bernoulli"), self.kind
        self.sigma = getattr(likelihood, "sigma", None)
        self.mean_over_outputs = likelihood.output_reduction == "mean"

    def scale(self, num_outputs: int) -> float:
        return 1.0 / num_outputs if self.mean_over_outputs else 1.0

    def nll(self, f: Tensor, y: Tensor) -> Tensor:
        s = self.scale(f.numel())
        if self.kind == "Gaussian":
            return s * ((f - y) ** 2).sum() / (2 * self.sigma**2)
        if self.kind == "Categorical":
            return torch.logsumexp(f, dim=0) - f[int(y)]
        # Bernoulli: -[y log σ(f) + (1-y) log(1-σ(f))] = log(1 + e^f) - y f
        return s * (torch.log1p(torch.exp(f)) - y * f).sum()

    def output_gradient(self, f: Tensor, y: Tensor) -> Tensor:
        f = f.detach().requires_grad_(True)
        return torch.autograd.grad(self.nll(f, y), f)[0]

    def output_hessian(self, f: Tensor, y: Tensor) -> Tensor:
        return torch.autograd.functional.hessian(lambda out: self.nll(out, y), f.detach())

    def label_distribution(self, f: Tensor) -> list[tuple[float, Tensor]]:
        """All labels with their probabilities (discrete likelihoods only)."""
        f = f.detach()
        if self.kind == "Categorical":
            logits = f - f.max()
            probs = torch.exp(logits) / torch.exp(logits).sum()
            return [(float(probs[k]), torch.tensor(k)) for k in range(f.numel())]
        if self.kind == "Bernoulli":
            p = 1.0 / (1.0 + torch.exp(-f))
            labels = []
            for bits in itertools.product([0.0, 1.0], repeat=f.numel()):
                y = torch.tensor(bits, dtype=f.dtype)
                prob = float(torch.prod(torch.where(y == 1, p, 1 - p)))
                labels.append((prob, y))
            return labels
        raise ValueError("the Gaussian has no finite label set")

    def fisher_output(self, f: Tensor) -> Tensor:
        r"""``Λ = s E_y[∇(-log p) ∇(-log p)ᵀ] = E_y[∇l ∇lᵀ] / s`` by enumeration."""
        c = f.numel()
        s = self.scale(c)
        if self.kind == "Gaussian":
            return s / self.sigma**2 * torch.eye(c, dtype=f.dtype)
        Lam = torch.zeros(c, c, dtype=f.dtype)
        for prob, y in self.label_distribution(f):
            g = self.output_gradient(f, y)
            Lam += prob * torch.outer(g, g)
        return Lam / s


class BruteForce:
    """All quantities of a problem by explicit loops; results are cached."""

    def __init__(self, model: nn.Module, likelihood, X: Tensor, y: Tensor, reduction: str):
        self.model = model
        self.lik = OracleLikelihood(likelihood)
        self.X = X
        self.y = y
        self.reduction = reduction
        self.N = X.shape[0]
        self.params = trainable_parameters(model)
        self.D = sum(p.numel() for p in self.params)
        self.c = 1.0 / self.N if reduction == "mean" else 1.0

    # -- per-sample pieces --------------------------------------------------------------
    def output(self, n: int) -> Tensor:
        return self.model(self.X[n : n + 1]).reshape(-1)

    def target(self, n: int) -> Tensor:
        y = self.y[n]
        return y if self.lik.kind == "Categorical" else y.reshape(-1)

    def sample_loss(self, n: int, label: Tensor | None = None) -> Tensor:
        return self.lik.nll(self.output(n), self.target(n) if label is None else label)

    @cached_property
    def outputs(self) -> Tensor:
        with torch.no_grad():
            return torch.stack([self.output(n) for n in range(self.N)])

    @cached_property
    def losses(self) -> Tensor:
        with torch.no_grad():
            return torch.stack([self.sample_loss(n) for n in range(self.N)])

    @cached_property
    def loss(self) -> Tensor:
        return self.c * self.losses.sum()

    @cached_property
    def per_sample_gradients(self) -> Tensor:
        return torch.stack([flat_grad(self.sample_loss(n), self.params) for n in range(self.N)])

    @cached_property
    def jacobians(self) -> Tensor:
        """``(N, C, D)``: one backward pass per output entry."""
        rows = []
        for n in range(self.N):
            f = self.output(n)
            rows.append(torch.stack([flat_grad(f[k], self.params) for k in range(f.numel())]))
        return torch.stack(rows)

    # -- quantities ---------------------------------------------------------------------
    @cached_property
    def gradient(self) -> Tensor:
        total = sum(self.sample_loss(n) for n in range(self.N))
        return flat_grad(self.c * total, self.params)

    @cached_property
    def hessian(self) -> Tensor:
        total = sum(self.sample_loss(n) for n in range(self.N))
        g = flat_grad(self.c * total, self.params, create_graph=True)
        rows = []
        for i in range(self.D):
            if g[i].requires_grad:
                rows.append(flat_grad(g[i], self.params))
            else:  # entry of the gradient that does not depend on θ
                rows.append(torch.zeros(self.D, dtype=g.dtype))
        return torch.stack(rows).detach()

    @cached_property
    def empirical_fisher(self) -> Tensor:
        G = self.per_sample_gradients
        return self.c * sum(torch.outer(g, g) for g in G)

    def _sandwich(self, inner: list[Tensor]) -> Tensor:
        J = self.jacobians
        return self.c * sum(J[n].T @ inner[n] @ J[n] for n in range(self.N))

    @cached_property
    def output_hessians(self) -> list[Tensor]:
        return [self.lik.output_hessian(self.outputs[n], self.target(n)) for n in range(self.N)]

    @cached_property
    def output_fishers(self) -> list[Tensor]:
        return [self.lik.fisher_output(self.outputs[n]) for n in range(self.N)]

    @cached_property
    def ggn(self) -> Tensor:
        return self._sandwich(self.output_hessians)

    @cached_property
    def fisher(self) -> Tensor:
        return self._sandwich(self.output_fishers)

    def covariance(self, unbiased: bool = False) -> Tensor:
        """Covariance of the one-sample estimates of ``∇L``: ``g_n`` (mean), ``N g_n`` (sum)."""
        estimates = self.per_sample_gradients * (1.0 if self.reduction == "mean" else self.N)
        centered = estimates - self.gradient
        denominator = self.N - 1 if unbiased else self.N
        return sum(torch.outer(e, e) for e in centered) / denominator

    def variance(self, unbiased: bool = False) -> Tensor:
        return torch.diagonal(self.covariance(unbiased)).clone()

    def fisher_mc(self, labels: list[list[Tensor]]) -> Tensor:
        """``c Σ_n (1/S) Σ_s ĝ ĝᵀ / s`` for given sampled labels ``labels[s][n]``."""
        total = torch.zeros(self.D, self.D, dtype=self.X.dtype)
        for per_sample in labels:
            for n, label in enumerate(per_sample):
                g = flat_grad(self.sample_loss(n, label), self.params)
                total += torch.outer(g, g) / self.lik.scale(self.outputs.shape[1])
        return self.c * total / len(labels)

    def dense(self, name: str) -> Tensor:
        """A quantity by name, as a dense matrix."""
        if name == "covariance":
            return self.covariance()
        if name == "covariance_unbiased":
            return self.covariance(unbiased=True)
        if name == "variance":
            return torch.diag(self.variance())
        if name == "variance_unbiased":
            return torch.diag(self.variance(unbiased=True))
        return getattr(self, name)


def relative_error(actual: Tensor, expected: Tensor) -> float:
    """``‖actual − expected‖ / ‖expected‖`` (Frobenius), after a shape check."""
    assert actual.shape == expected.shape, (tuple(actual.shape), tuple(expected.shape))
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    scale = torch.linalg.norm(expected.double())
    diff = torch.linalg.norm((actual - expected).double())
    if scale == 0:
        return float(diff)
    return float(diff / scale)


def assert_close(actual: Tensor, expected: Tensor, rtol: float = 1e-10) -> None:
    error = relative_error(actual, expected)
    assert error <= rtol, f"relative error {error:.3e} > {rtol:.1e}"
    assert math.isfinite(error)
