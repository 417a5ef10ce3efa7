r"""``Problem``: a model, a likelihood and data — the one owner of the data loop and scaling.

Every quantity of :class:`fisherlab.Curvature` is a reduction over the samples of a
:class:`Problem`: its :meth:`Problem.batches` validate and yield the data, its
:meth:`Problem.batch_sum` adds a batch function over the data (and over the ranks under
:mod:`torch.distributed`), and its :attr:`Problem.scaling` (:class:`fisherlab.scaling.Scaling`)
holds :math:`N`, the reduction factor :math:`c`, the second-moment factor :math:`a` and the
unbiased correction. Nothing else iterates over the data or derives these factors.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, default_collate

from fisherlab import distributed as fl_distributed
from fisherlab.engine.functional import RANDOM_MESSAGE, FunctionalModel
from fisherlab.likelihoods import Likelihood
from fisherlab.scaling import Scaling
from fisherlab.validation import check_batch, check_likelihood, check_model, check_reduction

__all__ = ["Batch", "BatchFunction", "Problem"]

Batch = tuple[Tensor, Tensor]
BatchFunction = Callable[[FunctionalModel, Tensor, Tensor], Tensor]
ENGINES = ("auto", "generic", "hooks")


class Problem:
    """A model under a likelihood on data: the data loop, ``N`` and the reduction.

    Parameters are those of :class:`fisherlab.Curvature`, which adds the quantities.
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
        if engine not in ENGINES:
            raise ValueError(f"engine must be 'auto', 'generic' or 'hooks', got {engine!r}")
        self.model = model
        self.likelihood = likelihood
        self.reduction = reduction
        self._calling = ""
        self._validated: tuple[list[Tensor], tuple[Any, ...]] | None = None
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

    def _validation_key(self) -> tuple[Any, ...] | None:
        """What a checked pass over tensor data depends on besides the parameter values.

        ``None`` for loaders, which are checked on every pass.
        """
        if not isinstance(self._data, Tensor):
            return None
        return (
            tuple(id(p) for p in self.model.parameters()),
            tuple((id(b), b._version) for b in self.model.buffers()),
            tuple(m.training for m in self.model.modules()),
            tuple((id(t), t._version) for t in (self._data, self._targets)),
        )

    def _is_validated(self) -> bool:
        """Whether a pass at the same data, parameter values, buffers and modes was checked.

        Its model checks and its forward of every batch would only repeat.
        """
        if self._validated is None:
            return False
        snapshot, key = self._validated
        return key == self._validation_key() and self.functional_model.unchanged(snapshot)

    def batches(self) -> Iterator[Batch]:
        """Validated batches ``(X, y)`` with targets in the likelihood's per-sample format.

        Tensor data is checked by a forward of each batch on the first pass; later passes at
        the same parameters, buffers, modes and data skip that forward (products, solves).
        To compare the parameter values exactly, the problem keeps one copy of them (the
        size of the model's trainable parameters).
        """
        if self._is_validated():
            for X, y in self._raw_batches():
                yield X, self.likelihood.flatten_targets(y)
            return
        check_model(self.model)
        key = self._validation_key()
        snapshot = self.functional_model.snapshot() if key is not None else None
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
        self._validated = None if key is None else (snapshot, key)

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
    @property
    def scaling(self) -> Scaling:
        """The reduction factors ``c``, ``a`` and ``u`` of this problem's ``N`` samples."""
        return Scaling(self.reduction, self.num_samples)

    def normalize(self, total: Tensor) -> Tensor:
        """Apply the reduction to a sum over samples: ``total / N`` (mean) or ``total``."""
        return self.scaling.normalize(total)

    def second_moment_scale(self) -> float:
        """Deprecated: ``scaling.a``."""
        warnings.warn(
            "second_moment_scale() is deprecated; use .scaling.a", DeprecationWarning, stacklevel=2
        )
        return self.scaling.a

    def covariance_scale(self, spec: Any) -> float:
        """Deprecated: ``scaling.unbiased_factor(spec.unbiased)``."""
        warnings.warn(
            "covariance_scale(spec) is deprecated; use .scaling.unbiased_factor(unbiased)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.scaling.unbiased_factor(spec.unbiased)

    @property
    def num_params(self) -> int:
        """``D``, the number of trainable parameters."""
        return self.functional_model.num_params


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
