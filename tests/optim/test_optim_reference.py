"""Each optimizer against a plain step-by-step re-statement of its algorithm (float64).

The references work on one flat parameter vector with explicit tensors; the optimizers
see the same vector as two parameter tensors. ρ(β, t) is computed in the references as
the sum Σ_s c(β, t, s)² of Eq. B.26, not with the closed form Eq. 5.15.
"""

from __future__ import annotations

import pytest
import torch

import fisherlab.optim as fo

STEPS = 12
LR = 0.07
BETA = 0.8


def rho_sum(beta: float, t: int) -> float:
    return sum(((1 - beta) / (1 - beta ** (t + 1)) * beta ** (t - s)) ** 2 for s in range(t + 1))


def moments(problem, theta, t, m_tilde, v_tilde, beta):
    g = problem.gradient(theta, t)
    m_tilde = beta * m_tilde + (1 - beta) * g
    v_tilde = beta * v_tilde + (1 - beta) * g**2
    m = m_tilde / (1 - beta ** (t + 1))
    v = v_tilde / (1 - beta ** (t + 1))
    if t == 0:
        s = torch.zeros_like(m)  # §5.4.4: s_0 = 0
    else:
        s = (v - m**2) / (1 - rho_sum(beta, t))
    return g, m_tilde, v_tilde, m, s


def ref_variance_adapted(problem, beta, update):
    """The loop of the EMA-moment methods; ``update(g, m, s, t)`` is θ_t − θ_{t+1}."""
    theta = problem.theta0.clone()
    m_tilde = v_tilde = torch.zeros(8, dtype=torch.float64)
    trajectory = []
    for t in range(problem.steps):
        g, m_tilde, v_tilde, m, s = moments(problem, theta, t, m_tilde, v_tilde, beta)
        theta = theta - update(g, m, s, t)
        trajectory.append(theta)
    return trajectory


def ref_msvag(problem, lr, beta):
    def update(g, m, s, t):
        gamma = m**2 / (m**2 + rho_sum(beta, t) * s)
        return lr * gamma * m

    return ref_variance_adapted(problem, beta, update)


def ref_svag(problem, lr, beta):
    def update(g, m, s, t):
        gamma = m**2 / (m**2 + s)
        return lr * gamma * g

    return ref_variance_adapted(problem, beta, update)


def ref_adam_star(problem, lr, beta):
    def update(g, m, s, t):
        gamma = torch.sqrt(m**2 / (m**2 + rho_sum(beta, t) * s))
        return lr * gamma * torch.sign(m)

    return ref_variance_adapted(problem, beta, update)


def ref_minibatch_msvag(problem, lr, beta):
    """Alg. 6, but with Var[m_t] summed directly as in Eq. B.33 instead of the EMA B.34."""
    theta, m_tilde = problem.theta0.clone(), torch.zeros(8, dtype=torch.float64)
    trajectory = []
    for t in range(problem.steps):
        g = problem.gradient(theta, t)
        m_tilde = beta * m_tilde + (1 - beta) * g
        m = m_tilde / (1 - beta ** (t + 1))
        var_m = sum(
            ((1 - beta) / (1 - beta ** (t + 1)) * beta ** (t - s)) ** 2 * problem.variances[s]
            for s in range(t + 1)
        )
        gamma = m**2 / (m**2 + var_m)
        theta = theta - lr * gamma * m
        trajectory.append(theta)
    return trajectory


def ref_msgd(problem, lr, beta):
    theta, m_tilde = problem.theta0.clone(), torch.zeros(8, dtype=torch.float64)
    trajectory = []
    for t in range(problem.steps):
        m_tilde = beta * m_tilde + (1 - beta) * problem.gradient(theta, t)
        theta = theta - lr * m_tilde / (1 - beta ** (t + 1))
        trajectory.append(theta)
    return trajectory


def ref_mssd(problem, lr, beta):
    theta, m_tilde = problem.theta0.clone(), torch.zeros(8, dtype=torch.float64)
    trajectory = []
    for t in range(problem.steps):
        m_tilde = beta * m_tilde + (1 - beta) * problem.gradient(theta, t)
        theta = theta - lr * torch.sign(m_tilde)
        trajectory.append(theta)
    return trajectory


def ref_sign_descent(problem, lr, beta):
    theta = problem.theta0.clone()
    trajectory = []
    for t in range(problem.steps):
        theta = theta - lr * torch.sign(problem.gradient(theta, t))
        trajectory.append(theta)
    return trajectory


def ref_l1_sign_descent(problem, lr, beta):
    theta = problem.theta0.clone()
    trajectory = []
    for t in range(problem.steps):
        g = problem.gradient(theta, t)
        theta = theta - lr * g.abs().sum() * torch.sign(g)
        trajectory.append(theta)
    return trajectory


CASES = [
    (fo.MSVAG, {"beta": BETA}, ref_msvag),
    (fo.SVAG, {"beta": BETA}, ref_svag),
    (fo.AdamStar, {"beta": BETA}, ref_adam_star),
    (fo.MinibatchMSVAG, {"beta": BETA}, ref_minibatch_msvag),
    (fo.MSGD, {"beta": BETA}, ref_msgd),
    (fo.MSSD, {"beta": BETA}, ref_mssd),
    (fo.SignDescent, {}, ref_sign_descent),
    (fo.L1SignDescent, {}, ref_l1_sign_descent),
]


def run(problem, cls, kwargs, lr, steps=None):
    params = problem.make_params()
    optimizer = cls(params, lr=lr, **kwargs)
    trajectory = []
    for t in range(steps or problem.steps):
        problem.set_grads(params, t)
        if cls is fo.MinibatchMSVAG:
            optimizer.step(variance=problem.variance_list(params, t))
        else:
            optimizer.step()
        trajectory.append(problem.flat(params))
    return trajectory


@pytest.mark.parametrize(
    ("cls", "kwargs", "reference"), CASES, ids=lambda c: getattr(c, "__name__", "")
)
def test_matches_reference_float64(problem, cls, kwargs, reference):
    lr = 0.01 if cls is fo.L1SignDescent else LR
    expected = reference(problem, lr, BETA)
    actual = run(problem, cls, kwargs, lr)
    assert len(actual) == STEPS >= 10
    for t, (a, e) in enumerate(zip(actual, expected, strict=True)):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-12, msg=f"step {t}")
    # the run actually moved and stays finite
    assert torch.isfinite(actual[-1]).all()
    assert not torch.equal(actual[-1], problem.theta0)


@pytest.mark.parametrize(
    ("cls", "kwargs", "reference"), CASES, ids=lambda c: getattr(c, "__name__", "")
)
def test_float32_follows_float64_reference(problem_factory, cls, kwargs, reference):
    problem = problem_factory(steps=10, dtype=torch.float32)
    lr = 0.01 if cls is fo.L1SignDescent else LR
    actual = run(problem, cls, kwargs, lr)
    assert actual[-1].dtype == torch.float32
    expected = reference(problem_factory(steps=10), lr, BETA)[-1]
    torch.testing.assert_close(actual[-1].double(), expected, rtol=0, atol=1e-4)


def test_momentum_variance_factor_closed_form_equals_sum():
    from fisherlab.optim._functional import momentum_variance_factor

    for beta in (0.0, 0.5, 0.9, 0.999):
        for t in range(30):
            assert momentum_variance_factor(beta, t + 1) == pytest.approx(
                rho_sum(beta, t), rel=1e-12
            )
    assert momentum_variance_factor(0.9, 10**6) == pytest.approx((1 - 0.9) / (1 + 0.9))  # Eq. B.27


def test_first_steps_are_sgd_and_sign_steps(problem):
    """M-SVAG/SVAG start with an SGD step; ADAM* with the sign step torch's Adam takes too."""
    g0 = problem.gradient(problem.theta0, 0)
    for cls in (fo.MSVAG, fo.SVAG):
        torch.testing.assert_close(run(problem, cls, {}, LR, steps=1)[0], problem.theta0 - LR * g0)
    params = problem.make_params()
    adam = torch.optim.Adam(params, lr=LR, betas=(BETA, BETA), eps=0.0)
    problem.set_grads(params, 0)
    adam.step()
    torch.testing.assert_close(
        run(problem, fo.AdamStar, {"beta": BETA}, LR, steps=1)[0], problem.flat(params)
    )


def test_beta_zero_reduces_to_base_methods(problem):
    sgd = run(problem, fo.MSGD, {"beta": 0.0}, LR)
    torch.testing.assert_close(
        run(problem, fo.MSVAG, {"beta": 0.0}, LR)[-1], sgd[-1], rtol=0, atol=1e-12
    )
    torch.testing.assert_close(
        run(problem, fo.MSSD, {"beta": 0.0}, LR)[-1],
        run(problem, fo.SignDescent, {}, LR)[-1],
        rtol=0,
        atol=1e-12,
    )


@pytest.mark.parametrize("cls", [fo.MSVAG, fo.SVAG, fo.AdamStar, fo.MinibatchMSVAG])
def test_zero_gradient_coordinates_do_not_move(cls):
    """0/0 in the variance-adaptation factor means no update (§5.4.4), never NaN."""
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    optimizer = cls([p], lr=0.1)
    for t in range(5):
        p.grad = torch.tensor([0.0, 1.0 + t, -1.0], dtype=torch.float64)
        if cls is fo.MinibatchMSVAG:
            optimizer.step(variance=torch.tensor([0.0, 0.1, 0.1], dtype=torch.float64))
        else:
            optimizer.step()
    assert torch.isfinite(p).all()
    assert p[0].item() == 1.0
    assert p[1].item() < 2.0 and p[2].item() > 3.0


def test_variance_adaptation_factor_stays_in_unit_interval():
    """A constant gradient has zero variance: M-SVAG then takes full SGD steps (γ = 1)."""
    p = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    optimizer = fo.MSVAG([p], lr=0.5, beta=0.9)
    g = torch.tensor([1e-3, -2.0, 3.0, 1e8], dtype=torch.float64)
    for k in range(1, 8):
        p.grad = g.clone()
        optimizer.step()
        torch.testing.assert_close(p.detach(), -0.5 * k * g, rtol=1e-12, atol=0)
