"""Small float64 models covering every layer family of the fast engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

DT = torch.float64


class Residual(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.inner(x)


class ConvResidual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.bn(self.conv(x)))


def _randomize_norms(model: nn.Module, gen: torch.Generator) -> nn.Module:
    """Non-trivial running statistics and affine parameters, then evaluation mode."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(0.3 * torch.randn(m.running_mean.shape, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
        if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm)):
            with torch.no_grad():
                if m.weight is not None:
                    m.weight.copy_(1 + 0.3 * torch.randn(m.weight.shape, generator=gen))
                if m.bias is not None:
                    m.bias.copy_(0.3 * torch.randn(m.bias.shape, generator=gen))
    return model.eval()


@dataclass
class ModelCase:
    name: str
    build: Callable[[], nn.Module]
    inputs: Callable[[torch.Generator, int], torch.Tensor]
    outputs: int = 3


def _float(*shape: int) -> Callable[[torch.Generator, int], torch.Tensor]:
    return lambda gen, n: torch.randn(n, *shape, generator=gen, dtype=DT)


MODEL_CASES = [
    ModelCase(
        "mlp",
        lambda: nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)),
        _float(5),
    ),
    ModelCase(
        "linear_positions",
        lambda: nn.Sequential(
            nn.Linear(4, 3),
            nn.Sigmoid(),
            nn.Linear(3, 2, bias=False),
            nn.Flatten(),
            nn.Linear(10, 3),
        ),
        _float(5, 4),
    ),
    ModelCase(
        "conv1d",
        lambda: nn.Sequential(
            nn.Conv1d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2),
            nn.ReLU(),
            nn.Conv1d(6, 3, 3, padding="same"),
            nn.Flatten(),
            nn.Linear(3 * 4, 3),
        ),
        _float(4, 8),
    ),
    ModelCase(
        "conv2d",
        lambda: nn.Sequential(
            nn.Conv2d(2, 4, 3, stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
            nn.ELU(),
            nn.MaxPool2d(2),
            nn.Conv2d(4, 4, 2, groups=4, bias=False),
            nn.Dropout(0.5),
            nn.Flatten(),
            nn.Linear(4 * 1 * 3, 3),
        ),
        _float(2, 7, 8),
    ),
    ModelCase(
        "conv3d",
        lambda: nn.Sequential(
            nn.Conv3d(2, 3, (2, 3, 2), stride=(1, 2, 1), padding=(1, 0, 1), groups=1),
            nn.Tanh(),
            nn.AvgPool3d(2),
            nn.Flatten(),
            nn.Linear(3 * 2 * 1 * 2, 3),
        ),
        _float(2, 4, 5, 4),
    ),
    ModelCase(
        "embedding",
        lambda: nn.Sequential(
            nn.Embedding(6, 3, padding_idx=0), nn.Flatten(), nn.Tanh(), nn.Linear(12, 3)
        ),
        lambda gen, n: torch.randint(0, 6, (n, 4), generator=gen),
    ),
    ModelCase(
        "layernorm",
        lambda: nn.Sequential(
            nn.Linear(4, 6),
            nn.LayerNorm(6),
            nn.ReLU(),
            nn.Unflatten(1, (2, 3)),
            nn.LayerNorm(3, bias=False),
            nn.Flatten(),
            nn.Linear(6, 3),
        ),
        _float(4),
    ),
    ModelCase(
        "batchnorm",
        lambda: nn.Sequential(
            nn.Conv2d(2, 3, 3),
            nn.BatchNorm2d(3),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(12, 5),
            nn.BatchNorm1d(5),
            nn.Linear(5, 3),
        ),
        _float(2, 6, 6),
    ),
    ModelCase(
        "residual",
        lambda: nn.Sequential(
            nn.Conv2d(2, 3, 3, padding=1),
            ConvResidual(3),
            nn.Flatten(),
            nn.Linear(3 * 4 * 4, 4),
            Residual(4),
            nn.Linear(4, 3),
        ),
        _float(2, 4, 4),
    ),
]


def make_model(case: ModelCase, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    return _randomize_norms(case.build().to(DT), gen)


def make_targets(likelihood_name: str, gen: torch.Generator, n: int, c: int) -> torch.Tensor:
    if likelihood_name == "categorical":
        return torch.randint(0, c, (n,), generator=gen)
    if likelihood_name == "bernoulli":
        return torch.rand(n, c, generator=gen, dtype=DT)
    return torch.randn(n, c, generator=gen, dtype=DT)
