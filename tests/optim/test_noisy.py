"""CovarianceNoiseSGD (Wen et al. 2020, Algorithm 1) against explicit re-statements."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.func import functional_call

import fisherlab as fl
from fisherlab.optim import BatchChangeSampler, CovarianceNoiseSGD
from oracles import flat_params, unflat_params

DT = torch.float64
ML, MS = 8, 2
SCALE = math.sqrt((ML - MS) / (ML * MS))


def make_problem(seed=0, linear=False):
    torch.manual_seed(seed)
    if linear:
        model = torch.nn.Linear(3, 2).to(DT)
    else:
        model = torch.nn.Sequential(
            torch.nn.Linear(3, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2)
        ).to(DT)
    g = torch.Generator().manual_seed(seed + 1)
    X = torch.randn(ML, 3, generator=g, dtype=DT)
    y = torch.randint(0, 2, (ML,), generator=g)
    return model, X, y


def reference(model, X, y, theta):
    """Gradient, Fisher and EF (mean reduction) by explicit per-sample Jacobians."""

    def out(t, x):
        return functional_call(model, unflat_params(model, t), (x.unsqueeze(0),))[0]

    D, N = theta.numel(), len(y)
    fisher, ef, grad = torch.zeros(D, D, dtype=DT), torch.zeros(D, D, dtype=DT), 0
    for n in range(N):
        J = torch.autograd.functional.jacobian(lambda t, n=n: out(t, X[n]), theta)
        p = torch.softmax(out(theta, X[n]), 0)
        g = J.T @ (p - torch.nn.functional.one_hot(y[n], p.numel()).to(DT))
        fisher += J.T @ (torch.diag(p) - torch.outer(p, p)) @ J
        ef += torch.outer(g, g)
        grad = grad + g
    return grad / N, fisher / N, ef / N


def _opt(model, **kwargs):
    kwargs.setdefault("lr", 0.3)
    return CovarianceNoiseSGD(
        model.parameters(),
        model,
        fl.likelihoods.Categorical(),
        large_batch_size=ML,
        small_batch_size=MS,
        **kwargs,
    )


@pytest.mark.parametrize(
    ("noise", "fisher", "update_every"),
    [
        ("diag", "exact", 1),
        ("diag", "empirical", 1),
        ("trace", "exact", 1),
        ("diag", "exact", 3),
    ],
)
def test_matches_algorithm_1(noise, fisher, update_every):
    """Algorithm 1 step by step, with the draw ξ = √diag(F) ⊙ z (or √(tr F / D) z) re-stated."""
    model, X, y = make_problem()
    lr, steps, noise_steps = 0.3, 12, 8
    opt = _opt(
        model,
        lr=lr,
        noise=noise,
        fisher=fisher,
        noise_steps=noise_steps,
        update_every=update_every,
        generator=torch.Generator().manual_seed(5),
    )
    probe = copy.deepcopy(model)
    z_gen = torch.Generator().manual_seed(5)
    theta = flat_params(model).clone()
    D = theta.numel()
    for k in range(steps):
        grad, F, EF = reference(probe, X, y, theta)
        if k % update_every == 0:
            cov = torch.diagonal(F if fisher == "exact" else EF).clone()
        opt.step(X, y)
        theta = theta - lr * grad
        if k < noise_steps:  # noise switched off afterwards, and no draws are made
            z = torch.randn(1, D, generator=z_gen, dtype=DT)[0]
            std = cov.sqrt() if noise == "diag" else torch.sqrt(cov.sum() / D)
            theta = theta + lr * SCALE * std * z
        torch.testing.assert_close(flat_params(model), theta, rtol=0, atol=1e-12)
    assert torch.equal(opt.generator.get_state(), z_gen.get_state())


def test_noise_off_is_large_batch_sgd_and_grad_mode_agrees():
    model, X, y = make_problem(seed=2)
    twin = copy.deepcopy(model)
    sgd = torch.optim.SGD(twin.parameters(), lr=0.3)
    opt = _opt(model, noise_steps=0)
    user = copy.deepcopy(model)
    grad_opt = _opt(
        user, gradient="grad", noise_steps=0, generator=torch.Generator().manual_seed(0)
    )
    for _ in range(10):
        opt.step(X, y)
        sgd.zero_grad()
        torch.nn.functional.cross_entropy(twin(X), y).backward()
        sgd.step()
        grad_opt.zero_grad()
        torch.nn.functional.cross_entropy(user(X), y).backward()
        grad_opt.step(X, y)
    torch.testing.assert_close(flat_params(model), flat_params(twin), rtol=0, atol=1e-12)
    torch.testing.assert_close(flat_params(user), flat_params(twin), rtol=0, atol=1e-12)


def test_noise_fraction_switches_off_after_a_quarter():
    model, _, _ = make_problem()
    opt = _opt(model, total_steps=200, noise_fraction=0.25)
    assert opt.noise_steps == 50
    assert opt.noise_active(49) and not opt.noise_active(50)
    assert _opt(model).noise_active(10**6)  # default: never switched off


def _recovered_noise(noise, fisher, draws, linear=True, **kwargs):
    """Noise of ``draws`` steps with lr = 1 from the same θ0 (ξ = (θ1 − θ0 + ∇L) / s), the
    same draws from the optimizer's sampler, and 4000 sampler draws for the statistics."""
    model, X, y = make_problem(seed=4, linear=linear)
    theta0 = flat_params(model).clone()
    grad, F, EF = reference(model, X, y, theta0)
    opt = _opt(
        model,
        lr=1.0,
        noise=noise,
        fisher=fisher,
        generator=torch.Generator().manual_seed(0),
        **kwargs,
    )
    replay = torch.Generator().manual_seed(0)
    sampler = opt.make_sampler(X, y)
    for _ in range(draws):
        opt.step(X, y)
        with torch.no_grad():
            stepped = (flat_params(model) - theta0 + grad) / SCALE
            for p, chunk in zip(model.parameters(), sampler.unflatten(theta0), strict=True):
                p.copy_(chunk)
        torch.testing.assert_close(stepped, sampler.sample(replay), rtol=0, atol=1e-12)
    xi = sampler.sample(torch.Generator().manual_seed(1), num_samples=4000)
    return xi, grad, F, EF, (model, X, y)


def _assert_covariance(xi, expected, tol):
    emp = xi.T @ xi / len(xi)
    err = (emp - expected).norm() / expected.norm()
    assert err < tol, f"relative covariance error {err:.3f}"
    assert xi.mean(0).norm() < 4 * expected.diagonal().sum().sqrt() / math.sqrt(len(xi))


def test_full_fisher_noise_has_fisher_covariance():
    xi, _, F, EF, _ = _recovered_noise("full", "exact", 3)
    _assert_covariance(xi, F, 0.08)
    # ... and not the EF's, which differs from the Fisher here
    emp = xi.T @ xi / len(xi)
    assert (emp - EF).norm() > 2 * (emp - F).norm()


def test_empirical_fisher_noise_has_ef_covariance():
    xi, _, F, EF, _ = _recovered_noise("full", "empirical", 3)
    _assert_covariance(xi, EF, 0.08)
    # a Rademacher combination of the per-sample gradients: values from a finite set
    assert len({tuple(v.round(decimals=10).tolist()) for v in xi}) <= 2**ML


def test_kfac_noise_has_kfac_covariance():
    xi, _, F, _, (model, X, _) = _recovered_noise("kfac", "exact", 3)
    with torch.no_grad():
        p = torch.softmax(model(X), 1)
    G = sum(torch.diag(pn) - torch.outer(pn, pn) for pn in p) / len(p)
    Xb = torch.cat([X, torch.ones(len(X), 1, dtype=DT)], 1)
    K = torch.kron(G, Xb.T @ Xb / len(X))
    idx = torch.tensor([i * 4 + j for i in range(2) for j in range(3)] + [3, 7])
    _assert_covariance(xi, K[idx][:, idx], 0.08)


def test_multiplicative_noise_scales_the_gradient():
    xi, grad, _, _, _ = _recovered_noise("multiplicative", "exact", 3, multiplicative_std=0.5)
    _assert_covariance(xi, torch.diag(0.25 * grad**2), 0.08)
    # ξ = g ⊙ ε with ε ~ N(0, 0.25 I): the ratio to the gradient has standard deviation 0.5
    assert (xi / grad).std(0).sub(0.5).abs().max() < 0.03


def _noisy_run(steps_before, steps_after, resume, noise, update_every):
    model, X, y = make_problem(seed=8)

    def new_opt(m, seed):
        return _opt(
            m,
            noise=noise,
            update_every=update_every,
            total_steps=12,
            noise_fraction=0.75,
            generator=torch.Generator().manual_seed(seed),
        )

    opt = new_opt(model, 0)
    for k in range(steps_before):
        opt.step(X + 0.01 * k, y)
    if resume:
        saved_opt = copy.deepcopy(opt.state_dict())
        saved_model = copy.deepcopy(model.state_dict())
        model, _, _ = make_problem(seed=1)
        model.load_state_dict(saved_model)
        opt = new_opt(model, 777)
        opt.load_state_dict(saved_opt)
    for k in range(steps_before, steps_before + steps_after):
        opt.step(X + 0.01 * k, y)
    return flat_params(model)


@pytest.mark.parametrize(("noise", "update_every"), [("diag", 3), ("full", 1), ("kfac", 2)])
def test_state_dict_round_trip_is_bit_identical(noise, update_every):
    uninterrupted = _noisy_run(12, 0, False, noise, update_every)
    resumed = _noisy_run(4, 8, True, noise, update_every)  # step 4: between two refreshes
    assert torch.equal(uninterrupted, resumed)


# -- BatchChange ----------------------------------------------------------------------------
def test_batch_change_sampler():
    sampler = BatchChangeSampler(
        10,
        small_batch_size=2,
        large_batch_size=4,
        total_epochs=8,
        switch_fraction=0.25,
        generator=torch.Generator().manual_seed(0),
    )
    sizes = []
    for epoch in range(8):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        assert sorted(i for b in batches for i in b) == list(range(10))
        sizes.append(len(batches[0]))
    assert sizes == [2, 2, 4, 4, 4, 4, 4, 4]
    data = torch.utils.data.TensorDataset(torch.arange(10.0))
    sampler.set_epoch(0)
    loader = torch.utils.data.DataLoader(data, batch_sampler=sampler)
    assert [len(b[0]) for b in loader] == [2] * 5


# -- bad hyperparameters ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"lr": -0.1}, "lr"),
        ({"noise": "gaussian"}, "noise"),
        ({"fisher": "true"}, "fisher"),
        ({"fisher": "mc"}, "fisher"),
        ({"noise_fraction": 1.5, "total_steps": 10}, "noise_fraction"),
        ({"noise_fraction": -0.1, "total_steps": 10}, "noise_fraction"),
        ({"noise_fraction": 0.25}, "total_steps"),
        ({"noise_steps": -1}, "noise_steps"),
        ({"update_every": 0}, "update_every"),
        ({"multiplicative_std": -1.0}, "multiplicative_std"),
        ({"gradient": "closure"}, "gradient"),
        ({"small_batch_size": 16}, "small_batch_size"),
        ({"small_batch_size": 0}, "small_batch_size"),
    ],
)
def test_bad_hyperparameters(kwargs, name):
    model, _, _ = make_problem()
    kwargs = {"lr": 0.3, "large_batch_size": ML, "small_batch_size": MS, **kwargs}
    with pytest.raises(ValueError, match=name):
        CovarianceNoiseSGD(model.parameters(), model, fl.likelihoods.Categorical(), **kwargs)


def test_batch_change_bad_arguments():
    with pytest.raises(ValueError, match="small_batch_size"):
        BatchChangeSampler(10, small_batch_size=8, large_batch_size=4, switch_epoch=1)
    with pytest.raises(ValueError, match="switch_fraction"):
        BatchChangeSampler(10, 2, 4, total_epochs=8, switch_fraction=2.0)
