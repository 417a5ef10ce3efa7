"""K-FAC's two front doors agree, and expand/reduce match their definitions (float64).

``Curvature(...).ggn(form="kfac")`` and ``collect(...).kfac("kflr")`` must be the same
matrix; both are compared with K-FAC-expand and K-FAC-reduce (Eschenhagen et al. 2023)
computed by brute force from per-position inputs and output gradients, which here come
from ``torch.nn.functional.unfold`` and one autograd pass per sample and column, not from
fisherlab.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import fisherlab as fl
import oracles
from fisherlab.engine.hooks import compute

DT = torch.float64
N = 5
C = 3


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1),
        nn.Tanh(),
        nn.Conv2d(3, 2, 2, stride=2),
        nn.Sigmoid(),
        nn.Flatten(),
        nn.Linear(2 * 2 * 2, C),
    )


def _cnn_reflect() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 2, 2, padding="same", padding_mode="reflect"),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(2 * 4 * 4, C),
    )


def _sequence() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 5, C))


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, C))


#: name → (model, input shape per sample)
MODELS = {
    "conv2d+linear": (_cnn, (2, 4, 4)),
    "conv-same-reflect": (_cnn_reflect, (2, 4, 4)),
    "linear-on-sequences": (_sequence, (5, 3)),
    "mlp": (_mlp, (4,)),
}
LIKELIHOODS = ["categorical", "gaussian"]
REDUCTIONS = ["mean", "sum"]
APPROXES = ["expand", "reduce"]


def _problem(model_name: str, lik_name: str, seed: int = 0):
    build, shape = MODELS[model_name]
    torch.manual_seed(seed)
    model = build().to(DT)
    g = torch.Generator().manual_seed(seed + 1)
    X = torch.randn(N, *shape, generator=g, dtype=DT)
    if lik_name == "categorical":
        return model, fl.likelihoods.Categorical(), X, torch.randint(0, C, (N,), generator=g)
    return model, fl.likelihoods.Gaussian(sigma=0.8), X, torch.randn(N, C, generator=g, dtype=DT)


def _max_difference(K1, K2) -> float:
    assert [b.name for b in K1.blocks] == [b.name for b in K2.blocks]
    worst = 0.0
    for b1, b2 in zip(K1.blocks, K2.blocks, strict=True):
        assert (b1.weight_offset, b1.bias_offset) == (b2.weight_offset, b2.bias_offset)
        worst = max(worst, float((b1.A - b2.A).abs().max()), float((b1.G - b2.G).abs().max()))
    return worst


@pytest.mark.parametrize("approx", APPROXES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("lik_name", LIKELIHOODS)
@pytest.mark.parametrize("model_name", list(MODELS))
def test_collector_kfac_equals_curvature_kfac(model_name, lik_name, reduction, approx):
    model, lik, X, y = _problem(model_name, lik_name)
    # the Curvature sums over two batches, the collector sees one
    curv = fl.Curvature(model, lik, X, y, reduction=reduction, batch_size=3)
    exact = compute(model, lik, X, y, ("kflr", "kfac_ef"), reduction, kfac_approx=approx)
    K = exact.kfac("kflr")
    assert _max_difference(K, curv.ggn(form="kfac", approx=approx)) < 1e-10
    assert _max_difference(K, curv.fisher(form="kfac", approx=approx)) < 1e-10
    ef = curv.empirical_fisher(form="kfac", approx=approx)
    assert _max_difference(exact.kfac("kfac_ef"), ef) < 1e-10
    # the same sampled labels for generators seeded alike (one batch: the same draws)
    one_batch = fl.Curvature(model, lik, X, y, reduction=reduction)
    mc = compute(
        model,
        lik,
        X,
        y,
        ("kfac",),
        reduction,
        mc_samples=2,
        generator=torch.Generator().manual_seed(7),
        kfac_approx=approx,
    ).kfac("kfac")
    gen = torch.Generator().manual_seed(7)
    dense_side = one_batch.fisher(form="kfac", mc_samples=2, generator=gen, approx=approx)
    assert _max_difference(mc, dense_side) < 1e-10


def _per_position(model: nn.Module, lik, X: torch.Tensor):
    """Per layer: inputs ``(N, T, d_in)`` and exact-Fisher columns ``(K, N, T, d_out)``."""
    layers = {name: m for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}
    oracle = oracles.OracleLikelihood(lik)
    inputs, columns = {}, {}
    for name, layer in layers.items():
        seen: list[tuple[torch.Tensor, torch.Tensor]] = []

        def keep(module, args, out, seen=seen):
            seen.append((args[0], out))

        handle = layer.register_forward_hook(keep)
        f = model(X)
        handle.remove()
        x, z = seen[0][0].detach(), seen[0][1]
        if isinstance(layer, nn.Conv2d):
            assert layer.padding_mode == "zeros" and not isinstance(layer.padding, str)
            patches = F.unfold(x, layer.kernel_size, layer.dilation, layer.padding, layer.stride)
            inputs[name] = patches.transpose(1, 2)
        else:
            inputs[name] = x.reshape(N, -1, x.shape[-1])
        per_column = []
        for k in range(f.shape[1]):
            rows = []
            for n in range(N):
                Lam = oracle.fisher_output(f[n].detach())
                evals, evecs = torch.linalg.eigh(Lam)
                s = evecs[:, k] * evals[k].clamp_min(0).sqrt()
                (gz,) = torch.autograd.grad(f[n] @ s, z, retain_graph=True)
                gz = gz[n]
                rows.append(
                    gz.flatten(1).T
                    if isinstance(layer, nn.Conv2d)
                    else gz.reshape(-1, gz.shape[-1])
                )
            per_column.append(torch.stack(rows))
        columns[name] = torch.stack(per_column)
    return inputs, columns


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("model_name", ["conv2d+linear", "linear-on-sequences", "mlp"])
def test_expand_and_reduce_match_their_definitions(model_name, reduction):
    model, lik, X, y = _problem(model_name, "categorical", seed=2)
    c = 1.0 / N if reduction == "mean" else 1.0
    inputs, columns = _per_position(model, lik, X)
    curv = fl.Curvature(model, lik, X, y, reduction=reduction)
    expand = curv.ggn(form="kfac", approx="expand").factors
    reduce = curv.ggn(form="kfac", approx="reduce").factors
    for name, a in inputs.items():
        T = a.shape[1]
        abar = torch.cat([a, torch.ones(N, T, 1, dtype=DT)], dim=2)
        g = columns[name]
        A_expand = sum(torch.outer(abar[n, t], abar[n, t]) for n in range(N) for t in range(T))
        G_expand = sum(
            torch.outer(g[k, n, t], g[k, n, t])
            for k in range(g.shape[0])
            for n in range(N)
            for t in range(T)
        )
        a_hat = abar.mean(1)
        g_hat = g.sum(2)
        A_reduce = sum(torch.outer(a_hat[n], a_hat[n]) for n in range(N))
        G_reduce = sum(
            torch.outer(g_hat[k, n], g_hat[k, n]) for k in range(g.shape[0]) for n in range(N)
        )
        close = dict(rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(expand[name][0], A_expand / (N * T), **close)
        torch.testing.assert_close(expand[name][1], c * G_expand, **close)
        torch.testing.assert_close(reduce[name][0], A_reduce / N, **close)
        torch.testing.assert_close(reduce[name][1], c * G_reduce, **close)
        if T > 1:  # the two differ where positions share the weight
            assert float((expand[name][1] - reduce[name][1]).abs().max()) > 1e-6


@pytest.mark.parametrize("form", ["dense", "diag", "blockdiag"])
def test_approx_applies_to_kronecker_forms_only(form):
    model, lik, X, y = _problem("mlp", "categorical")
    curv = fl.Curvature(model, lik, X, y)
    with pytest.raises(ValueError, match="approx='reduce'"):
        curv.ggn(form=form, approx="reduce")
    with pytest.raises(ValueError, match="approx"):
        curv.fisher(form="kfac", approx="mean")
    with pytest.raises(ValueError, match="approx"):
        compute(model, lik, X, y, ("kflr",), kfac_approx="sum")


def test_collector_kfac_needs_a_kronecker_statistic():
    model, lik, X, y = _problem("mlp", "categorical")
    col = compute(model, lik, X, y, ("kflr", "ggn_diag"))
    with pytest.raises(ValueError, match="statistic must be one of"):
        col.kfac("ggn_diag")
    with pytest.raises(ValueError, match="'kfac' was not requested"):
        col.kfac("kfac")
