r"""The generic engine's batch sums of each quantity, by :mod:`torch.func` (any model).

For one batch, :func:`batch_dense`, :func:`batch_diag` and :func:`batch_matvec` return
:math:`\sum_n Q_n` of a :class:`fisherlab.quantities.Quantity` as a dense ``(D, D)`` matrix,
its diagonal ``(D,)`` or its product with columns ``V`` ``(D, k)``; the reduction factor is
applied by :class:`fisherlab.problem.Problem`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fisherlab.engine.functional import FunctionalModel
from fisherlab.quantities import Quantity, QuantitySpec, output_factor

__all__ = ["batch_dense", "batch_diag", "batch_matvec", "factors"]


def factors(fm: FunctionalModel, X: Tensor, spec: QuantitySpec) -> Tensor:
    """The output factors :math:`S_n` of ``spec``'s Fisher (exact or Monte-Carlo), ``(N, C, K)``.

    :func:`fisherlab.quantities.output_factor` at the model's outputs on ``X``.
    """
    with torch.no_grad():
        f = fm.outputs(fm.params, X)
    return output_factor(fm.likelihood, f, None, spec)


def batch_dense(fm: FunctionalModel, X: Tensor, y: Tensor, spec: QuantitySpec) -> Tensor:
    """``Σ_n Q_n`` over one batch as a dense ``(D, D)`` matrix."""
    kind = spec.kind
    if kind is Quantity.EMPIRICAL_FISHER:
        G = fm.per_sample_gradients(X, y)
        return G.T @ G
    if kind in (Quantity.FISHER, Quantity.FISHER_MC):
        rows = fm.sandwich_rows(X, factors(fm, X, spec)).flatten(0, 1)
        return rows.T @ rows
    if kind is Quantity.GGN:
        return fm.ggn_dense(X, y)
    if kind is Quantity.HESSIAN:
        return fm.hessian_dense(X, y)
    raise ValueError(f"no batch-sum dense form for {kind.value}")


def batch_diag(fm: FunctionalModel, X: Tensor, y: Tensor, spec: QuantitySpec) -> Tensor:
    """Diagonal of ``Σ_n Q_n`` over one batch, ``(D,)``, without a ``(D, D)`` matrix."""
    kind = spec.kind
    if kind is Quantity.EMPIRICAL_FISHER:
        return (fm.per_sample_gradients(X, y) ** 2).sum(0)
    if kind in (Quantity.FISHER, Quantity.FISHER_MC):
        return (fm.sandwich_rows(X, factors(fm, X, spec)) ** 2).sum((0, 1))
    if kind is Quantity.GGN:
        return fm.ggn_diag(X, y)
    if kind is Quantity.HESSIAN:
        return fm.hessian_diag(X, y)
    raise ValueError(f"no batch-sum diagonal form for {kind.value}")


def batch_matvec(
    fm: FunctionalModel,
    X: Tensor,
    y: Tensor,
    spec: QuantitySpec,
    V: Tensor,
    mc_factor: Tensor | None = None,
) -> Tensor:
    """``(Σ_n Q_n) V`` over one batch for ``V`` of shape ``(D, k)``, matrix-free.

    For ``FISHER_MC`` the sampled factors of the batch must be passed as ``mc_factor``
    (``(N, C, S)``) so that repeated products use the same samples.
    """
    kind = spec.kind
    if kind is Quantity.EMPIRICAL_FISHER:
        return fm.gradient_outer_matvec(X, y, V)
    if kind is Quantity.HESSIAN:
        return fm.hessian_matvec(X, y, V)
    if kind is Quantity.FISHER:
        inner = fm.likelihood.fisher_output
    elif kind is Quantity.GGN:
        inner = lambda f: fm.likelihood.output_hessian(f, y)  # noqa: E731
    elif kind is Quantity.FISHER_MC:
        if mc_factor is None:
            raise ValueError("FISHER_MC products need the batch's sampled factors")
        inner = mc_factor @ mc_factor.transpose(1, 2)
    else:
        raise ValueError(f"no batch-sum product for {kind.value}")
    return fm.sandwich_matvec(X, inner, V)
