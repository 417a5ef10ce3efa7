r"""Sums of the collector's statistics over :mod:`torch.distributed` ranks.

Each rank :math:`r` holds a shard of :math:`N_r` samples of the global batch,
:math:`N = \sum_r N_r`, and its backward pass sees the loss :math:`L_r = c_r \sum_{n \in r}
l_n`. Every statistic of :mod:`fisherlab.engine.hooks.collector` is a scale times a sum over
samples, so the global value follows from the ranks' *unscaled* sums, added with one
``all_reduce``, and the global scale :math:`c = 1/N` (``reduction="mean"``) or :math:`1`
(``"sum"``):

==========================  ====================================================  ==========
statistic                   what rank :math:`r` contributes                       elements
==========================  ====================================================  ==========
``gradient``                :math:`\sum_{n\in r} g_n = \nabla L_r / c_r`          :math:`D`
``second_moment``,          :math:`\sum_{n\in r} g_n^{\odot 2}`                   :math:`D`
``variance``
``fisher_mc_diag``          :math:`\sum_{n\in r}\sum_s (J_n^\top q_{s,n})^{\odot 2}`  :math:`D`
``ggn_diag``                :math:`\sum_{n\in r}\sum_k (J_n^\top S_{n,:k})^{\odot 2}` :math:`D`
``kfac``, ``kflr``,         :math:`N_r A_r` and :math:`G_r`, sums over the         per layer
``kfac_ef``                 rank's samples (:mod:`fisherlab.engine.kronecker`)     :math:`i^2+o^2`
loss (if ``col.loss``)      :math:`\sum_{n \in r} l_n`                            1
==========================  ====================================================  ==========

(:math:`o, i`: rows and columns of a layer's augmented weight :math:`[W, \beta]`; for a
convolution :math:`W` is ``weight.reshape(out_channels, -1)``.) The
number of samples :math:`N` is summed first (one ``int64``), then one flat buffer holding
every statistic above in the dtype of the parameters. Weighting by :math:`N_r` is what makes
the result the statistic of the concatenated batch for *uneven* shards: the global
gradient is :math:`\frac1N\sum_r N_r \nabla L_r` for local mean losses, not the plain
average :math:`\frac1R\sum_r \nabla L_r` that DDP forms. A rank with :math:`N_r = 0`
contributes zeros. ``variance`` is not summed: it is formed after the sums from the global
second moment and gradient, :math:`\frac1N\sum_n g_n^{\odot 2} - (\nabla L)^{\odot 2}`.
When the loss came from :meth:`~fisherlab.engine.hooks.Collector.loss` on a
``DistributedDataParallel`` model, DDP's own all-reduce already yields the global gradient:
the collector reads it from ``p.grad`` and leaves the gradient out of the buffer.
Per-sample results (``l2_norm``, ``per_sample_gradients``) stay on their rank;
:func:`gather_rows` concatenates them in rank order on request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from fisherlab import distributed as fl_distributed

__all__ = ["SUMMED", "kron_shapes", "all_reduce_sums", "gather_rows"]

#: statistics whose raw per-rank values are sums over samples (added over ranks)
SUMMED: tuple[str, ...] = (
    "gradient",
    "second_moment",
    "fisher_mc_diag",
    "ggn_diag",
    "kfac",
    "kflr",
    "kfac_ef",
)


def kron_shapes(
    module: torch.nn.Module, weight: bool, bias: bool
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Shapes of a layer's Kronecker factors ``(A, G)`` of ``[W, β]`` (covered parts only)."""
    out = module.weight.shape[0]  # type: ignore[union-attr,index]
    inp = (module.weight[0].numel() if weight else 0) + int(bias)  # type: ignore[index]
    return ((inp, inp), (out, out))


def all_reduce_sums(
    sums: Mapping[str, Sequence[Tensor]],
    num_samples: int,
    device: torch.device,
    label: str,
) -> tuple[dict[str, list[Tensor]], int]:
    """Add the ranks' sums: one ``int64`` count, then one flat buffer of every tensor.

    Parameters
    ----------
    sums : mapping of str to sequence of Tensor
        This rank's unscaled sums over its samples, by name (the same names, shapes and
        dtypes on every rank; a rank without samples passes zeros).
    num_samples : int
        This rank's number of samples :math:`N_r`.
    device : torch.device
        Where the count travels (the device of the sums).
    label : str
        Names the call in the ranks' agreement and in errors.

    Returns
    -------
    tuple
        The global sums in the same layout (new tensors) and the global :math:`N`.

    Raises
    ------
    fisherlab.distributed.CollectiveError
        If the ranks reduce different statistics, or one does not join within the timeout.
    """
    total = fl_distributed.all_reduce_count(num_samples, f"{label}: number of samples", device)
    names = list(sums)
    tensors = [t for name in names for t in sums[name]]
    if not tensors:
        return {}, total
    described = ",".join(f"{name}:{len(sums[name])}" for name in names)
    pieces = iter(fl_distributed.all_reduce_tensors(tensors, f"{label}: {described}", device))
    result = {name: [next(pieces) for _ in sums[name]] for name in names}
    return result, total


def gather_rows(tensor: Tensor, label: str) -> Tensor:
    """Concatenate every rank's ``(N_r, ...)`` tensor along dimension 0, in rank order.

    The row counts are exchanged first (one ``int64`` per rank), the tensors are padded to
    the largest count, gathered, and trimmed.
    """
    count = torch.tensor([tensor.shape[0]], dtype=torch.int64, device=tensor.device)
    sizes = [int(c.item()) for c in fl_distributed.all_gather(count, f"{label}: rows")]
    padded = tensor.new_zeros((max(sizes), *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    parts = fl_distributed.all_gather(padded, label)
    return torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)])
