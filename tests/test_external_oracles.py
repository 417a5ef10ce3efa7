"""Independent libraries as oracles: BackPACK and curvlinops on the same model and data.

Both follow torch's loss conventions, so the likelihoods come from
:func:`fisherlab.likelihoods.from_loss`. Scaling conventions of the other libraries:

- curvlinops ``GGNLinearOperator``/``HessianLinearOperator``: ``c Σ_n …`` with ``c = 1/N``
  (mean) or 1 (sum), the same as fisherlab. ``EFLinearOperator`` treats the ``C`` output
  elements of ``MSELoss``/``BCEWithLogitsLoss`` with ``reduction="mean"`` as separate loss
  terms: it uses ``1/(N C)`` and the gradients of the per-sample *sums* over elements,
  ``C g_n``, so it is ``C`` times fisherlab's ``(1/N) Σ g_n g_nᵀ`` (whose ``g_n`` is the
  gradient of the per-sample loss ``l_n`` with ``L = (1/N) Σ l_n`` = the torch loss).
- BackPACK ``BatchGrad``: gradients of the *terms* of the batch loss, i.e. ``g_n / N``
  (mean) or ``g_n`` (sum). ``SumGradSquared``: ``Σ_n`` of their squares. ``Variance``: the
  population variance of those terms; fisherlab's variance is that of the one-sample
  estimates ``g_n`` (mean) or ``N g_n`` (sum), so BackPACK's is ``variance / N²`` in both
  cases. ``DiagGGNExact``/``DiagHessian``: diagonal of the GGN/Hessian of the batch loss.
"""

from __future__ import annotations

import copy

import pytest
import torch

import fisherlab as fl
from oracles import assert_close

N = 8
LOSSES = {
    "mse": torch.nn.MSELoss,
    "cross_entropy": torch.nn.CrossEntropyLoss,
    "bce": torch.nn.BCEWithLogitsLoss,
}


def _setup(loss_name: str, reduction: str, num_outputs: int = 3):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 6),
        torch.nn.Tanh(),
        torch.nn.Linear(6, 5),
        torch.nn.ReLU(),
        torch.nn.Linear(5, num_outputs),
    ).double()
    g = torch.Generator().manual_seed(1)
    X = torch.randn(N, 4, generator=g, dtype=torch.float64)
    if loss_name == "cross_entropy":
        y = torch.randint(0, num_outputs, (N,), generator=g)
    elif loss_name == "bce":
        y = torch.randint(0, 2, (N, num_outputs), generator=g).double()
    else:
        y = torch.randn(N, num_outputs, generator=g, dtype=torch.float64)
    loss_fn = LOSSES[loss_name](reduction=reduction)
    c = fl.Curvature(model, fl.from_loss(loss_fn), X, y)
    return model, loss_fn, X, y, c


CASES = [(loss, reduction) for loss in LOSSES for reduction in ("mean", "sum")]
IDS = [f"{loss}-{reduction}" for loss, reduction in CASES]


# -- curvlinops --------------------------------------------------------------------------------
@pytest.mark.parametrize("loss_name, reduction", CASES, ids=IDS)
def test_curvlinops_operators(loss_name, reduction):
    curvlinops = pytest.importorskip("curvlinops", reason="curvlinops is not installed")
    model, loss_fn, X, y, c = _setup(loss_name, reduction)
    params = [p for p in model.parameters() if p.requires_grad]
    data = [(X[:5], y[:5]), (X[5:], y[5:])]
    g = torch.Generator().manual_seed(2)
    V = torch.randn(c.num_params, 3, dtype=torch.float64, generator=g)
    ef_factor = 3.0 if reduction == "mean" and loss_name in ("mse", "bce") else 1.0
    pairs = [
        (curvlinops.GGNLinearOperator, c.ggn(form="operator"), 1.0),
        (curvlinops.HessianLinearOperator, c.hessian(form="operator"), 1.0),
        (curvlinops.EFLinearOperator, c.empirical_fisher(form="operator"), ef_factor),
    ]
    for operator_class, ours, factor in pairs:
        theirs = operator_class(model, loss_fn, params, data)
        assert_close(factor * (ours @ V), theirs @ V, 1e-10)
        assert_close(factor * (ours @ V[:, 0]), theirs @ V[:, 0], 1e-10)
    # the exact Fisher equals the GGN for these losses (Kunstner Prop. 1)
    theirs = curvlinops.GGNLinearOperator(model, loss_fn, params, data)
    assert_close(c.fisher(form="operator") @ V, theirs @ V, 1e-10)


# -- BackPACK ----------------------------------------------------------------------------------
def _backpack_run(model, loss_fn, X, y, *extensions):
    backpack = pytest.importorskip("backpack", reason="backpack-for-pytorch is not installed")
    model = backpack.extend(copy.deepcopy(model))
    loss_fn = backpack.extend(copy.deepcopy(loss_fn))
    loss = loss_fn(model(X), y)
    with backpack.backpack(*extensions):
        loss.backward()
    return model


def _flat(model, attribute, batch=False):
    tensors = [getattr(p, attribute) for p in model.parameters()]
    if batch:
        return torch.cat([t.reshape(t.shape[0], -1) for t in tensors], dim=1)
    return torch.cat([t.reshape(-1) for t in tensors])


@pytest.mark.parametrize("loss_name, reduction", CASES, ids=IDS)
def test_backpack_first_order(loss_name, reduction):
    pytest.importorskip("backpack", reason="backpack-for-pytorch is not installed")
    from backpack.extensions import BatchGrad, SumGradSquared, Variance

    model, loss_fn, X, y, c = _setup(loss_name, reduction)
    bp = _backpack_run(model, loss_fn, X, y, BatchGrad(), SumGradSquared(), Variance())
    term_scale = 1.0 / N if reduction == "mean" else 1.0
    G = c.per_sample_gradients()
    assert_close(_flat(bp, "grad_batch", batch=True), term_scale * G, 1e-10)
    assert_close(_flat(bp, "grad"), c.gradient(), 1e-10)
    assert_close(_flat(bp, "sum_grad_squared"), term_scale**2 * (G**2).sum(0), 1e-10)
    ef_diag = c.empirical_fisher(form="diag")
    # mean: Σ (g_n/N)² = EF_diag/N with EF = (1/N) Σ g gᵀ; sum: Σ g_n² = EF_diag
    assert_close(_flat(bp, "sum_grad_squared"), term_scale * ef_diag, 1e-10)
    assert_close(_flat(bp, "variance"), c.variance() / N**2, 1e-10)


@pytest.mark.parametrize("loss_name, reduction", CASES, ids=IDS)
def test_backpack_diagonal_curvature(loss_name, reduction):
    pytest.importorskip("backpack", reason="backpack-for-pytorch is not installed")
    from backpack.extensions import DiagGGNExact, DiagHessian

    # BackPACK's second-order BCEWithLogitsLoss supports one output only
    model, loss_fn, X, y, c = _setup(loss_name, reduction, 1 if loss_name == "bce" else 3)
    bp = _backpack_run(model, loss_fn, X, y, DiagGGNExact(), DiagHessian())
    assert_close(_flat(bp, "diag_ggn_exact"), c.ggn(form="diag"), 1e-10)
    assert_close(_flat(bp, "diag_ggn_exact"), c.fisher(form="diag"), 1e-10)
    assert_close(_flat(bp, "diag_h"), c.hessian(form="diag"), 1e-10)
