"""wen-fig1 in (shrunk) quick mode: files, numbers, claims from results."""

from __future__ import annotations

import copy

import pytest
import torch

from fisherlab.experiments.wen import fig1

from ..runs import quick_run


def test_fig1_noise_structure(tmp_path):
    _, status, results, stored = quick_run("wen-fig1", tmp_path, num_draws=1500)
    assert status["figures"] == ["fig1_one_step_noise.png"]
    stats = results["stats"]
    assert set(stats) == set(fig1.KINDS)
    assert len(results["scatter"]["SGD"]) == 1500
    # the isotropic noise has covariance (lr σ)² I
    iso = torch.tensor(stats["isotropic"]["covariance"])
    expected = (0.1 * 0.1) ** 2
    assert iso.diagonal().tolist() == pytest.approx([expected, expected], rel=0.15)
    assert results["num_draws"] == 1500
    claims = fig1.claims(results)
    assert [c.to_dict() | {"scale": ""} for c in claims] == [d | {"scale": ""} for d in stored]
    assert [c.holds for c in claims] == [True, True, True]
    # verdicts follow the numbers
    broken = copy.deepcopy(results)
    broken["stats"]["full Fisher"]["relative_distance_to_sgd"] = 0.6
    assert [c.holds for c in fig1.claims(broken)][:2] == [False, False]
