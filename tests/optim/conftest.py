"""Shared fixtures: a least-squares problem with a fixed, seeded sequence of gradient noise."""

from __future__ import annotations

import pytest
import torch

SHAPES = [(2, 3), (2,)]
DIM = 8


class NoisyLeastSquares:
    """f(θ) = ||Aθ - b||² / (2n) with gradients ∇f(θ_t) + ξ_t for pre-drawn noise ξ_t.

    θ is a flat vector of length 8, held by the optimizers as a (2, 3) and a (2,) tensor.
    ``variances[t]`` is a pre-drawn positive "minibatch variance" for MinibatchMSVAG.
    """

    def __init__(self, steps: int = 12, seed: int = 0, dtype: torch.dtype = torch.float64):
        g = torch.Generator().manual_seed(seed)
        self.steps = steps
        self.dtype = dtype
        self.A = torch.randn(10, DIM, generator=g, dtype=torch.float64)
        self.b = torch.randn(10, generator=g, dtype=torch.float64)
        self.noise = 0.5 * torch.randn(steps, DIM, generator=g, dtype=torch.float64)
        self.variances = 0.05 + 0.3 * torch.rand(steps, DIM, generator=g, dtype=torch.float64)
        self.theta0 = torch.randn(DIM, generator=g, dtype=torch.float64)

    def gradient(self, theta: torch.Tensor, t: int) -> torch.Tensor:
        A, b, noise = self.A.to(theta), self.b.to(theta), self.noise[t].to(theta)
        return A.T @ (A @ theta - b) / len(b) + noise

    def make_params(self) -> list[torch.nn.Parameter]:
        chunks = torch.split(self.theta0.to(self.dtype), [2 * 3, 2])
        return [
            torch.nn.Parameter(c.reshape(s).clone()) for c, s in zip(chunks, SHAPES, strict=True)
        ]

    def set_grads(self, params: list[torch.Tensor], t: int) -> None:
        flat = torch.cat([p.detach().reshape(-1) for p in params])
        grad = self.gradient(flat, t)
        for p, chunk in zip(params, torch.split(grad, [p.numel() for p in params]), strict=True):
            p.grad = chunk.reshape(p.shape).clone()

    @staticmethod
    def flat(params: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in params])

    def variance_list(self, params: list[torch.Tensor], t: int) -> list[torch.Tensor]:
        chunks = torch.split(self.variances[t].to(self.dtype), [p.numel() for p in params])
        return [c.reshape(p.shape).clone() for c, p in zip(chunks, params, strict=True)]


@pytest.fixture
def problem() -> NoisyLeastSquares:
    return NoisyLeastSquares()


@pytest.fixture
def problem_factory() -> type[NoisyLeastSquares]:
    return NoisyLeastSquares
