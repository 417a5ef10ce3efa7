"""balles-fig6-2: the separable-smoothness solver against closed forms, and its claims."""

import copy
import math

import numpy as np
import pytest

from fisherlab.experiments.balles import fig6_2 as fig
from fisherlab.linalg import inf_one_norm


@pytest.mark.parametrize("seed", range(5))
def test_separable_smoothness_matches_the_2x2_closed_form(seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((2, 2))
    H = A @ A.T + 0.1 * np.eye(2)
    a, b, d = H[0, 0], H[0, 1], H[1, 1]
    sep = fig.separable_smoothness(H)
    # App. C.2: l = (a + |b|, d + |b|), L_sep = a + d + 2|b| = L_inf (Eq. C.14)
    assert sep["l"] == pytest.approx([a + abs(b), d + abs(b)], rel=1e-7)
    assert sep["L_sep"] == pytest.approx(a + d + 2 * abs(b), rel=1e-9)
    assert sep["gap"] < 1e-8 and sep["min_eig"] > -1e-9


def test_separable_smoothness_in_higher_dimensions():
    rng = np.random.default_rng(3)
    for d in (3, 5):
        A = rng.standard_normal((d, d))
        H = A @ A.T / d
        sep = fig.separable_smoothness(H)
        assert sep["gap"] < 1e-8
        assert np.linalg.eigvalsh(np.diag(sep["l"]) - H)[0] > -1e-9
        # Proposition 6.6 with an independent L_inf (exact enumeration)
        import torch

        assert inf_one_norm(torch.from_numpy(H)) <= sep["L_sep"] * (1 + 1e-9)
        assert sep["L_sep"] <= np.abs(H).sum() * (1 + 1e-9)
        # no coordinate can be lowered alone while staying feasible
        for i in range(d):
            lv = np.array(sep["l"])
            lv[i] -= 1e-4 * sep["L_sep"]
            assert np.linalg.eigvalsh(np.diag(lv) - H)[0] < 0
    diag = np.diag([3.0, 1.0, 2.0])
    assert fig.separable_smoothness(diag)["l"] == pytest.approx([3.0, 1.0, 2.0], rel=1e-8)


def test_separable_smoothness_rejects_bad_matrices():
    with pytest.raises(ValueError, match="symmetric"):
        fig.separable_smoothness(np.array([[1.0, 2.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="positive semi-definite"):
        fig.separable_smoothness(np.diag([1.0, -1.0]))


def _results(lams=(2.0, 5.0), num_omega=5):
    """A results dict built from the closed form of App. C.2 (what run() should produce)."""
    omegas = np.linspace(0, math.pi / 4, num_omega).tolist()
    grid = []
    for lam in lams:
        row = []
        for w in omegas:
            H = fig.rotated_hessian(lam, w)
            a, b, d = H[0, 0], abs(H[0, 1]), H[1, 1]
            L = a + d + 2 * b
            row.append(
                {
                    "l": [a + b, d + b],
                    "L_sep": L,
                    "dual": L,
                    "gap": 0.0,
                    "min_eig": 0.0,
                    "L_inf": L,
                    "rho_bound": L,
                    "lambda_max": lam,
                }
            )
        grid.append(row)
    random = [
        {
            "dim": 3,
            "l": [1, 1, 1],
            "L_sep": 3.0,
            "dual": 3.0,
            "gap": 0.0,
            "min_eig": 0.0,
            "L_inf": 2.5,
            "rho_bound": 3.5,
        }
    ]
    return {"lambda_max": list(lams), "omega": omegas, "grid": grid, "random": random}


def _fail_growth(r):
    r["grid"][0][2]["L_sep"] = r["grid"][0][1]["L_sep"]  # L_sep stops growing


def _fail_prop66(r):
    r["random"][0]["L_inf"] = 3.5  # L_inf above L_sep


def _fail_lmax(r):
    for row in r["grid"]:
        for c in row:
            c["l"] = [c["lambda_max"] * 0.5, c["lambda_max"]]  # l_max = λ_max everywhere


def _fail_premise(r):
    r["grid"][0][0]["gap"] = 1e-3  # uncertified solution


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (None, [True, True, True, False]),
        (_fail_growth, [False, False, True, False]),
        (_fail_prop66, [True, False, True, False]),
        (_fail_lmax, [False, True, False, False]),
        (_fail_premise, [None, None, None, None]),
    ],
)
def test_claims(mutate, expected):
    r = _results()
    if mutate is not None:
        mutate(r)
    got = fig.claims(copy.deepcopy(r))
    assert [c.holds for c in got] == expected
    assert all(c.criterion and c.premise for c in got)
    if mutate is _fail_premise:
        assert not any(c.premise_holds for c in got)


def test_claim_c2_side_note_would_hold_if_lambda_max_exceeded_l_max():
    r = _results()
    c = r["grid"][0][1]
    c["l"] = [0.5, c["lambda_max"] * 0.9]
    assert fig.claims(r)[3].holds is True


def test_quick_run(tmp_path):
    from fisherlab.experiments.runner import run_experiment

    run_dir = run_experiment("balles-fig6-2", tmp_path, quick=True, show_progress=False)
    assert (run_dir / "fig6_2_separable_smoothness.png").stat().st_size > 1000
    import json

    claims = json.loads((run_dir / "claims.json").read_text())
    assert [c["holds"] for c in claims] == [True, True, True, False]
