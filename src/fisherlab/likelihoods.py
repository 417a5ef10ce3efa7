r"""Likelihoods: the negative log-likelihood ``l(f, y) = -log p(y | f)`` and its output geometry.

Every likelihood works on model outputs ``f`` of shape ``(N, C)`` (the curvature engine
flattens all non-batch dimensions of a model's output into ``C``) and provides, per sample,

- ``nll(f, y)``: the loss :math:`l_n = s \cdot (-\log p(y_n | f_n))`, shape ``(N,)``;
- ``output_gradient(f, y)``: :math:`\nabla_f l_n`, shape ``(N, C)``;
- ``output_hessian(f, y)``: :math:`\nabla_f^2 l_n`, shape ``(N, C, C)``;
- ``fisher_output(f)``: :math:`\Lambda(f_n) = s\,\mathbb{E}_{y \sim p(\cdot|f_n)}
  [\nabla_f (-\log p)\nabla_f(-\log p)^\top]`, shape ``(N, C, C)``;
- ``sqrt_fisher_output(f)``: a factor :math:`S_n` with :math:`S_n S_n^\top = \Lambda(f_n)`,
  shape ``(N, C, K)``;
- ``sample(f, generator)``: labels :math:`\hat y_n \sim p(\cdot | f_n)`;
- ``sampled_output_gradient(f, mc_samples, generator)``: :math:`\sqrt{s}\,\nabla_f
  (-\log p(\hat y | f_n))` for sampled labels, whose outer products average to
  :math:`\Lambda(f_n)` (the Monte-Carlo Fisher of Kunstner et al., §6).

The factor :math:`s` (``output_scale``) is 1, or :math:`1/C` for likelihoods built from a
torch loss that averages over output elements as well as samples (``MSELoss`` and
``BCEWithLogitsLoss`` with ``reduction="mean"``). All three families are exponential
families in ``f``, so :math:`\nabla_f^2 l` does not depend on ``y`` and equals
:math:`\Lambda(f)`: this is Kunstner et al. Proposition 1 (Fisher = GGN).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Literal

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = [
    "Likelihood",
    "Gaussian",
    "Categorical",
    "Bernoulli",
    "from_loss",
]

Reduction = Literal["mean", "sum"]
OutputReduction = Literal["sum", "mean"]


class Likelihood(ABC):
    """Base class of a per-sample negative log-likelihood on ``(N, C)`` outputs.

    Parameters
    ----------
    output_reduction : {"sum", "mean"}
        How the per-element terms of one sample are combined: ``"sum"`` is the plain
        negative log-likelihood, ``"mean"`` divides it by the number of output elements
        ``C`` (torch's elementwise losses with ``reduction="mean"``).
    reduction : {"mean", "sum"} or None
        The reduction over samples that a torch loss used (set by :func:`from_loss`);
        :class:`fisherlab.Curvature` uses it when no reduction is given explicitly.
    """

    name: str = "likelihood"

    def __init__(
        self, output_reduction: OutputReduction = "sum", reduction: Reduction | None = None
    ) -> None:
        if output_reduction not in ("sum", "mean"):
            raise ValueError(
                f"output_reduction must be 'sum' or 'mean', got {output_reduction!r}"
            )
        if reduction not in (None, "mean", "sum"):
            raise ValueError(f"reduction must be 'mean', 'sum' or None, got {reduction!r}")
        self.output_reduction = output_reduction
        self.reduction = reduction

    def output_scale(self, num_outputs: int) -> float:
        """Return the factor ``s`` that multiplies ``-log p`` for outputs of size ``C``."""
        return 1.0 / num_outputs if self.output_reduction == "mean" else 1.0

    def flatten_targets(self, y: Tensor) -> Tensor:
        """Bring targets of a batch into the per-sample format ``nll`` expects: ``(N, C)``."""
        return y.reshape(y.shape[0], -1)

    # -- validation -------------------------------------------------------------------
    def check_outputs(self, f: Tensor) -> None:
        """Raise ``ValueError`` if ``f`` is not a finite ``(N, C)`` tensor."""
        if f.ndim != 2:
            raise ValueError(f"{self.name}: outputs must have shape (N, C), got {tuple(f.shape)}")
        if not torch.isfinite(f).all():
            raise ValueError(f"{self.name}: model outputs contain NaN or inf")

    @abstractmethod
    def check_targets(self, f: Tensor, y: Tensor) -> None:
        """Raise ``ValueError`` naming the problem if ``y`` is not a valid target for ``f``."""

    # -- per-sample quantities -------------------------------------------------------
    @abstractmethod
    def nll(self, f: Tensor, y: Tensor) -> Tensor:
        """Per-sample loss ``l_n = s * (-log p(y_n | f_n))``, shape ``(N,)``."""

    @abstractmethod
    def output_gradient(self, f: Tensor, y: Tensor) -> Tensor:
        """Closed-form gradient of ``l_n`` with respect to ``f_n``, shape ``(N, C)``."""

    @abstractmethod
    def output_hessian(self, f: Tensor, y: Tensor) -> Tensor:
        """Closed-form Hessian of ``l_n`` with respect to ``f_n``, shape ``(N, C, C)``."""

    @abstractmethod
    def fisher_output(self, f: Tensor) -> Tensor:
        """Fisher information ``Λ(f_n)`` of the output distribution, shape ``(N, C, C)``."""

    @abstractmethod
    def sqrt_fisher_output(self, f: Tensor) -> Tensor:
        """Factor ``S_n`` with ``S_n S_nᵀ = Λ(f_n)``, shape ``(N, C, K)``."""

    @abstractmethod
    def sample(self, f: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Draw one label per sample from ``p(· | f_n)``, in the format ``nll`` accepts."""

    def sampled_output_gradient(
        self, f: Tensor, mc_samples: int = 1, generator: torch.Generator | None = None
    ) -> Tensor:
        r"""Output gradients for sampled labels, scaled so their outer products estimate Λ.

        Returns :math:`q_{s,n} = \sqrt{s}\,\nabla_f(-\log p(\hat y_{s,n} | f_n))` with
        :math:`\hat y_{s,n} \sim p(\cdot|f_n)`, shape ``(mc_samples, N, C)``, so that
        :math:`\mathbb{E}[q q^\top] = \Lambda(f_n)`.
        """
        if mc_samples < 1:
            raise ValueError(f"mc_samples must be a positive integer, got {mc_samples}")
        f = f.detach()
        scale = self.output_scale(f.shape[1])
        draws = [
            self.output_gradient(f, self.sample(f, generator)) / math.sqrt(scale)
            for _ in range(mc_samples)
        ]
        return torch.stack(draws)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(output_reduction={self.output_reduction!r})"


class Gaussian(Likelihood):
    r"""Gaussian likelihood with fixed standard deviation, for vector outputs.

    .. math:: l(f, y) = s \sum_c \frac{(f_c - y_c)^2}{2\sigma^2}

    (the constant :math:`\tfrac{C}{2}\log 2\pi\sigma^2` is dropped), so ``sigma=1`` gives half
    the squared error. :math:`\nabla_f l = s (f - y)/\sigma^2`,
    :math:`\nabla_f^2 l = \Lambda = s I/\sigma^2`.

    Parameters
    ----------
    sigma : float
        Standard deviation of the observation noise, ``> 0``.
    """

    name = "Gaussian"

    def __init__(
        self,
        sigma: float = 1.0,
        output_reduction: OutputReduction = "sum",
        reduction: Reduction | None = None,
    ) -> None:
        super().__init__(output_reduction, reduction)
        if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"Gaussian: sigma must be a positive finite number, got {sigma!r}")
        self.sigma = float(sigma)

    def check_targets(self, f: Tensor, y: Tensor) -> None:
        """Targets must be real, finite and shaped like the outputs."""
        if y.shape != f.shape:
            raise ValueError(
                f"Gaussian: targets of shape {tuple(y.shape)} do not match outputs of shape "
                f"{tuple(f.shape)}"
            )
        if not torch.is_floating_point(y):
            raise ValueError(f"Gaussian: targets must be floating point, got {y.dtype}")

    def _precision(self, f: Tensor) -> float:
        return self.output_scale(f.shape[1]) / self.sigma**2

    def nll(self, f: Tensor, y: Tensor) -> Tensor:
        """Per-sample ``s Σ_c (f_c − y_c)² / (2σ²)``."""
        return 0.5 * self._precision(f) * ((f - y) ** 2).sum(dim=1)

    def output_gradient(self, f: Tensor, y: Tensor) -> Tensor:
        """``s (f − y) / σ²``."""
        return self._precision(f) * (f - y)

    def output_hessian(self, f: Tensor, y: Tensor) -> Tensor:
        """``s I / σ²`` for every sample."""
        return self.fisher_output(f)

    def fisher_output(self, f: Tensor) -> Tensor:
        """``Λ = s I / σ²``."""
        n, c = f.shape
        eye = torch.eye(c, dtype=f.dtype, device=f.device)
        return (self._precision(f) * eye).expand(n, c, c).clone()

    def sqrt_fisher_output(self, f: Tensor) -> Tensor:
        """``S = √s I / σ``."""
        n, c = f.shape
        eye = torch.eye(c, dtype=f.dtype, device=f.device)
        return (math.sqrt(self._precision(f)) * eye).expand(n, c, c).clone()

    def sample(self, f: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``ŷ = f + σ ε`` with ``ε ~ N(0, I)``."""
        noise = torch.randn(f.shape, generator=generator, dtype=f.dtype, device=f.device)
        return f.detach() + self.sigma * noise

    def __repr__(self) -> str:
        return f"Gaussian(sigma={self.sigma}, output_reduction={self.output_reduction!r})"


class Categorical(Likelihood):
    r"""Categorical likelihood on logits (softmax cross-entropy).

    With :math:`p = \mathrm{softmax}(f)`: :math:`l = -\log p_y`, :math:`\nabla_f l = p - e_y`,
    :math:`\nabla_f^2 l = \Lambda = \mathrm{diag}(p) - p p^\top`, and
    :math:`S = \mathrm{diag}(\sqrt p) - p \sqrt{p}^\top` satisfies :math:`S S^\top = \Lambda`
    because :math:`\sum_c p_c = 1`. Targets are integer class indices of shape ``(N,)``.
    """

    name = "Categorical"

    def flatten_targets(self, y: Tensor) -> Tensor:
        """Class indices stay a ``(N,)`` vector; integer labels of any width become int64."""
        integer = not (torch.is_floating_point(y) or torch.is_complex(y) or y.dtype == torch.bool)
        return y.long() if integer else y

    def check_targets(self, f: Tensor, y: Tensor) -> None:
        """Targets must be integer class indices in ``[0, C)`` of shape ``(N,)``."""
        if y.ndim != 1 or y.shape[0] != f.shape[0]:
            raise ValueError(
                f"Categorical: targets must be class indices of shape ({f.shape[0]},), "
                f"got {tuple(y.shape)}"
            )
        if torch.is_floating_point(y) or torch.is_complex(y) or y.dtype == torch.bool:
            raise ValueError(f"Categorical: targets must be integer class indices, got {y.dtype}")
        num_classes = f.shape[1]
        if y.numel() and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(
                f"Categorical: labels must lie in [0, {num_classes - 1}] for {num_classes} "
                f"classes, got values in [{int(y.min())}, {int(y.max())}]"
            )

    def nll(self, f: Tensor, y: Tensor) -> Tensor:
        """``−log softmax(f)_y``."""
        return F.cross_entropy(f, y, reduction="none")

    def output_gradient(self, f: Tensor, y: Tensor) -> Tensor:
        """``softmax(f) − onehot(y)``."""
        return f.softmax(dim=1) - F.one_hot(y, f.shape[1]).to(f.dtype)

    def output_hessian(self, f: Tensor, y: Tensor) -> Tensor:
        """``diag(p) − p pᵀ`` (independent of ``y``)."""
        p = f.softmax(dim=1)
        return torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1)

    def fisher_output(self, f: Tensor) -> Tensor:
        """``Λ = Σ_c p_c (p − e_c)(p − e_c)ᵀ = diag(p) − p pᵀ``."""
        p = f.softmax(dim=1)
        residual = p.unsqueeze(1) - torch.eye(f.shape[1], dtype=f.dtype, device=f.device)
        return torch.einsum("nk,nki,nkj->nij", p, residual, residual)

    def sqrt_fisher_output(self, f: Tensor) -> Tensor:
        """``S = diag(√p) − p √pᵀ``."""
        p = f.softmax(dim=1)
        sqrt_p = p.sqrt()
        return torch.diag_embed(sqrt_p) - p.unsqueeze(2) * sqrt_p.unsqueeze(1)

    def sample(self, f: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Class indices drawn from ``softmax(f)``."""
        return torch.multinomial(f.detach().softmax(dim=1), 1, generator=generator).squeeze(1)


class Bernoulli(Likelihood):
    r"""Independent Bernoulli likelihoods on logits (sigmoid binary cross-entropy).

    With :math:`p = \sigma(f)`: :math:`l = \sum_c \mathrm{softplus}(f_c) - y_c f_c`,
    :math:`\nabla_f l = p - y`, :math:`\nabla_f^2 l = \Lambda = \mathrm{diag}(p(1-p))`.
    Targets have the outputs' shape and lie in ``[0, 1]`` (soft labels are accepted;
    sampled labels are 0/1).
    """

    name = "Bernoulli"

    def check_targets(self, f: Tensor, y: Tensor) -> None:
        """Targets must be shaped like the outputs and lie in ``[0, 1]``."""
        if y.shape != f.shape:
            raise ValueError(
                f"Bernoulli: targets of shape {tuple(y.shape)} do not match outputs of shape "
                f"{tuple(f.shape)}"
            )
        if y.numel() and (y.min() < 0 or y.max() > 1):
            raise ValueError(
                f"Bernoulli: labels must lie in [0, 1], got values in "
                f"[{float(y.min())}, {float(y.max())}]"
            )

    def _scale(self, f: Tensor) -> float:
        return self.output_scale(f.shape[1])

    def nll(self, f: Tensor, y: Tensor) -> Tensor:
        """``s Σ_c BCE(σ(f_c), y_c)``."""
        y = y.to(f.dtype)
        return self._scale(f) * F.binary_cross_entropy_with_logits(f, y, reduction="none").sum(1)

    def output_gradient(self, f: Tensor, y: Tensor) -> Tensor:
        """``s (σ(f) − y)``."""
        return self._scale(f) * (torch.sigmoid(f) - y.to(f.dtype))

    def output_hessian(self, f: Tensor, y: Tensor) -> Tensor:
        """``s diag(p (1 − p))`` (independent of ``y``)."""
        p = torch.sigmoid(f)
        return self._scale(f) * torch.diag_embed(p * (1 - p))

    def fisher_output(self, f: Tensor) -> Tensor:
        """``Λ = s diag(p(1 − p)²+ (1 − p)p²) = s diag(p(1 − p))``."""
        p = torch.sigmoid(f)
        return self._scale(f) * torch.diag_embed(p * (1 - p) ** 2 + (1 - p) * p**2)

    def sqrt_fisher_output(self, f: Tensor) -> Tensor:
        """``S = √s diag(√(p(1 − p)))``."""
        p = torch.sigmoid(f)
        return math.sqrt(self._scale(f)) * torch.diag_embed((p * (1 - p)).sqrt())

    def sample(self, f: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """0/1 labels drawn from ``σ(f)``."""
        return torch.bernoulli(torch.sigmoid(f.detach()), generator=generator)


def from_loss(loss_fn: torch.nn.Module) -> Likelihood:
    """Return the likelihood whose per-sample loss reproduces a torch loss, scaling included.

    ===========================  ==============================================================
    torch loss                   likelihood
    ===========================  ==============================================================
    ``MSELoss(reduction=r)``     ``Gaussian(sigma=1/√2)``: ``(f − y)²`` per element; with
                                 ``r="mean"`` also averaged over the ``C`` output elements
    ``CrossEntropyLoss(r)``      ``Categorical()``
    ``BCEWithLogitsLoss(r)``     ``Bernoulli()``; with ``r="mean"`` averaged over elements
    ===========================  ==============================================================

    The sample reduction ``r`` is stored as ``likelihood.reduction`` and used by
    :class:`fisherlab.Curvature` so that ``Curvature(...).loss()`` equals ``loss_fn(f, y)``.

    Raises
    ------
    TypeError
        If ``loss_fn`` is not one of these losses.
    ValueError
        If the loss has options that make it not a likelihood (class weights, label
        smoothing, ``ignore_index`` use, ``pos_weight``) or ``reduction="none"``.
    """
    reduction = getattr(loss_fn, "reduction", None)
    supported = (torch.nn.MSELoss, torch.nn.CrossEntropyLoss, torch.nn.BCEWithLogitsLoss)
    if isinstance(loss_fn, supported):
        if reduction not in ("mean", "sum"):
            raise ValueError(
                f"from_loss: {type(loss_fn).__name__}(reduction={reduction!r}) is not supported; "
                "use reduction='mean' or 'sum'"
            )
    if isinstance(loss_fn, torch.nn.MSELoss):
        return Gaussian(sigma=math.sqrt(0.5), output_reduction=reduction, reduction=reduction)
    if isinstance(loss_fn, torch.nn.CrossEntropyLoss):
        if loss_fn.weight is not None:
            raise ValueError("from_loss: CrossEntropyLoss with class weights is not a likelihood")
        if loss_fn.label_smoothing != 0.0:
            raise ValueError("from_loss: CrossEntropyLoss with label_smoothing is not a likelihood")
        if loss_fn.ignore_index >= 0:
            # a negative ignore_index (default -100) never matches a valid class index
            raise ValueError(
                f"from_loss: CrossEntropyLoss with ignore_index={loss_fn.ignore_index} drops "
                "samples of that class and is not a likelihood"
            )
        return Categorical(reduction=reduction)
    if isinstance(loss_fn, torch.nn.BCEWithLogitsLoss):
        if loss_fn.weight is not None or loss_fn.pos_weight is not None:
            raise ValueError(
                "from_loss: BCEWithLogitsLoss with weight or pos_weight is not a likelihood"
            )
        return Bernoulli(output_reduction=reduction, reduction=reduction)
    raise TypeError(
        f"from_loss: cannot map {type(loss_fn).__name__} to a likelihood; supported losses are "
        "MSELoss, CrossEntropyLoss and BCEWithLogitsLoss (or build fisherlab.likelihoods."
        "Gaussian / Categorical / Bernoulli directly)"
    )
