"""PreconditionedGD against a step-by-step re-statement with explicit per-sample Jacobians."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.func import functional_call

import fisherlab as fl
from fisherlab.optim import PreconditionedGD
from oracles import flat_params, unflat_params

DT = torch.float64


# -- explicit reference ------------------------------------------------------------------
class Reference:
    """Softmax cross-entropy quantities at ``theta`` with explicit per-sample loops."""

    def __init__(self, model, X, y, reduction="mean"):
        self.model, self.X, self.y, self.reduction = model, X, y, reduction

    def outputs(self, theta, x):
        return functional_call(self.model, unflat_params(self.model, theta), (x.unsqueeze(0),))[0]

    def loss(self, theta):
        f = functional_call(self.model, unflat_params(self.model, theta), (self.X,))
        total = torch.nn.functional.cross_entropy(f, self.y, reduction="sum")
        return total / len(self.y) if self.reduction == "mean" else total

    def quantities(self, theta):
        N = len(self.y)
        c = 1.0 / N if self.reduction == "mean" else 1.0
        D = theta.numel()
        fisher = torch.zeros(D, D, dtype=DT)
        ef = torch.zeros(D, D, dtype=DT)
        grads = []
        for n in range(N):
            J = torch.autograd.functional.jacobian(lambda t, n=n: self.outputs(t, self.X[n]), theta)
            p = torch.softmax(self.outputs(theta, self.X[n]), 0)
            lam = torch.diag(p) - torch.outer(p, p)
            r = p - torch.nn.functional.one_hot(self.y[n], p.numel()).to(DT)
            g = J.T @ r
            grads.append(g)
            fisher += J.T @ lam @ J
            ef += torch.outer(g, g)
        gradient = c * torch.stack(grads).sum(0)
        hessian = torch.autograd.functional.hessian(self.loss, theta)
        return {
            "gradient": gradient,
            "fisher": c * fisher,
            "ggn": c * fisher,  # softmax cross-entropy: the GGN is the Fisher
            "empirical_fisher": c * ef,
            "hessian": hessian,
            "grads": torch.stack(grads),
        }


def reference_direction(q, preconditioner, form, damping, variance_adaptation=False, N=None):
    g = q["gradient"]
    if preconditioner == "identity":
        return g
    B = q[preconditioner]
    if variance_adaptation:
        # Kunstner et al. Eq. 19 with Σ + ∇L∇Lᵀ = (Eq. 18): EF (mean) or N·EF (sum)
        B = B if N is None else N * B
        if form == "diag":
            return g**3 / (torch.diagonal(B) + damping)
        return torch.linalg.solve(B + damping * torch.eye(len(g), dtype=DT), g) * (g @ g)
    if form == "diag":
        return g / (torch.diagonal(B) + damping)
    return torch.linalg.solve(B + damping * torch.eye(len(g), dtype=DT), g)


def _categorical_gd(model, **kwargs):
    return PreconditionedGD(model.parameters(), model, fl.likelihoods.Categorical(), **kwargs)


def make_problem(seed=0, linear=False):
    torch.manual_seed(seed)
    if linear:
        model = torch.nn.Linear(3, 3).to(DT)
    else:
        model = torch.nn.Sequential(
            torch.nn.Linear(3, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2)
        ).to(DT)
    g = torch.Generator().manual_seed(seed + 1)
    X = torch.randn(6, 3, generator=g, dtype=DT)
    y = torch.randint(0, 3 if linear else 2, (6,), generator=g)
    return model, X, y


STEPS = 10
CASES = [("identity", "dense")] + [
    (pre, form)
    for pre in ("fisher", "empirical_fisher", "ggn", "hessian")
    for form in ("dense", "diag", "operator")
]


@pytest.mark.parametrize(("preconditioner", "form"), CASES, ids=["-".join(c) for c in CASES])
def test_matches_restatement(preconditioner, form):
    model, X, y = make_problem()
    lr, damping = 0.3, 0.5
    opt = _categorical_gd(
        model,
        lr=lr,
        damping=damping,
        preconditioner=preconditioner,
        form=form,
    )
    ref = Reference(copy.deepcopy(model), X, y)
    theta = flat_params(model).clone()
    for _ in range(STEPS):
        q = ref.quantities(theta)
        loss = opt.step(X, y)
        torch.testing.assert_close(loss, ref.loss(theta), rtol=0, atol=1e-12)
        theta = theta - lr * reference_direction(q, preconditioner, form, damping)
        torch.testing.assert_close(flat_params(model), theta, rtol=0, atol=1e-12)
    assert not torch.allclose(theta, flat_params(ref.model))  # the parameters did move


def _kfac_dense(model, X, G):
    """G ⊗ A (row-major vec of [W, b]) permuted to the flat order [vec W, b]."""
    Xb = torch.cat([X, torch.ones(len(X), 1, dtype=DT)], 1)
    A = Xb.T @ Xb / len(X)
    K = torch.kron(G, A)
    d_out, d_in = model.weight.shape
    index = [i * (d_in + 1) + j for i in range(d_out) for j in range(d_in)]
    index += [i * (d_in + 1) + d_in for i in range(d_out)]
    index = torch.tensor(index)
    return K[index][:, index]


@pytest.mark.parametrize("preconditioner", ["fisher", "ggn", "empirical_fisher"])
def test_kfac_linear_matches_restatement(preconditioner):
    model, X, y = make_problem(seed=3, linear=True)
    lr, damping = 0.5, 0.1
    opt = _categorical_gd(
        model,
        lr=lr,
        damping=damping,
        preconditioner=preconditioner,
        form="kfac",
    )
    theta = flat_params(model).clone()
    probe = copy.deepcopy(model)
    for _ in range(STEPS):
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(theta, probe.parameters())
            f = probe(X)
        p = torch.softmax(f, 1)
        # output-gradient factors of K-FAC's G for one linear layer (J_z = I)
        if preconditioner == "empirical_fisher":
            r = p - torch.nn.functional.one_hot(y, 3).to(DT)
            G = r.T @ r / len(y)
        else:
            G = sum(torch.diag(pn) - torch.outer(pn, pn) for pn in p) / len(y)
        B = _kfac_dense(probe, X, G)
        grad = torch.autograd.functional.jacobian(lambda t: Reference(probe, X, y).loss(t), theta)
        opt.step(X, y)
        theta = theta - lr * torch.linalg.solve(B + damping * torch.eye(len(theta), dtype=DT), grad)
        torch.testing.assert_close(flat_params(model), theta, rtol=0, atol=1e-12)


@pytest.mark.parametrize("form", ["dense", "diag"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_variance_adaptation_matches_eq19(form, reduction):
    model, X, y = make_problem(seed=5)
    lr, damping = (0.5, 0.1) if reduction == "mean" else (0.5 / 6, 0.6)  # same scale for sum
    opt = _categorical_gd(
        model,
        lr=lr,
        damping=damping,
        preconditioner="empirical_fisher",
        form=form,
        variance_adaptation=True,
        reduction=reduction,
    )
    ref = Reference(copy.deepcopy(model), X, y, reduction=reduction)
    theta = flat_params(model).clone()
    N = None if reduction == "mean" else len(y)
    for _ in range(STEPS):
        q = ref.quantities(theta)
        if reduction == "sum":  # Eq. 18: N·EF = Σ + ∇L∇Lᵀ with Σ = cov of N g_n
            cov = N * (q["grads"].T @ q["grads"]) - torch.outer(q["gradient"], q["gradient"])
            torch.testing.assert_close(
                cov + torch.outer(q["gradient"], q["gradient"]), N * q["empirical_fisher"]
            )
        opt.step(X, y)
        d = reference_direction(q, "empirical_fisher", form, damping, True, N)
        theta = theta - lr * d
        torch.testing.assert_close(flat_params(model), theta, rtol=0, atol=1e-12)


def test_param_groups_share_one_monte_carlo_fisher():
    """Two groups with different dampings precondition with the same Monte-Carlo draw."""
    model, X, y = make_problem(seed=7)
    first, second = list(model.parameters())[:2], list(model.parameters())[2:]
    g = torch.Generator().manual_seed(0)
    opt = PreconditionedGD(
        [{"params": first, "damping": 0.5}, {"params": second, "damping": 2.0}],
        model,
        fl.likelihoods.Categorical(),
        lr=0.1,
        mc_samples=2,
        generator=g,
    )
    theta = flat_params(model).clone()
    c = fl.Curvature(model, fl.likelihoods.Categorical(), X, y)
    grad = c.gradient()
    F = c.fisher(mc_samples=2, generator=torch.Generator().manual_seed(0))
    opt.step(X, y)
    eye = torch.eye(len(theta), dtype=DT)
    d1 = torch.linalg.solve(F + 0.5 * eye, grad)
    d2 = torch.linalg.solve(F + 2.0 * eye, grad)
    k = sum(p.numel() for p in first)
    expected = theta - 0.1 * torch.cat([d1[:k], d2[k:]])
    torch.testing.assert_close(flat_params(model), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("form", ["operator", "dense"])
def test_param_groups_precondition_at_the_same_parameters(form):
    """Every group's direction is computed before any parameter moves (matrix-free too)."""
    model, X, y = make_problem(seed=7)
    first, second = list(model.parameters())[:2], list(model.parameters())[2:]
    opt = PreconditionedGD(
        [{"params": first, "damping": 0.5}, {"params": second, "damping": 2.0}],
        model,
        fl.likelihoods.Categorical(),
        lr=0.1,
        form=form,
    )
    theta = flat_params(model).clone()
    c = fl.Curvature(model, fl.likelihoods.Categorical(), X, y)
    grad, F = c.gradient(), c.fisher()
    opt.step(X, y)
    eye = torch.eye(len(theta), dtype=DT)
    d1 = torch.linalg.solve(F + 0.5 * eye, grad)
    d2 = torch.linalg.solve(F + 2.0 * eye, grad)
    k = sum(p.numel() for p in first)
    expected = theta - 0.1 * torch.cat([d1[:k], d2[k:]])
    torch.testing.assert_close(flat_params(model), expected, rtol=0, atol=1e-10)


# -- NGD on linear-Gaussian problems ---------------------------------------------------------
def _linear_gaussian(seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(20, 3, generator=g, dtype=DT) * torch.tensor([1.0, 3.0, 0.3], dtype=DT)
    y = (
        X @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=DT)
        + 0.3 * torch.randn(20, 1, generator=g, dtype=DT)
        + 1.0
    )
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 1).to(DT)
    Xb = torch.cat([X, torch.ones(20, 1, dtype=DT)], 1)
    solution = torch.linalg.lstsq(Xb, y).solution.reshape(-1)  # (w1, w2, w3, b)
    return model, X, y, solution


@pytest.mark.parametrize("form", ["dense", "operator", "kfac"])
def test_ngd_solves_least_squares_in_one_step(form):
    model, X, y, solution = _linear_gaussian()
    opt = PreconditionedGD(
        model.parameters(), model, fl.likelihoods.Gaussian(), lr=1.0, damping=1e-12, form=form
    )
    opt.step(X, y)
    torch.testing.assert_close(flat_params(model), solution, rtol=0, atol=1e-8)


def test_ef_preconditioning_does_not_solve_least_squares():
    model, X, y, solution = _linear_gaussian()
    opt = PreconditionedGD(
        model.parameters(),
        model,
        fl.likelihoods.Gaussian(),
        lr=1.0,
        damping=1e-12,
        preconditioner="empirical_fisher",
    )
    opt.step(X, y)
    assert (flat_params(model) - solution).norm() > 0.1 * solution.norm()


# -- state_dict -------------------------------------------------------------------------------
def _mc_run(steps_before, steps_after, resume):
    model, X, y = make_problem(seed=11)
    lik = fl.likelihoods.Categorical()

    def new_opt(m, seed):
        g = torch.Generator().manual_seed(seed)
        return PreconditionedGD(
            m.parameters(), m, lik, lr=0.2, damping=0.3, mc_samples=1, generator=g
        )

    opt = new_opt(model, 0)
    for _ in range(steps_before):
        opt.step(X, y)
    if resume:
        saved_opt = copy.deepcopy(opt.state_dict())
        saved_model = copy.deepcopy(model.state_dict())
        model, _, _ = make_problem(seed=99)
        model.load_state_dict(saved_model)
        opt = new_opt(model, 12345)  # a different seed: the loaded state must win
        opt.load_state_dict(saved_opt)
    for _ in range(steps_after):
        opt.step(X, y)
    return flat_params(model)


def test_state_dict_round_trip_is_bit_identical():
    uninterrupted = _mc_run(10, 0, resume=False)
    resumed = _mc_run(4, 6, resume=True)
    assert torch.equal(uninterrupted, resumed)
    # and the Monte-Carlo draws matter: a different generator gives a different run
    model, X, y = make_problem(seed=11)
    assert not torch.equal(uninterrupted, flat_params(model))


def test_loading_generator_state_needs_a_generator():
    model, X, y = make_problem()
    lik = fl.likelihoods.Categorical()
    g = torch.Generator().manual_seed(0)
    opt = PreconditionedGD(model.parameters(), model, lik, mc_samples=1, generator=g)
    opt.step(X, y)
    plain = PreconditionedGD(model.parameters(), model, lik)
    with pytest.raises(ValueError, match="generator"):
        plain.load_state_dict(opt.state_dict())


# -- bad hyperparameters ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"lr": -0.1}, "lr"),
        ({"lr": 0.0}, "lr"),
        ({"damping": -1e-3}, "damping"),
        ({"damping": float("nan")}, "damping"),
        ({"preconditioner": "adam"}, "preconditioner"),
        ({"form": "dens"}, "form"),
        ({"preconditioner": "ggn", "mc_samples": 2}, "mc_samples"),
        ({"preconditioner": "fisher", "variance_adaptation": True}, "variance_adaptation"),
        ({"generator": torch.Generator()}, "generator"),
    ],
)
def test_bad_hyperparameters(kwargs, name):
    model, _, _ = make_problem()
    with pytest.raises(ValueError, match=name):
        _categorical_gd(model, **kwargs)


def test_bad_group_hyperparameters():
    model, _, _ = make_problem()
    params = list(model.parameters())
    with pytest.raises(ValueError, match="damping"):
        PreconditionedGD(
            [{"params": params[:2]}, {"params": params[2:], "damping": -1.0}],
            model,
            fl.likelihoods.Categorical(),
        )
