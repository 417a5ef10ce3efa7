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

from torch import Tensor

from fisherlab.likelihoods import Categorical, Likelihood
from fisherlab.scaling import Scaling
from fisherlab.validation import check_batch, check_reduction

__all__ = ["LinearModel"]


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
        self._outer: Tensor | None = None

    @property
    def num_params(self) -> int:
        """``D``."""
        return self.X.shape[1]

    def _outputs(self, theta: Tensor) -> Tensor:
        if theta.shape[-1] != self.num_params:
            raise ValueError(
                f"parameters must have last dimension {self.num_params}, got {tuple(theta.shape)}"
            )
        return theta @ self.X.T  # (..., N)

    def _per_sample(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """Flattened outputs ``(B·N, 1)`` and targets for the likelihood's closed forms."""
        f = self._outputs(theta)
        batch_shape = f.shape[:-1]
        f = f.reshape(-1, 1)
        y = self.y.expand(*batch_shape, -1, 1).reshape(-1, 1)
        return f, y

    def _unflatten(self, values: Tensor, theta: Tensor) -> Tensor:
        return values.reshape(*theta.shape[:-1], self.X.shape[0])

    def _gram(self, weights: Tensor) -> Tensor:
        """``c Xᵀ diag(w) X`` for weights ``(..., N)``: one product with the ``x_n x_nᵀ``."""
        N, D = self.X.shape
        if self._outer is None:
            self._outer = (self.X.unsqueeze(2) * self.X.unsqueeze(1)).reshape(N, D * D)
        gram = weights.reshape(-1, N) @ self._outer
        return self.scale * gram.reshape(*weights.shape[:-1], D, D)

    def loss(self, theta: Tensor) -> Tensor:
        """``L(θ)``, shape ``theta.shape[:-1]``."""
        f, y = self._per_sample(theta)
        return self.scale * self._unflatten(self.likelihood.nll(f, y), theta).sum(-1)

    def residuals(self, theta: Tensor) -> Tensor:
        """``r_n = ∇_f l_n``, shape ``(..., N)``."""
        f, y = self._per_sample(theta)
        return self._unflatten(self.likelihood.output_gradient(f, y)[:, 0], theta)

    def gradient(self, theta: Tensor) -> Tensor:
        """``∇L = c Xᵀ r``, shape ``(..., D)``."""
        return self.scale * self.residuals(theta) @ self.X

    def per_sample_gradients(self, theta: Tensor) -> Tensor:
        """``g_n = r_n x_n``, shape ``(..., N, D)``."""
        return self.residuals(theta).unsqueeze(-1) * self.X

    def fisher(self, theta: Tensor) -> Tensor:
        """``F = c Xᵀ diag(Λ(f_n)) X``, shape ``(..., D, D)``; equals the GGN and Hessian."""
        f, _ = self._per_sample(theta)
        weights = self._unflatten(self.likelihood.fisher_output(f)[:, 0, 0], theta)
        return self._gram(weights)

    def empirical_fisher(self, theta: Tensor) -> Tensor:
        """``EF = c Xᵀ diag(r_n²) X``, shape ``(..., D, D)``."""
        return self._gram(self.residuals(theta) ** 2)

    def covariance(self, theta: Tensor) -> Tensor:
        """Gradient covariance ``Σ = a Σ_n g_n g_nᵀ − ∇L∇Lᵀ`` (as :meth:`Curvature.covariance`).

        ``a = 1/N`` (mean) or ``N`` (sum), so that ``Σ`` is the covariance of the one-sample
        gradient estimate; shape ``(..., D, D)``.
        """
        g = self.gradient(theta)
        outer = g.unsqueeze(-1) * g.unsqueeze(-2)
        return self.scaling.a / self.scale * self.empirical_fisher(theta) - outer

    def hessian(self, theta: Tensor) -> Tensor:
        """``∇²L = c Xᵀ diag(∇²_f l_n) X``, shape ``(..., D, D)``."""
        f, y = self._per_sample(theta)
        weights = self._unflatten(self.likelihood.output_hessian(f, y)[:, 0, 0], theta)
        return self._gram(weights)
