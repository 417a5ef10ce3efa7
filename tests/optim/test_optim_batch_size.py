"""CABS (Alg. 1), the norm-test rule (Eq. 4.18) and the adaptive batch sampler."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import fisherlab.optim as fo


def test_cabs_matches_hand_computed_numbers():
    rule = fo.CABS(lr=0.1, min_batch=1, max_batch=1000, mu=0.5)
    assert rule.next_batch_size == 1  # m <- m_min before the first step
    # sigma^2 = 0.5 * 6 = 3, f_avg = 0.5 * 0.2 = 0.1, m = 0.1 * 3 / 0.1 = 3
    assert rule.update(loss=0.2, variance=torch.tensor([1.0, 2.0, 3.0])) == 3
    # sigma^2 = 0.5 * 3 + 0.5 * 10 = 6.5, f_avg = 0.075, m = 0.65 / 0.075 = 8.67 -> 9
    assert (
        rule.update(loss=torch.tensor(0.05), variance=[torch.tensor([4.0]), torch.tensor([-6.0])])
        == 9
    )
    assert rule.variance_avg == pytest.approx(6.5) and rule.reference_avg == pytest.approx(0.075)
    # sigma^2 = 3.25 + 1 = 4.25, f_avg = 0.0375 + 0.005 = 0.0425, m = 0.425 / 0.0425 = 10
    assert rule.update(loss=0.01, variance=2.0) == 10
    assert rule.next_batch_size == 10


def test_cabs_rounds_half_up_and_clips():
    rule = fo.CABS(lr=1.0, min_batch=2, max_batch=50, mu=0.0)
    assert rule.update(loss=1.0, variance=2.5) == 3
    assert rule.update(loss=1.0, variance=3.49) == 3
    assert rule.update(loss=1.0, variance=0.3) == 2  # clipped at min_batch
    assert rule.update(loss=1.0, variance=0.0) == 2
    assert rule.update(loss=1.0, variance=1e9) == 50  # clipped at max_batch
    assert rule.update(loss=0.0, variance=1.0) == 50  # zero loss: as large as allowed
    assert rule.update(loss=-1.0, variance=1.0) == 50


def test_cabs_batch_size_grows_as_loss_decreases():
    rule = fo.CABS(lr=0.1, min_batch=8, max_batch=256, mu=0.9)
    variance = torch.full((100,), 0.5)  # tr = 50 at every step
    sizes = [rule.update(loss=2.0 * 0.9**t, variance=variance) for t in range(80)]
    assert all(8 <= m <= 256 for m in sizes)
    assert all(a <= b for a, b in zip(sizes, sizes[1:], strict=False))
    assert sizes[5] < sizes[30] < sizes[-1] == 256
    # with constant loss the rule settles at lr * tr / f
    steady = fo.CABS(lr=0.1, min_batch=1, max_batch=10**6, mu=0.9)
    for _ in range(200):
        steady.update(loss=0.25, variance=variance)
    assert steady.next_batch_size == 20


def test_norm_test_matches_hand_computed_numbers():
    rule = fo.NormTest(theta=0.5, min_batch=1, max_batch=1000, mu=0.5)
    # sigma^2 = 0.5 * 8 = 4, |g|^2 avg = 0.5 * 2 = 1, m = 4 / (0.25 * 1) = 16
    assert rule.update(gradient=torch.tensor([1.0, -1.0]), variance=torch.full((4,), 2.0)) == 16
    # sigma^2 = 2 + 0.5 * 4 = 4, |g|^2 avg = 0.5 + 0.5 * (4 + 9) = 7, m = 4 / 1.75 = 2.29 -> 2
    gradient = [torch.tensor([2.0]), torch.tensor([[3.0]])]
    assert rule.update(gradient=gradient, variance=4.0, loss=123.0) == 2
    # sigma^2 = 4, |g|^2 avg = 3.5 (a zero gradient only lowers the average): 4 / 0.875 -> 5
    assert rule.update(gradient=torch.zeros(3), variance=4.0) == 5
    zero = fo.NormTest(min_batch=3, max_batch=7)
    assert zero.update(gradient=torch.zeros(2), variance=1.0) == 7


def test_rules_require_their_inputs():
    with pytest.raises(ValueError, match="loss"):
        fo.CABS(lr=0.1, min_batch=1, max_batch=2).update(variance=1.0)
    with pytest.raises(ValueError, match="loss"):
        fo.CABS(lr=0.1, min_batch=1, max_batch=2).update(variance=1.0, loss=math.nan)
    with pytest.raises(ValueError, match="gradient"):
        fo.NormTest(min_batch=1, max_batch=2).update(variance=1.0, loss=1.0)
    with pytest.raises(ValueError, match="variance"):
        fo.CABS(lr=0.1, min_batch=1, max_batch=2).update(variance=-1.0, loss=1.0)
    with pytest.raises(ValueError, match="variance"):
        fo.CABS(lr=0.1, min_batch=1, max_batch=2).update(
            variance=torch.tensor([math.inf]), loss=1.0
        )


@pytest.mark.parametrize(
    ("factory", "name"),
    [
        (lambda: fo.CABS(lr=-0.1, min_batch=1, max_batch=2), "lr"),
        (lambda: fo.CABS(lr=0.0, min_batch=1, max_batch=2), "lr"),
        (lambda: fo.CABS(lr=0.1, min_batch=0, max_batch=2), "min_batch"),
        (lambda: fo.CABS(lr=0.1, min_batch=-3, max_batch=2), "min_batch"),
        (lambda: fo.CABS(lr=0.1, min_batch=2.5, max_batch=4), "min_batch"),
        (lambda: fo.CABS(lr=0.1, min_batch=1, max_batch=0), "max_batch"),
        (lambda: fo.CABS(lr=0.1, min_batch=5, max_batch=4), "min_batch"),
        (lambda: fo.CABS(lr=0.1, min_batch=1, max_batch=4, mu=1.0), "mu"),
        (lambda: fo.CABS(lr=0.1, min_batch=1, max_batch=4, mu=-0.5), "mu"),
        (lambda: fo.NormTest(theta=0.0, min_batch=1, max_batch=4), "theta"),
        (lambda: fo.NormTest(theta=1.5, min_batch=1, max_batch=4), "theta"),
        (lambda: fo.NormTest(min_batch=9, max_batch=4), "max_batch"),
        (
            lambda: fo.AdaptiveBatchSampler(
                0, fo.CABS(0.1, min_batch=1, max_batch=2), 3, generator=torch.Generator()
            ),
            "num_samples",
        ),
        (
            lambda: fo.AdaptiveBatchSampler(
                5, fo.CABS(0.1, min_batch=1, max_batch=2), -1, generator=torch.Generator()
            ),
            "num_batches",
        ),
    ],
)
def test_bad_rule_arguments_raise_value_error(factory, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        factory()


def test_sampler_requires_generator():
    with pytest.raises(TypeError, match="generator"):
        fo.AdaptiveBatchSampler(5, fo.CABS(0.1, min_batch=1, max_batch=2), 3, generator=0)


def _feed(rule, t):
    g = torch.Generator().manual_seed(t)
    variance = torch.rand(5, generator=g)
    gradient = torch.randn(5, generator=g)
    return rule.update(loss=1.0 / (t + 1), gradient=gradient, variance=variance)


@pytest.mark.parametrize(
    "factory",
    [
        lambda: fo.CABS(lr=0.3, min_batch=2, max_batch=64, mu=0.7),
        lambda: fo.NormTest(theta=0.8, min_batch=2, max_batch=64, mu=0.7),
    ],
    ids=["CABS", "NormTest"],
)
def test_rule_state_dict_round_trip_is_identical(factory):
    uninterrupted = factory()
    sizes = [_feed(uninterrupted, t) for t in range(12)]

    first = factory()
    for t in range(5):
        _feed(first, t)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed = type(first)(
        min_batch=1, max_batch=1000, **({"lr": 9.0} if isinstance(first, fo.CABS) else {})
    )
    resumed.load_state_dict(saved)
    assert resumed.state_dict() == first.state_dict()
    assert resumed.next_batch_size == sizes[4]
    assert [_feed(resumed, t) for t in range(5, 12)] == sizes[5:]
    assert resumed.state_dict() == uninterrupted.state_dict()
    with pytest.raises(ValueError, match="keys"):
        resumed.load_state_dict({"variance_avg": 1.0})


def test_sampler_follows_rule_and_is_reproducible():
    class Fixed:
        next_batch_size = 3

    rule = Fixed()
    batches = list(fo.AdaptiveBatchSampler(10, rule, 7, generator=torch.Generator().manual_seed(1)))
    again = list(fo.AdaptiveBatchSampler(10, rule, 7, generator=torch.Generator().manual_seed(1)))
    assert batches == again and len(batches) == 7
    assert all(len(b) == 3 for b in batches)
    # three batches of 3 per epoch of 10 (the leftover index is dropped): no repeats in an epoch
    for epoch in (batches[0:3], batches[3:6]):
        indices = [i for b in epoch for i in b]
        assert len(set(indices)) == 9 and all(0 <= i < 10 for i in indices)
    rule.next_batch_size = 25  # larger than the data set: the whole data set, shuffled
    (batch,) = list(
        fo.AdaptiveBatchSampler(10, rule, 1, generator=torch.Generator().manual_seed(1))
    )
    assert sorted(batch) == list(range(10))


def test_cabs_training_loop_with_dataloader():
    """SGD + CABS on noisy linear regression: sizes follow the rule, loss goes down."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(512, 10, generator=g, dtype=torch.float64)
    w_true = torch.linspace(-1.0, 1.0, 10, dtype=torch.float64)
    y = X @ w_true + 0.5 * torch.randn(512, generator=g, dtype=torch.float64)
    w = torch.zeros(10, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([w], lr=0.5)
    # near the optimum lr * tr(Σ) / f ≈ lr * 2 * dim = 10 > min_batch
    rule = fo.CABS(lr=0.5, min_batch=2, max_batch=256, mu=0.8)
    sampler = fo.AdaptiveBatchSampler(len(X), rule, 40, generator=torch.Generator().manual_seed(2))
    loader = DataLoader(TensorDataset(X, y), batch_sampler=sampler)
    sizes, losses = [], []
    for xb, yb in loader:
        assert len(xb) == rule.next_batch_size
        sizes.append(len(xb))
        per_sample_loss = 0.5 * (xb @ w - yb) ** 2
        loss = per_sample_loss.mean()
        optimizer.zero_grad()
        loss.backward()
        per_sample_grads = (xb @ w - yb).detach()[:, None] * xb  # Eq. 3.28-3.30 by hand
        variance = per_sample_grads.var(dim=0, unbiased=True)
        optimizer.step()
        rule.update(loss=loss.detach(), variance=variance)
        losses.append(loss.item())
    assert len(sizes) == 40 and sizes[0] == 2
    assert max(sizes[-5:]) > sizes[0]
    assert sum(losses[-5:]) < sum(losses[:5])
