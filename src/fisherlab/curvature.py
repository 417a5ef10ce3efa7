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
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor

from fisherlab.forms import Form, build
from fisherlab.problem import Problem
from fisherlab.quantities import Quantity, QuantitySpec
from fisherlab.validation import check_mc_samples, check_memory

__all__ = ["Curvature"]

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


class Curvature(Problem):
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
        key = form.value if isinstance(form, Form) else form
        if spec.approx not in ("expand", "reduce"):
            raise ValueError(f"approx must be 'expand' or 'reduce', got {spec.approx!r}")
        if spec.approx != "expand" and key not in ("kfac", "ekfac"):
            raise ValueError(
                f"approx={spec.approx!r} applies to form='kfac'/'ekfac' only, not form={form!r}"
            )
        return build(self, form, spec)

    @_names_collectives("empirical_fisher")
    def empirical_fisher(self, form: str = "dense", approx: str = "expand") -> Any:
        """Empirical Fisher ``c Σ_n g_n g_nᵀ`` (Kunstner et al. Eq. 3) in ``form``.

        ``approx`` (``"expand"``/``"reduce"``) chooses the K-FAC of weight-shared layers
        for ``form="kfac"``/``"ekfac"`` (:mod:`fisherlab.engine.kronecker`).
        """
        spec = QuantitySpec(Quantity.EMPIRICAL_FISHER, approx=approx)
        return self._represent(form, spec)

    @_names_collectives("fisher")
    def fisher(
        self,
        form: str = "dense",
        mc_samples: int | None = None,
        generator: torch.Generator | None = None,
        approx: str = "expand",
    ) -> Any:
        """Fisher ``c Σ_n J_nᵀ Λ(f_n) J_n`` in ``form`` (Kunstner et al. Eq. 2).

        Exact by default. With ``mc_samples=S``, the Monte-Carlo estimate
        ``c Σ_n (1/S) Σ_s ĝ_{s,n} ĝ_{s,n}ᵀ`` with gradients ``ĝ`` of sampled labels
        ``ŷ_{s,n} ~ p(·|f_n)`` drawn from ``generator``. ``approx`` as for
        :meth:`empirical_fisher`.
        """
        check_mc_samples(mc_samples)
        if mc_samples is None:
            if generator is not None:
                raise ValueError(
                    "a generator only affects the Monte-Carlo Fisher: pass mc_samples as well"
                )
            return self._represent(form, QuantitySpec(Quantity.FISHER, approx=approx))
        spec = QuantitySpec(
            Quantity.FISHER_MC, mc_samples=mc_samples, generator=generator, approx=approx
        )
        return self._represent(form, spec)

    @_names_collectives("ggn")
    def ggn(self, form: str = "dense", approx: str = "expand") -> Any:
        """Generalized Gauss-Newton ``c Σ_n J_nᵀ ∇²_f l_n J_n`` (Kunstner et al. Eq. 10).

        ``approx`` as for :meth:`empirical_fisher`.
        """
        return self._represent(form, QuantitySpec(Quantity.GGN, approx=approx))

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
