r"""The generic engine: every quantity of one data batch through :mod:`torch.func`.

A :class:`FunctionalModel` turns ``model`` and a likelihood into pure functions of the
trainable parameters (``torch.func.functional_call``) and computes batch **sums** (never
averages: :class:`fisherlab.Curvature` applies the reduction):

- per-sample gradients :math:`g_n = \nabla_\theta l_n` by ``vmap(grad(l))``;
- per-sample Jacobians :math:`J_n = \partial f_n / \partial\theta` by ``vmap(jacrev(f))``;
- "sandwich rows" :math:`B_n = S_n^\top J_n` for a factor :math:`S_n` (``C × K``) by one
  vector-Jacobian product per column of :math:`S_n` — with :math:`S_n S_n^\top = \Lambda_n`
  these give :math:`\sum_n J_n^\top \Lambda_n J_n = \sum_n B_n^\top B_n` and its diagonal
  :math:`\sum_{n,k} B_{n,k}^2` without any :math:`D \times D` matrix;
- Hessian-vector products by forward-over-reverse differentiation, and the dense Hessian
  from products with unit vectors;
- matrix-free products with :math:`\sum_n J_n^\top M_n J_n` (one ``jvp`` and one ``vjp``)
  and with :math:`\sum_n g_n g_n^\top` (a ``jvp`` of the vector of per-sample losses gives
  :math:`G v`, a ``vjp`` with weights :math:`G v` gives :math:`G^\top G v`).

Modules without forward-mode derivatives (the fused kernel of
:class:`torch.nn.MultiheadAttention`, weight normalisation) are handled in reverse mode:
a Jacobian-vector product :math:`Jv` is then the vector-Jacobian product of the linear map
:math:`u \mapsto J^\top u` with :math:`v`, and a Hessian-vector product is the
vector-Jacobian product of the gradient (the Hessian is symmetric). Failures of ``vmap``
are reported as errors naming the cause (random operations, recurrent layers).

Parameters are flattened in ``model.parameters()`` order over those with
``requires_grad`` (as :func:`torch.nn.utils.parameters_to_vector` does); frozen parameters
and buffers enter as constants. Shared (tied) parameters appear once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor
from torch.func import functional_call, grad, jacrev, jvp, vjp, vmap
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _WeightNorm
from torch.nn.utils.weight_norm import WeightNorm

from fisherlab.likelihoods import Likelihood

__all__ = ["FunctionalModel"]

Params = dict[str, Tensor]
F = TypeVar("F", bound=Callable[..., Any])

#: the message for random operations, shared with :func:`fisherlab.validation.check_model`
RANDOM_MESSAGE = (
    "the model's outputs are random, so gradients and curvature would be random draws; "
    "call model.eval() first"
)


def _explained(what: str) -> Callable[[F], F]:
    """Turn ``torch.func`` failures of a :class:`FunctionalModel` method into clear errors."""

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def wrapper(self: FunctionalModel, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except RuntimeError as error:
                explained = self.explain(error, what)
                if explained is error:
                    raise
                raise explained from error

        return wrapper  # type: ignore[return-value]

    return decorate


def _is_missing_forward_ad(error: BaseException) -> bool:
    return isinstance(error, (NotImplementedError, RuntimeError)) and "forward AD" in str(error)


class FunctionalModel:
    """A model and a likelihood as pure functions of the flat trainable parameter vector.

    Parameters
    ----------
    model : torch.nn.Module
        Any model of differentiable torch modules; its output for ``N`` inputs must have
        leading dimension ``N`` (further dimensions are flattened into ``C``).
    likelihood : Likelihood
        The per-sample negative log-likelihood.
    """

    def __init__(self, model: torch.nn.Module, likelihood: Likelihood) -> None:
        self.model = model
        self.likelihood = likelihood
        named = list(model.named_parameters())
        self.names = [name for name, p in named if p.requires_grad]
        if not self.names:
            raise ValueError("model has no parameters with requires_grad=True")
        params = self.params
        self.shapes = [params[name].shape for name in self.names]
        self.numels = [params[name].numel() for name in self.names]
        self.num_params = sum(self.numels)
        #: whether forward-mode AD works for this model (set on the first failure)
        self.forward_ad = True

    def explain(self, error: RuntimeError, what: str) -> Exception:
        """The library's error for a ``torch.func`` failure while computing ``what``."""
        message = str(error)
        if "randomness" in message and "vmap" in message:
            return ValueError(
                f"{what}: the model calls a random operation (functional dropout, attention "
                f"dropout in training mode, ...): {RANDOM_MESSAGE}"
            )
        for name, module in self.model.named_modules():
            if isinstance(module, torch.nn.RNNBase):
                return NotImplementedError(
                    f"{what}: module {name or type(module).__name__!r} "
                    f"({type(module).__name__}) cannot be evaluated one sample at a time by "
                    "torch.func.vmap; use gradient(), loss(), or the matrix-free forms "
                    "(form='operator') of the Hessian, GGN and Fisher, which need no "
                    f"per-sample evaluation (torch: {message.splitlines()[0]})"
                )
        return error

    def check_second_order(self, what: str) -> None:
        """Refuse second derivatives through weight normalisation.

        PyTorch's double backward of ``_weight_norm`` is wrong: for ``Linear(3, 3)`` under
        :func:`torch.nn.utils.weight_norm` the Hessian it gives is not symmetric (entries
        off by 0.2 against central differences of the gradient).
        """
        for name, module in self.model.named_modules():
            hooks = module._forward_pre_hooks.values()
            old = any(isinstance(h, WeightNorm) for h in hooks)
            new = parametrize.is_parametrized(module) and any(
                isinstance(q, _WeightNorm)
                for plist in module.parametrizations.values()  # type: ignore[union-attr]
                for q in plist
            )
            if old or new:
                raise NotImplementedError(
                    f"{what}: module {name or type(module).__name__!r} uses weight "
                    "normalisation, whose second derivative in PyTorch is wrong (not "
                    "symmetric); first-order quantities, the GGN and the Fisher are exact"
                )

    def _forward_or_reverse(self, compute: Callable[[], Tensor]) -> Tensor:
        """Run ``compute`` with forward-mode AD, or in reverse mode where a module lacks it."""
        if self.forward_ad:
            try:
                return compute()
            except (NotImplementedError, RuntimeError) as error:
                if not _is_missing_forward_ad(error):
                    raise
                self.forward_ad = False
        return compute()

    def _jvp(self, fn: Callable[[Tensor], Tensor], theta: Tensor, v: Tensor) -> Tensor:
        """``J v`` for the Jacobian ``J`` of ``fn`` at ``theta``: ``jvp``, or two ``vjp``."""
        if self.forward_ad:
            return jvp(fn, (theta,), (v,))[1]
        out, pullback = vjp(fn, theta)
        _, transpose = vjp(lambda u: pullback(u)[0], torch.zeros_like(out))
        return transpose(v)[0]

    @property
    def params(self) -> Params:
        """The model's current trainable parameters (detached), by name."""
        return {n: p.detach() for n, p in self.model.named_parameters() if p.requires_grad}

    @property
    def constants(self) -> Params:
        """Frozen parameters and buffers, by name: constants of every function here."""
        frozen = {n: p.detach() for n, p in self.model.named_parameters() if not p.requires_grad}
        return {**frozen, **dict(self.model.named_buffers())}

    # -- parameter plumbing -----------------------------------------------------------
    def flat_params(self) -> Tensor:
        """The current trainable parameters as one flat vector ``(D,)``."""
        return torch.cat([self.params[name].reshape(-1) for name in self.names])

    def unflatten(self, vector: Tensor) -> Params:
        """Split a flat ``(D,)`` vector into a name → tensor dict of parameter shapes."""
        chunks = vector.split(self.numels)
        pieces = zip(self.names, chunks, self.shapes, strict=True)
        return {name: chunk.view(shape) for name, chunk, shape in pieces}

    def flatten(self, tensors: Params, batch_dims: int = 0) -> Tensor:
        """Concatenate a name → tensor dict into flat vectors, keeping ``batch_dims`` dims."""
        parts = [tensors[name] for name in self.names]
        lead = parts[0].shape[:batch_dims]
        return torch.cat([t.reshape(*lead, -1) for t in parts], dim=batch_dims)

    # -- forward functions --------------------------------------------------------------
    def outputs(self, params: Params, X: Tensor) -> Tensor:
        """Model outputs for a batch, flattened to ``(N, C)``."""
        out = functional_call(self.model, {**self.constants, **params}, (X,))
        return out.reshape(X.shape[0], -1)

    def _sample_output(self, params: Params, x: Tensor) -> Tensor:
        return self.outputs(params, x.unsqueeze(0))[0]

    def _sample_loss(self, params: Params, x: Tensor, y: Tensor) -> Tensor:
        f = self.outputs(params, x.unsqueeze(0))
        return self.likelihood.nll(f, y.unsqueeze(0))[0]

    def losses(self, params: Params, X: Tensor, y: Tensor) -> Tensor:
        """Per-sample losses ``(N,)``."""
        return self.likelihood.nll(self.outputs(params, X), y)

    def _flat_function(self, fn: Callable[[Params], Tensor]) -> Callable[[Tensor], Tensor]:
        return lambda theta: fn(self.unflatten(theta))

    # -- first order ----------------------------------------------------------------------
    def loss_sum(self, X: Tensor, y: Tensor) -> Tensor:
        """``Σ_n l_n`` over the batch."""
        with torch.no_grad():
            return self.losses(self.params, X, y).sum()

    def gradient(self, X: Tensor, y: Tensor) -> Tensor:
        """``Σ_n ∇l_n``, shape ``(D,)``."""
        g = grad(lambda p: self.losses(p, X, y).sum())(self.params)
        return self.flatten(g)

    @_explained("per-sample gradients")
    def per_sample_gradients(self, X: Tensor, y: Tensor) -> Tensor:
        """``g_n = ∇l_n`` for every sample, shape ``(N, D)``."""
        g = vmap(grad(self._sample_loss), in_dims=(None, 0, 0))(self.params, X, y)
        return self.flatten(g, batch_dims=1)

    # -- Jacobians and sandwiches ---------------------------------------------------------
    @_explained("per-sample Jacobians")
    def jacobians(self, X: Tensor) -> Tensor:
        """Per-sample Jacobians ``J_n = ∂f_n/∂θ``, shape ``(N, C, D)``."""
        jac = vmap(jacrev(self._sample_output), in_dims=(None, 0))(self.params, X)
        return self.flatten(jac, batch_dims=2)

    @_explained("per-sample curvature factors")
    def sandwich_rows(self, X: Tensor, factors: Tensor) -> Tensor:
        """Rows ``B_n = S_nᵀ J_n`` for factors ``S`` of shape ``(N, C, K)``; shape ``(N, K, D)``.

        One vector-Jacobian product per sample and factor column.
        """

        def rows_of_sample(x: Tensor, factor: Tensor) -> Params:
            _, pullback = vjp(lambda p: self._sample_output(p, x), self.params)
            return vmap(lambda column: pullback(column)[0])(factor.T)

        rows = vmap(rows_of_sample)(X, factors)
        return self.flatten(rows, batch_dims=2)

    def ggn_dense(self, X: Tensor, y: Tensor) -> Tensor:
        """``Σ_n J_nᵀ (∇²_f l_n) J_n`` with the closed-form output Hessian, ``(D, D)``."""
        jac = self.jacobians(X)
        H = self.likelihood.output_hessian(self._outputs_detached(X), y)
        return torch.einsum("ncd,nce,nef->df", jac, H, jac)

    def ggn_diag(self, X: Tensor, y: Tensor) -> Tensor:
        """Diagonal of :meth:`ggn_dense` from per-sample Jacobians, ``(D,)``."""
        jac = self.jacobians(X)
        H = self.likelihood.output_hessian(self._outputs_detached(X), y)
        return torch.einsum("ncd,nce,ned->d", jac, H, jac)

    def _outputs_detached(self, X: Tensor) -> Tensor:
        with torch.no_grad():
            return self.outputs(self.params, X)

    # -- second order -----------------------------------------------------------------
    @_explained("the dense Hessian")
    def hessian_dense(self, X: Tensor, y: Tensor, chunk_size: int = 256) -> Tensor:
        """``∇²_θ Σ_n l_n``, ``(D, D)``, from Hessian-vector products with unit vectors.

        Not ``torch.func.hessian``: through :class:`torch.nn.LayerNorm` it (and
        ``jacrev(jacrev(·))``) gives wrong, non-symmetric entries (off by 0.2 against a
        double-backward oracle for ``Linear(2, 3)``, ``LayerNorm(3)``), while the
        Hessian-vector products are right. Peak memory ``O(chunk_size · D)`` beyond the
        result.
        """
        theta = self.flat_params()
        D = theta.numel()
        columns = []
        for start in range(0, D, chunk_size):
            stop = min(start + chunk_size, D)
            E = torch.zeros(D, stop - start, dtype=theta.dtype, device=theta.device)
            E[torch.arange(start, stop), torch.arange(stop - start)] = 1.0
            columns.append(self.hessian_matvec(X, y, E))
        return torch.cat(columns, dim=1)

    @_explained("Hessian-vector products")
    def hessian_matvec(self, X: Tensor, y: Tensor, V: Tensor) -> Tensor:
        """``(∇²_θ Σ_n l_n) V`` for ``V`` of shape ``(D, k)``, forward-over-reverse, ``(D, k)``."""
        self.check_second_order("Hessian-vector products")
        gradient_fn = grad(self._flat_function(lambda p: self.losses(p, X, y).sum()))
        theta = self.flat_params()

        def hvp(v: Tensor) -> Tensor:
            if self.forward_ad:
                return jvp(gradient_fn, (theta,), (v,))[1]
            return vjp(gradient_fn, theta)[1](v)[0]  # the Hessian is symmetric

        return self._forward_or_reverse(lambda: vmap(hvp, in_dims=1, out_dims=1)(V))

    def hessian_diag(self, X: Tensor, y: Tensor, chunk_size: int = 256) -> Tensor:
        """Exact diagonal of the Hessian from Hessian-vector products with unit vectors.

        Peak memory is ``O(chunk_size · D)``; time is ``D / chunk_size`` batched products.
        """
        theta = self.flat_params()
        D = theta.numel()
        diagonal = torch.empty(D, dtype=theta.dtype, device=theta.device)
        for start in range(0, D, chunk_size):
            stop = min(start + chunk_size, D)
            E = torch.zeros(D, stop - start, dtype=theta.dtype, device=theta.device)
            index = torch.arange(start, stop, device=theta.device)
            E[index, index - start] = 1.0
            diagonal[start:stop] = self.hessian_matvec(X, y, E)[index, index - start]
        return diagonal

    @_explained("curvature-vector products")
    def sandwich_matvec(
        self, X: Tensor, inner: Tensor | Callable[[Tensor], Tensor], V: Tensor
    ) -> Tensor:
        """``Σ_n J_nᵀ M_n J_n V`` for ``M`` of shape ``(N, C, C)`` and ``V`` of shape ``(D, k)``.

        ``inner`` is ``M``, or a function of the outputs ``f`` ``(N, C)`` that returns it:
        then the forward pass of the pullback also gives ``f`` (no separate forward).
        """
        outputs = self._flat_function(lambda p: self.outputs(p, X))
        theta = self.flat_params()
        f, pullback = vjp(outputs, theta)
        if callable(inner):
            inner = inner(f.detach())

        def product(v: Tensor) -> Tensor:
            Jv = self._jvp(outputs, theta, v)
            return pullback(torch.einsum("nij,nj->ni", inner, Jv))[0]

        return self._forward_or_reverse(lambda: vmap(product, in_dims=1, out_dims=1)(V))

    @_explained("empirical-Fisher-vector products")
    def gradient_outer_matvec(self, X: Tensor, y: Tensor, V: Tensor) -> Tensor:
        """``Σ_n g_n g_nᵀ V`` without per-sample gradients, ``V`` of shape ``(D, k)``."""
        losses = self._flat_function(lambda p: self.losses(p, X, y))
        theta = self.flat_params()
        _, pullback = vjp(losses, theta)

        def product(v: Tensor) -> Tensor:
            Gv = self._jvp(losses, theta, v)
            return pullback(Gv)[0]

        return self._forward_or_reverse(lambda: vmap(product, in_dims=1, out_dims=1)(V))
