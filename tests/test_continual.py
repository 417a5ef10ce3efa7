"""EWC: penalty value, the three Fisher diagonals, multi-task/online, forgetting, state."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

import fisherlab as fl
from fisherlab.continual import EWC, FisherType
from oracles import flat_params

DT = torch.float64


def classification_problem(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)).to(
        DT
    )
    g = torch.Generator().manual_seed(seed + 1)
    X = torch.randn(10, 3, generator=g, dtype=DT)
    y = torch.randint(0, 3, (10,), generator=g)
    return model, X, y


def explicit_diagonals(model, X, y):
    """diag of the Fisher and of the EF (mean reduction) by per-sample Jacobians."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    theta = flat_params(model)

    def out(t, x):
        params, start = {}, 0
        for name, shape in zip(names, shapes, strict=True):
            n = shapes[names.index(name)].numel()
            params[name] = t[start : start + n].view(shape)
            start += n
        return functional_call(model, params, (x.unsqueeze(0),))[0]

    fisher, ef = torch.zeros_like(theta), torch.zeros_like(theta)
    for n in range(len(y)):
        J = torch.autograd.functional.jacobian(lambda t, n=n: out(t, X[n]), theta)
        p = torch.softmax(out(theta, X[n]), 0)
        fisher += torch.einsum("cd,ce,ed->d", J, torch.diag(p) - torch.outer(p, p), J)
        g = J.T @ (p - torch.nn.functional.one_hot(y[n], 3).to(DT))
        ef += g**2
    return fisher / len(y), ef / len(y)


def test_three_fisher_types_give_the_documented_diagonals():
    model, X, y = classification_problem()
    lik = fl.likelihoods.Categorical()
    fisher, ef = explicit_diagonals(model, X, y)
    ewc = EWC(model, lam=1.0)
    exact = ewc.consolidate(lik, X, y, fisher=FisherType.EXACT)
    empirical = ewc.consolidate(lik, X, y, fisher="empirical")
    torch.testing.assert_close(exact, fisher, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(empirical, ef, rtol=1e-10, atol=1e-12)
    assert (exact - empirical).norm() > 0.2 * exact.norm()  # different matrices
    # Monte-Carlo: sampled labels, unbiased for the exact Fisher (not for the EF)
    mc = ewc.consolidate(
        lik, X, y, fisher="mc", mc_samples=4000, generator=torch.Generator().manual_seed(0)
    )
    assert (mc - fisher).norm() < 0.05 * fisher.norm()
    assert (mc - ef).norm() > 4 * (mc - fisher).norm()
    one = ewc.consolidate(
        lik, X, y, fisher="mc", mc_samples=1, generator=torch.Generator().manual_seed(0)
    )
    assert not torch.allclose(one, fisher)
    assert ewc.num_tasks == 4


def test_penalty_against_hand_computation_several_tasks_and_online():
    model, X, y = classification_problem(seed=3)
    lik = fl.likelihoods.Categorical()
    lam = 3.0
    ewc, online = EWC(model, lam=lam), EWC(model, lam=lam, online=True, gamma=0.5)
    assert ewc.penalty().item() == 0.0
    F1, _ = explicit_diagonals(model, X, y)
    a1 = flat_params(model).clone()
    ewc.consolidate(lik, X, y)
    online.consolidate(lik, X, y)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    X2 = X.flip(0) * 1.5
    F2, _ = explicit_diagonals(model, X2, y)
    a2 = flat_params(model).clone()
    ewc.consolidate(lik, X2, y)
    online.consolidate(lik, X2, y)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    theta = flat_params(model)
    summed = lam / 2 * ((F1 * (theta - a1) ** 2).sum() + (F2 * (theta - a2) ** 2).sum())
    running = lam / 2 * ((0.5 * F1 + F2) * (theta - a2) ** 2).sum()
    torch.testing.assert_close(ewc.penalty(), summed, rtol=1e-10, atol=0)
    torch.testing.assert_close(online.penalty(), running, rtol=1e-10, atol=0)
    assert ewc.num_tasks == 2 and online.num_tasks == 1
    # differentiable: its gradient is λ Σ_t F_t (θ − θ*_t)
    ewc.penalty().backward()
    grad = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    torch.testing.assert_close(grad, lam * (F1 * (theta - a1) + F2 * (theta - a2)))


def test_state_dict_round_trip():
    model, X, y = classification_problem(seed=4)
    ewc = EWC(model, lam=2.0, online=True, gamma=0.9)
    ewc.consolidate(fl.likelihoods.Categorical(), X, y)
    with torch.no_grad():
        model[0].weight.add_(0.3)
    other = EWC(model)
    other.load_state_dict(ewc.state_dict())
    assert other.lam == 2.0 and other.online and other.gamma == 0.9
    assert torch.equal(other.penalty(), ewc.penalty())
    assert ewc.penalty() > 0
    with pytest.raises(ValueError, match="shape"):
        EWC(torch.nn.Linear(2, 1).to(DT)).load_state_dict(ewc.state_dict())


def _train(model, X, y, steps, lr, penalty=None):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = 0.5 * ((model(X) - y) ** 2).mean()
        if penalty is not None:
            loss = loss + penalty()
        loss.backward()
        opt.step()


def _two_tasks(fisher):
    """Linear regression: task A uses inputs 0-2, task B inputs 2-4; they share weight 2."""
    g = torch.Generator().manual_seed(0)
    N = 50
    XA = torch.zeros(N, 5, dtype=DT)
    XA[:, :3] = torch.randn(N, 3, generator=g, dtype=DT)
    XB = torch.zeros(N, 5, dtype=DT)
    XB[:, 2:] = torch.randn(N, 3, generator=g, dtype=DT)
    yA = XA @ torch.tensor([[1.0], [-1.0], [2.0], [0.0], [0.0]], dtype=DT)
    yB = XB @ torch.tensor([[0.0], [0.0], [-2.0], [3.0], [3.0]], dtype=DT)
    model = torch.nn.Linear(5, 1, bias=False).to(DT)
    with torch.no_grad():  # task A solved exactly (noiseless, so its residuals vanish)
        # least squares on task A's own inputs: XA's last two columns are zero, and a
        # rank-deficient solve would leave those weights to the LAPACK driver
        model.weight.zero_()
        model.weight[:, :3] = torch.linalg.lstsq(XA[:, :3], yA).solution.T
    loss_a = lambda: (0.5 * ((model(XA) - yA) ** 2).mean()).item()  # noqa: E731
    before = loss_a()
    penalty = None
    if fisher is not None:
        ewc = EWC(model, lam=10.0)
        ewc.consolidate(fl.likelihoods.Gaussian(), XA, yA, fisher=fisher)
        penalty = ewc.penalty
    b_before = (0.5 * ((model(XB) - yB) ** 2).mean()).item()
    _train(model, XB, yB, steps=300, lr=0.05, penalty=penalty)
    loss_b = (0.5 * ((model(XB) - yB) ** 2).mean()).item()
    return before, loss_a(), loss_b, b_before


def test_ewc_with_the_fisher_reduces_forgetting():
    before, plain_a, plain_b, _ = _two_tasks(None)
    _, ewc_a, ewc_b, b_before = _two_tasks("exact")
    _, ef_a, _, _ = _two_tasks("empirical")
    assert before < 1e-20 and plain_b < 1e-6
    assert plain_a > 1.0  # plain training on B forgets A (the shared weight moves 2 → -2)
    assert ewc_a < 0.2 * plain_a  # EWC with the Fisher keeps most of task A
    assert ewc_b < 0.5 * b_before  # ... while still learning task B (its own weights)
    # the empirical Fisher vanishes at a noiseless optimum: no protection at all
    assert ef_a > 0.99 * plain_a


def test_bad_arguments():
    model, X, y = classification_problem()
    with pytest.raises(ValueError, match="lam"):
        EWC(model, lam=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        EWC(model, online=True, gamma=1.5)
    with pytest.raises(ValueError, match="fisher"):
        EWC(model).consolidate(fl.likelihoods.Categorical(), X, y, fisher="true")
    with pytest.raises(ValueError, match="generator"):
        EWC(model).consolidate(
            fl.likelihoods.Categorical(), X, y, generator=torch.Generator().manual_seed(0)
        )
