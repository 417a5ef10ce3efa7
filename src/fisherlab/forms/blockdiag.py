"""``form="blockdiag"``: one block per layer (or per parameter tensor) over the data.

The representation and the rows each quantity is built from are documented in
:mod:`fisherlab.representations.blockdiag`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from fisherlab.forms.registry import Source, register_form
from fisherlab.quantities import Quantity, QuantitySpec, output_factor
from fisherlab.representations.blockdiag import Block, BlockDiagonal
from fisherlab.representations.operator import unit_vectors

__all__ = ["GROUPINGS", "blockdiag", "compute_blockdiag"]

GROUPINGS = ("layer", "parameter")
_MAX_CHUNK_ELEMENTS = 2**24


def _groups(curvature: Source, grouping: str) -> list[tuple[str, Tensor]]:
    fm = curvature.functional_model
    theta = fm.flat_params()
    if grouping not in GROUPINGS:
        raise ValueError(f"grouping must be one of {GROUPINGS}, got {grouping!r}")
    groups: dict[str, list[Tensor]] = {}
    position = 0
    for name, numel in zip(fm.names, fm.numels, strict=True):
        if grouping == "parameter":
            key = name
        else:
            key = name.rsplit(".", 1)[0] if "." in name else ""
        index = torch.arange(position, position + numel, device=theta.device)
        groups.setdefault(key, []).append(index)
        position += numel
    return [(key, torch.cat(parts)) for key, parts in groups.items()]


def _row_chunks(curvature: Source, spec: QuantitySpec):
    """Yield rows ``(m, D)`` whose outer products sum to the (scaled) quantity."""
    fm = curvature.functional_model
    kind = spec.kind
    if kind is Quantity.COVARIANCE:
        g_mean = curvature.gradient()
        if curvature.reduction == "sum":
            g_mean = g_mean / curvature.num_samples
        scale = curvature.scaling.a * curvature.scaling.unbiased_factor(spec.unbiased)
    else:
        scale = curvature.scaling.c
    root = math.sqrt(scale)
    D = fm.num_params
    for X, y in curvature.batches():
        if kind in (Quantity.EMPIRICAL_FISHER, Quantity.COVARIANCE):
            per_chunk = max(1, _MAX_CHUNK_ELEMENTS // D)
            for start in range(0, X.shape[0], per_chunk):
                stop = start + per_chunk
                G = fm.per_sample_gradients(X[start:stop], y[start:stop])
                if kind is Quantity.COVARIANCE:
                    G = G - g_mean
                yield root * G
        else:
            with torch.no_grad():
                f = fm.outputs(fm.params, X)
            S = output_factor(curvature.likelihood, f, y, spec).to(f.dtype)
            per_chunk = max(1, _MAX_CHUNK_ELEMENTS // (D * S.shape[2]))
            for start in range(0, X.shape[0], per_chunk):
                stop = start + per_chunk
                rows = fm.sandwich_rows(X[start:stop], S[start:stop])
                yield root * rows.flatten(0, 1)


def compute_blockdiag(
    curvature: Source, spec: QuantitySpec, grouping: str = "layer"
) -> BlockDiagonal:
    """Compute the quantity of ``spec`` as a :class:`BlockDiagonal` (see the module docstring).

    Raises
    ------
    NotImplementedError
        Under :mod:`torch.distributed` (the blocks would hold only this rank's samples).
    """
    if curvature.distributed:
        raise NotImplementedError(
            "form='blockdiag' does not sum over torch.distributed ranks; use form='dense', "
            "'diag', 'operator' or 'kfac', or Curvature(..., distributed=False) on all data"
        )
    fm = curvature.functional_model
    theta = fm.flat_params()
    blocks = [Block(name, index) for name, index in _groups(curvature, grouping)]
    kind = spec.kind
    if kind is Quantity.VARIANCE:
        raise ValueError("the variance is diagonal: use form='diag' (or covariance for blocks)")
    if kind is Quantity.HESSIAN:
        for block in blocks:
            total = torch.zeros(block.size, block.size, dtype=theta.dtype, device=theta.device)
            for X, y in curvature.batches():
                for start in range(0, block.size, 256):
                    cols = block.index[start : start + 256]
                    E = unit_vectors(fm.num_params, cols, theta.dtype, theta.device)
                    total[:, start : start + cols.numel()] += fm.hessian_matvec(X, y, E)[
                        block.index
                    ]
            block.dense = curvature.normalize(total)
    else:
        for rows in _row_chunks(curvature, spec):
            for block in blocks:
                block.add_rows(rows[:, block.index])
    name = f"blockdiag({kind.value}, {grouping})"
    return BlockDiagonal(blocks, fm.num_params, theta.dtype, theta.device, name=name)


@register_form("blockdiag")
def blockdiag(curvature: Source, spec: QuantitySpec) -> BlockDiagonal:
    """One dense (or row-factored) block per layer; see :func:`compute_blockdiag`."""
    return compute_blockdiag(curvature, spec, grouping="layer")
