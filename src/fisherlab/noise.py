r"""Gradient-noise samplers: draws :math:`\xi` with a prescribed covariance :math:`C`.

Uniform interface (what the Fisher-noise optimizer of Wen et al. 2020, Algorithm 1, uses)::

    sampler = fl.noise.FisherNoise(model, likelihood, X, y, structure="diag")
    xi = sampler.sample(generator)                  # flat (D,) vector, E[ξ] = 0, Cov[ξ] = C
    xis = sampler.sample(generator, num_samples=8)  # (8, D)
    per_param = sampler.unflatten(xi)               # list shaped like the trainable params
    sampler.update()                                # recompute C at the current parameters

Vectors are in the flat parameter order of :class:`fisherlab.Curvature`. Randomness comes
only from the ``torch.Generator`` passed to :meth:`NoiseSampler.sample`; the same seed
gives the same draws. The scaling of :math:`C` is that of :class:`fisherlab.Curvature`
(``reduction="mean"``: :math:`c = 1/N`; ``"sum"``: :math:`c = 1`). Wen et al.'s
:math:`\sqrt{(M_L - M_S)/(M_L M_S)}` factor is applied by the optimizer, not here.

``structure`` selects :math:`C` relative to the sampler's matrix :math:`Q`:

==============  ==========================================================================
``"full"``      :math:`C = Q`, by backpropagation, no matrix is formed (one
                vector-Jacobian product per draw, see each class)
``"diag"``      :math:`C = \mathrm{diag}(Q)`: :math:`\xi = \sqrt{\mathrm{diag}(Q)} \odot z`
                (Wen et al. Eq. 7 / Algorithm 1 for the Fisher)
``"kfac"``      :math:`C = ` K-FAC of :math:`Q`: :math:`\xi = (G^{1/2}\otimes A^{1/2}) z`
                (Wen et al. App. E.2)
``"blockdiag"`` :math:`C = ` per-layer blocks of :math:`Q`
``"trace"``     :math:`C = \frac{\mathrm{tr}\,Q}{D} I`: isotropic with matched trace
                (Wen et al. App. E.2, "Fisher trace")
==============  ==========================================================================

with :math:`z \sim \mathcal N(0, I)`. Only ``covariance()`` builds a ``D × D`` matrix,
on request (for checks on small models).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor
from torch.func import vjp, vmap

from fisherlab.curvature import Curvature
from fisherlab.likelihoods import Likelihood

__all__ = [
    "NoiseSampler",
    "GradientCovarianceNoise",
    "EmpiricalFisherNoise",
    "FisherNoise",
    "GGNNoise",
    "MultiplicativeNoise",
    "STRUCTURES",
]

STRUCTURES = ("full", "diag", "kfac", "blockdiag", "trace")


class NoiseSampler(ABC):
    """Base class: a zero-mean noise source with covariance :math:`C` on the flat parameters.

    Parameters
    ----------
    model, likelihood, X, y, reduction, batch_size
        As for :class:`fisherlab.Curvature` (the data defines :math:`C`).
    structure : str
        One of :data:`STRUCTURES` supported by the subclass.
    chunk_size : int
        Draws processed together by the backpropagation samplers (bounds memory).
    """

    supported: tuple[str, ...] = STRUCTURES

    def __init__(
        self,
        model: torch.nn.Module,
        likelihood: Likelihood,
        X: Any,
        y: Tensor | None = None,
        structure: str = "full",
        reduction: str | None = None,
        batch_size: int | None = None,
        chunk_size: int = 256,
    ) -> None:
        if structure not in self.supported:
            raise ValueError(
                f"{type(self).__name__}: structure must be one of {self.supported}, "
                f"got {structure!r}"
            )
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        self.curvature = Curvature(model, likelihood, X, y, reduction, batch_size)
        self.structure = structure
        self.chunk_size = chunk_size
        self._matrix: Any = None
        self.update()

    # -- interface -------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """``D``."""
        return self.curvature.num_params

    @property
    def scale(self) -> float:
        """``c``: ``1/N`` (mean reduction) or 1 (sum)."""
        return self.curvature.scaling.c

    def update(self, generator: torch.Generator | None = None) -> None:
        """Recompute the structured covariance at the model's current parameters."""
        if self.structure == "full":
            self._matrix = None
            return
        if self.structure == "trace":
            self._matrix = self._quantity("diag", generator).sum()
        else:
            self._matrix = self._quantity(self.structure, generator)

    def sample(
        self, generator: torch.Generator | None = None, num_samples: int | None = None
    ) -> Tensor:
        """Draw ``ξ`` ``(D,)``, or ``num_samples`` independent draws ``(num_samples, D)``."""
        if num_samples is not None and (not isinstance(num_samples, int) or num_samples < 1):
            raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
        n = 1 if num_samples is None else num_samples
        theta = self.curvature.functional_model.flat_params()
        if self.structure == "full":
            xi = self._sample_full(n, generator)
        elif self.structure == "diag":
            z = torch.randn(n, self.dim, generator=generator, dtype=theta.dtype)
            xi = z.to(theta.device) * self._matrix.clamp_min(0.0).sqrt()
        elif self.structure == "trace":
            z = torch.randn(n, self.dim, generator=generator, dtype=theta.dtype)
            xi = z.to(theta.device) * torch.sqrt(self._matrix.clamp_min(0.0) / self.dim)
        else:
            xi = self._matrix.sample(generator, n)
        return xi[0] if num_samples is None else xi

    def unflatten(self, xi: Tensor) -> list[Tensor]:
        """Split ``(D,)`` (or ``(n, D)``) draws into tensors shaped like the parameters."""
        fm = self.curvature.functional_model
        lead = xi.shape[:-1]
        chunks = xi.split(fm.numels, dim=-1)
        return [c.reshape(*lead, *shape) for c, shape in zip(chunks, fm.shapes, strict=True)]

    def covariance(self) -> Tensor:
        """Return the dense ``(D, D)`` covariance :math:`C` of the draws (builds D × D)."""
        if self.structure == "full":
            return self._quantity("dense", None)
        if self.structure == "diag":
            return torch.diag(self._matrix)
        if self.structure == "trace":
            theta = self.curvature.functional_model.flat_params()
            eye = torch.eye(self.dim, dtype=theta.dtype, device=theta.device)
            return self._matrix / self.dim * eye
        return self._matrix.to_dense()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(structure={self.structure!r}, dim={self.dim})"

    # -- subclass hooks ----------------------------------------------------------------------
    @abstractmethod
    def _quantity(self, form: str, generator: torch.Generator | None) -> Any:
        """Return the sampler's matrix :math:`Q` in ``form``."""

    @abstractmethod
    def _output_weights(
        self, f: Tensor, y: Tensor, n: int, generator: torch.Generator | None
    ) -> Tensor:
        r"""Weights ``W`` ``(n, N, C)`` on the outputs: a draw is :math:`\sum_n J_n^\top W_n`."""

    def _correction(self, xi: Tensor) -> Tensor:
        return xi

    # -- backpropagation of output weights -------------------------------------------------
    def _sample_full(self, n: int, generator: torch.Generator | None) -> Tensor:
        r""":math:`\sqrt{c} \sum_{\text{batches}} \sum_n J_n^\top W_n` for ``n`` draws."""
        if self.curvature.distributed:
            raise NotImplementedError(
                f"{type(self).__name__}: structure='full' does not sum over torch.distributed "
                "ranks (each rank would draw noise from its own shard only); use "
                "structure='diag', 'kfac' or 'trace'"
            )
        fm = self.curvature.functional_model
        theta = fm.flat_params()
        total = torch.zeros(n, fm.num_params, dtype=theta.dtype, device=theta.device)
        for X, y in self.curvature.batches():
            with torch.no_grad():
                f = fm.outputs(fm.params, X)
            W = self._output_weights(f, y, n, generator).to(theta.dtype)
            _, pullback = vjp(lambda t, X=X: fm.outputs(fm.unflatten(t), X), theta)
            for start in range(0, n, self.chunk_size):
                chunk = W[start : start + self.chunk_size]
                total[start : start + chunk.shape[0]] += vmap(_first(pullback))(chunk)
        return math.sqrt(self._full_scale()) * self._correction(total)

    def _full_scale(self) -> float:
        return self.scale


def _first(pullback):
    return lambda w: pullback(w)[0]


def _rademacher(shape: Iterable[int], generator: torch.Generator | None) -> Tensor:
    return 2.0 * torch.randint(0, 2, tuple(shape), generator=generator) - 1.0


class EmpiricalFisherNoise(NoiseSampler):
    r"""Noise with the empirical Fisher's covariance :math:`C = c\sum_n g_n g_n^\top`.

    ``"full"``: :math:`\xi = \sqrt c \sum_n r_n g_n` with independent weights :math:`r_n`
    (Rademacher by default, as in Wen et al. App. F; ``weights="gaussian"`` for Gaussian
    draws), computed as *one* backward pass of :math:`\sum_n r_n l_n` — per-sample
    gradients are never formed. :math:`\mathbb E[\xi\xi^\top] = c\sum_n g_n g_n^\top`.
    """

    def __init__(self, *args: Any, weights: str = "rademacher", **kwargs: Any) -> None:
        if weights not in ("rademacher", "gaussian"):
            raise ValueError(f"weights must be 'rademacher' or 'gaussian', got {weights!r}")
        self.weights = weights
        super().__init__(*args, **kwargs)

    def _quantity(self, form: str, generator: torch.Generator | None) -> Any:
        return self.curvature.empirical_fisher(form=form)

    def _draw_weights(self, n: int, N: int, generator: torch.Generator | None) -> Tensor:
        if self.weights == "rademacher":
            return _rademacher((n, N), generator)
        return torch.randn(n, N, generator=generator)

    def _output_weights(self, f, y, n, generator):
        r = self._draw_weights(n, f.shape[0], generator).to(f)
        return r.unsqueeze(2) * self.curvature.likelihood.output_gradient(f, y).unsqueeze(0)


class GradientCovarianceNoise(EmpiricalFisherNoise):
    r"""Noise with the gradient covariance :math:`C = \Sigma` (:meth:`Curvature.covariance`).

    ``"full"``: :math:`\xi = \sqrt{a u}\,\sum_n r_n (g_n - \bar g)` with Rademacher (or
    Gaussian) :math:`r_n`, :math:`\bar g = \frac1N\sum_n g_n`, :math:`a = 1/N` (mean) or
    :math:`N` (sum) and :math:`u = N/(N-1)` if ``unbiased``: one backward pass of
    :math:`\sum_n r_n l_n` minus :math:`(\sum_n r_n)\bar g`. Since
    :math:`\frac1N\sum_n (g_n - \bar g)(g_n-\bar g)^\top = \frac1N\sum_n g_n g_n^\top -
    \bar g\bar g^\top`, the covariance is :math:`\Sigma` (Balles Eq. 3.29; Kunstner et
    al. Eq. 18). ``"kfac"`` is not available.
    """

    supported = ("full", "diag", "blockdiag", "trace")

    def __init__(self, *args: Any, unbiased: bool = False, **kwargs: Any) -> None:
        self.unbiased = unbiased
        super().__init__(*args, **kwargs)

    def update(self, generator: torch.Generator | None = None) -> None:
        r"""Recompute :math:`\bar g` and the structured covariance."""
        grad = self.curvature.gradient()
        if self.curvature.reduction == "sum":
            grad = grad / self.curvature.num_samples
        self._mean_gradient = grad
        super().update(generator)

    def _quantity(self, form: str, generator: torch.Generator | None) -> Any:
        if form == "diag":
            return self.curvature.variance(form="diag", unbiased=self.unbiased)
        return self.curvature.covariance(form=form, unbiased=self.unbiased)

    def _full_scale(self) -> float:
        scaling = self.curvature.scaling
        return scaling.a * scaling.unbiased_factor(self.unbiased)

    def _sample_full(self, n: int, generator: torch.Generator | None) -> Tensor:
        self._weight_sums: list[Tensor] = []
        return super()._sample_full(n, generator)

    def _output_weights(self, f, y, n, generator):
        r = self._draw_weights(n, f.shape[0], generator).to(f)
        self._weight_sums.append(r.sum(1))
        return r.unsqueeze(2) * self.curvature.likelihood.output_gradient(f, y).unsqueeze(0)

    def _correction(self, xi: Tensor) -> Tensor:
        weight_sum = torch.stack(self._weight_sums).sum(0)
        return xi - weight_sum.unsqueeze(1) * self._mean_gradient


class FisherNoise(NoiseSampler):
    r"""Noise with the Fisher's covariance :math:`C = c\sum_n J_n^\top \Lambda_n J_n`.

    ``method="exact"``: :math:`\xi = \sqrt c \sum_n J_n^\top S_n z_n`,
    :math:`S_n S_n^\top = \Lambda_n`, :math:`z_n \sim \mathcal N(0, I)` — the
    :math:`\sqrt\Lambda` factor backpropagated with Gaussian probes, one backward pass per
    draw, Gaussian draws. ``method="sampled_labels"`` (Wen et al. App. F):
    :math:`\xi = \sqrt c \sum_n \nabla_\theta l(f_n, \hat y_n)` with fresh labels
    :math:`\hat y_n \sim p(\cdot|f_n)` per draw; the score has mean zero, so
    :math:`\mathrm{Cov}[\xi] = c\sum_n J_n^\top \Lambda_n J_n` exactly (non-Gaussian draws).
    For the structured forms, ``method="sampled_labels"`` uses the Monte-Carlo Fisher with
    ``mc_samples`` labels (drawn from the generator passed to :meth:`update`).
    """

    def __init__(
        self, *args: Any, method: str = "exact", mc_samples: int = 1, **kwargs: Any
    ) -> None:
        if method not in ("exact", "sampled_labels"):
            raise ValueError(f"method must be 'exact' or 'sampled_labels', got {method!r}")
        self.method = method
        self.mc_samples = mc_samples
        super().__init__(*args, **kwargs)

    def _quantity(self, form: str, generator: torch.Generator | None) -> Any:
        if self.method == "exact" or form == "dense":
            return self.curvature.fisher(form=form)
        return self.curvature.fisher(form=form, mc_samples=self.mc_samples, generator=generator)

    def _output_weights(self, f, y, n, generator):
        lik = self.curvature.likelihood
        if self.method == "sampled_labels":
            # n fresh labels per sample in one vectorized draw: q = √s ∇_f(−log p(ŷ|f))
            N, C = f.shape
            tiled = f.unsqueeze(0).expand(n, N, C).reshape(n * N, C)
            labels = lik.sample(tiled, generator)
            q = lik.output_gradient(tiled, labels) / math.sqrt(lik.output_scale(C))
            return q.reshape(n, N, C)
        S = lik.sqrt_fisher_output(f)
        z = torch.randn(n, f.shape[0], S.shape[2], generator=generator).to(f)
        return torch.einsum("nck,snk->snc", S, z)


class GGNNoise(NoiseSampler):
    r"""Noise with the GGN's covariance :math:`C = c\sum_n J_n^\top \nabla^2_f l_n J_n`.

    ``"full"``: :math:`\xi = \sqrt c\sum_n J_n^\top S_n z_n` with
    :math:`S_n = V_n\sqrt{\max(D_n, 0)}` from :math:`\nabla_f^2 l_n = V_n D_n V_n^\top`.
    """

    def _quantity(self, form: str, generator: torch.Generator | None) -> Any:
        return self.curvature.ggn(form=form)

    def _output_weights(self, f, y, n, generator):
        evals, evecs = torch.linalg.eigh(self.curvature.likelihood.output_hessian(f, y))
        S = evecs * evals.clamp_min(0.0).sqrt().unsqueeze(1)
        z = torch.randn(n, f.shape[0], S.shape[2], generator=generator).to(f)
        return torch.einsum("nck,snk->snc", S, z)


class MultiplicativeNoise(NoiseSampler):
    r"""Multiplicative Gaussian noise on the gradient (Wen et al. App. E.2, after Hoffer et al.).

    :math:`\xi = \nabla L \odot \varepsilon`, :math:`\varepsilon \sim \mathcal N(0,
    \sigma^2 I)`, so that :math:`\nabla L + \xi = \nabla L \odot (1 + \varepsilon)` and
    :math:`C = \sigma^2\,\mathrm{diag}(\nabla L)^2`. ``std`` is :math:`\sigma`; only
    ``structure="diag"`` (the default) applies.
    """

    supported = ("diag",)

    def __init__(self, *args: Any, std: float = 1.0, **kwargs: Any) -> None:
        if not (isinstance(std, (int, float)) and math.isfinite(std) and std >= 0):
            raise ValueError(f"std must be a finite number >= 0, got {std!r}")
        self.std = float(std)
        kwargs.setdefault("structure", "diag")
        super().__init__(*args, **kwargs)

    def _quantity(self, form: str, generator: torch.Generator | None) -> Any:
        return self.std**2 * self.curvature.gradient() ** 2

    def _output_weights(self, f, y, n, generator):  # pragma: no cover - diag only
        raise NotImplementedError
