"""The variance conventions documented for MinibatchMSVAG and CABS, using fisherlab.Curvature."""

from __future__ import annotations

import pytest
import torch

import fisherlab as fl
import fisherlab.optim as fo


def _minibatch():
    g = torch.Generator().manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh(), torch.nn.Linear(2, 1))
    model = model.double()
    X = torch.randn(6, 3, generator=g, dtype=torch.float64)
    y = torch.randn(6, 1, generator=g, dtype=torch.float64)
    return model, X, y


def _per_sample_gradients(model, X, y):
    rows = []
    for x_n, y_n in zip(X, y, strict=True):
        model.zero_grad()
        (0.5 * (model(x_n[None]) - y_n) ** 2).sum().backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    return torch.stack(rows)


def test_curvature_variance_feeds_minibatch_msvag_and_cabs():
    model, X, y = _minibatch()
    m = len(X)
    G = _per_sample_gradients(model, X, y)
    s = ((G - G.mean(0)) ** 2).sum(0) / (m - 1)  # Eq. 3.30

    c = fl.Curvature(model, fl.likelihoods.Gaussian(sigma=1.0), X, y)
    population = c.variance(form="diag")
    torch.testing.assert_close(population / (m - 1), s / m, rtol=1e-12, atol=1e-14)

    results = []
    for variance in (population / (m - 1), s / m):
        copy = [torch.nn.Parameter(p.detach().clone()) for p in model.parameters()]
        optimizer = fo.MinibatchMSVAG(copy, lr=0.1)
        for p, g in zip(copy, fo.split_flat(G.mean(0), copy), strict=True):
            p.grad = g.clone()
        optimizer.step(variance=variance)
        results.append(torch.cat([p.detach().reshape(-1) for p in copy]))
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=1e-12)

    rules = [fo.CABS(lr=0.1, min_batch=1, max_batch=10**6, mu=0.0) for _ in range(2)]
    rules[0].update(loss=1.0, variance=population * m / (m - 1))
    rules[1].update(loss=1.0, variance=s)
    assert rules[0].variance_avg == pytest.approx(rules[1].variance_avg, rel=1e-12)
