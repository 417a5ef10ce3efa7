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
  from batched products with the unit vectors of one parameter tensor at a time, each
  restricted to the parameters nearer the loss (the rest by symmetry);
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
from fisherlab.progress import progress
from fisherlab.representations.operator import unit_vectors

__all__ = ["FunctionalModel"]

Params = dict[str, Tensor]
F = TypeVar("F", bound=Callable[..., Any])

#: memory for one batch of Hessian-vector products on the CPU (wider batches were slower
#: on a CPU core: 0.92 s for 32 columns, 1.1 s for 128 or 256, dense Hessian, D = 1051)
CHUNK_BYTES = 64 << 20
#: the same on a CUDA device, where wider batches keep the device busy
CHUNK_BYTES_CUDA = 1 << 30

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
    """Whether ``error`` says an operation has no forward-mode derivative.

    Built-in operators say "forward AD"; a custom :class:`torch.autograd.Function` without
    ``jvp`` says "forward mode AD".
    """
    message = str(error)
    missing = "forward AD" in message or "forward mode AD" in message
    return isinstance(error, (NotImplementedError, RuntimeError)) and missing


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

    def _jvp(self, fn: Callable[[Any], Tensor], theta: Any, v: Any) -> Tensor:
        """``J v`` for the Jacobian ``J`` of ``fn`` at ``theta``: ``jvp``, or two ``vjp``.

        ``theta`` and ``v`` are tensors or name → tensor dicts alike.
        """
        if self.forward_ad:
            return jvp(fn, (theta,), (v,))[1]
        out, pullback = vjp(fn, theta)
        _, transpose = vjp(lambda u: pullback(u)[0], torch.zeros_like(out))
        return transpose(v)[0]

    def _over_columns(self, product: Callable[[Params], Params], V: Tensor) -> Tensor:
        """``[product(v_1), ..., product(v_k)]`` for the columns of ``V`` ``(D, k)``, ``(D, k)``.

        Each column enters ``product`` as a name → tensor dict of parameter shapes; the
        columns are batched by ``vmap`` (one column is passed as it is), and the product
        runs in forward mode, or in reverse mode where a module lacks forward-mode AD.
        """
        k = V.shape[1]
        if k == 0:
            return V.new_zeros(self.num_params, 0)
        if k == 1:
            column = self.unflatten(V[:, 0].contiguous())
            return self._forward_or_reverse(lambda: self.flatten(product(column)).unsqueeze(1))
        pieces = zip(self.names, V.split(self.numels), self.shapes, strict=True)
        columns = {name: chunk.T.reshape(k, *shape) for name, chunk, shape in pieces}
        return self._forward_or_reverse(
            lambda: self.flatten(vmap(product)(columns), batch_dims=1).T
        )

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
        params = self.params
        return torch.cat([params[name].reshape(-1) for name in self.names])

    def snapshot(self) -> list[Tensor]:
        """Copies of the current trainable parameters, to compare with by :meth:`unchanged`."""
        return [p.detach().clone() for p in self.params.values()]

    def unchanged(self, snapshot: list[Tensor]) -> bool:
        """Whether the trainable parameters still hold ``snapshot``'s values.

        NaN counts as equal to NaN; tensors are compared one by one, not concatenated.
        """
        current = list(self.params.values())
        if len(current) != len(snapshot):
            return False
        return all(
            a.shape == b.shape
            and a.dtype == b.dtype
            and a.device == b.device
            and (torch.equal(a, b) or bool(((a == b) | (a.isnan() & b.isnan())).all()))
            for a, b in zip(current, snapshot, strict=True)
        )

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
        """``Σ_n J_nᵀ (∇²_f l_n) J_n`` with the closed-form output Hessian, ``(D, D)``.

        One matrix product ``(H_n J_n)ᵀ J_n`` over all ``N·C`` rows at once (a three-operand
        ``einsum`` takes a third longer on a CPU for ``D ≈ 1000``, ``N·C = 384``).
        """
        jac = self.jacobians(X)
        H = self.likelihood.output_hessian(self._outputs_detached(X), y)
        weighted = torch.einsum("nce,ned->ncd", H, jac)
        return weighted.flatten(0, 1).T @ jac.flatten(0, 1)

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
    def hessian_dense(self, X: Tensor, y: Tensor, chunk_size: int | None = None) -> Tensor:
        r"""``∇²_θ Σ_n l_n``, ``(D, D)``, from batched Hessian-vector products with unit vectors.

        The parameter tensors are ordered from the one farthest from the loss in the autograd
        graph (the input layer) to the nearest. With blocks :math:`\theta_1, …, \theta_P`
        in that order, the block column :math:`H_{\ge p, p} = \partial_{\theta_p}
        \nabla_{\theta_{\ge p}} L` is computed by ``vmap`` over unit vectors
        :math:`e_j` of block :math:`p` of ``jvp(grad)`` (forward-over-reverse, reverse-over-
        reverse where the model lacks forward AD), and :math:`H_{p, \ge p} = H_{\ge p, p}^\top`
        fills the rest by symmetry. Only block :math:`p` carries a tangent and only
        :math:`\theta_{\ge p}` a gradient, so a product for a block near the output runs
        through the last layers alone (forward tangents from block :math:`p` on, the
        backward down to block :math:`p`).

        Not ``torch.func.hessian``: through :class:`torch.nn.LayerNorm` it (and
        ``jacrev(jacrev(·))``) gives wrong, non-symmetric entries (off by 0.2 against a
        double-backward oracle for ``Linear(2, 3)``, ``LayerNorm(3)``), while the
        Hessian-vector products are right.

        Parameters
        ----------
        X, y : Tensor
            The batch.
        chunk_size : int, optional
            Unit vectors per batched product. Default: as many as fit in
            :data:`CHUNK_BYTES` (CPU) or :data:`CHUNK_BYTES_CUDA`, at ``2 S + 2 D`` bytes per
            vector for ``S`` bytes of tensors the batch's forward pass saves for backward.
            Peak memory beyond the result is ``O(chunk_size · (S + D))``.
        """
        self.check_second_order("the dense Hessian")
        order, saved_bytes = self._block_order(X, y)
        theta = self.flat_params()
        D = theta.numel()
        size = self._chunk_size(chunk_size, saved_bytes, theta)
        offsets = dict(zip(self.names, _starts(self.numels), strict=True))
        numels = dict(zip(self.names, self.numels, strict=True))
        tasks = [
            (i, start, min(start + size, numels[name]))
            for i, name in enumerate(order)
            for start in range(0, numels[name], size)
        ]
        H = torch.empty(D, D, dtype=theta.dtype, device=theta.device)
        params = self.params
        for i, start, stop in progress(tasks, total=len(tasks), desc="dense Hessian", min_total=8):
            block, wrt = order[i], order[i:]
            E = unit_vectors(numels[block], torch.arange(start, stop), theta.dtype, theta.device).T
            rows = self._hessian_rows(X, y, block, wrt, {q: params[q] for q in order[:i]}, E)
            first = offsets[block]
            for name, part in zip(wrt, rows.split([numels[q] for q in wrt], dim=1), strict=True):
                columns = slice(offsets[name], offsets[name] + numels[name])
                H[first + start : first + stop, columns] = part
                H[columns, first + start : first + stop] = part.T
        for name in order:  # a diagonal block's two triangles came from different chunks
            own = slice(offsets[name], offsets[name] + numels[name])
            H[own, own] = (H[own, own] + H[own, own].T) / 2
        return H

    @_explained("Hessian-vector products")
    def hessian_matvec(self, X: Tensor, y: Tensor, V: Tensor) -> Tensor:
        """``(∇²_θ Σ_n l_n) V`` for ``V`` of shape ``(D, k)``, forward-over-reverse, ``(D, k)``."""
        self.check_second_order("Hessian-vector products")
        gradient_fn = grad(lambda p: self.losses(p, X, y).sum())
        params = self.params

        def hvp(v: Params) -> Params:
            if self.forward_ad:
                return jvp(gradient_fn, (params,), (v,))[1]
            return vjp(gradient_fn, params)[1](v)[0]  # the Hessian is symmetric

        return self._over_columns(hvp, V)

    @_explained("the Hessian diagonal")
    def hessian_diag(self, X: Tensor, y: Tensor, chunk_size: int | None = None) -> Tensor:
        r"""Exact diagonal of the Hessian, ``(D,)``, from batched block Hessian-vector products.

        Entry :math:`j` of block :math:`p` is :math:`e_j^\top H_{pp} e_j`, from the product
        of the block's own Hessian :math:`H_{pp} = \partial_{\theta_p} \nabla_{\theta_p} L`
        (every other parameter a constant) with :math:`e_j`. ``chunk_size`` as in
        :meth:`hessian_dense`.
        """
        self.check_second_order("the Hessian diagonal")
        _, saved_bytes = self._block_order(X, y)
        theta = self.flat_params()
        size = self._chunk_size(chunk_size, saved_bytes, theta)
        params = self.params
        parts = []
        for block, numel in zip(self.names, self.numels, strict=True):
            constants = {q: params[q] for q in self.names if q != block}
            for start in range(0, numel, size):
                stop = min(start + size, numel)
                E = unit_vectors(numel, torch.arange(start, stop), theta.dtype, theta.device).T
                rows = self._hessian_rows(X, y, block, [block], constants, E)
                parts.append(torch.diagonal(rows[:, start:stop]))
        return torch.cat(parts)

    def _hessian_rows(
        self, X: Tensor, y: Tensor, block: str, wrt: list[str], constants: Params, E: Tensor
    ) -> Tensor:
        r"""Rows :math:`e_j^\top H_{block, wrt}`, ``(k, D_wrt)``, for unit rows ``E`` of ``block``.

        The Hessian is that of ``Σ_n l_n`` as a function of the parameters ``wrt`` (which
        include ``block``) with ``constants`` fixed; ``wrt`` is flattened in its order.
        Forward mode: ``jvp`` of :math:`\nabla_{wrt} L` with the tangent on ``block``
        alone; reverse mode: ``vjp`` of :math:`\nabla_{block} L` (the Hessian is symmetric).

        Some forward-mode formulas of torch fail when a layer's weight is a constant and its
        bias has a tangent (``Conv1d`` in float32 on the CPU: "a forward gradient that has a
        different size"); the rows then come from products with every parameter free.
        """
        try:
            return self._forward_or_reverse(
                lambda: self._block_rows(X, y, block, wrt, constants, E)
            )
        except RuntimeError:
            if not constants:
                raise
        every = [*wrt, *constants]
        rows = self._forward_or_reverse(lambda: self._block_rows(X, y, block, every, {}, E))
        params = self.params
        return rows[:, : sum(params[q].numel() for q in wrt)]

    def _block_rows(
        self, X: Tensor, y: Tensor, block: str, wrt: list[str], constants: Params, E: Tensor
    ) -> Tensor:
        """:meth:`_hessian_rows` in the current mode (forward or reverse), without retry."""
        params = self.params
        free = {q: params[q] for q in wrt}
        shape = params[block].shape

        def loss(tensors: Params) -> Tensor:
            return self.losses({**constants, **tensors}, X, y).sum()

        def flat(tensors: Params) -> Tensor:
            return torch.cat([tensors[q].reshape(-1) for q in wrt])

        if self.forward_ad:

            def gradient_of(value: Tensor) -> Tensor:
                return flat(grad(loss)({**free, block: value.view(shape)}))

            def column(e: Tensor) -> Tensor:
                return jvp(gradient_of, (free[block].reshape(-1),), (e,))[1]

            return vmap(column)(E)
        _, pullback = vjp(lambda tensors: grad(loss)(tensors)[block].reshape(-1), free)
        return vmap(lambda e: flat(pullback(e)[0]))(E)

    def _block_order(self, X: Tensor, y: Tensor) -> tuple[list[str], int]:
        """Parameter names from the farthest from the loss to the nearest; bytes saved.

        The distance is the longest path from the loss's ``grad_fn`` to the parameter's
        leaf node in the autograd graph of one forward pass (ties and unreached parameters
        keep the parameter order, unreached ones last); the bytes are those of the tensors
        that pass saves for backward.
        """
        leaves = {name: p.clone().requires_grad_() for name, p in self.params.items()}
        saved = 0

        def pack(tensor: Tensor) -> Tensor:
            nonlocal saved
            saved += tensor.numel() * tensor.element_size()
            return tensor

        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            root = self.losses(leaves, X, y).sum().grad_fn
        depth = _longest_paths(root)
        names = {id(leaf): name for name, leaf in leaves.items()}
        distance = dict.fromkeys(self.names, -1)
        for node, d in depth.items():
            variable = getattr(node, "variable", None)
            if variable is not None and id(variable) in names:
                distance[names[id(variable)]] = d
        return sorted(self.names, key=lambda name: -distance[name]), saved

    @staticmethod
    def _chunk_size(chunk_size: int | None, saved_bytes: int, theta: Tensor) -> int:
        if chunk_size is not None:
            if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
                raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
            return chunk_size
        budget = CHUNK_BYTES_CUDA if theta.device.type == "cuda" else CHUNK_BYTES
        per_column = 2 * saved_bytes + 2 * theta.numel() * theta.element_size()
        return max(1, min(theta.numel(), budget // per_column))

    @_explained("curvature-vector products")
    def sandwich_matvec(
        self, X: Tensor, inner: Tensor | Callable[[Tensor], Tensor], V: Tensor
    ) -> Tensor:
        """``Σ_n J_nᵀ M_n J_n V`` for ``M`` of shape ``(N, C, C)`` and ``V`` of shape ``(D, k)``.

        ``inner`` is ``M``, or a function of the outputs ``f`` ``(N, C)`` that returns it:
        then the forward pass of the pullback also gives ``f`` (no separate forward).
        """
        outputs = lambda p: self.outputs(p, X)  # noqa: E731
        params = self.params
        f, pullback = vjp(outputs, params)
        if callable(inner):
            inner = inner(f.detach())

        def product(v: Params) -> Params:
            Jv = self._jvp(outputs, params, v)
            return pullback(torch.einsum("nij,nj->ni", inner, Jv))[0]

        return self._over_columns(product, V)

    @_explained("empirical-Fisher-vector products")
    def gradient_outer_matvec(self, X: Tensor, y: Tensor, V: Tensor) -> Tensor:
        """``Σ_n g_n g_nᵀ V`` without per-sample gradients, ``V`` of shape ``(D, k)``."""
        losses = lambda p: self.losses(p, X, y)  # noqa: E731
        params = self.params
        _, pullback = vjp(losses, params)

        def product(v: Params) -> Params:
            return pullback(self._jvp(losses, params, v))[0]

        return self._over_columns(product, V)


def _starts(sizes: list[int]) -> list[int]:
    """Offsets of consecutive pieces of the given sizes."""
    starts, total = [], 0
    for size in sizes:
        starts.append(total)
        total += size
    return starts


def _longest_paths(root: Any) -> dict[Any, int]:
    """Longest path from ``root`` to every node of an autograd graph (a DAG), in edges."""
    if root is None:
        return {}
    order, seen, stack = [], {root}, [(root, iter(_children(root)))]
    while stack:
        node, children = stack[-1]
        child = next(children, None)
        if child is None:
            order.append(node)
            stack.pop()
        elif child not in seen:
            seen.add(child)
            stack.append((child, iter(_children(child))))
    depth = dict.fromkeys(order, 0)
    for node in reversed(order):  # topological: every node before its children
        for child in _children(node):
            depth[child] = max(depth[child], depth[node] + 1)
    return depth


def _children(node: Any) -> list[Any]:
    return [child for child, _ in node.next_functions if child is not None]
