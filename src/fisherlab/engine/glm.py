r"""Closed forms for generalized linear models, batched over many parameter vectors.

For a linear predictor :math:`f_n = x_n^\top\theta` (one output) the Jacobian is
:math:`J_n = x_n^\top`, so every quantity of :class:`fisherlab.Curvature` reduces to
weighted Gram matrices of the design matrix :math:`X`:

.. math::
    \nabla L = c X^\top r,\quad
    F = c X^\top \mathrm{diag}(\Lambda_n) X,\quad
    \tilde F = c X^\top \mathrm{diag}(r_n^2) X,\quad
    \nabla^2 L = G = c X^\top \mathrm{diag}(\nabla_f^2 l_n) X,

with :math:`r_n = \nabla_f l_n` and :math:`c = 1/N` (mean) or 1 (sum); the Hessian equals the
GGN and the Fisher because :math:`f` is linear in :math:`\theta` (Kunstner et al., Eq. 9
with a vanishing second term, and Prop. 1). The output-space terms come from the
likelihood's closed forms. Every method accepts parameters of shape ``(..., D)`` and
evaluates all of them at once, which is what grid searches over step sizes and damping
need (Kunstner et al., App. D: thousands of short runs).
"""

from __future__ import annotations

from functools import cached_property

import torch
from torch import Tensor

from fisherlab.likelihoods import Categorical, Gaussian, Likelihood
from fisherlab.scaling import Scaling
from fisherlab.validation import check_batch, check_reduction

__all__ = ["LinearModel", "LinearModelPoint"]


class LinearModel:
    """Curvature of the single-output linear model ``f(x) = xᵀθ`` under a likelihood.

    Parameters
    ----------
    X : Tensor
        Design matrix ``(N, D)`` (append a column of ones for a bias).
    y : Tensor
        Targets ``(N,)``.
    likelihood : Likelihood
        ``Gaussian`` or ``Bernoulli`` (one output per sample).
    reduction : {"mean", "sum"}
        ``L = (1/N) Σ l_n`` or ``Σ l_n``.
    """

    def __init__(self, X: Tensor, y: Tensor, likelihood: Likelihood, reduction: str = "mean"):
        check_batch(X, y)
        check_reduction(reduction)
        if X.ndim != 2:
            raise ValueError(f"design matrix X must have shape (N, D), got {tuple(X.shape)}")
        if isinstance(likelihood, Categorical):
            raise ValueError("LinearModel has one output per sample: use Gaussian or Bernoulli")
        self.X = X
        self.y = y.reshape(-1, 1).to(X.dtype)
        likelihood.check_targets(self.y, self.y)
        self.likelihood = likelihood
        self.reduction = reduction
        self.scaling = Scaling(reduction, X.shape[0])
        self.scale = self.scaling.c
        self._outer: tuple[Tensor, Tensor] | None = None

    @property
    def num_params(self) -> int:
        """``D``."""
        return self.X.shape[1]

    @property
    def fisher_is_constant(self) -> bool:
        r"""Whether :math:`F` is independent of :math:`\theta`: Gaussian, F = cXᵀX/σ²."""
        return isinstance(self.likelihood, Gaussian)

    def at(self, theta: Tensor) -> LinearModelPoint:
        """The quantities at parameters ``theta`` ``(..., D)``, each computed once on demand."""
        return LinearModelPoint(self, theta)

    def _gram(self, weights: Tensor) -> Tensor:
        r"""``c Xᵀ diag(w) X`` for weights ``(..., N)``: one product with the ``x_n x_nᵀ``.

        Only the :math:`D(D+1)/2` entries :math:`i \le j` are computed,
        :math:`G_{ij} = c \sum_n w_n x_{ni} x_{nj}`, one matrix product of the weights with
        the columns :math:`x_{ni} x_{nj}`; the other triangle is their mirror, so the
        result is exactly symmetric.
        """
        N, D = self.X.shape
        if self._outer is None:
            rows, cols = torch.triu_indices(D, D, device=self.X.device)
            position = torch.empty(D, D, dtype=torch.long, device=self.X.device)
            position[rows, cols] = position[cols, rows] = torch.arange(rows.numel())
            self._outer = (self.X[:, rows] * self.X[:, cols], position.reshape(-1))
        outer, position = self._outer
        gram = (weights.reshape(-1, N) @ outer).index_select(1, position)
        return self.scale * gram.reshape(*weights.shape[:-1], D, D)

    def loss(self, theta: Tensor) -> Tensor:
        """``L(θ)``, shape ``theta.shape[:-1]``."""
        return self.at(theta).loss

    def residuals(self, theta: Tensor) -> Tensor:
        """``r_n = ∇_f l_n``, shape ``(..., N)``."""
        return self.at(theta).residuals

    def gradient(self, theta: Tensor) -> Tensor:
        """``∇L = c Xᵀ r``, shape ``(..., D)``."""
        return self.at(theta).gradient

    def per_sample_gradients(self, theta: Tensor) -> Tensor:
        """``g_n = r_n x_n``, shape ``(..., N, D)``."""
        return self.at(theta).per_sample_gradients

    def fisher(self, theta: Tensor) -> Tensor:
        """``F = c Xᵀ diag(Λ(f_n)) X``, shape ``(..., D, D)``; equals the GGN and Hessian."""
        return self.at(theta).fisher

    def empirical_fisher(self, theta: Tensor) -> Tensor:
        """``EF = c Xᵀ diag(r_n²) X``, shape ``(..., D, D)``."""
        return self.at(theta).empirical_fisher

    def covariance(self, theta: Tensor) -> Tensor:
        """Gradient covariance ``Σ = a Σ_n g_n g_nᵀ − ∇L∇Lᵀ`` (as :meth:`Curvature.covariance`).

        ``a = 1/N`` (mean) or ``N`` (sum), so that ``Σ`` is the covariance of the one-sample
        gradient estimate; shape ``(..., D, D)``.
        """
        return self.at(theta).covariance

    def hessian(self, theta: Tensor) -> Tensor:
        """``∇²L = c Xᵀ diag(∇²_f l_n) X``, shape ``(..., D, D)``."""
        return self.at(theta).hessian


class LinearModelPoint:
    r"""The quantities of a :class:`LinearModel` at parameters ``theta`` ``(..., D)``.

    The outputs :math:`f_n = x_n^\top\theta` are computed once, and every quantity once, on
    first access, so an optimizer step that needs the loss, the gradient and a curvature
    matrix at the same point evaluates the model once (:meth:`LinearModel.at`).
    """

    def __init__(self, model: LinearModel, theta: Tensor):
        if theta.shape[-1] != model.num_params:
            raise ValueError(
                f"parameters must have last dimension {model.num_params}, got {tuple(theta.shape)}"
            )
        self.model = model
        self.theta = theta
        f = theta @ model.X.T  # (..., N)
        self._shape = f.shape
        self._f = f.reshape(-1, 1)
        self._y = model.y.expand(*f.shape[:-1], -1, 1).reshape(-1, 1)

    def _unflatten(self, values: Tensor) -> Tensor:
        return values.reshape(self._shape)

    @cached_property
    def loss(self) -> Tensor:
        """``L(θ)``, shape ``theta.shape[:-1]``."""
        nll = self.model.likelihood.nll(self._f, self._y)
        return self.model.scale * self._unflatten(nll).sum(-1)

    @cached_property
    def residuals(self) -> Tensor:
        """``r_n = ∇_f l_n``, shape ``(..., N)``."""
        return self._unflatten(self.model.likelihood.output_gradient(self._f, self._y)[:, 0])

    @cached_property
    def gradient(self) -> Tensor:
        """``∇L = c Xᵀ r``, shape ``(..., D)``."""
        return self.model.scale * self.residuals @ self.model.X

    @cached_property
    def per_sample_gradients(self) -> Tensor:
        """``g_n = r_n x_n``, shape ``(..., N, D)``."""
        return self.residuals.unsqueeze(-1) * self.model.X

    @cached_property
    def fisher(self) -> Tensor:
        """``F = c Xᵀ diag(Λ(f_n)) X``, shape ``(..., D, D)``; equals the GGN and Hessian."""
        weights = self._unflatten(self.model.likelihood.fisher_output(self._f)[:, 0, 0])
        return self.model._gram(weights)

    @cached_property
    def empirical_fisher(self) -> Tensor:
        """``EF = c Xᵀ diag(r_n²) X``, shape ``(..., D, D)``."""
        return self.model._gram(self.residuals**2)

    @cached_property
    def covariance(self) -> Tensor:
        """Gradient covariance ``Σ = a Σ_n g_n g_nᵀ − ∇L∇Lᵀ``, shape ``(..., D, D)``."""
        g = self.gradient
        outer = g.unsqueeze(-1) * g.unsqueeze(-2)
        scaling = self.model.scaling
        return scaling.a / self.model.scale * self.empirical_fisher - outer

    @cached_property
    def hessian(self) -> Tensor:
        """``∇²L = c Xᵀ diag(∇²_f l_n) X``, shape ``(..., D, D)``."""
        weights = self.model.likelihood.output_hessian(self._f, self._y)[:, 0, 0]
        return self.model._gram(self._unflatten(weights))
