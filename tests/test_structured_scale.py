"""No D × D matrix for form != "dense": every structured form on a model with D ≈ 2·10⁶.

The slow test runs the forms in a fresh subprocess and reads its peak resident memory
(``ru_maxrss``); the fast test runs the same code on a model with D ≈ 2·10⁴ in-process.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import pytest
import torch
from torch import nn

import fisherlab as fl

PEAK_LIMIT_GB = 4.0  # a dense 2e6 × 2e6 float32 matrix would need 16 TB


def run_forms(width: int, num_samples: int = 4, dtype=torch.float32) -> dict:
    """Build every structured form of Fisher/MC-Fisher/GGN/EF/covariance; return stats."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2 * width, width), nn.ReLU(), nn.Linear(width, 4)).to(dtype)
    D = sum(p.numel() for p in model.parameters())
    X = torch.randn(num_samples, 2 * width, dtype=dtype)
    y = torch.randint(0, 4, (num_samples,))
    c = fl.Curvature(model, fl.Categorical(), X, y)
    v = torch.randn(D, dtype=dtype)
    g = torch.Generator().manual_seed(0)
    stats: dict = {"D": D}
    start = time.perf_counter()
    for method, kwargs in (
        ("fisher", {}),
        ("fisher", {"mc_samples": 1, "generator": g}),
        ("ggn", {}),
        ("empirical_fisher", {}),
    ):
        diag = getattr(c, method)(form="diag", **kwargs)
        op = getattr(c, method)(form="operator", **kwargs)
        assert (op @ v).shape == (D,)
        K = getattr(c, method)(form="kfac", **kwargs)
        x = K.solve(v, damping=1e-3)
        assert torch.isfinite(x).all() and K.sample(g).shape == (D,)
        B = getattr(c, method)(form="blockdiag", **kwargs)
        assert torch.isfinite(B.solve(v, damping=1e-3)).all()
        if not kwargs:  # deterministic quantities: diag of blockdiag equals diag form
            torch.testing.assert_close(B.diag(), diag, rtol=1e-3, atol=1e-6)
        stats[method + ("_mc" if kwargs else "")] = {
            "trace_diag": float(diag.sum()),
            "trace_kfac": float(K.trace()),
            "trace_blockdiag": float(B.trace()),
        }
    cov = c.covariance(form="blockdiag")
    torch.testing.assert_close(cov.diag(), c.variance(form="diag"), rtol=1e-3, atol=1e-6)
    for structure in ("full", "diag", "kfac", "blockdiag", "trace"):
        sampler = fl.noise.FisherNoise(model, fl.Categorical(), X, y, structure=structure)
        assert sampler.sample(g).shape == (D,)
    assert fl.noise.GradientCovarianceNoise(model, fl.Categorical(), X, y).sample(g).shape == (D,)
    stats["seconds"] = time.perf_counter() - start
    stats["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return stats


def test_structured_forms_small_model():
    stats = run_forms(width=80, dtype=torch.float64)
    assert stats["D"] == 80 * 161 + 4 * 81
    fisher = stats["fisher"]
    assert fisher["trace_diag"] == pytest.approx(fisher["trace_blockdiag"], rel=1e-10)


@pytest.mark.slow
def test_structured_forms_two_million_parameters():
    code = (
        "import json, sys; sys.path.insert(0, 'tests');"
        "from test_structured_scale import run_forms;"
        "print(json.dumps(run_forms(width=1000)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=1800
    )
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    print(stats)
    assert 1.9e6 < stats["D"] < 2.1e6
    assert stats["peak_rss_gb"] < PEAK_LIMIT_GB, stats
