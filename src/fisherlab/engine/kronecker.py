r"""Kronecker factors of Linear and convolution layers: one unfolding, one factor routine.

A layer with weight :math:`W \in \mathbb{R}^{d_\text{out} \times d_\text{in}}` (a
convolution's weight reshaped to ``(C_out, C_in·∏k)``) and bias :math:`\beta` maps the
unfolded inputs :math:`a_{n,t}` at its :math:`T` positions (patches for convolutions,
sequence positions for ``Linear`` on ``(N, *, d_in)``) to :math:`z_{n,t} = W a_{n,t} +
\beta`. With the augmented weight :math:`\bar W = [W, \beta]` and input :math:`\bar a_{n,t}
= [a_{n,t}; 1]`, and the output-gradient columns :math:`g_{nk,t}` (column :math:`k` of a
factor of the output curvature, backpropagated to :math:`z_{n,t}`), the per-sample layer
gradients are :math:`\sum_t g_{nk,t} \bar a_{n,t}^\top`. The two K-FAC approximations of
weight-shared layers of Eschenhagen et al. (2023, "Kronecker-Factored Approximate Curvature
for Modern Neural Network Architectures", Eqs. 7 and 10) are

``"expand"`` (each position like a separate sample; KFC of Grosse & Martens 2016)
    :math:`A = \frac{1}{NT}\sum_{n,t} \bar a_{n,t} \bar a_{n,t}^\top`,
    :math:`G = \sum_{n,k,t} g_{nk,t} g_{nk,t}^\top`;

``"reduce"`` (positions summed out before the outer products)
    :math:`A = \frac1N\sum_n \hat a_n \hat a_n^\top` with :math:`\hat a_n = \frac1T\sum_t
    \bar a_{n,t}`, :math:`G = \sum_{n,k} \hat g_{nk} \hat g_{nk}^\top` with
    :math:`\hat g_{nk} = \sum_t g_{nk,t}`.

For :math:`T = 1` both are the K-FAC of a Linear layer (Martens & Grosse 2015, Eq. 1-3).
The scale :math:`c` of the quantity (``1/N`` or ``1``) and the :math:`1/S` of sampled
labels are applied by the caller. :math:`G \otimes A` approximates the block of
:math:`\mathrm{vec}(\bar W)` (row-major, the order of ``W.flatten()`` followed by the bias
as a last column), the layout of :class:`fisherlab.representations.kfac.KroneckerBlock`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.linalg import blas
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from fisherlab.representations.kfac import KroneckerBlock

__all__ = [
    "APPROXIMATIONS",
    "SUPPORTED_MODULES",
    "check_approx",
    "unfold_input",
    "unfold_output",
    "augment",
    "gram",
    "kron_factors",
    "eigenbasis_squares",
    "layer_blocks",
]

#: the K-FAC approximations of weight-shared layers
APPROXIMATIONS = ("expand", "reduce")
SUPPORTED_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


#: BLAS symmetric rank-k updates by dtype (CPU tensors)
_SYRK = {torch.float32: (blas.ssyrk, np.float32), torch.float64: (blas.dsyrk, np.float64)}
#: below this many multiply-adds (``M d²``) a plain matrix product is as fast
SYRK_MIN_WORK = 1 << 24


def gram(rows: Tensor, scale: float = 1.0) -> Tensor:
    r"""The scaled Gram matrix :math:`s\, R^\top R` of rows ``R`` ``(M, d)``, ``(d, d)``.

    On the CPU in float32/float64, for products of at least ``SYRK_MIN_WORK`` multiply-adds,
    it is one BLAS symmetric rank-k update (``syrk``: half the multiply-adds of a matrix
    product, the scale applied inside it, one triangle formed and then mirrored); otherwise
    ``R.T @ R``. No gradient flows through it.
    """
    m, d = rows.shape
    if rows.dtype not in _SYRK or rows.device.type != "cpu" or m * d * d < SYRK_MIN_WORK:
        product = rows.T @ rows
        return product if scale == 1.0 else product.mul_(scale)
    syrk, dtype = _SYRK[rows.dtype]
    # the transpose of C-ordered rows is a Fortran-ordered (d, M) array: no copy for BLAS
    lower_zero = np.zeros((d, d), dtype=dtype, order="F")
    upper = torch.from_numpy(
        syrk(scale, rows.detach().contiguous().numpy().T, trans=0, c=lower_zero, overwrite_c=1)
    )
    full = upper.T + upper  # upper is Fortran-ordered: its transpose first gives C order
    full.diagonal().sub_(upper.diagonal())
    return full.contiguous()


def check_approx(approx: str) -> str:
    """Return ``approx`` if it is one of :data:`APPROXIMATIONS`, else raise ``ValueError``."""
    if approx not in APPROXIMATIONS:
        raise ValueError(f"approx must be one of {APPROXIMATIONS}, got {approx!r}")
    return approx


def _conv_pads(conv: nn.modules.conv._ConvNd) -> list[int]:
    """Padding of each side in :func:`torch.nn.functional.pad` order (last dimension first)."""
    if isinstance(conv.padding, str):
        if conv.padding == "valid":
            return [0] * (2 * len(conv.kernel_size))
        pads = []  # "same": torch puts the odd element on the right
        for k, d in zip(reversed(conv.kernel_size), reversed(conv.dilation), strict=True):
            total = d * (k - 1)
            pads += [total // 2, total - total // 2]
        return pads
    return [int(p) for p in reversed(conv.padding) for _ in range(2)]


def pad_input(conv: nn.modules.conv._ConvNd, x: Tensor) -> Tensor:
    """The convolution's input padded as the module pads it (any ``padding_mode``)."""
    pads = _conv_pads(conv)
    if not any(pads):
        return x
    mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
    return F.pad(x, pads, mode=mode)


def unfold_input(module: nn.Module, x: Tensor) -> Tensor:
    """Layer inputs as rows ``(N, T, d_in)``: patches (``im2col``) for convolutions.

    For ``Conv{d}d`` the patch of each output position is flattened in the order
    ``(C_in, k_1, …, k_d)`` of ``weight.reshape(C_out, -1)`` (channel-major, so the
    channels of group :math:`g` are the contiguous slice ``g·C_in/G·∏k`` onward); padding
    (any ``padding_mode``, including ``padding="same"``), stride and dilation follow the
    module. For ``Linear`` all dimensions between the first and the last are positions.
    """
    if isinstance(module, nn.Linear):
        return x.reshape(x.shape[0], -1, x.shape[-1])
    conv: nn.modules.conv._ConvNd = module  # type: ignore[assignment]
    d = len(conv.kernel_size)
    if x.ndim == d + 1:  # unbatched input
        x = x.unsqueeze(0)
    x = pad_input(conv, x)
    for i in range(d):
        k, s, dil = conv.kernel_size[i], conv.stride[i], conv.dilation[i]
        x = x.unfold(2 + i, dil * (k - 1) + 1, s)[..., ::dil]
    n, c = x.shape[:2]
    x = x.permute(0, *range(2, 2 + d), 1, *range(2 + d, 2 + 2 * d))
    return x.reshape(n, -1, c * math.prod(conv.kernel_size))


def unfold_output(module: nn.Module, z: Tensor) -> Tensor:
    """Outputs (or output gradients) ``(M, ...)`` of a layer as rows ``(M, T, d_out)``."""
    if isinstance(module, nn.Linear):
        return z.reshape(z.shape[0], -1, z.shape[-1])
    d = len(module.kernel_size)  # type: ignore[arg-type]
    if z.ndim == d + 1:
        z = z.unsqueeze(0)
    return z.flatten(2).transpose(1, 2)


def augment(a: Tensor, weight: bool = True, bias: bool = True) -> Tensor:
    r"""Rows :math:`\bar a = [a; 1]` of the covered parameters, ``(..., weight·d_in + bias)``.

    ``a`` is ``(N, T, d_in)`` or any rows ``(..., d_in)``.
    """
    parts = [a] if weight else []
    if bias:
        parts.append(a.new_ones(*a.shape[:-1], 1))
    return torch.cat(parts, dim=-1)


def kron_factors(
    a: Tensor, g: Tensor, weight: bool = True, bias: bool = True, approx: str = "expand"
) -> tuple[Tensor, Tensor]:
    r"""Kronecker factors ``(A, G)`` of the augmented weight ``[W, β]`` (see the module doc).

    Parameters
    ----------
    a : Tensor
        Unfolded layer inputs :math:`a_{n,t}`, ``(N, T, d_in)`` (:func:`unfold_input`).
    g : Tensor
        Output-gradient columns :math:`g_{nk,t}`, ``(K, N, T, d_out)``.
    weight, bias : bool
        Which parameters the block covers: the columns of :math:`W` and/or the constant
        column of :math:`\bar a` (``A`` is ``(weight·d_in + bias)²``).
    approx : {"expand", "reduce"}
        Eschenhagen et al. (2023) K-FAC-expand or K-FAC-reduce.

    Returns
    -------
    tuple of Tensor
        :math:`A` (normalised by this batch's :math:`N`, and :math:`T` for expand) and the
        unnormalised sum :math:`G`, ``(d_out, d_out)``.
    """
    check_approx(approx)
    n, t = a.shape[:2]
    if approx == "expand":
        A = _augmented_gram(a.reshape(n * t, -1), weight, bias, 1.0 / max(n * t, 1))
        cols = g.reshape(-1, g.shape[-1])
    else:
        A = gram(augment(a, weight, bias).mean(1), 1.0 / max(n, 1))
        cols = g.sum(2).reshape(-1, g.shape[-1])
    return A, gram(cols)


def _augmented_gram(rows: Tensor, weight: bool, bias: bool, scale: float) -> Tensor:
    r""":math:`s \sum_m \bar a_m \bar a_m^\top` of rows ``(M, d_in)``, :math:`\bar a = [a; 1]`.

    With fewer rows than columns the column of ones is appended (a copy of ``M (d + 1)``
    numbers); otherwise the blocks :math:`\sum_m a_m a_m^\top`, :math:`\sum_m a_m` and
    :math:`M` are filled in, without copying the rows.
    """
    m, d = rows.shape
    if not bias:
        return gram(rows, scale)
    if not weight:
        return rows.new_full((1, 1), m * scale)
    if m <= d:
        return gram(augment(rows), scale)
    out = rows.new_empty(d + 1, d + 1)
    out[:d, :d] = gram(rows, scale)
    total = rows.sum(0) * scale
    out[:d, d] = total
    out[d, :d] = total
    out[d, d] = m * scale
    return out


def _augmented_times(a: Tensor, Q: Tensor, weight: bool, bias: bool) -> Tensor:
    r""":math:`\bar a\, Q` for rows ``a`` ``(N, T, d_in)`` without forming ``[a; 1]``."""
    if not bias:
        return a @ Q
    if not weight:
        return Q[0].expand(*a.shape[:2], Q.shape[1])
    return torch.addmm(Q[-1], a.reshape(-1, a.shape[-1]), Q[:-1]).reshape(*a.shape[:2], -1)


def eigenbasis_squares(
    a: Tensor, g: Tensor, QA: Tensor, QG: Tensor, weight: bool = True, bias: bool = True
) -> Tensor:
    r"""Sums of squared per-sample layer gradients in the basis :math:`Q_G \otimes Q_A`.

    :math:`\sum_{n,k} \big((Q_G^\top \nabla_{nk} Q_A)_{ij}\big)^2` with the per-sample,
    per-column gradient of the augmented weight :math:`\nabla_{nk} = \sum_t g_{nk,t}
    \bar a_{n,t}^\top`, ``(d_out, d_in)``: the unnormalised eigenvalues of EK-FAC
    (George et al. 2018, Eq. 19). Inputs as in :func:`kron_factors`.
    """
    ta = _augmented_times(a, QA, weight, bias)  # (N, T, d_in)
    tg = g @ QG  # (K, N, T, d_out)
    grads = torch.einsum("knto,nti->knoi", tg, ta)
    return grads.square().sum((0, 1))


def layer_blocks(model: nn.Module, names: list[str], numels: list[int]) -> list[KroneckerBlock]:
    """Blocks (without factors) for every module with trainable parameters.

    ``names`` and ``numels`` are the trainable parameters in the order of the flat vector.

    Raises
    ------
    NotImplementedError
        For a module with trainable parameters that is not Linear/Conv1d/2d/3d, a grouped
        convolution, a parametrized weight, or parameters shared between modules.
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
        prefix = f"{module_name}." if module_name else ""
        for pname, p in own:
            if id(p) in seen or prefix + pname not in trainable:
                raise NotImplementedError(
                    f"kfac: parameter {prefix + pname!r} of module {label!r} is shared with "
                    "another module (tied weights); K-FAC needs one layer per parameter"
                )
            seen.add(id(p))
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
