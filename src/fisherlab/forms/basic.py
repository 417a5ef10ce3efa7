r"""The basic forms: ``"dense"``, ``"diag"`` and ``"operator"``.

``"dense"`` is a ``(D, D)`` tensor, ``"diag"`` a ``(D,)`` tensor and ``"operator"`` a
matrix-free :class:`CurvatureOperator`.

The covariance :math:`\Sigma = a\sum_n g_n g_n^\top - \nabla L\nabla L^\top` is assembled
from the empirical Fisher's batch sums and the gradient (see
:meth:`fisherlab.Curvature.covariance` for ``a``); the variance is its diagonal.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fisherlab import distributed as fl_distributed
from fisherlab.engine.generic import batch_dense, batch_diag, batch_matvec, factors
from fisherlab.engine.hooks.collector import DIAGONAL_OF
from fisherlab.forms.registry import Source, register_form
from fisherlab.quantities import Quantity, QuantitySpec
from fisherlab.representations.operator import CurvatureOperator
from fisherlab.validation import check_memory

__all__ = ["dense", "diag", "operator"]

_EMPIRICAL = QuantitySpec(Quantity.EMPIRICAL_FISHER)
_NOISE = (Quantity.COVARIANCE, Quantity.VARIANCE)


@register_form("dense")
def dense(curvature: Source, spec: QuantitySpec) -> Tensor:
    """The quantity as a dense ``(D, D)`` matrix (refused above the memory limit)."""
    D = curvature.num_params
    theta = curvature.functional_model.flat_params()
    check_memory(
        D * D,
        theta.dtype,
        f"a dense ({D}, {D}) {spec.kind.value} matrix",
        "form='diag', form='kfac' or form='operator'",
        curvature.max_bytes,
        theta.device,
    )
    if spec.kind is Quantity.VARIANCE:
        return torch.diag(diag(curvature, spec))
    if spec.kind is Quantity.COVARIANCE:
        raw = curvature.batch_sum(lambda fm, X, y: batch_dense(fm, X, y, _EMPIRICAL))
        g = curvature.gradient()
        return curvature.scaling.covariance(raw, torch.outer(g, g), spec.unbiased)
    return curvature.normalize(curvature.batch_sum(lambda fm, X, y: batch_dense(fm, X, y, spec)))


def _diagonal_sum(curvature: Source, spec: QuantitySpec) -> Tensor:
    """``Σ_n diag(Q_n)`` by the fast per-layer engine where it applies, else generically."""
    if curvature.diagonal_engine == "hooks" and spec.kind in DIAGONAL_OF:
        from fisherlab.engine.hooks.diagonals import batch_diagonal

        model, likelihood = curvature.model, curvature.likelihood
        return curvature.batch_sum(
            lambda fm, X, y: batch_diagonal(
                model, likelihood, X, y, spec.kind, spec.mc_samples or 1, spec.generator
            )
        )
    return curvature.batch_sum(lambda fm, X, y: batch_diag(fm, X, y, spec))


@register_form("diag")
def diag(curvature: Source, spec: QuantitySpec) -> Tensor:
    """The diagonal of the quantity, ``(D,)``, computed without a ``(D, D)`` matrix."""
    if spec.kind in _NOISE:
        raw = _diagonal_sum(curvature, _EMPIRICAL)
        g = curvature.gradient()
        return curvature.scaling.covariance(raw, g**2, spec.unbiased)
    return curvature.normalize(_diagonal_sum(curvature, spec))


@register_form("operator")
def operator(curvature: Source, spec: QuantitySpec) -> CurvatureOperator:
    """A matrix-free operator: products by Jacobian-vector and vector-Jacobian products.

    The operator represents the quantity at the parameters it was created at: a product
    after the model's parameters changed raises ``ValueError``.
    """
    fm = curvature.functional_model
    name = spec.kind.value
    if spec.kind is Quantity.VARIANCE:
        variance = diag(curvature, spec)
        matmat = lambda V: variance.unsqueeze(1) * V  # noqa: E731
    elif spec.kind is Quantity.COVARIANCE:
        g = curvature.gradient()
        scaling = curvature.scaling
        scaling.unbiased_factor(spec.unbiased)  # refuse N < 2 now, not at the first product

        def matmat(V: Tensor) -> Tensor:
            raw = curvature.batch_sum(lambda fm, X, y: batch_matvec(fm, X, y, _EMPIRICAL, V))
            return scaling.covariance(raw, torch.outer(g, g @ V), spec.unbiased)
    elif spec.kind is Quantity.FISHER_MC:
        batches = list(curvature.batches())
        sampled = [factors(fm, X, spec) for X, _ in batches]

        def matmat(V: Tensor) -> Tensor:
            total = None
            for (X, y), Q in zip(batches, sampled, strict=True):
                term = batch_matvec(fm, X, y, spec, V, mc_factor=Q)
                total = term if total is None else total + term
            if curvature.distributed:
                total = fl_distributed.all_reduce_sum(total, "fisher_mc product", V.device)
            assert total is not None  # non-empty data is checked by Curvature
            return curvature.normalize(total)
    else:

        def matmat(V: Tensor) -> Tensor:
            return curvature.normalize(
                curvature.batch_sum(lambda fm, X, y: batch_matvec(fm, X, y, spec, V))
            )

    snapshot = fm.snapshot()

    def checked(V: Tensor) -> Tensor:
        # parts of an operator (gradient, sampled labels) are fixed when it is created
        if not fm.unchanged(snapshot):
            raise ValueError(
                f"{name} operator: the model's parameters changed since the operator was "
                "created; create a new one at the current parameters"
            )
        return matmat(V)

    first = snapshot[0]
    return CurvatureOperator(checked, fm.num_params, first.dtype, first.device, name=name)
