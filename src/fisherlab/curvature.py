r"""``Curvature``: every gradient, noise and curvature quantity of a model on a data set.

Conventions (DESIGN.md). Per-sample loss :math:`l_n(\theta) = -\log p(y_n | f(x_n;\theta))`,
objective :math:`L = \frac1N \sum_n l_n` (``reduction="mean"``) or :math:`\sum_n l_n`
(``"sum"``); :math:`g_n = \nabla l_n`. With :math:`c = 1/N` (mean) or :math:`c = 1` (sum):

- ``gradient``          :math:`\nabla L = c \sum_n g_n`
- ``empirical_fisher``  :math:`c \sum_n g_n g_n^\top` (Kunstner et al. Eq. 3, scaled)
- ``fisher``            :math:`c \sum_n J_n^\top \Lambda(f_n) J_n` (Eq. 2 / Prop. 1)
- ``ggn``               :math:`c \sum_n J_n^\top \nabla^2_f l_n J_n` (Eq. 10)
- ``hessian``           :math:`\nabla^2 L`
- ``covariance``        :math:`\Sigma`, the covariance of the one-sample gradient estimate of
  :math:`\nabla L` (:math:`g_n` for mean, :math:`N g_n` for sum):
  :math:`\Sigma = \frac1N\sum_n g_n g_n^\top - \nabla L \nabla L^\top` (mean; Balles Eq. 3.29,
  ``EF = Σ + ∇L∇Lᵀ``) and :math:`\Sigma = N \sum_n g_n g_n^\top - \nabla L \nabla L^\top`
  (sum; Kunstner et al. Eq. 18, :math:`N\tilde F = \Sigma + \nabla L\nabla L^\top`).
  ``unbiased=True`` multiplies by :math:`N/(N-1)`.
- ``variance``          :math:`\mathrm{diag}(\Sigma)`.

Each curvature method takes ``form=`` (see :mod:`fisherlab.representations`): ``"dense"``
``(D, D)``, ``"diag"`` ``(D,)``, ``"operator"`` (matrix-free), and forms registered later.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, default_collate

from fisherlab import distributed as fl_distributed
from fisherlab.engine.functional import RANDOM_MESSAGE, FunctionalModel
from fisherlab.likelihoods import Likelihood
from fisherlab.quantities import Quantity, QuantitySpec
from fisherlab.representations import Form, build
from fisherlab.validation import (
    check_batch,
    check_likelihood,
    check_mc_samples,
    check_memory,
    check_model,
    check_reduction,
)

__all__ = ["Curvature"]

Batch = tuple[Tensor, Tensor]
BatchFunction = Callable[[FunctionalModel, Tensor, Tensor], Tensor]
Method = TypeVar("Method", bound=Callable[..., Any])


def _names_collectives(name: str) -> Callable[[Method], Method]:
    """Name the collective calls a method makes (in errors when ranks disagree)."""

    def decorate(method: Method) -> Method:
        @functools.wraps(method)
        def wrapper(self: Curvature, *args: Any, **kwargs: Any) -> Any:
            outer, self._calling = self._calling, name if self._calling == "" else self._calling
            try:
                return method(self, *args, **kwargs)
            finally:
                self._calling = outer

        return wrapper  # type: ignore[return-value]

    return decorate


class Curvature:
    """Gradient, noise and curvature quantities of ``model`` under ``likelihood`` on data.

    Parameters
    ----------
    model : torch.nn.Module
        Any model of differentiable torch modules, in evaluation mode if it has BatchNorm.
        Parameters with ``requires_grad=False`` are held fixed.
    likelihood : Likelihood
        E.g. ``fisherlab.likelihoods.Categorical()`` or ``from_loss(torch.nn.MSELoss())``.
    X : Tensor or DataLoader
        Inputs ``(N, ...)``, or a ``DataLoader`` (or any iterable) of ``(inputs, targets)``
        batches, in which case ``y`` is omitted. Results over batches equal those of one
        big batch.
    y : Tensor, optional
        Targets: class indices ``(N,)`` for ``Categorical``, values shaped like the outputs
        for ``Gaussian`` and ``Bernoulli``.
    reduction : {"mean", "sum"} or None
        ``L = (1/N) Σ l_n`` or ``Σ l_n``. ``None`` takes the likelihood's reduction when it
        was built by :func:`fisherlab.likelihoods.from_loss`, and ``"mean"`` otherwise.
    batch_size : int or None
        For tensor data, process this many samples at a time (bounds memory).
    distributed : bool or None
        Sum the quantities over the ranks of the default :mod:`torch.distributed` group,
        each holding a shard of the data (see :mod:`fisherlab.distributed`). ``None``:
        whenever a group is initialised — then every rank must construct the object and
        call the same methods (collective operations); pass ``distributed=False`` for a
        quantity of one rank's data alone.
    engine : {"auto", "generic", "hooks"}
        How diagonals (``form="diag"`` of the EF, Fisher, MC Fisher, GGN, variance) are
        computed: ``"hooks"`` by the fast per-layer engine (:mod:`fisherlab.engine.hooks`;
        an error if it does not cover the model), ``"generic"`` by :mod:`torch.func`,
        ``"auto"`` by the fast engine whenever it covers the model. Both give the same
        numbers; everything else always uses the generic engine.
    max_bytes : int or None
        Memory guard: a dense ``(D, D)`` result or ``(N, D)`` per-sample gradients above
        this many bytes are refused with a ``MemoryError`` that gives the estimate and the
        cheaper forms. Default :func:`fisherlab.validation.memory_limit` (half the available
        memory, or ``$FISHERLAB_MAX_BYTES``).

    Examples
    --------
    >>> import torch, fisherlab as fl
    >>> model = torch.nn.Linear(3, 2).double()
    >>> X, y = torch.randn(8, 3, dtype=torch.float64), torch.randint(0, 2, (8,))
    >>> c = fl.Curvature(model, fl.likelihoods.Categorical(), X, y)
    >>> c.fisher(form="dense").shape
    torch.Size([8, 8])
    """

    def __init__(
        self,
        model: torch.nn.Module,
        likelihood: Likelihood,
        X: Tensor | Iterable[Batch],
        y: Tensor | None = None,
        reduction: str | None = None,
        batch_size: int | None = None,
        distributed: bool | None = None,
        engine: str = "auto",
        max_bytes: int | None = None,
    ) -> None:
        check_model(model)
        if max_bytes is not None and (
            isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1
        ):
            raise ValueError(f"max_bytes must be a positive integer or None, got {max_bytes!r}")
        self.max_bytes = max_bytes
        check_likelihood(likelihood)
        if reduction is None:
            reduction = likelihood.reduction or "mean"
        check_reduction(reduction)
        if likelihood.reduction is not None and reduction != likelihood.reduction:
            raise ValueError(
                f"reduction={reduction!r} contradicts the loss the likelihood was built from "
                f"(reduction={likelihood.reduction!r})"
            )
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if engine not in ("auto", "generic", "hooks"):
            raise ValueError(f"engine must be 'auto', 'generic' or 'hooks', got {engine!r}")
        self.model = model
        self.likelihood = likelihood
        self.reduction = reduction
        self._calling = ""
        self.diagonal_engine = "generic"
        if engine != "generic":
            from fisherlab.engine.hooks.diagonals import unsupported_reason

            reason = unsupported_reason(model, likelihood)
            if reason is not None and engine == "hooks":
                raise NotImplementedError(f"the fast engine does not cover this model: {reason}")
            self.diagonal_engine = "hooks" if reason is None else "generic"
        self.functional_model = FunctionalModel(model, likelihood)
        if distributed is None:
            distributed = fl_distributed.is_active()
        if distributed and not fl_distributed.is_active():
            raise ValueError("distributed=True needs an initialised torch.distributed group")
        self.distributed = bool(distributed)
        if isinstance(X, Tensor):
            if not isinstance(y, Tensor):
                raise TypeError("targets y must be a torch.Tensor when X is a tensor")
            # under torch.distributed one rank's shard may be empty (it contributes zeros)
            if not (self.distributed and X.ndim > 0 and X.shape[0] == 0 == y.shape[0]):
                check_batch(X, y)
            self._data: Tensor | Iterable[Batch] = X
            self._targets = y
            self._batch_size = batch_size or max(X.shape[0], 1)
            self.num_samples = X.shape[0]
        else:
            if y is not None:
                raise ValueError("pass y only with tensor inputs; a DataLoader yields (X, y)")
            if not isinstance(X, Iterable):
                raise TypeError(f"X must be a tensor or a DataLoader, got {type(X).__name__}")
            self._data = X
            self.num_samples = self._count_samples(X)
        if self.distributed:
            device = next(iter(self.functional_model.params.values())).device
            self.num_samples = fl_distributed.all_reduce_count(self.num_samples, device=device)
        if self.num_samples == 0:
            raise ValueError("data is empty: the data loader yields no samples")

    # -- data ---------------------------------------------------------------------------
    @staticmethod
    def _count_samples(loader: Iterable[Batch]) -> int:
        # A default batch sampler without drop_last yields every index of its sampler once;
        # the sampler (not the dataset) decides which samples are used (e.g. a subset).
        # A collate_fn other than the default one may drop samples: count the batches then.
        if (
            isinstance(loader, DataLoader)
            and type(loader.batch_sampler) is BatchSampler
            and not loader.drop_last
            and loader.collate_fn is default_collate
        ):
            try:
                return len(loader.batch_sampler.sampler)  # type: ignore[arg-type]
            except TypeError:
                pass
        return sum(_unpack(batch)[0].shape[0] for batch in loader)

    def _raw_batches(self) -> Iterator[Batch]:
        if isinstance(self._data, Tensor):
            for start in range(0, self._data.shape[0], self._batch_size):
                stop = start + self._batch_size
                yield self._data[start:stop], self._targets[start:stop]
        else:
            for batch in self._data:
                yield _unpack(batch)

    def batches(self) -> Iterator[Batch]:
        """Validated batches ``(X, y)`` with targets in the likelihood's per-sample format."""
        check_model(self.model)
        dtype = self.functional_model.flat_params().dtype
        seen = 0
        for X, y in self._raw_batches():
            check_batch(X, y)
            if torch.is_floating_point(X) and X.dtype != dtype:
                raise ValueError(
                    f"input dtype {X.dtype} differs from the parameters' dtype {dtype}; "
                    f"convert the data (X.to({dtype})) or the model"
                )
            y = self.likelihood.flatten_targets(y)
            f = self._checked_outputs(X)
            self.likelihood.check_outputs(f)
            self.likelihood.check_targets(f, y)
            seen += X.shape[0]
            yield X, y
        if not self.distributed and seen != self.num_samples:
            raise ValueError(
                f"the data yielded {seen} samples, but N = {self.num_samples} was counted "
                "when the Curvature object was built: the data must yield the same samples "
                "on every pass (a collate_fn that drops samples, or a loader that changed)"
            )

    def _checked_outputs(self, X: Tensor) -> Tensor:
        """Model outputs ``(N, C)`` of a batch; refuse random models and mis-typed inputs."""
        fm = self.functional_model
        state = _rng_state(X.device)
        try:
            with torch.no_grad():
                out = fm.model(X)
        except RuntimeError as error:
            if not torch.is_floating_point(X):
                raise TypeError(
                    f"inputs X have dtype {X.dtype} and the model failed on them ({error}); "
                    "a model of floating-point layers needs floating-point inputs: "
                    f"X.to({fm.flat_params().dtype})"
                ) from error
            raise
        if not torch.equal(state, _rng_state(X.device)):
            raise ValueError(
                "the model calls a random operation (functional dropout, attention dropout "
                f"in training mode, ...): {RANDOM_MESSAGE}"
            )
        if not isinstance(out, Tensor):
            raise TypeError(
                f"the model returns a {type(out).__name__}: fisherlab needs a model whose "
                "forward returns one tensor of outputs (N, ...)"
            )
        if out.ndim == 0 or out.shape[0] != X.shape[0]:
            raise ValueError(
                f"the model output has shape {tuple(out.shape)} for {X.shape[0]} inputs: its "
                f"first dimension must be the number of samples N = {X.shape[0]}"
            )
        return out.reshape(X.shape[0], -1)

    def batch_sum(self, fn: BatchFunction) -> Tensor:
        """``Σ_batches fn(functional_model, X, y)``, summed over ranks when distributed."""
        total: Tensor | None = None
        for X, y in self.batches():
            value = fn(self.functional_model, X, y)
            total = value if total is None else total + value
        if self.distributed:  # the call's signature is agreed first; an empty shard adds 0
            label = f"{self._calling or 'product'} ({getattr(fn, '__qualname__', 'sum')})"
            device = self.functional_model.flat_params().device
            total = fl_distributed.all_reduce_sum(total, label, device)
        assert total is not None  # non-empty (global) data is checked in __init__
        return total

    # -- scaling ------------------------------------------------------------------------
    def normalize(self, total: Tensor) -> Tensor:
        """Apply the reduction to a sum over samples: ``total / N`` (mean) or ``total``."""
        return total / self.num_samples if self.reduction == "mean" else total

    def second_moment_scale(self) -> float:
        """``a`` in ``Σ = a Σ_n g_n g_nᵀ − ∇L∇Lᵀ``: ``1/N`` (mean) or ``N`` (sum)."""
        n = self.num_samples
        return 1.0 / n if self.reduction == "mean" else float(n)

    def covariance_scale(self, spec: QuantitySpec) -> float:
        """``N/(N − 1)`` for the unbiased covariance estimate, else 1."""
        if not spec.unbiased:
            return 1.0
        if self.num_samples < 2:
            raise ValueError("the unbiased covariance estimate needs at least 2 samples")
        return self.num_samples / (self.num_samples - 1)

    @property
    def num_params(self) -> int:
        """``D``, the number of trainable parameters."""
        return self.functional_model.num_params

    # -- first order ------------------------------------------------------------------
    @_names_collectives("loss")
    def loss(self) -> Tensor:
        """The objective ``L`` (a scalar tensor)."""
        return self.normalize(self.batch_sum(lambda fm, X, y: fm.loss_sum(X, y)))

    def per_sample_losses(self) -> Tensor:
        """``l_n`` for every sample, ``(N,)``."""
        fm = self.functional_model
        with torch.no_grad():
            losses = [fm.losses(fm.params, X, y) for X, y in self.batches()]
        if not losses:  # an empty shard of a distributed data set
            return fm.flat_params().new_zeros(0)
        return torch.cat(losses)

    @_names_collectives("gradient")
    def gradient(self) -> Tensor:
        """``∇L``, shape ``(D,)``."""
        return self.normalize(self.batch_sum(lambda fm, X, y: fm.gradient(X, y)))

    def per_sample_gradients(self) -> Tensor:
        """``g_n = ∇l_n`` for every sample, ``(N, D)``; they average (mean) or sum to ``∇L``."""
        fm = self.functional_model
        check_memory(
            self.num_samples * self.num_params,
            fm.flat_params().dtype,
            f"per-sample gradients (N, D) = ({self.num_samples}, {self.num_params})",
            "variance(form='diag'), empirical_fisher(form='diag') or form='operator', or "
            "the statistics of fisherlab.engine.hooks without per-sample gradients",
            self.max_bytes,
            fm.flat_params().device,
        )
        grads = [fm.per_sample_gradients(X, y) for X, y in self.batches()]
        if not grads:  # an empty shard of a distributed data set
            return fm.flat_params().new_zeros(0, self.num_params)
        return torch.cat(grads)

    # -- quantities in a form ---------------------------------------------------------
    def _represent(self, form: str | Form, spec: QuantitySpec) -> Any:
        return build(self, form, spec)

    @_names_collectives("empirical_fisher")
    def empirical_fisher(self, form: str = "dense") -> Any:
        """Empirical Fisher ``c Σ_n g_n g_nᵀ`` (Kunstner et al. Eq. 3) in ``form``."""
        return self._represent(form, QuantitySpec(Quantity.EMPIRICAL_FISHER))

    @_names_collectives("fisher")
    def fisher(
        self,
        form: str = "dense",
        mc_samples: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Any:
        """Fisher ``c Σ_n J_nᵀ Λ(f_n) J_n`` in ``form`` (Kunstner et al. Eq. 2).

        Exact by default. With ``mc_samples=S``, the Monte-Carlo estimate
        ``c Σ_n (1/S) Σ_s ĝ_{s,n} ĝ_{s,n}ᵀ`` with gradients ``ĝ`` of sampled labels
        ``ŷ_{s,n} ~ p(·|f_n)`` drawn from ``generator``.
        """
        check_mc_samples(mc_samples)
        if mc_samples is None:
            if generator is not None:
                raise ValueError(
                    "a generator only affects the Monte-Carlo Fisher: pass mc_samples as well"
                )
            return self._represent(form, QuantitySpec(Quantity.FISHER))
        spec = QuantitySpec(Quantity.FISHER_MC, mc_samples=mc_samples, generator=generator)
        return self._represent(form, spec)

    @_names_collectives("ggn")
    def ggn(self, form: str = "dense") -> Any:
        """Generalized Gauss-Newton ``c Σ_n J_nᵀ ∇²_f l_n J_n`` (Kunstner et al. Eq. 10)."""
        return self._represent(form, QuantitySpec(Quantity.GGN))

    @_names_collectives("hessian")
    def hessian(self, form: str = "dense") -> Any:
        """Hessian ``∇²L`` in ``form`` (the diagonal is exact, from Hessian-vector products)."""
        return self._represent(form, QuantitySpec(Quantity.HESSIAN))

    @_names_collectives("covariance")
    def covariance(self, form: str = "dense", unbiased: bool = False) -> Any:
        """Gradient covariance ``Σ`` (see the module docstring for the scaling)."""
        return self._represent(form, QuantitySpec(Quantity.COVARIANCE, unbiased=unbiased))

    @_names_collectives("variance")
    def variance(self, form: str = "diag", unbiased: bool = False) -> Any:
        """Gradient variance ``diag(Σ)``: ``(D,)`` for ``form="diag"``."""
        return self._represent(form, QuantitySpec(Quantity.VARIANCE, unbiased=unbiased))


def _rng_state(device: torch.device) -> Tensor:
    """The state of the random generator a model on ``device`` draws from."""
    if device.type == "cuda":
        return torch.cuda.get_rng_state(device)
    return torch.random.get_rng_state()


def _unpack(batch: Any) -> Batch:
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise TypeError(
        f"each batch of the data loader must be a pair (inputs, targets), got "
        f"{type(batch).__name__}"
    )
