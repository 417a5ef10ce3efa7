r"""Statistics collected during an ordinary ``loss.backward()``.

>>> import torch, fisherlab as fl
>>> model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
>>> X, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
>>> lik = fl.likelihoods.Categorical()
>>> with fl.engine.hooks.collect(model, lik, statistics=("gradient", "variance")) as stats:
...     loss = torch.nn.functional.cross_entropy(model(X), y)
...     loss.backward()
>>> stats.flat("variance").shape
torch.Size([23])

Scaling (DESIGN.md conventions). The loss must be :math:`L = c\sum_n l_n` with
:math:`c = 1/N` (``reduction="mean"``) or :math:`c = 1` (``"sum"``) and :math:`l_n` the
likelihood's per-sample loss of the model output. With :math:`g_n = \nabla l_n`:

======================  ==========================================================================
statistic               value per parameter
======================  ==========================================================================
``gradient``            :math:`\nabla L = c \sum_n g_n`
``second_moment``       :math:`c \sum_n g_n^{\odot 2}` (the empirical Fisher's diagonal)
``variance``            :math:`a \sum_n g_n^{\odot 2} - (\nabla L)^{\odot 2}`,
                        :math:`a = 1/N` (mean) or :math:`N` (sum): :math:`\mathrm{diag}(\Sigma)`
``l2_norm``             :math:`\|g_n\|_2` per sample, ``(N,)`` (per parameter, and in total)
``per_sample_gradients`` :math:`g_n`, ``(N, *shape)``
``fisher_mc_diag``      :math:`\frac{c}{S}\sum_n\sum_s (J_n^\top q_{s,n})^{\odot 2}`, sampled labels
``ggn_diag``            :math:`c \sum_n \sum_k (J_n^\top S_{n,:k})^{\odot 2}`,
                        :math:`S_n S_n^\top = \Lambda(f_n) = \nabla_f^2 l_n` (exact Fisher = GGN)
``kfac``                Kronecker factors from sampled labels (Linear and convolution layers)
``kflr``                the same with the exact factor :math:`S_n` (Fisher = GGN)
``kfac_ef``             the same with the true-label gradient (empirical Fisher)
======================  ==========================================================================

Kronecker factors. For a Linear or convolution layer with augmented weight
:math:`[W, \beta]`, :func:`fisherlab.engine.kronecker.kron_factors` turns the unfolded inputs
:math:`\bar a_{n,t}` and the columns :math:`g_{nk,t}` backpropagated to the layer output
into :math:`(A, G)`, K-FAC-expand (default) or K-FAC-reduce (``kfac_approx``; Eschenhagen
et al. 2023), with :math:`G` scaled by :math:`c` (and :math:`1/S` for ``kfac``).
:meth:`Collector.kfac` returns them as the :class:`~fisherlab.representations.kfac.KFAC`
that ``Curvature(...).fisher/ggn/empirical_fisher(form="kfac")`` builds on the same batch.
``collector[stat]`` splits the same factors per parameter: ``(G, A_W)`` for a weight
(``A`` without the bias row and column) and ``(G,)`` for a bias. BackPACK's KFAC/KFLR of
a weight-shared layer with :math:`T` positions is the mix :math:`(G_\text{reduce},
T\cdot A_{W,\text{expand}})`; for :math:`T = 1` all of them coincide. With
``kfac_eigenbases`` (layer name → :math:`(Q_A, Q_G)`) the collector also forms EK-FAC's
eigenvalues in that basis (:meth:`Collector.eigenvalue_corrections`).

How. Forward hooks keep each supported layer's input; a tensor hook on the layer output
receives the output gradient during the backward pass, and the layer's closed forms
(:mod:`fisherlab.engine.hooks.linear`, ``conv``, ``embedding``, ``norm``) turn input and
output gradient into the statistics without per-sample gradients where possible. For the
curvature statistics a hook on the model output backpropagates the columns of
:math:`S_n` (exact) and of the sampled output gradients :math:`q_{s,n}` (Monte Carlo) to
every layer output (one backward pass per column) before the ordinary backward continues.
Models with parameterised modules that have no closed form here, parameters used more
than once, or layers called more than once get a warning and the generic
:mod:`torch.func` engine (:class:`fisherlab.engine.functional.FunctionalModel`).

Across processes. Under :mod:`torch.distributed` (an initialised group, ``distributed``
not ``False``) the ranks' sums are added at the end of every synchronising backward pass
(:mod:`fisherlab.engine.hooks.reduction`), so every rank holds the statistics of the global
batch with :math:`N` the *global* number of samples in :math:`c = 1/N` and in the variance's
:math:`a`. The rank-:math:`r` loss is taken to be :math:`c_r \sum_{n \in r} l_n` with
:math:`c_r = 1/N_r` (its own mean) or :math:`1`, or whatever :meth:`Collector.loss` returned.
DDP averages the ranks' gradients, :math:`\frac1R \sum_r \nabla L_r`, which is the global
mean only for equal shards: the collector weights by :math:`N_r` instead, and
:meth:`Collector.loss` on a DDP-wrapped model returns :math:`\frac{R}{N}\sum_{n\in r} l_n`
so that DDP's average is the global gradient for uneven shards too; the collector then
takes the gradient from DDP's ``p.grad`` instead of summing it again. Backward passes inside
``no_sync()`` are accumulated and summed with the next synchronising pass. Per-sample
results stay on their rank (:meth:`Collector.gather` concatenates them).
"""

from __future__ import annotations

import math
import warnings
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import torch
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from torch.nn.utils import parametrize
from torch.utils.hooks import RemovableHandle

from fisherlab import distributed as fl_distributed
from fisherlab.engine.functional import FunctionalModel
from fisherlab.engine.hooks.base import LayerRule, squares_and_norms_of
from fisherlab.engine.hooks.conv import ConvRule
from fisherlab.engine.hooks.embedding import EmbeddingRule
from fisherlab.engine.hooks.linear import LinearRule
from fisherlab.engine.hooks.norm import BatchNormRule, LayerNormRule
from fisherlab.engine.hooks.reduction import all_reduce_sums, gather_rows, kron_shapes
from fisherlab.engine.kronecker import (
    check_approx,
    eigenbasis_squares,
    kron_factors,
    layer_blocks,
)
from fisherlab.likelihoods import Likelihood
from fisherlab.quantities import Quantity, QuantitySpec, output_factor
from fisherlab.representations.kfac import KFAC
from fisherlab.scaling import Scaling
from fisherlab.validation import (
    check_all_finite,
    check_finite,
    check_likelihood,
    check_mc_samples,
    check_memory,
    check_normalization,
    check_reduction,
)

__all__ = [
    "Statistic",
    "DIAGONAL_OF",
    "KRONECKER_OF",
    "FIRST_ORDER",
    "Collector",
    "collect",
    "compute",
    "FallbackWarning",
    "RULES",
]


class Statistic(str, Enum):
    """Statistics the collector computes (see the module docstring for their scaling)."""

    GRADIENT = "gradient"
    SECOND_MOMENT = "second_moment"
    VARIANCE = "variance"
    L2_NORM = "l2_norm"
    PER_SAMPLE_GRADIENTS = "per_sample_gradients"
    FISHER_MC_DIAG = "fisher_mc_diag"
    GGN_DIAG = "ggn_diag"
    KFAC = "kfac"
    KFLR = "kflr"
    KFAC_EF = "kfac_ef"


#: the statistic that holds the diagonal of each quantity (the Fisher's is the GGN's)
DIAGONAL_OF: dict[Quantity, Statistic] = {
    Quantity.EMPIRICAL_FISHER: Statistic.SECOND_MOMENT,
    Quantity.FISHER: Statistic.GGN_DIAG,
    Quantity.GGN: Statistic.GGN_DIAG,
    Quantity.FISHER_MC: Statistic.FISHER_MC_DIAG,
}

#: the statistic that holds the Kronecker factors of each quantity
KRONECKER_OF: dict[Quantity, Statistic] = {
    Quantity.EMPIRICAL_FISHER: Statistic.KFAC_EF,
    Quantity.FISHER: Statistic.KFLR,
    Quantity.GGN: Statistic.KFLR,
    Quantity.FISHER_MC: Statistic.KFAC,
}

#: gradient, second moment, variance and per-sample gradient norms
FIRST_ORDER: tuple[Statistic, ...] = (
    Statistic.GRADIENT,
    Statistic.SECOND_MOMENT,
    Statistic.VARIANCE,
    Statistic.L2_NORM,
)

#: the layer rules, tried in order; a module is handled by the rule listing its exact type
RULES: tuple[LayerRule, ...] = (
    LinearRule(),
    ConvRule(),
    EmbeddingRule(),
    LayerNormRule(),
    BatchNormRule(),
)

_SQUARES = (Statistic.SECOND_MOMENT, Statistic.VARIANCE)
_MC = (Statistic.FISHER_MC_DIAG, Statistic.KFAC)
_EXACT = (Statistic.GGN_DIAG, Statistic.KFLR)
_KRON = (Statistic.KFAC, Statistic.KFLR, Statistic.KFAC_EF)
#: the diagonal and the Kronecker statistic served by each kind of backpropagated column
_DIAG_OF_KIND = {"mc": Statistic.FISHER_MC_DIAG, "exact": Statistic.GGN_DIAG}
_KRON_OF_KIND = {"mc": Statistic.KFAC, "exact": Statistic.KFLR}


class FallbackWarning(UserWarning):
    """The fast path does not cover the model; the generic engine computes the statistics."""


def rule_for(module: torch.nn.Module) -> LayerRule | None:
    """Return the rule whose types contain ``type(module)`` exactly (not subclasses)."""
    for rule in RULES:
        if type(module) in rule.types:
            return rule
    return None


@dataclass(eq=False)
class _Record:
    """One call of a supported layer in a forward pass."""

    module: torch.nn.Module
    rule: LayerRule
    inp: Tensor | None
    output: Tensor | None
    columns: dict[str, list[Tensor]] = field(default_factory=dict)
    #: per column kind, squared sums already reduced from streamed columns
    squares: dict[str, dict[str, Tensor]] = field(default_factory=dict)
    #: the rule's context of ``inp`` (prepared once per backward pass)
    ctx: Any = None

    def add_squares(self, kind: str, column: Tensor) -> None:
        """Add the squared per-sample gradients of one backpropagated column."""
        sums = self.squares.setdefault(kind, {})
        for name, value in self.rule.sum_squares(self.module, self.context(), column[None]).items():
            sums[name] = sums[name] + value if name in sums else value

    def context(self) -> Any:
        """The rule's context of the layer input, prepared on first use."""
        if self.ctx is None:
            assert self.inp is not None
            self.ctx = self.rule.prepare(self.module, self.inp)
        return self.ctx


@dataclass(eq=False)
class _Pass:
    """One forward pass through the model with autograd on, kept until its backward ends.

    Each forward owns its layer records, so a second forward (a metric on another batch)
    between a training forward and its ``backward()`` does not replace the first one's
    state. :meth:`release` drops every tensor reference; the collector calls it when the
    pass's backward ends and when the hooks are removed, so the graph can be freed (the
    tensor hooks are owned by the autograd graph, a cycle Python's collector cannot see).
    """

    inp: Tensor | None
    num_samples: int | None
    records: dict[torch.nn.Module, _Record] = field(default_factory=dict)
    calls: dict[torch.nn.Module, int] = field(default_factory=dict)
    output: Tensor | None = None
    fast: bool = True
    sync: bool = True
    started: bool = False
    columns_done: bool = False
    released: bool = False
    loss_scale: float | None = None
    loss_sum: Tensor | None = None

    def release(self) -> None:
        """Forget inputs, outputs and output-gradient columns."""
        self.released = True
        for record in self.records.values():
            record.inp = None
            record.output = None
            record.columns.clear()
        self.records.clear()
        self.calls.clear()
        self.inp = None
        self.output = None


def _rows(t: Tensor) -> Tensor:
    """``t`` as ``(N, -1)``, also for ``N = 0`` (an empty shard)."""
    return t.reshape(t.shape[0], math.prod(t.shape[1:]))


def _queue_end_of_backward(callback: Any) -> None:
    """Run ``callback`` once the current backward pass has finished (all hooks ran)."""
    torch.autograd.Variable._execution_engine.queue_callback(callback)


class Collector:
    """Hooks that compute gradient and curvature statistics during ``loss.backward()``.

    Use it as a context manager (hooks are removed on exit; results stay readable), see
    :func:`collect`. Each backward pass through the model replaces the previous results;
    the statistics belong to the forward pass that the backward goes through. When the
    backward ends (or the block is left) the collector keeps no reference to the forward
    pass's inputs, outputs or graph.

    Parameters
    ----------
    model : torch.nn.Module
        The model; BatchNorm layers must be in evaluation mode with running statistics.
    likelihood : Likelihood
        The likelihood whose per-sample loss the training loss sums or averages.
    statistics : iterable of Statistic or str
        What to compute; default :data:`FIRST_ORDER`.
    reduction : {"mean", "sum"} or None
        The training loss's reduction over samples (default: the likelihood's, else mean).
    mc_samples : int
        Sampled labels per input for ``fisher_mc_diag`` and ``kfac``.
    generator : torch.Generator or None
        Source of the sampled labels; they are drawn as
        ``likelihood.sampled_output_gradient(f, mc_samples, generator)`` on the batch
        outputs, exactly as the generic engine does.
    reuse_buffers : bool
        Write per-sample gradients into buffers kept from one backward pass to the next
        (Linear layers), so the next pass overwrites the previous per-sample gradients.
        Large fresh allocations cost page faults on every pass; reusing them is several
        times faster for wide layers.
    max_bytes : int or None
        Refuse per-sample gradients whose ``(N, D)`` storage would exceed this many bytes
        (default: :func:`fisherlab.validation.memory_limit`).
    distributed : bool or None
        Sum the statistics over the ranks of the default :mod:`torch.distributed` group at
        the end of every synchronising backward pass, so that every rank holds the values
        of the global batch, weighted by the ranks' sample counts
        (:mod:`fisherlab.engine.hooks.reduction`). ``None``: whenever a group is
        initialised; ``False``: keep this rank's values. Every rank must then run the same
        backward passes. Under a ``DistributedDataParallel`` wrapper (pass the wrapper as
        ``model``), a backward pass inside ``model.no_sync()`` communicates nothing: its
        sums are kept and added to those of the next synchronising pass, whose statistics
        then cover every accumulated sample (its own results stay local).
    kfac_approx : {"expand", "reduce"}
        K-FAC of weight-shared layers for ``kfac``/``kflr``/``kfac_ef``
        (:mod:`fisherlab.engine.kronecker`).
    kfac_eigenbases : mapping of str to (Tensor, Tensor), optional
        Layer name → :math:`(Q_A, Q_G)`: also compute EK-FAC's eigenvalues in these bases
        (one process only, ``distributed=False``).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        likelihood: Likelihood,
        statistics: Iterable[Statistic | str] = FIRST_ORDER,
        reduction: str | None = None,
        mc_samples: int = 1,
        generator: torch.Generator | None = None,
        reuse_buffers: bool = False,
        max_bytes: int | None = None,
        distributed: bool | None = None,
        kfac_approx: str = "expand",
        kfac_eigenbases: Mapping[str, tuple[Tensor, Tensor]] | None = None,
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        check_likelihood(likelihood)
        if isinstance(statistics, (str, Statistic)):
            statistics = (statistics,)
        try:
            self.statistics = frozenset(Statistic(s) for s in statistics)
        except ValueError as error:
            known = ", ".join(s.value for s in Statistic)
            raise ValueError(f"{error}; known statistics: {known}") from None
        if not self.statistics:
            raise ValueError("statistics is empty: name at least one statistic")
        if reduction is None:
            reduction = likelihood.reduction or "mean"
        check_reduction(reduction)
        check_mc_samples(mc_samples)
        self.kfac_approx = check_approx(kfac_approx)
        if distributed is None:
            distributed = fl_distributed.is_active()
        if distributed and not fl_distributed.is_active():
            raise ValueError("distributed=True needs an initialised torch.distributed group")
        self.distributed = bool(distributed)
        self.kfac_eigenbases = dict(kfac_eigenbases or {})
        if self.kfac_eigenbases and self.distributed:
            raise ValueError(
                "kfac_eigenbases is for one process (distributed=False): the eigenvalue "
                "corrections are not summed over ranks"
            )
        self.model = model
        self.likelihood = likelihood
        self.reduction = reduction
        self.mc_samples = mc_samples
        self.generator = generator
        self.reuse_buffers = reuse_buffers
        self.max_bytes = max_bytes
        self._buffers: dict[torch.nn.Module, dict[str, Tensor]] = {}
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("model has no parameters with requires_grad=True")
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self._labels = {m: n for n, m in model.named_modules(remove_duplicate=False)}
        self._layers, self.fallback_reason = self._scan()
        self._kron_layers = [m for m, rule in self._layers.items() if rule.has_kron_factors]
        if self.fallback_reason is not None and self.statistics & set(_KRON):
            raise NotImplementedError(
                f"Kronecker factors need the fast path, which does not cover this model: "
                f"{self.fallback_reason}"
            )
        self._handles: list[RemovableHandle] = []
        self._inner = False
        self._current: _Pass | None = None
        self._pending: list[_Pass] = []
        self._active: _Pass | None = None
        self._carry: dict[str, list[Tensor]] = {}
        self._carry_samples = 0
        self._reset()

    # -- set-up ---------------------------------------------------------------------------
    def _scan(self) -> tuple[dict[torch.nn.Module, LayerRule], str | None]:
        """Decide coverage per trainable parameter: each must be one its layer rule knows."""
        owners: dict[int, str] = {}
        layers: dict[torch.nn.Module, LayerRule] = {}
        reason: str | None = None
        for name, module in self.model.named_modules(remove_duplicate=False):
            trainable = {k: p for k, p in module._parameters.items() if p is not None}
            trainable = {k: p for k, p in trainable.items() if p.requires_grad}
            rule = rule_for(module)
            if parametrize.is_parametrized(module):
                label = name or type(module).__name__
                reason = reason or (
                    f"{label!r} ({type(module).__name__}) has parametrized tensors "
                    f"({', '.join(module.parametrizations)}), which no closed form covers"
                )
                continue
            if not trainable:
                continue
            label = name or type(module).__name__
            for p in trainable.values():
                if id(p) in owners and owners[id(p)] != label:
                    reason = reason or f"parameter shared by {owners[id(p)]!r} and {label!r}"
                owners[id(p)] = label
            why = "no closed form for this layer type" if rule is None else rule.supports(module)
            if why is None:
                assert rule is not None
                unknown = sorted(set(trainable) - set(rule.param_names))
                if unknown:
                    why = (
                        f"trainable parameter(s) {', '.join(map(repr, unknown))} are not "
                        f"covered by its closed form (it knows {', '.join(rule.param_names)})"
                    )
            if why is not None:
                reason = reason or f"{label!r} ({type(module).__name__}): {why}"
                continue
            assert rule is not None
            layers[module] = rule
        return layers, reason

    def __enter__(self) -> Collector:
        self.attach()
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def attach(self) -> None:
        """Register the hooks (done by ``with``)."""
        if self._handles:
            return
        if self.fallback_reason is not None:
            warnings.warn(
                f"fisherlab.engine.hooks: {self.fallback_reason}; statistics come from the "
                "generic torch.func engine (slower)",
                FallbackWarning,
                stacklevel=3,
            )
        self._handles.append(self.model.register_forward_pre_hook(self._on_model_input))
        if self.fallback_reason is None:  # layer hooks first: the model may be one layer
            for module in self._layers:
                self._handles.append(module.register_forward_hook(self._on_layer_forward))
        self._handles.append(self.model.register_forward_hook(self._on_model_output))
        for p in self.params:
            self._handles.append(p.register_hook(self._gradient_hook(p)))

    def detach(self) -> None:
        """Remove the hooks (done on leaving ``with``); the results stay, the graph goes."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for pending in self._pending:
            pending.release()
        self._pending.clear()
        if self._current is not None:
            self._current.release()
        self._current = None
        self._active = None

    def _reset(self) -> None:
        self._raw: dict[Statistic, dict[Tensor, Any]] = {s: {} for s in Statistic}
        self._corrections: dict[Statistic, dict[torch.nn.Module, Tensor]] = {s: {} for s in _KRON}
        self._num_samples: int | None = None
        self._local_num_samples: int | None = None
        self._loss_c = 1.0
        self._loss_value: float | None = None
        self._grad_before: dict[Tensor, Tensor] | None = None
        self._cache: dict[Statistic, dict[Tensor, Any]] = {}
        self._scaled_stats: set[Statistic] = set()

    # -- forward hooks --------------------------------------------------------------------
    def _on_model_input(self, module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        if self._inner or not torch.is_grad_enabled():
            return
        check_normalization(self.model)
        named = zip(self.names, self.params, strict=True)
        checked = {f"parameter {name!r}": p.detach() for name, p in named}
        inp = None
        num_samples = None
        if len(args) == 1 and isinstance(args[0], Tensor):
            inp = args[0].detach()
            if inp.ndim == 0:
                raise ValueError("the model input is a scalar: inputs must have shape (N, ...)")
            checked["input data X"] = inp
            num_samples = inp.shape[0]
        check_all_finite(checked)
        self._current = _Pass(inp, num_samples, fast=self.fallback_reason is None)

    def _on_layer_forward(
        self, module: torch.nn.Module, args: tuple[Any, ...], output: Any
    ) -> None:
        current = self._current
        if self._inner or current is None or not torch.is_grad_enabled():
            return
        current.calls[module] = current.calls.get(module, 0) + 1
        if not isinstance(output, Tensor) or not output.requires_grad or len(args) != 1:
            return
        record = _Record(module, self._layers[module], args[0].detach(), output)
        current.records[module] = record
        ref = weakref.ref(self)

        def hook(g: Tensor) -> None:
            collector = ref()
            if collector is not None:
                collector._on_layer_gradient(current, record, g)

        output.register_hook(hook)

    def _on_model_output(self, module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
        current, self._current = self._current, None
        if self._inner or current is None or not torch.is_grad_enabled():
            return
        if not isinstance(output, Tensor):
            current.release()
            raise TypeError(
                f"the model returns a {type(output).__name__}: the collector needs a model "
                "whose forward returns one tensor of outputs (N, ...); wrap the model so "
                "that it returns the tensor the loss is computed from"
            )
        if not output.requires_grad:
            current.release()
            return
        if output.ndim == 0:
            current.release()
            raise ValueError(
                "the model returns a scalar: outputs must have shape (N, ...) with one row "
                "per sample"
            )
        if current.num_samples is not None and output.shape[0] != current.num_samples:
            n = current.num_samples
            current.release()
            raise ValueError(
                f"the model output has shape {tuple(output.shape)} for {n} inputs: its first "
                f"dimension must be the number of samples N = {n} (outputs (N, ...))"
            )
        current.num_samples = output.shape[0]
        current.output = output
        # DDP decides at forward time whether this backward all-reduces the gradients
        current.sync = bool(getattr(self.model, "require_backward_grad_sync", True))
        if current.fast:
            reason = self._check_graph(current, output)
            if reason is not None:
                if self.statistics & set(_KRON):
                    current.release()
                    raise NotImplementedError(
                        f"Kronecker factors need the fast path, which does not cover this "
                        f"forward pass: {reason}"
                    )
                current.fast = False
                warnings.warn(
                    f"fisherlab.engine.hooks: {reason}; statistics come from the generic "
                    "torch.func engine (slower)",
                    FallbackWarning,
                    stacklevel=2,
                )
        if not current.fast:
            if current.inp is None:
                current.release()
                raise NotImplementedError(
                    "the generic engine needs a model called with a single tensor input"
                )
            current.records.clear()
        self._pending.append(current)
        ref = weakref.ref(self)

        def hook(g: Tensor) -> None:
            collector = ref()
            if collector is not None:
                collector._on_output_gradient(current, g)

        output.register_hook(hook)

    def _label(self, module: torch.nn.Module) -> str:
        """``"Linear layer 'fc'"``: the type and name of a layer in messages."""
        return f"{type(module).__name__} layer {self._labels.get(module, '')!r}"

    def _check_graph(self, current: _Pass, output: Tensor) -> str | None:
        """Each trainable parameter must enter the graph once, through its own layer.

        Each covered layer must also see one row per sample: an input (and output) whose
        first dimension is the model's batch size ``N``. A layer applied to a tensor shared
        by all samples (e.g. position embeddings of ``torch.arange(T)`` broadcast over the
        batch) has no per-sample closed form here.
        """
        for module, calls in current.calls.items():
            if calls > 1:
                return f"{self._label(module)} is called {calls} times in one forward"
        n = current.num_samples
        for module, record in current.records.items():
            for what, t in (("input", record.inp), ("output", record.output)):
                if t is not None and (t.ndim == 0 or t.shape[0] != n):
                    return (
                        f"{self._label(module)} gets an {what} of shape "
                        f"{tuple(t.shape)} whose first dimension is not the number of samples "
                        f"N = {n}"
                    )
        uses: dict[int, int] = {}
        seen: set[Any] = set()
        stack = [output.grad_fn]
        while stack:
            node = stack.pop()
            for nxt, _ in node.next_functions:
                if nxt is None:
                    continue
                variable = getattr(nxt, "variable", None)
                if variable is not None:
                    uses[id(variable)] = uses.get(id(variable), 0) + 1
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        owner = {id(p): m for m in self._layers for p in m.parameters(recurse=False)}
        for name, p in zip(self.names, self.params, strict=True):
            count = uses.get(id(p), 0)
            if count > 1:
                return f"parameter {name!r} is used {count} times in one forward"
            if count == 1 and owner.get(id(p)) not in current.records:
                return f"parameter {name!r} is used outside its layer's forward"
        return None

    # -- backward hooks -------------------------------------------------------------------
    def _gradient_hook(self, p: Tensor) -> Any:
        def hook(g: Tensor) -> None:
            if not self._inner and self._active is not None:
                self._raw[Statistic.GRADIENT][p] = g.detach().clone()

        return hook

    def _begin(self, current: _Pass) -> bool:
        """Start the statistics of ``current``'s backward; ``False`` if it has no state."""
        if current.released:
            return False
        if current.started:
            return True
        current.started = True
        self._reset()
        self._active = current
        self._num_samples = self._local_num_samples = current.num_samples
        self._loss_c = self._scale_of(current)
        if self._uses_ddp_gradient(current):  # p.grad gains exactly this pass's gradient
            self._grad_before = {
                p: p.grad.detach().clone() for p in self.params if p.grad is not None
            }
        if Statistic.PER_SAMPLE_GRADIENTS in self.statistics:
            assert current.num_samples is not None
            check_memory(
                current.num_samples * sum(p.numel() for p in self.params),
                self.params[0].dtype,
                "per-sample gradients (N, D)",
                "the statistics gradient, second_moment, variance and l2_norm need no "
                "per-sample gradients",
                self.max_bytes,
            )
        ref = weakref.ref(self)

        def end() -> None:
            collector = ref()
            current.release()
            if collector is not None:
                collector._end(current)

        _queue_end_of_backward(end)
        return True

    def _end(self, current: _Pass) -> None:
        try:
            if self._active is current:
                if current.loss_sum is not None:  # this rank's batch, until summed
                    local_c = Scaling(self.reduction, current.num_samples).c
                    self._loss_value = local_c * float(current.loss_sum)
                if self.distributed:
                    self._sum_over_ranks(current)
        finally:
            if current in self._pending:
                self._pending.remove(current)
            if self._active is current:
                self._active = None

    def _scale_of(self, current: _Pass) -> float:
        """The factor ``c_r`` of this rank's loss ``c_r Σ_n l_n`` in ``current``'s backward."""
        if current.loss_scale is not None:
            return current.loss_scale
        return Scaling(self.reduction, current.num_samples).c

    @property
    def _c(self) -> float:
        """The scale of the (global) batch of the results: ``1/N`` or ``1``."""
        assert self._num_samples is not None
        return Scaling(self.reduction, self._num_samples).c

    # -- sums over ranks ------------------------------------------------------------------
    def _uses_ddp_gradient(self, current: _Pass) -> bool:
        """Whether DDP's all-reduced ``p.grad`` is this pass's global gradient.

        So it is when the model is the DDP wrapper, the pass synchronises and accumulates
        nothing, and the loss came from :meth:`loss`, which scales it so that DDP's average
        over ranks is the weighted global gradient.
        """
        return (
            self.distributed
            and isinstance(self.model, DistributedDataParallel)
            and current.sync
            and current.loss_scale is not None
            and not self._carry
            and bool(self.statistics & {Statistic.GRADIENT, Statistic.VARIANCE})
        )

    def _queue_ddp_gradient(self, before: dict[Tensor, Tensor]) -> None:
        ref = weakref.ref(self)

        def take() -> None:
            collector = ref()
            if collector is not None:
                collector._take_ddp_gradient(before)

        _queue_end_of_backward(take)

    def _take_ddp_gradient(self, before: dict[Tensor, Tensor]) -> None:
        """Read DDP's averaged gradient (after DDP's own end-of-backward callback)."""
        gradient = self._raw[Statistic.GRADIENT]
        for p in self.params:
            if p.grad is None:
                gradient[p] = p.new_zeros(p.shape)
            elif p in before:
                gradient[p] = p.grad.detach() - before[p]
            else:
                gradient[p] = p.grad.detach().clone()

    def _summed_statistics(self) -> list[Statistic]:
        """The statistics whose per-rank sums are added (the variance needs two of them)."""
        stats = self.statistics
        needed = []
        if stats & {Statistic.GRADIENT, Statistic.VARIANCE}:
            needed.append(Statistic.GRADIENT)
        if stats & set(_SQUARES):
            needed.append(Statistic.SECOND_MOMENT)
        needed += [s for s in (*_MC, *_EXACT, Statistic.KFAC_EF) if s in stats]
        return needed

    def _local_sums(self, current: _Pass) -> dict[str, list[Tensor]]:
        """Unscaled sums over this rank's samples (zeros for an empty shard)."""
        n = current.num_samples or 0
        sums: dict[str, list[Tensor]] = {}
        for stat in self._summed_statistics():
            raw = self._raw[stat]
            if stat in _KRON:
                tensors = []
                for module in self._kron_layers:
                    factors = raw.get(module)
                    if factors is None or n == 0:
                        dtype = self.params[0].dtype
                        shapes = kron_shapes(module, *self._layers[module].kron_parameters(module))
                        tensors += [self.params[0].new_zeros(s, dtype=dtype) for s in shapes]
                    else:  # A is a mean over samples, G a sum: N_r A_r is the sum
                        tensors += [n * factors[0], factors[1]]
                sums[stat.value] = tensors
                continue
            scale = 1.0 / self._loss_c if stat is Statistic.GRADIENT else 1.0
            sums[stat.value] = [
                p.new_zeros(p.shape) if p not in raw or n == 0 else raw[p] * scale
                for p in self.params
            ]
        if current.loss_sum is not None:
            sums["loss"] = [current.loss_sum.reshape(1).to(self.params[0].dtype)]
        return sums

    def _sum_over_ranks(self, current: _Pass) -> None:
        """Replace this rank's results by those of the global batch (one all-reduce)."""
        local = self._local_sums(current)
        n = current.num_samples or 0
        if not current.sync:  # inside DDP's no_sync(): keep the sums for the next pass
            for name, tensors in local.items():
                kept = self._carry.get(name)
                self._carry[name] = (
                    tensors if kept is None else [a + b for a, b in zip(kept, tensors, strict=True)]
                )
            self._carry_samples += n
            return
        if self._carry:
            if set(self._carry) != set(local):
                raise RuntimeError(
                    "the backward passes accumulated under no_sync() computed other "
                    f"statistics ({', '.join(self._carry)}) than this one ({', '.join(local)})"
                )
            local = {
                name: [a + b for a, b in zip(self._carry[name], tensors, strict=True)]
                for name, tensors in local.items()
            }
            n += self._carry_samples
            self._carry, self._carry_samples = {}, 0
        before = self._grad_before
        if before is not None:  # DDP all-reduces the gradient: not sent again
            del local[Statistic.GRADIENT.value]
        sums, total = all_reduce_sums(local, n, self.params[0].device, "collect")
        self._num_samples = total
        c = self._c
        for stat in self._summed_statistics():
            if before is not None and stat is Statistic.GRADIENT:
                # until DDP's callback (queued after this one) has written p.grad, there is
                # no gradient to read; queued from here, this callback runs after it
                self._raw[stat].clear()
                self._queue_ddp_gradient(before)
                continue
            values = iter(sums[stat.value])
            if stat in _KRON:
                for module in self._kron_layers:
                    A, G = next(values), next(values)
                    self._raw[stat][module] = (A / max(total, 1), G)
                continue
            scale = c if stat is Statistic.GRADIENT else 1.0
            for p in self.params:
                self._raw[stat][p] = next(values).mul_(scale)
        if "loss" in sums:
            self._loss_value = c * float(sums["loss"][0])

    def _factor_columns(self, f: Tensor) -> dict[str, Tensor]:
        r"""Columns ``(K, N, C)`` of :func:`fisherlab.quantities.output_factor`.

        ``"mc"``: sampled-label gradients over :math:`\sqrt S`; ``"exact"``: :math:`S_n`.
        """
        f2d = _rows(f.detach())
        columns: dict[str, Tensor] = {}
        if self.statistics & set(_MC):
            spec = QuantitySpec(
                Quantity.FISHER_MC, mc_samples=self.mc_samples, generator=self.generator
            )
            columns["mc"] = output_factor(self.likelihood, f2d, None, spec).permute(2, 0, 1)
        if self.statistics & set(_EXACT):
            spec = QuantitySpec(Quantity.FISHER)
            columns["exact"] = output_factor(self.likelihood, f2d, None, spec).permute(2, 0, 1)
        return columns

    def _on_output_gradient(self, current: _Pass, g: Tensor) -> None:
        if self._inner or not self._begin(current) or not current.num_samples:
            return  # an empty shard (under torch.distributed) contributes zeros
        if not current.fast:
            f = current.output
            assert f is not None
            columns = self._factor_columns(f)
            self._inner = True  # the generic engine calls the model: ignore those calls
            try:
                self._fallback(current, f, g, columns)
            finally:
                self._inner = False
            return
        self._ensure_columns(current)

    def _ensure_columns(self, current: _Pass) -> None:
        """Backpropagate the factor columns to every layer output, once per backward pass.

        Triggered by the first backward hook that fires (the model output's, or the last
        layer's when its output is the model output).
        """
        if current.columns_done:
            return
        current.columns_done = True
        f = current.output
        assert f is not None
        columns = self._factor_columns(f)
        if not columns or not current.records:
            return
        kinds = list(columns)
        sizes = [columns[k].shape[0] for k in kinds]
        V = torch.cat([columns[k] for k in kinds]).reshape(sum(sizes), *f.shape)
        records = [r for r in current.records.values() if r.output is not f]
        kind_of = [kind for kind, size in zip(kinds, sizes, strict=True) for _ in range(size)]
        # a kind whose only use is a diagonal is reduced column by column on layers that take
        # one column at a time, so memory is one column's output gradients, not C of them
        streamed = {kind for kind in kinds if (_KRON_OF_KIND[kind] not in self.statistics)}
        self._inner = True
        try:
            if records:
                # one backward per column: batching them with vmap (is_grads_batched) is
                # several times slower for convolutions on CPU
                outputs = [r.output for r in records]
                for v, kind in zip(V, kind_of, strict=True):
                    grads = torch.autograd.grad(f, outputs, v, retain_graph=True, allow_unused=True)
                    for record, column in zip(records, grads, strict=True):
                        if column is None:
                            continue
                        if kind in streamed and not record.rule.stack_columns:
                            record.add_squares(kind, column)
                        else:
                            record.columns.setdefault(kind, []).append(column)
        finally:
            self._inner = False
        bounds = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
        # a layer whose output is the model output receives the columns themselves
        for record in current.records.values():
            if record.output is f:
                for j, kind in enumerate(kinds):
                    record.columns[kind] = list(V[bounds[j] : bounds[j + 1]].unbind(0))

    def _on_layer_gradient(self, current: _Pass, record: _Record, g: Tensor) -> None:
        if self._inner or not current.fast or not self._begin(current):
            return
        if not current.num_samples:  # an empty shard: the results are zeros
            record.inp = record.output = None
            return
        self._ensure_columns(current)
        module, rule = record.module, record.rule
        assert record.inp is not None
        stats = self.statistics
        ctx = record.context()
        params = {
            name: p for name, p in module._parameters.items() if p is not None and p.requires_grad
        }
        # the per-sample gradients are linear in the output gradient: the loss's factor 1/c
        # goes on whichever is smaller, the output gradient or the per-sample results
        inv_c = 1.0 / self._loss_c
        per_sample_size = g.shape[0] * sum(p.numel() for p in params.values())
        after = inv_c != 1.0 and g.numel() > per_sample_size
        b = g.unsqueeze(0) if after or inv_c == 1.0 else (g * inv_c).unsqueeze(0)
        raw = self._raw
        need_squares = bool(stats & set(_SQUARES))
        need_norms = Statistic.L2_NORM in stats
        if Statistic.PER_SAMPLE_GRADIENTS in stats:
            buffers = self._buffers.setdefault(module, {}) if self.reuse_buffers else None
            per_sample = rule.per_sample(module, ctx, b, out=buffers)
            for name, p in params.items():
                grad_n = per_sample[name][0]
                if after:
                    grad_n.mul_(inv_c)  # a fresh result (or this collector's own buffer)
                raw[Statistic.PER_SAMPLE_GRADIENTS][p] = grad_n
                if need_squares or need_norms:
                    sums, norms = squares_and_norms_of(grad_n)
                    if need_squares:
                        raw[Statistic.SECOND_MOMENT][p] = sums
                    if need_norms:
                        raw[Statistic.L2_NORM][p] = norms
        else:
            if need_squares and need_norms:
                squares, norms = rule.squares_and_norms(module, ctx, b)
            else:
                squares = rule.sum_squares(module, ctx, b) if need_squares else {}
                norms = rule.squared_norms(module, ctx, b) if need_norms else {}
            for stat, values in ((Statistic.SECOND_MOMENT, squares), (Statistic.L2_NORM, norms)):
                for name, value in values.items():
                    if name in params:
                        raw[stat][params[name]] = value * inv_c**2 if after else value
        for kind, columns in record.columns.items():
            if _DIAG_OF_KIND[kind] in stats:
                if rule.stack_columns:
                    record.squares[kind] = rule.sum_squares(module, ctx, torch.stack(columns))
                else:  # one column at a time: no stacked copy of the columns
                    for column in columns:
                        record.add_squares(kind, column)
            kron = _KRON_OF_KIND[kind]
            if kron in stats and rule.has_kron_factors:
                stacked = columns[0][None] if len(columns) == 1 else torch.stack(columns)
                self._kron(kron, module, rule, ctx, stacked)
        for kind, squares in record.squares.items():
            for name, value in squares.items():
                if name in params:
                    raw[_DIAG_OF_KIND[kind]][params[name]] = value
        if Statistic.KFAC_EF in stats and rule.has_kron_factors:
            self._kron(Statistic.KFAC_EF, module, rule, ctx, b * inv_c if after else b)
        record.columns.clear()
        record.squares.clear()
        record.ctx = None
        record.inp = None
        record.output = None

    def _kron(
        self, stat: Statistic, module: torch.nn.Module, rule: LayerRule, ctx: Any, b: Tensor
    ) -> None:
        """Kronecker factors of one layer (and its eigenbasis squares when bases are given)."""
        basis = self.kfac_eigenbases.get(self._labels[module])
        if basis is None:
            self._raw[stat][module] = rule.kron_factors(module, ctx, b, self.kfac_approx)
            return
        a, g = rule.kron_inputs(module, ctx, b)
        weight, bias = rule.kron_parameters(module)
        self._raw[stat][module] = kron_factors(a, g, weight, bias, self.kfac_approx)
        self._corrections[stat][module] = eigenbasis_squares(a, g, *basis, weight, bias)

    # -- generic engine -------------------------------------------------------------------
    def _fallback(self, current: _Pass, f: Tensor, g: Tensor, columns: dict[str, Tensor]) -> None:
        X = current.inp
        assert X is not None
        fm = FunctionalModel(self.model, self.likelihood)
        stats = self.statistics
        raw = self._raw

        first = {Statistic.PER_SAMPLE_GRADIENTS, Statistic.L2_NORM, *_SQUARES}
        if stats & first:
            factor = (_rows(g.detach()) / self._loss_c).unsqueeze(2)
            G = fm.sandwich_rows(X, factor)[:, 0]
            parts = zip(self.params, G.split(fm.numels, dim=1), fm.shapes, strict=True)
            for p, part, shape in parts:
                if Statistic.PER_SAMPLE_GRADIENTS in stats:
                    raw[Statistic.PER_SAMPLE_GRADIENTS][p] = part.reshape(-1, *shape)
                raw[Statistic.SECOND_MOMENT][p] = part.square().sum(0).reshape(shape)
                raw[Statistic.L2_NORM][p] = part.square().sum(1)
        for kind, cols in columns.items():
            diag = Statistic.FISHER_MC_DIAG if kind == "mc" else Statistic.GGN_DIAG
            rows = fm.sandwich_rows(X, cols.permute(1, 2, 0))
            total = rows.square().sum((0, 1))
            parts = zip(self.params, total.split(fm.numels), fm.shapes, strict=True)
            for p, part, shape in parts:
                raw[diag][p] = part.reshape(shape)

    # -- results --------------------------------------------------------------------------
    @property
    def num_samples(self) -> int:
        """``N`` of the last backward pass (of the global batch when summed over ranks)."""
        if self._num_samples is None:
            raise RuntimeError("no forward pass through the model was recorded")
        return self._num_samples

    @property
    def local_num_samples(self) -> int:
        """``N_r`` of this rank in the last backward pass (the rows of per-sample results)."""
        if self._local_num_samples is None:
            raise RuntimeError("no forward pass through the model was recorded")
        return self._local_num_samples

    @property
    def loss_value(self) -> float:
        r"""The loss :math:`c\sum_n l_n` of the last backward pass's (global) batch.

        Available when the loss came from :meth:`loss`; summed over ranks like the
        statistics, so every rank holds the same number (e.g. for
        :class:`fisherlab.optim.CABS`, whose batch size must be one for all ranks).
        """
        if self._loss_value is None:
            raise RuntimeError(
                "no loss was recorded: compute the loss with collector.loss(output, target)"
            )
        return self._loss_value

    def _require(self, stat: Statistic) -> None:
        if stat not in self.statistics:
            raise ValueError(f"{stat.value!r} was not requested; pass it in statistics=")
        if self._num_samples is None or (
            Statistic.GRADIENT not in self._raw or not self._raw[Statistic.GRADIENT]
        ):
            raise RuntimeError(
                "no backward pass was recorded: run loss.backward() inside the context"
            )

    def _raw_or_zeros(self, stat: Statistic, p: Tensor, shape: tuple[int, ...]) -> Tensor:
        value = self._raw[stat].get(p)
        return value if value is not None else p.new_zeros(shape)

    def _scaled(self, stat: Statistic, scale: float) -> dict[Tensor, Tensor]:
        """Raw sums times ``scale``, scaled in place once per backward pass (no copies)."""
        shapes = {p: tuple(p.shape) for p in self.params}
        values = {p: self._raw_or_zeros(stat, p, shapes[p]) for p in self.params}
        if stat not in self._scaled_stats:
            self._scaled_stats.add(stat)
            for p, value in values.items():
                if p in self._raw[stat] and scale != 1.0:
                    value.mul_(scale)
        return values

    def __getitem__(self, statistic: Statistic | str) -> dict[Tensor, Any]:
        """Per-parameter results of ``statistic``: a dict keyed by parameter."""
        stat = Statistic(statistic)
        self._require(stat)
        if stat in self._cache:
            return dict(self._cache[stat])
        N, c = self.num_samples, self._c
        n_local = self.local_num_samples
        shapes = {p: tuple(p.shape) for p in self.params}
        result: dict[Tensor, Any]
        if stat is Statistic.GRADIENT:
            result = {p: self._raw_or_zeros(stat, p, shapes[p]) for p in self.params}
        elif stat is Statistic.PER_SAMPLE_GRADIENTS:
            result = {p: self._raw_or_zeros(stat, p, (n_local, *shapes[p])) for p in self.params}
        elif stat is Statistic.SECOND_MOMENT:
            result = self._scaled(stat, c)
        elif stat is Statistic.VARIANCE:
            # a Σ g_n² − (∇L)² = (a / c) · second moment − (∇L)²
            a = Scaling(self.reduction, N).a
            second = self._scaled(Statistic.SECOND_MOMENT, c)
            result = {}
            for p in self.params:
                g = self._raw_or_zeros(Statistic.GRADIENT, p, shapes[p])
                result[p] = torch.mul(second[p], a / c).addcmul_(g, g, value=-1.0)
        elif stat is Statistic.L2_NORM:
            result = {p: self._raw_or_zeros(stat, p, (n_local,)).sqrt() for p in self.params}
        elif stat is Statistic.FISHER_MC_DIAG:
            result = self._scaled(stat, c)
        elif stat is Statistic.GGN_DIAG:
            result = self._scaled(stat, c)
        else:
            result = {}
            for module, (A, G) in self._kron_factors(stat).items():
                weight, bias = self._layers[module].kron_parameters(module)
                if weight:
                    d = module.weight[0].numel()  # type: ignore[index]
                    result[module.weight] = (G, A[:d, :d])
                if bias:
                    result[module.bias] = (G,)
        self._cache[stat] = result
        return dict(result)

    def _kron_factors(self, stat: Statistic) -> dict[torch.nn.Module, tuple[Tensor, Tensor]]:
        """``(A, G)`` per layer in the scaling of the results (``G`` times ``c``)."""
        return {m: (A, self._c * G) for m, (A, G) in self._raw[stat].items()}

    def eigenvalue_corrections(self, statistic: Statistic | str) -> dict[str, Tensor]:
        r"""EK-FAC's eigenvalues per layer name in the bases given as ``kfac_eigenbases``.

        For a layer with bases :math:`(Q_A, Q_G)`:
        :math:`s_{ij} = c \sum_{n,k} ((Q_G^\top \textstyle\sum_t g_{nk,t}
        \bar a_{n,t}^\top Q_A)_{ij})^2` (George et al. 2018, Eq. 19; times :math:`1/S` for
        ``"kfac"``), ``(d_out, d_in)``.
        """
        stat = Statistic(statistic)
        self._require(stat)
        return {self._labels[m]: self._c * s for m, s in self._corrections[stat].items()}

    def kfac(self, statistic: Statistic | str = Statistic.KFLR) -> KFAC:
        r"""The Kronecker factors of ``statistic`` as a :class:`~fisherlab.representations.KFAC`.

        The matrix is the one ``fisherlab.Curvature`` builds on the same batch:
        ``"kflr"`` is ``ggn(form="kfac")`` (= ``fisher(form="kfac")``), ``"kfac"`` is
        ``fisher(form="kfac", mc_samples=S, generator=g)`` for a generator seeded alike,
        ``"kfac_ef"`` is ``empirical_fisher(form="kfac")``, each with ``approx`` this
        collector's ``kfac_approx``. Blocks follow the flat parameter vector of
        :meth:`flat`.

        Raises
        ------
        ValueError
            For a statistic that is not a Kronecker one, or a layer the forward pass did not
            use.
        NotImplementedError
            For trainable parameters outside Linear and convolution layers (see
            :func:`fisherlab.engine.kronecker.layer_blocks`).
        """
        stat = Statistic(statistic)
        if stat not in _KRON:
            raise ValueError(
                f"statistic must be one of {', '.join(s.value for s in _KRON)}, got {stat.value!r}"
            )
        self._require(stat)
        blocks = layer_blocks(self.model, self.names, [p.numel() for p in self.params])
        factors = {self._labels[m]: f for m, f in self._kron_factors(stat).items()}
        for block in blocks:
            if block.name not in factors:
                raise ValueError(f"kfac: layer {block.name!r} is not used in the forward pass")
            block.A, block.G = factors[block.name]
        p = self.params[0]
        return KFAC(blocks, sum(q.numel() for q in self.params), p.dtype, p.device, stat.value)

    def flat(self, statistic: Statistic | str) -> Tensor:
        r"""Return a statistic as one tensor in the generic engine's flattening.

        ``(D,)`` for gradient, second moment, variance and the diagonals; ``(N, D)`` for
        per-sample gradients; ``(N,)`` total per-sample norms :math:`\|g_n\|` for
        ``l2_norm``. Kronecker factors have no flat form. Per-sample results hold this
        rank's samples (``N = local_num_samples``); :meth:`gather` concatenates the ranks'.
        """
        stat = Statistic(statistic)
        if stat in _KRON:
            raise ValueError("Kronecker factors have no flat form; use collector[statistic]")
        if stat is Statistic.L2_NORM:
            self._require(stat)
            n = self.local_num_samples
            squares = [self._raw_or_zeros(stat, p, (n,)) for p in self.params]
            return torch.stack(squares).sum(0).sqrt()
        values = self[stat]
        if stat is Statistic.PER_SAMPLE_GRADIENTS:
            n = self.local_num_samples
            return torch.cat([_rows(values[p]) for p in self.params], 1)
        return torch.cat([values[p].reshape(-1) for p in self.params])

    def gather(self, statistic: Statistic | str) -> Tensor:
        """Per-sample results of every rank, concatenated in rank order (a collective).

        ``l2_norm`` gives ``(N,)`` and ``per_sample_gradients`` ``(N, D)`` with ``N`` the
        global number of samples; without summing over ranks this is :meth:`flat`.
        """
        stat = Statistic(statistic)
        if stat not in (Statistic.L2_NORM, Statistic.PER_SAMPLE_GRADIENTS):
            raise ValueError(
                f"gather is for per-sample statistics (l2_norm, per_sample_gradients), got "
                f"{stat.value!r}; the others already hold the global batch"
            )
        local = self.flat(stat)
        if not self.distributed:
            return local
        return gather_rows(local, f"collect: gather {stat.value}")

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """Return the training loss ``c Σ_n l_n`` of model outputs, in this collector's scaling.

        The outputs ``(N, ...)`` and targets are validated as :class:`fisherlab.Curvature`
        validates them: finite outputs, targets in the likelihood's format and with the
        outputs' shape (no broadcasting).
        """
        if not isinstance(output, Tensor) or not isinstance(target, Tensor):
            raise TypeError(
                f"output and target must be torch.Tensors, got {type(output).__name__} and "
                f"{type(target).__name__}"
            )
        if output.ndim == 0:
            raise ValueError("output is a scalar: outputs must have shape (N, ...)")
        if target.ndim == 0 or target.shape[0] != output.shape[0]:
            raise ValueError(
                f"output and target disagree in the number of samples: output has shape "
                f"{tuple(output.shape)}, target has shape {tuple(target.shape)}"
            )
        f = _rows(output)
        y = self.likelihood.flatten_targets(target)
        self.likelihood.check_outputs(f.detach())
        check_finite(target, "targets y")
        self.likelihood.check_targets(f.detach(), y)
        total = self.likelihood.nll(f, y).sum()
        n = f.shape[0]
        scale = Scaling(self.reduction, n).c
        if self.distributed and isinstance(self.model, DistributedDataParallel):
            # DDP averages the ranks' gradients: (R/N) Σ_r Σ_n l_n (mean) or R Σ (sum)
            # makes that average the gradient of the global batch, for uneven shards too
            ranks = torch.distributed.get_world_size()
            if self.reduction == "mean":
                device = f.device
                scale = ranks / max(fl_distributed.all_reduce_count(n, "collect: loss", device), 1)
            else:
                scale = float(ranks)
        # the forward pass this loss belongs to: the one that returned ``output``, else
        # (outputs reshaped before the loss) the latest one
        passes = [p for p in self._pending if p.output is output] or self._pending[-1:]
        for pending in passes:
            pending.loss_scale = scale
            pending.loss_sum = total.detach()
        return total * scale


def collect(
    model: torch.nn.Module,
    likelihood: Likelihood,
    statistics: Iterable[Statistic | str] = FIRST_ORDER,
    reduction: str | None = None,
    mc_samples: int = 1,
    generator: torch.Generator | None = None,
    reuse_buffers: bool = False,
    max_bytes: int | None = None,
    distributed: bool | None = None,
    kfac_approx: str = "expand",
) -> Collector:
    """Create a :class:`Collector` to use as a context manager around ``loss.backward()``."""
    return Collector(
        model,
        likelihood,
        statistics,
        reduction,
        mc_samples,
        generator,
        reuse_buffers,
        max_bytes,
        distributed,
        kfac_approx,
    )


def compute(
    model: torch.nn.Module,
    likelihood: Likelihood,
    X: Tensor,
    y: Tensor,
    statistics: Iterable[Statistic | str] = FIRST_ORDER,
    reduction: str | None = None,
    mc_samples: int = 1,
    generator: torch.Generator | None = None,
    distributed: bool | None = None,
    kfac_approx: str = "expand",
    kfac_eigenbases: Mapping[str, tuple[Tensor, Tensor]] | None = None,
) -> Collector:
    """Run one forward and backward pass on ``(X, y)`` and return the filled collector.

    Parameter ``.grad`` fields are left untouched (the backward is ``torch.autograd.grad``).
    ``distributed``, ``kfac_approx`` and ``kfac_eigenbases`` are the :class:`Collector`'s
    (``distributed=False``: this rank's batch only).
    """
    collector = Collector(
        model,
        likelihood,
        statistics,
        reduction,
        mc_samples,
        generator,
        distributed=distributed,
        kfac_approx=kfac_approx,
        kfac_eigenbases=kfac_eigenbases,
    )
    with collector:
        loss = collector.loss(model(X), y)
        torch.autograd.grad(loss, collector.params, allow_unused=True)
    return collector
