r"""``form="kfac"``: the Kronecker factors of a quantity over the data, from the hooks engine.

Each batch of the :class:`~fisherlab.problem.Problem` runs through the collector of
:mod:`fisherlab.engine.hooks` with the Kronecker statistic of the quantity; the factor
sums are added over batches (and over ranks when the ``Curvature`` is distributed; the
collector itself then runs with ``distributed=False``, so nothing is summed twice):
:math:`A = \frac1N \sum_b N_b A_b` and :math:`G = c \sum_b G_b`. The factors and the two
approximations of weight-shared layers (``approx="expand"``/``"reduce"``) are those of
:mod:`fisherlab.engine.kronecker`; the representation is
:class:`fisherlab.representations.kfac.KFAC`.

==========================  =============  ==============================================
quantity                    statistic      columns backpropagated to the layer outputs
==========================  =============  ==============================================
``fisher``, ``ggn``         ``kflr``       :math:`S_n`, :math:`S_n S_n^\top = \Lambda(f_n)
                                           = \nabla_f^2 l_n` (canonical-link likelihoods)
``fisher(mc_samples=S)``    ``kfac``       sampled-label gradients :math:`q_{s,n}/\sqrt S`,
                                           drawn as the dense Monte-Carlo Fisher draws them
``empirical_fisher``        ``kfac_ef``    the true-label gradient :math:`\nabla_f l_n`
==========================  =============  ==============================================
"""

from __future__ import annotations

import torch
from torch import Tensor

from fisherlab import distributed as fl_distributed
from fisherlab.engine.hooks.collector import KRONECKER_OF, compute
from fisherlab.engine.kronecker import layer_blocks, unfold_input, unfold_output
from fisherlab.forms.registry import Source, register_form
from fisherlab.quantities import QuantitySpec
from fisherlab.representations.ekfac import EKFAC
from fisherlab.representations.kfac import KFAC, KroneckerBlock

__all__ = [
    "kfac",
    "compute_kfac",
    "ekfac",
    "kron_blocks",
    "layer_blocks",
    "unfold_input",
    "unfold_output",
]


def statistic_of(spec: QuantitySpec) -> str:
    """The collector's Kronecker statistic of ``spec``'s quantity; others raise ``ValueError``."""
    if spec.kind not in KRONECKER_OF:
        raise ValueError(
            f"kfac: no Kronecker-factored form of {spec.kind.value}; supported: fisher (exact "
            "and Monte-Carlo), ggn, empirical_fisher"
        )
    return KRONECKER_OF[spec.kind].value


def batch_collectors(  # noqa: ANN201
    curvature: Source,
    spec: QuantitySpec,
    eigenbases: dict[str, tuple[Tensor, Tensor]] | None = None,
):
    """One filled collector per batch of ``curvature`` (unscaled sums: ``reduction="sum"``)."""
    stat = statistic_of(spec)
    for X, y in curvature.batches():
        with torch.enable_grad():  # also when called under no_grad (e.g. by an optimizer)
            col = compute(
                curvature.model,
                curvature.likelihood,
                X,
                y,
                (stat,),
                reduction="sum",
                mc_samples=spec.mc_samples or 1,
                generator=spec.generator,
                distributed=False,
                kfac_approx=spec.approx,
                kfac_eigenbases=eigenbases,
            )
        yield col


def _all_reduce(curvature: Source, sums: list[Tensor], label: str) -> list[Tensor]:
    if not curvature.distributed:
        return sums
    device = curvature.functional_model.flat_params().device
    return fl_distributed.all_reduce_tensors(sums, label, device)


def kron_blocks(curvature: Source, spec: QuantitySpec) -> list[KroneckerBlock]:
    """The layers' blocks with the factors of ``spec`` summed over batches and ranks."""
    stat = statistic_of(spec)
    fm = curvature.functional_model
    blocks = layer_blocks(curvature.model, fm.names, fm.numels)
    theta = fm.flat_params()
    A = [theta.new_zeros(b.in_features, b.in_features) for b in blocks]
    G = [theta.new_zeros(b.out_features, b.out_features) for b in blocks]
    for col in batch_collectors(curvature, spec):
        batch = col.kfac(stat).blocks
        for i, block in enumerate(batch):
            A[i] += col.num_samples * block.A
            G[i] += block.G
    label = f"kfac factors ({stat})"
    reduced = _all_reduce(curvature, [*A, *G], label)
    for i, block in enumerate(blocks):
        block.A = reduced[i] / max(curvature.num_samples, 1)
        block.G = curvature.normalize(reduced[len(blocks) + i])
    return blocks


@register_form("kfac")
def kfac(curvature: Source, spec: QuantitySpec) -> KFAC:
    """K-FAC of the Fisher (exact or Monte-Carlo), GGN or empirical Fisher (module doc)."""
    blocks = kron_blocks(curvature, spec)
    theta = curvature.functional_model.flat_params()
    name = f"kfac({spec.kind.value}, {spec.approx})"
    return KFAC(blocks, curvature.num_params, theta.dtype, theta.device, name=name)


#: the former name of the ``form="kfac"`` builder
compute_kfac = kfac


@register_form("ekfac")
def ekfac(curvature: Source, spec: QuantitySpec) -> EKFAC:
    r"""EK-FAC (:mod:`fisherlab.representations.ekfac`) of the quantities of ``form="kfac"``.

    A first pass over the data gives the K-FAC factors and their eigenbases, a second one
    the eigenvalues :math:`s = c \sum_{n,k} (Q_G^\top \nabla_{nk} Q_A)^{\odot 2}`. For
    the Monte-Carlo Fisher the second pass draws new labels from the same generator.
    """
    stat = statistic_of(spec)
    blocks = kron_blocks(curvature, spec)
    bases = {b.name: (b.eig()[3], b.eig()[1]) for b in blocks}  # (Q_A, Q_G)
    theta = curvature.functional_model.flat_params()
    scales = [theta.new_zeros(b.out_features, b.in_features) for b in blocks]
    for col in batch_collectors(curvature, spec, bases):
        corrections = col.eigenvalue_corrections(stat)
        for i, block in enumerate(blocks):
            scales[i] += corrections[block.name]
    scales = [curvature.normalize(s) for s in _all_reduce(curvature, scales, f"ekfac ({stat})")]
    name = f"ekfac({spec.kind.value}, {spec.approx})"
    return EKFAC(blocks, scales, curvature.num_params, theta.dtype, theta.device, name=name)
