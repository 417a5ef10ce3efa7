"""Independent libraries as oracles: BackPACK and curvlinops give the same numbers.

Both are optional: the tests are skipped with a reason where they are not installed.
BackPACK's ``extend`` installs module backward hooks that ``torch.func`` cannot trace, so
BackPACK always works on a deep copy of the model.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import fisherlab as fl

backpack = pytest.importorskip("backpack", reason="BackPACK (backpack-for-pytorch) not installed")
curvlinops = pytest.importorskip("curvlinops", reason="curvlinops-for-pytorch not installed")
from backpack import extend  # noqa: E402
from backpack.extensions import KFAC, KFLR, DiagGGNExact, DiagGGNMC  # noqa: E402

DT = torch.float64
pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing:UserWarning")


def _mlp():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4)).double()
    X = torch.randn(10, 3, dtype=DT)
    y = torch.randint(0, 4, (10,))
    return model, X, y


def _cnn():
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(27, 4)
    ).double()
    X = torch.randn(6, 2, 5, 5, dtype=DT)
    y = torch.randint(0, 4, (6,))
    return model, X, y


LOSSES = {
    "ce-mean": lambda: nn.CrossEntropyLoss(),
    "ce-sum": lambda: nn.CrossEntropyLoss(reduction="sum"),
    "mse-mean": lambda: nn.MSELoss(),
}


def _problem(loss_name, make):
    """Model, inputs, targets (random regression targets for MSE) and the torch loss."""
    model, X, y = make()
    loss_fn = LOSSES[loss_name]()
    torch.manual_seed(2)
    if loss_name.startswith("mse"):
        y = torch.randn_like(model(X), generator=None)
    return model, X, y, loss_fn


def _backpack_run(model, loss_fn, X, y, *extensions):
    bp_model = extend(copy.deepcopy(model))
    bp_loss = extend(copy.deepcopy(loss_fn))
    loss = bp_loss(bp_model(X), y)
    with backpack.backpack(*extensions):
        loss.backward()
    return bp_model


@pytest.mark.parametrize("loss_name", list(LOSSES))
@pytest.mark.parametrize("make", [_mlp, _cnn], ids=["mlp", "cnn"])
def test_backpack_diag_ggn_and_kflr(loss_name, make):
    model, X, y, loss_fn = _problem(loss_name, make)
    c = fl.Curvature(model, fl.from_loss(loss_fn), X, y)
    bp_model = _backpack_run(model, loss_fn, X, y, DiagGGNExact(), KFLR())
    diag = torch.cat([p.diag_ggn_exact.reshape(-1) for p in bp_model.parameters()])
    torch.testing.assert_close(c.ggn("diag"), diag, rtol=1e-10, atol=1e-13)
    K = c.ggn("kfac")
    modules = dict(bp_model.named_modules())
    for name, (A, G) in K.factors.items():
        G_w, A_w = modules[name].weight.kflr
        (G_b,) = modules[name].bias.kflr
        if isinstance(modules[name], nn.Conv2d):
            # BackPACK's conv factors are not KFC's (its own docstring, hbp/convnd.py): the
            # input factor sums over the T locations instead of averaging, and the output
            # factor sums the gradients over locations before the outer product. Only the
            # input factor is comparable, up to T; the expand G is checked with curvlinops.
            T = 9
            torch.testing.assert_close(T * A[:-1, :-1], A_w, rtol=1e-10, atol=1e-13)
            continue
        # BackPACK factors weight and bias separately: A_w is the input block of our Ā
        torch.testing.assert_close(G, G_w, rtol=1e-10, atol=1e-13)
        torch.testing.assert_close(G, G_b, rtol=1e-10, atol=1e-13)
        torch.testing.assert_close(A[:-1, :-1], A_w, rtol=1e-10, atol=1e-13)


def test_backpack_monte_carlo_statistics():
    # Independent RNGs: compare the Monte-Carlo diagonal and the MC K-FAC output factor
    # with many samples; both converge to the exact values (tolerance 5% relative).
    model, X, y = _mlp()
    loss_fn = nn.CrossEntropyLoss()
    c = fl.Curvature(model, fl.from_loss(loss_fn), X, y)
    exact_diag = c.fisher("diag")
    torch.manual_seed(3)
    bp_model = _backpack_run(model, loss_fn, X, y, DiagGGNMC(mc_samples=3000), KFAC(3000))
    bp_diag = torch.cat([p.diag_ggn_mc.reshape(-1) for p in bp_model.parameters()])
    ours = c.fisher("diag", mc_samples=3000, generator=torch.Generator().manual_seed(4))
    for estimate in (bp_diag, ours):
        assert float((estimate - exact_diag).norm() / exact_diag.norm()) < 0.05
    assert float((bp_diag - ours).norm() / exact_diag.norm()) < 0.07
    K_mc = c.fisher("kfac", mc_samples=3000, generator=torch.Generator().manual_seed(5))
    K = c.fisher("kfac")
    modules = dict(bp_model.named_modules())
    for name, (A, G) in K_mc.factors.items():
        G_bp, A_bp = modules[name].weight.kfac
        torch.testing.assert_close(A[:-1, :-1], A_bp)  # inputs are not random
        G_exact = K.factors[name][1]
        assert float((G_bp - G_exact).norm() / G_exact.norm()) < 0.05
        assert float((G - G_exact).norm() / G_exact.norm()) < 0.05


@pytest.mark.parametrize("loss_name", list(LOSSES))
@pytest.mark.parametrize("make", [_mlp, _cnn], ids=["mlp", "cnn"])
def test_curvlinops_ggn_products_and_kfac_factors(loss_name, make):
    model, X, y, loss_fn = _problem(loss_name, make)
    c = fl.Curvature(model, fl.from_loss(loss_fn), X, y, batch_size=4)
    params = list(model.parameters())
    data = [(X[:4], y[:4]), (X[4:], y[4:])]
    ggn = curvlinops.GGNLinearOperator(model, loss_fn, params, data, check_deterministic=False)
    V = torch.randn(c.num_params, 3, dtype=DT)
    torch.testing.assert_close(ggn @ V, c.ggn("operator") @ V, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ggn @ V, c.ggn("dense") @ V, rtol=1e-10, atol=1e-12)
    ef = curvlinops.EFLinearOperator(model, loss_fn, params, data, check_deterministic=False)
    # curvlinops' empirical Fisher for MSELoss(reduction="mean") treats each of the C output
    # elements as a separate loss term, i.e. it is C times ours (c Σ_n g_n g_nᵀ with g_n the
    # gradient of the sample's mean-over-elements loss, DESIGN.md); equal for the others.
    C = c.functional_model.outputs(c.functional_model.params, X[:1]).shape[1]
    ef_factor = C if loss_name == "mse-mean" else 1
    torch.testing.assert_close(
        ef @ V, ef_factor * (c.empirical_fisher("operator") @ V), rtol=1e-10, atol=1e-12
    )
    for fisher_type, ours in (("type-2", c.ggn("kfac")), ("empirical", c.empirical_fisher("kfac"))):
        kfac = curvlinops.KFACLinearOperator(
            model,
            loss_fn,
            params,
            data,
            fisher_type=fisher_type,
            kfac_approx="expand",
            separate_weight_and_bias=False,
            check_deterministic=False,
        )
        kfac.compute_kronecker_factors()
        factor = ef_factor if fisher_type == "empirical" else 1
        for name, (A, G) in ours.factors.items():
            torch.testing.assert_close(A, kfac._input_covariances[name], rtol=1e-10, atol=1e-13)
            G_theirs = kfac._gradient_covariances[name] / factor
            torch.testing.assert_close(G, G_theirs, rtol=1e-10, atol=1e-13)
        torch.testing.assert_close(kfac @ V, factor * (ours @ V), rtol=1e-10, atol=1e-12)


def test_curvlinops_mc_fisher_statistics():
    model, X, y = _mlp()
    loss_fn = nn.CrossEntropyLoss()
    c = fl.Curvature(model, fl.from_loss(loss_fn), X, y)
    params = list(model.parameters())
    op = curvlinops.FisherMCLinearOperator(
        model, loss_fn, params, [(X, y)], mc_samples=3000, check_deterministic=False
    )
    exact = c.fisher("dense")
    theirs = op @ torch.eye(c.num_params, dtype=DT)
    ours = c.fisher("dense", mc_samples=3000, generator=torch.Generator().manual_seed(0))
    for estimate in (theirs, ours):
        assert float((estimate - exact).norm() / exact.norm()) < 0.05
