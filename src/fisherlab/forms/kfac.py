"""``form="kfac"``: the Kronecker factors of a quantity over the data.

The representation (:class:`fisherlab.representations.kfac.KFAC`) and the conventions are
documented in :mod:`fisherlab.representations.kfac`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from fisherlab import distributed as fl_distributed
from fisherlab.forms.registry import Source, register_form
from fisherlab.quantities import Quantity, QuantitySpec, exact_factors, mc_factors
from fisherlab.representations.kfac import KFAC, KroneckerBlock

__all__ = ["kfac", "compute_kfac", "output_factors"]

SUPPORTED_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_KFAC_KINDS = (Quantity.FISHER, Quantity.FISHER_MC, Quantity.GGN, Quantity.EMPIRICAL_FISHER)


def layer_blocks(model: nn.Module, names: list[str], numels: list[int]) -> list[KroneckerBlock]:
    """Blocks for every module with trainable parameters; unsupported modules raise.

    Raises
    ------
    NotImplementedError
        For a module with trainable parameters that is not Linear/Conv1d/2d/3d, a grouped
        convolution, or parameters shared between modules.
    """
    offsets: dict[str, int] = {}
    position = 0
    for name, numel in zip(names, numels, strict=True):
        offsets[name] = position
        position += numel
    trainable = set(names)
    blocks: list[KroneckerBlock] = []
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        own = [(pname, p) for pname, p in module.named_parameters(recurse=False) if p.requires_grad]
        if not own:
            continue
        label = module_name or type(module).__name__
        if not isinstance(module, SUPPORTED_MODULES):
            raise NotImplementedError(
                f"kfac: module {label!r} ({type(module).__name__}) has trainable parameters but "
                "K-FAC supports only Linear and Conv1d/2d/3d layers; freeze it or use "
                "form='blockdiag'/'diag'/'operator'"
            )
        unknown = sorted({pname for pname, _ in own} - {"weight", "bias"})
        if unknown or parametrize.is_parametrized(module):
            what = ", ".join(map(repr, unknown)) or "parametrized weight"
            raise NotImplementedError(
                f"kfac: module {label!r} ({type(module).__name__}) has trainable {what} "
                "(e.g. weight normalisation), which K-FAC's factors of weight and bias do not "
                "cover; use form='diag'/'blockdiag'/'operator'"
            )
        if isinstance(module, nn.modules.conv._ConvNd) and module.groups != 1:
            raise NotImplementedError(
                f"kfac: grouped convolution {label!r} (groups={module.groups}) is not supported"
            )
        full = {f"{module_name}.{pname}" if module_name else pname: p for pname, p in own}
        for full_name, p in full.items():
            if id(p) in seen or full_name not in trainable:
                raise NotImplementedError(
                    f"kfac: parameter {full_name!r} of module {label!r} is shared with another "
                    "module (tied weights); K-FAC needs one layer per parameter"
                )
            seen.add(id(p))
        prefix = f"{module_name}." if module_name else ""
        weight, bias = module.weight, module.bias
        has_weight = weight.requires_grad
        has_bias = bias is not None and bias.requires_grad
        blocks.append(
            KroneckerBlock(
                name=module_name,
                out_features=weight.shape[0],
                weight_columns=weight[0].numel() if has_weight else 0,
                has_bias=has_bias,
                weight_offset=offsets[prefix + "weight"] if has_weight else None,
                bias_offset=offsets[prefix + "bias"] if has_bias else None,
            )
        )
    return blocks


# -- factor collection ----------------------------------------------------------------------
def output_factors(
    curvature: Source, X: Tensor, y: Tensor, f: Tensor, spec: QuantitySpec
) -> Tensor:
    r"""Columns ``(N, C, K)`` backpropagated to form :math:`G` for the quantity of ``spec``.

    Fisher: :math:`S_n` with :math:`S_n S_n^\top = \Lambda_n`; Monte-Carlo Fisher: sampled
    gradients :math:`q_{s,n}/\sqrt S`; GGN: :math:`V_n \sqrt{\max(D_n, 0)}` from the
    eigendecomposition of :math:`\nabla_f^2 l_n`; empirical Fisher: :math:`\nabla_f l_n`.
    """
    fm = curvature.functional_model
    lik = curvature.likelihood
    kind = spec.kind
    if kind is Quantity.FISHER:
        return exact_factors(fm, X)
    if kind is Quantity.FISHER_MC:
        return mc_factors(fm, X, spec.mc_samples or 1, spec.generator)
    if kind is Quantity.GGN:
        evals, evecs = torch.linalg.eigh(lik.output_hessian(f, y))
        return evecs * evals.clamp_min(0.0).sqrt().unsqueeze(1)
    if kind is Quantity.EMPIRICAL_FISHER:
        return lik.output_gradient(f, y).unsqueeze(2)
    raise ValueError(
        f"kfac: no Kronecker-factored form of {kind.value}; supported: fisher (exact and "
        "Monte-Carlo), ggn, empirical_fisher"
    )


def unfold_input(x: Tensor, module: nn.Module) -> Tensor:
    """Layer inputs as rows ``(N, T, d_in)``: patches (``im2col``) for convolutions.

    For ``Conv{d}d`` the patch of each output location is flattened in the order
    ``(C_in, k_1, …, k_d)`` of ``weight.reshape(C_out, -1)``; padding (any padding mode,
    including ``"same"``), stride and dilation follow the module. For ``Linear`` all
    dimensions between the first and the last are locations ``T``.
    """
    if isinstance(module, nn.Linear):
        return x.reshape(x.shape[0], -1, x.shape[-1])
    conv: nn.modules.conv._ConvNd = module  # type: ignore[assignment]
    d = len(conv.kernel_size)
    if x.ndim == d + 1:  # unbatched input
        x = x.unsqueeze(0)
    pad = conv._reversed_padding_repeated_twice
    if any(pad):
        mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
        x = F.pad(x, pad, mode=mode)
    for i in range(d):
        k, s, dil = conv.kernel_size[i], conv.stride[i], conv.dilation[i]
        x = x.unfold(2 + i, dil * (k - 1) + 1, s)[..., ::dil]
    n, c = x.shape[:2]
    perm = [0, *range(2, 2 + d), 1, *range(2 + d, 2 + 2 * d)]
    x = x.permute(perm)
    return x.reshape(n, -1, c * math.prod(conv.kernel_size))


def unfold_output(z: Tensor, module: nn.Module) -> Tensor:
    """Output(-gradient)s of a layer as rows ``(N, T, d_out)``."""
    if isinstance(module, nn.Linear):
        return z.reshape(z.shape[0], -1, z.shape[-1])
    d = len(module.kernel_size)  # type: ignore[arg-type]
    if z.ndim == d + 1:
        z = z.unsqueeze(0)
    return z.flatten(2).transpose(1, 2)


def compute_kfac(curvature: Source, spec: QuantitySpec) -> KFAC:
    """Collect the Kronecker factors of ``spec``'s quantity over the data (see module doc)."""
    if spec.kind not in _KFAC_KINDS:
        raise ValueError(
            f"kfac: no Kronecker-factored form of {spec.kind.value}; supported: fisher (exact "
            "and Monte-Carlo), ggn, empirical_fisher"
        )
    model = curvature.model
    fm = curvature.functional_model
    blocks = layer_blocks(model, fm.names, fm.numels)
    modules = dict(model.named_modules())
    by_module = {block.name: block for block in blocks}
    records: dict[str, list[tuple[Tensor, Tensor]]] = {}

    def make_hook(name: str):
        def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            records.setdefault(name, []).append((inputs[0].detach(), output))

        return hook

    theta = fm.flat_params()
    A_sum = {b.name: None for b in blocks}
    G_sum = {b.name: None for b in blocks}
    positions: dict[str, int] = {}
    for X, y in curvature.batches():
        records.clear()
        handles = [modules[name].register_forward_hook(make_hook(name)) for name in by_module]
        try:
            with torch.enable_grad():
                raw = model(X)
        finally:
            for handle in handles:
                handle.remove()
        for name, calls in records.items():
            if len(calls) != 1:
                raise NotImplementedError(
                    f"kfac: module {name!r} is called {len(calls)} times in one forward pass; "
                    "K-FAC needs each layer to be applied once"
                )
        names = [name for name in by_module if name in records]
        for name in names:
            inp, out = records[name][0]
            if inp.ndim == 0 or inp.shape[0] != X.shape[0] or out.shape[0] != X.shape[0]:
                raise NotImplementedError(
                    f"kfac: module {name!r} gets an input of shape {tuple(inp.shape)} for "
                    f"{X.shape[0]} samples; K-FAC needs each layer to see one row per sample "
                    "(first dimension N), not a tensor shared by the batch"
                )
        f = raw.detach().reshape(X.shape[0], -1)
        S = output_factors(curvature, X, y, f, spec).to(theta.dtype)
        for name in names:
            block = by_module[name]
            module = modules[name]
            a = unfold_input(records[name][0][0], module)
            positions[name] = a.shape[1]
            parts = []
            if block.weight_columns:
                parts.append(a)
            if block.has_bias:
                parts.append(a.new_ones(a.shape[0], a.shape[1], 1))
            a = torch.cat(parts, dim=2).flatten(0, 1)
            term = a.T @ a
            A_sum[name] = term if A_sum[name] is None else A_sum[name] + term
        outputs = [records[name][0][1] for name in names]
        G_batch = {name: None for name in names}
        for k in range(S.shape[2]):
            grads = torch.autograd.grad(
                raw,
                outputs,
                grad_outputs=S[:, :, k].reshape(raw.shape),
                retain_graph=k + 1 < S.shape[2],
                allow_unused=True,
            )
            for name, gz in zip(names, grads, strict=True):
                if gz is None:
                    continue
                g = unfold_output(gz.detach(), modules[name]).flatten(0, 1)
                term = g.T @ g
                G_batch[name] = term if G_batch[name] is None else G_batch[name] + term
        for name, term in G_batch.items():
            if term is not None:
                G_sum[name] = term if G_sum[name] is None else G_sum[name] + term
        del raw, outputs
    if curvature.distributed:  # sums over samples: add up the ranks' shards
        device = theta.device
        for kind, sums in (("A", A_sum), ("G", G_sum)):
            for name, total in sums.items():
                label = f"kfac factor {kind} of layer {name!r}"
                sums[name] = fl_distributed.all_reduce_sum(total, label, device)
        # a rank with an empty shard saw no layer input: take the positions of the others
        local = [positions.get(block.name, 0) for block in blocks]
        counts = torch.tensor(local, dtype=torch.int64, device=device)
        agreed = fl_distributed.all_reduce_max(counts, "kfac positions per layer")
        assert agreed is not None
        positions = {block.name: int(n) for block, n in zip(blocks, agreed, strict=True)}
    for block in blocks:
        if A_sum[block.name] is None:
            raise ValueError(f"kfac: layer {block.name!r} is not used in the forward pass")
        num = curvature.num_samples * positions[block.name]
        block.A = A_sum[block.name] / num
        G = G_sum[block.name]
        if G is None:
            G = theta.new_zeros(block.out_features, block.out_features)
        block.G = curvature.normalize(G)
    return KFAC(blocks, fm.num_params, theta.dtype, theta.device, name=f"kfac({spec.kind.value})")


@register_form("kfac")
def kfac(curvature: Source, spec: QuantitySpec) -> KFAC:
    """K-FAC of the Fisher (exact or Monte-Carlo), GGN or empirical Fisher (module doc)."""
    return compute_kfac(curvature, spec)
