"""balles-fig5-2 claims on synthetic results: a pass, a fail, and a failed premise."""

import math

import pytest
import torch

from fisherlab.experiments.balles import fig5_2

ETAS = [0.1, 0.3, 1.0, 2.0, 5.0]


def _results(n=200_000, sign_shift=0.0, grad_shift=0.0, gap=None):
    """Monte-Carlo rows at their closed forms, shifted by the given number of standard errors."""
    mc = []
    for e in ETAS:
        f = {k: float(v) for k, v in fig5_2.factors(torch.tensor(e)).items()}
        se_sign = math.sqrt((1 - f["erf"] ** 2) / n)
        se_grad = 2.0 * e**2 / (1 + e**2) ** 2 / math.sqrt(n)
        two_rho = f["erf"] - sign_shift * se_sign
        mc.append(
            {
                "eta": e,
                "two_rho_minus_one": two_rho,
                "wrong_signs": round(n * (1 - two_rho) / 2),
                "se_two_rho_minus_one": se_sign,
                "argmin_sign": round(two_rho, 3),
                "gamma_gradient": f["sgd"] + grad_shift * se_grad,
                "se_gamma_gradient": se_grad,
                "argmin_gradient": round(f["sgd"], 3),
                **f,
            }
        )
    eta = torch.logspace(-1.5, 1.5, 61, dtype=torch.float64)
    curves = {k: v.tolist() for k, v in fig5_2.factors(eta).items()}
    return {
        "eta": eta.tolist(),
        "curves": curves,
        "max_abs_erf_minus_adam": 0.064 if gap is None else gap,
        "eta_at_max_abs_diff": 1.9,
        "adam_closer_than_sgd_everywhere": gap is None,
        "max_abs_erf_minus_sgd": 0.19,
        "monte_carlo": mc,
        "mc_samples": n,
    }


@pytest.mark.parametrize(
    ("results", "holds", "premise"),
    [
        (_results(), [True, True, True], [True, True, True]),
        (_results(sign_shift=8, grad_shift=-8, gap=0.3), [False, False, False], [True] * 3),
        (_results(n=5), [None, None, True], [False, False, True]),
    ],
    ids=["pass", "fail", "too-few-draws"],
)
def test_claims_follow_the_numbers(results, holds, premise):
    claims = fig5_2.claims(results)
    assert [c.holds for c in claims] == holds
    assert [c.premise_holds for c in claims] == premise
    assert all(c.criterion and c.premise for c in claims)


def test_gradient_factor_standard_error_matches_replicates(tmp_path):
    """The delta-method se of mean(p̂)/mean(p̂²) agrees with the spread over replicates."""
    from fisherlab.experiments.base import RunContext

    cfg = fig5_2.Fig52Config(num_curve_points=11, num_mc_etas=3, mc_samples=2000)
    ests, ses = [], []
    for seed in range(40):
        cfg.seed = seed
        res = fig5_2.run(cfg, RunContext(tmp_path, seed, quick=True, show_progress=False))
        ests.append(res["monte_carlo"][1]["gamma_gradient"])
        ses.append(res["monte_carlo"][1]["se_gamma_gradient"])
    spread = torch.tensor(ests, dtype=torch.float64).std().item()
    assert spread == pytest.approx(sum(ses) / len(ses), rel=0.35)
