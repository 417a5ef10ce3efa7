"""The benchmark models: an MLP, a small CNN, a ResNet-ish network with BatchNorm (eval) and
a small transformer block on token sequences.

Every nonlinearity is a module (``nn.ReLU``, ``nn.GELU``, ``nn.Softmax``), the form that
BackPACK's graph converter supports, so that each peer sees the model it can handle.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu1 = nn.ReLU()
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(x + self.bn2(self.conv2(h)))


class TransformerBlock(nn.Module):
    r"""Token and position embeddings, one pre-LayerNorm transformer block, mean pooling and
    a linear read-out.

    :math:`h = E[x] + P`, :math:`h \leftarrow h + W_o\,\mathrm{softmax}(QK^\top/\sqrt d)V` with
    :math:`Q, K, V` the ``nn.Linear`` projections of :math:`\mathrm{LN}(h)` (``heads`` heads),
    :math:`h \leftarrow h + W_2\,\mathrm{GELU}(W_1\,\mathrm{LN}(h))`, logits
    :math:`W\,\mathrm{LN}(\bar h)` with :math:`\bar h` the mean over positions.
    """

    def __init__(
        self, vocab: int = 64, length: int = 16, dim: int = 64, heads: int = 4, classes: int = 10
    ) -> None:
        super().__init__()
        self.heads = heads
        self.embed = nn.Embedding(vocab, dim)
        self.position = nn.Embedding(length, dim)
        self.ln1 = nn.LayerNorm(dim)
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.softmax = nn.Softmax(dim=-1)
        self.ln2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(4 * dim, dim)
        self.ln3 = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)
        self.register_buffer("positions", torch.arange(length), persistent=False)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        n, length, dim = t.shape
        return t.reshape(n, length, self.heads, dim // self.heads).transpose(1, 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        n, length = tokens.shape
        h = self.embed(tokens) + self.position(self.positions[:length].expand(n, length))
        a = self.ln1(h)
        q, k, v = self._split(self.query(a)), self._split(self.key(a)), self._split(self.value(a))
        weights = self.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]))
        h = h + self.proj((weights @ v).transpose(1, 2).flatten(2))
        h = h + self.fc2(self.act(self.fc1(self.ln2(h))))
        return self.head(self.ln3(h.mean(1)))


def mlp(width: int = 256) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, width),
        nn.ReLU(),
        nn.Linear(width, width),
        nn.ReLU(),
        nn.Linear(width, 10),
    )


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 8 * 8, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


def resnet() -> nn.Module:
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        Block(16),
        Block(16),
        nn.AvgPool2d(4),
        nn.Flatten(),
        nn.Linear(16 * 8 * 8, 10),
    )
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
    return model.eval()


MODELS = {
    "mlp": (mlp, (1, 28, 28)),
    "cnn": (cnn, (3, 32, 32)),
    "resnet": (resnet, (3, 32, 32)),
    "transformer": (TransformerBlock, None),
}


def problem(name: str, n: int, width: int = 256, seed: int = 0):
    """Model, inputs and class labels for one benchmark problem (float32)."""
    torch.manual_seed(seed)
    build, shape = MODELS[name]
    model = build(width) if name == "mlp" else build()
    if shape is None:  # token sequences
        X = torch.randint(0, model.embed.num_embeddings, (n, model.positions.numel()))
    else:
        X = torch.randn(n, *shape)
    y = torch.randint(0, 10, (n,))
    return model, X, y
