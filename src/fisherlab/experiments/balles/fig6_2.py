r"""``balles-fig6-2``: separable smoothness and axis alignment (Balles 2021, §6.4.4, Fig. 6.2).

Separable smoothness bounds the Hessian by a diagonal matrix,
:math:`H \preceq \operatorname{diag}(l_1, \dots, l_d)`; the tightest such bound in the
sense of Eq. 6.25 minimizes :math:`L_{\mathrm{sep}}(H) = \sum_i l_i`. Proposition 6.6
states :math:`L_\infty(H) \le L_{\mathrm{sep}}(H) \le \rho_{\mathrm{diag}}(H)^{-1}
\sum_i \lambda_i` (Eq. 6.26), with :math:`L_\infty = \|H\|_{\infty,1}` (Eq. 6.24) and
:math:`\rho_{\mathrm{diag}} = \sum_i |H_{ii}| / \sum_{ij} |H_{ij}|`. Fig. 6.2 shows, for
:math:`H = R_\omega \operatorname{diag}(\lambda_{\max}, 1) R_\omega^\top \in
\mathbb R^{2\times 2}`, the contour :math:`\theta^\top H\theta = 1`, the axis-aligned
bounding ellipse :math:`\theta^\top \operatorname{diag}(l)\,\theta = 1` and the Euclidean
bound, the circle :math:`\lambda_{\max}\|\theta\|^2 = 1`.

:math:`L_{\mathrm{sep}}` is computed numerically as the semidefinite program of Eq. 6.25,
:math:`\min \sum_i l_i` s.t. :math:`\operatorname{diag}(l) - H \succeq 0`, by a
log-barrier Newton method, and certified by its dual, :math:`\max \operatorname{tr}(HX)`
over correlation matrices :math:`X \succeq 0, X_{ii} = 1` (the max-cut relaxation, which
also shows :math:`L_\infty \le L_{\mathrm{sep}}`: :math:`L_\infty = \max_s s^\top H s`
over sign vectors, i.e. over rank-one correlation matrices): every feasible :math:`l`
bounds :math:`L_{\mathrm{sep}}` from above and every feasible :math:`X` from below, so a
small gap between the two proves both optimal. The closed form
of App. C.2 for :math:`d = 2`, :math:`l = (a + |b|, d + |b|)`, is not used in the
computation; it is checked against it in the tests. :math:`L_\infty` comes from
:func:`fisherlab.linalg.inf_one_norm` (exact enumeration).

The thesis gives no grid: here :math:`\lambda_{\max} \in \{2, 5, 10\}`, :math:`\omega \in
[0, \pi/4]` on 19 points (the picture repeats with period :math:`\pi/2` and is symmetric
about :math:`\pi/4`), and, for Proposition 6.6 beyond two dimensions, 40 random positive
semi-definite matrices :math:`H = AA^\top/d` with Gaussian :math:`A` of dimensions 3 to 6
(quick: 7 angles, 8 matrices).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fisherlab.experiments.base import Claim, Experiment, RunContext
from fisherlab.experiments.common import ellipse_points
from fisherlab.experiments.registry import register
from fisherlab.experiments.verdicts import fmt

__all__ = ["EXPERIMENT", "Fig62Config", "rotated_hessian", "separable_smoothness"]

SOURCE = "Balles 2021, §6.4.4, Prop. 6.6 and Fig. 6.2"
SOURCE_C2 = "Balles 2021, App. C.2 (side note)"
#: relative duality gap below which a numerical L_sep counts as certified
GAP_TOL = 1e-6


@dataclass
class Fig62Config:
    r"""Configuration of ``balles-fig6-2``.

    Attributes
    ----------
    lambda_max : list of float
        Largest eigenvalues (the smallest is 1).
    num_omega : int
        Angles between the principal axes and the coordinate axes, evenly in
        :math:`[0, \\pi/4]`.
    random_dims : list of int
        Dimensions of the random matrices for Proposition 6.6.
    num_random : int
        Random matrices in total (cycled over ``random_dims``).
    seed : int
        Seed of the random matrices.
    """

    lambda_max: list[float] = field(default_factory=lambda: [2.0, 5.0, 10.0])
    num_omega: int = 19
    random_dims: list[int] = field(default_factory=lambda: [3, 4, 5, 6])
    num_random: int = 40
    seed: int = 0

    @classmethod
    def preset(cls, quick: bool, seed: int) -> Fig62Config:
        """Full: 19 angles, 40 random matrices; quick: 7 angles, 8 random matrices."""
        if quick:
            return cls(num_omega=7, num_random=8, seed=seed)
        return cls(seed=seed)


def rotated_hessian(lambda_max: float, omega: float) -> np.ndarray:
    r""":math:`R_\omega \operatorname{diag}(\lambda_{\max}, 1) R_\omega^\top` (float64)."""
    c, s = math.cos(omega), math.sin(omega)
    R = np.array([[c, -s], [s, c]])
    return R @ np.diag([float(lambda_max), 1.0]) @ R.T


def separable_smoothness(H: np.ndarray) -> dict[str, Any]:
    r"""Tightest separable bound of Eq. 6.25, by a barrier method, certified by its dual.

    Minimizes :math:`\sum_i l_i - \mu \log\det S` with :math:`S = \operatorname{diag}(l) - H`
    by Newton's method (gradient :math:`1 - \mu \operatorname{diag}(S^{-1})`, Hessian
    :math:`\mu\, S^{-1} \circ S^{-1}`), decreasing :math:`\mu` tenfold until
    :math:`d\mu` is below :math:`10^{-10}\lambda_{\max}`. Every iterate is strictly
    feasible (an upper bound on :math:`L_{\mathrm{sep}}`), and :math:`Z = \mu S^{-1}`,
    rescaled to unit diagonal, is a feasible point of the dual
    :math:`\max \operatorname{tr}(HX)` s.t. :math:`X \succeq 0, X_{ii} = 1`, hence a lower
    bound.

    Parameters
    ----------
    H : ndarray
        Symmetric positive semi-definite ``(d, d)`` matrix.

    Returns
    -------
    dict
        ``l`` (the minimizer), ``L_sep`` (:math:`\sum_i l_i`), ``dual`` (the lower bound),
        ``gap`` (relative), ``min_eig`` (of :math:`\operatorname{diag}(l) - H`, the primal
        feasibility).
    """
    H = np.asarray(H, dtype=np.float64)
    if H.ndim != 2 or H.shape[0] != H.shape[1] or not np.allclose(H, H.T):
        raise ValueError(f"H must be a symmetric square matrix, got shape {H.shape}")
    lam = np.linalg.eigvalsh(H)
    if lam[0] < -1e-12 * max(1.0, abs(lam[-1])):
        raise ValueError(f"H must be positive semi-definite, smallest eigenvalue {lam[0]:.3g}")
    d = H.shape[0]
    scale = max(float(lam[-1]), 1e-300)
    Hs = H / scale
    x = np.full(d, 2.0)  # diag(x) - Hs = 2I - Hs ≻ 0
    mu = 1.0
    while True:
        for _ in range(100):
            Sinv = np.linalg.inv(np.diag(x) - Hs)
            grad = 1.0 - mu * np.diag(Sinv)
            hess = mu * Sinv * Sinv
            dx = -np.linalg.lstsq(hess, grad, rcond=None)[0]
            decrement = float(-grad @ dx)
            t = 1.0
            while np.linalg.eigvalsh(np.diag(x + t * dx) - Hs)[0] <= 0:
                t *= 0.5
            x = x + t * dx
            if decrement < 1e-14:
                break
        if d * mu < 1e-10:
            break
        mu /= 10.0
    S = np.diag(x) - Hs
    Z = mu * np.linalg.inv(S)
    dz = np.sqrt(np.diag(Z))
    X = Z / np.outer(dz, dz)
    upper = float(x.sum()) * scale
    lower = float(np.sum(H * X))
    l_vals = x * scale
    return {
        "l": l_vals.tolist(),
        "L_sep": upper,
        "dual": lower,
        "gap": (upper - lower) / max(abs(upper), 1e-300),
        "min_eig": float(np.linalg.eigvalsh(np.diag(l_vals) - H)[0]),
    }


def _rho_bound(H: np.ndarray) -> float:
    r""":math:`\rho_{\mathrm{diag}}(H)^{-1}\sum_i\lambda_i = \sum_{ij}|H_{ij}|` for PSD ``H``."""
    rho = np.abs(np.diag(H)).sum() / np.abs(H).sum()
    return float(np.trace(H) / rho)


def _linf(H: np.ndarray) -> float:
    from fisherlab.linalg import inf_one_norm

    return inf_one_norm(torch.from_numpy(H))


def run(cfg: Fig62Config, ctx: RunContext) -> dict[str, Any]:
    """The 2x2 grid over (λ_max, ω) and the random matrices of Proposition 6.6."""
    rng = np.random.default_rng(cfg.seed)
    omegas = np.linspace(0.0, math.pi / 4, cfg.num_omega).tolist()
    grid = []
    for lam in ctx.progress(cfg.lambda_max, total=len(cfg.lambda_max), desc="λ_max"):
        row = []
        for w in omegas:
            H = rotated_hessian(lam, w)
            sep = separable_smoothness(H)
            row.append(
                {
                    **sep,
                    "L_inf": _linf(H),
                    "rho_bound": _rho_bound(H),
                    "lambda_max": float(np.linalg.eigvalsh(H)[-1]),
                    "H": H.tolist(),
                }
            )
        grid.append(row)
    random = []
    for k in range(cfg.num_random):
        d = cfg.random_dims[k % len(cfg.random_dims)]
        A = rng.standard_normal((d, d))
        H = A @ A.T / d
        sep = separable_smoothness(H)
        random.append({"dim": d, **sep, "L_inf": _linf(H), "rho_bound": _rho_bound(H)})
    rows = [
        [lam, fmt(w, 3), c["l"][0], c["l"][1], c["L_sep"], c["L_inf"], c["lambda_max"]]
        for lam, row in zip(cfg.lambda_max, grid, strict=True)
        for w, c in zip(omegas, row, strict=True)
        if w in (omegas[0], omegas[len(omegas) // 2], omegas[-1])
    ]
    return {
        "lambda_max": list(cfg.lambda_max),
        "omega": omegas,
        "grid": grid,
        "random": random,
        "tables": {
            "Tightest separable bound diag(l) ⪰ H (Eq. 6.25) for 2x2 H, λ_min = 1": {
                "columns": ["λ_max", "ω", "l_1", "l_2", "L_sep", "L_∞", "λ_max(H)"],
                "rows": rows,
            }
        },
    }


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Fig. 6.2: H-ellipse, separable bounding ellipse and Euclidean circle; L_sep against ω."""
    from fisherlab.plotting import new_figure, save_figure

    lams, omegas, grid = results["lambda_max"], results["omega"], results["grid"]
    picks = sorted({0, len(omegas) // 2, len(omegas) - 1})
    fig, axes = new_figure(
        nrows=len(lams), ncols=len(picks) + 1, squeeze=False, panel_size=(2.6, 2.6)
    )
    for i, lam in enumerate(lams):
        for j, k in enumerate(picks):
            c = grid[i][k]
            ax = axes[i][j]
            for M, style, label in (
                (np.asarray(c["H"]), "-", "H"),
                (np.diag(c["l"]), "--", "diag(l)"),
                (lam * np.eye(2), ":", "λ_max I"),
            ):
                pts = ellipse_points(torch.from_numpy(M)).numpy()  # θᵀMθ = 1
                ax.plot(pts[:, 0], pts[:, 1], style, label=label)
            ax.set_aspect("equal")
            ax.set_title(f"λ_max={fmt(lam, 3)}, ω={fmt(math.degrees(omegas[k]), 3)}°", fontsize=8)
            if i == 0 and j == 0:
                ax.legend(fontsize=6)
        ax = axes[i][-1]
        deg = [math.degrees(w) for w in omegas]
        ax.plot(deg, [c["L_sep"] / lam for c in grid[i]], label="L_sep / λ_max")
        ax.plot(deg, [min(c["l"]) / max(c["l"]) for c in grid[i]], label="l_min / l_max")
        ax.plot(deg, [max(c["l"]) / lam for c in grid[i]], label="l_max / λ_max")
        ax.set_xlabel("ω (degrees)")
        ax.set_title(f"λ_max={fmt(lam, 3)}", fontsize=8)
        if i == 0:
            ax.legend(fontsize=6)
    fig.suptitle("Fig. 6.2: separable (diagonal) vs Euclidean bound of a 2x2 Hessian")
    path = Path(out_dir) / "fig6_2_separable_smoothness.png"
    save_figure(fig, path)
    return [path]


def claims(results: dict[str, Any]) -> list[Claim]:
    """Fig. 6.2 caption, Proposition 6.6 and the App. C.2 side note on l_max vs λ_max."""
    grid, lams = results["grid"], results["lambda_max"]
    cells = [c for row in grid for c in row] + list(results["random"])
    worst_gap = max(c["gap"] for c in cells)
    worst_feas = min(c["min_eig"] for c in cells)
    certified = worst_gap < GAP_TOL and worst_feas >= -1e-9
    cert_txt = (
        f"largest relative duality gap {fmt(worst_gap, 2)}, smallest eigenvalue of "
        f"diag(l) − H {fmt(worst_feas, 2)}"
    )
    cert_premise = (
        f"every numerical L_sep is certified: primal feasible (diag(l) − H ⪰ 0 up to 1e-9) "
        f"and within a relative duality gap of {GAP_TOL:g} of a feasible dual"
    )
    tol = 10 * GAP_TOL
    out: list[Claim] = []

    # caption: the bound grows and becomes more circular as ω goes from 0 to π/4
    grows, rounder, parts = [], [], []
    for lam, row in zip(lams, grid, strict=True):
        L = [c["L_sep"] for c in row]
        ratio = [min(c["l"]) / max(c["l"]) for c in row]
        grows.append(all(b > a * (1 + tol) for a, b in zip(L[:-1], L[1:], strict=True)))
        rounder.append(
            all(b > a + tol for a, b in zip(ratio[:-1], ratio[1:], strict=True))
            and abs(ratio[-1] - 1) < tol
        )
        parts.append(
            f"λ_max={fmt(lam, 3)}: L_sep {fmt(L[0], 4)} → {fmt(L[-1], 4)}, l_min/l_max "
            f"{fmt(ratio[0], 3)} → {fmt(ratio[-1], 4)}"
        )
    nontrivial = all(lam > 1 for lam in lams) and len(results["omega"]) >= 3
    out.append(
        Claim(
            claim="As the axes of H rotate away from the coordinate axes, the bounding ellipse of "
            "separable smoothness becomes smaller and more circular: the l_i grow and become "
            "more similar",
            measured="ω from 0 to π/4: " + "; ".join(parts) + f" ({cert_txt})",
            holds=all(grows) and all(rounder),
            source=SOURCE,
            criterion="for every λ_max, L_sep = Σ l_i increases strictly (by more than the "
            "certification tolerance) at each step of the ω grid on [0, π/4], and l_min/l_max "
            "increases strictly and reaches 1 at π/4",
            premise=cert_premise + "; λ_min < λ_max and at least 3 angles",
            premise_holds=certified and nontrivial,
        )
    )
    # Proposition 6.6 on random PSD matrices (and its tightness in 2D, Eq. C.14-C.15)
    rnd = results["random"]
    chain = [c["L_inf"] <= c["L_sep"] * (1 + tol) <= c["rho_bound"] * (1 + tol) ** 2 for c in rnd]
    strict = [c["L_sep"] - c["L_inf"] > tol * c["L_sep"] for c in rnd]
    tight2 = max(
        max(abs(c["L_sep"] - c["L_inf"]), abs(c["rho_bound"] - c["L_sep"])) / c["L_sep"]
        for row in grid
        for c in row
    )
    out.append(
        Claim(
            claim="Proposition 6.6: L_∞(H) ≤ L_sep(H) ≤ ρ_diag(H)^-1 Σλ_i for positive "
            "semi-definite H, with equality throughout for 2x2 matrices (Eq. C.14-C.15)",
            measured=f"{sum(chain)}/{len(chain)} random matrices (d = "
            f"{min(c['dim'] for c in rnd)}-{max(c['dim'] for c in rnd)}) satisfy the chain; "
            f"L_∞ < L_sep strictly on {sum(strict)}; largest relative deviation from equality "
            f"on the 2x2 grid {fmt(tight2, 2)} ({cert_txt})",
            holds=all(chain) and tight2 < tol,
            source=SOURCE,
            criterion=f"every random matrix satisfies both inequalities up to a relative "
            f"{tol:g}, and on every 2x2 matrix of the grid the three quantities agree to a "
            f"relative {tol:g}",
            premise=cert_premise + "; at least one random matrix",
            premise_holds=certified and bool(rnd),
        )
    )
    # side note: l_max vs λ_max (main text: l_max can exceed λ_max; App. C.2: the reverse)
    excess = [max(c["l"]) / c["lambda_max"] - 1 for row in grid for c in row]
    out.append(
        Claim(
            claim="The largest separable constant l_max can exceed λ_max, so taking l_max for "
            "the rate of (S)GD is misleading (§6.4.4)",
            measured=f"max over the 2x2 grid of l_max/λ_max − 1: {fmt(max(excess), 3)}; min: "
            f"{fmt(min(excess), 3)}",
            holds=max(excess) > 0.01,
            source="Balles 2021, §6.4.4 (side note)",
            criterion="on some (λ_max, ω) of the grid l_max exceeds λ_max by more than 1 %",
            premise=cert_premise,
            premise_holds=certified,
        )
    )
    out.append(
        Claim(
            claim="λ_max can easily exceed l_max = d + |b| (App. C.2, Eq. C.17; the main "
            "text states the opposite)",
            measured=f"max over the 2x2 grid of λ_max/l_max − 1: "
            f"{fmt(max(1 / (1 + e) - 1 for e in excess), 3)} (H ⪯ diag(l) implies "
            f"λ_max ≤ l_max for every feasible l)",
            holds=any(1 / (1 + e) - 1 > tol for e in excess),
            source=SOURCE_C2,
            criterion=f"on some (λ_max, ω) of the grid λ_max exceeds l_max by more than a "
            f"relative {tol:g}",
            premise=cert_premise,
            premise_holds=certified,
        )
    )
    return out


EXPERIMENT = register(
    Experiment(
        name="balles-fig6-2",
        title="Separable smoothness: the tightest diagonal bound of a rotated 2x2 Hessian",
        paper="Balles 2021, Fig. 6.2",
        description=(
            "The thesis' 2x2 quadratic example on a grid it does not state: λ_max ∈ {2, 5, 10}, "
            "λ_min = 1, 19 angles ω ∈ [0, π/4]; L_sep of Eq. 6.25 by a numerical SDP "
            "certified by its dual; Proposition 6.6 checked on 40 random PSD matrices of "
            "dimension 3-6 (quick: 7 angles, 8 matrices)."
        ),
        config_class=Fig62Config,
        run=run,
        plot=plot,
        claims=claims,
        captions={
            "fig6_2_separable_smoothness.png": "Thesis Fig. 6.2: contour θᵀHθ = 1 (solid), the "
            "tightest axis-aligned bound θᵀdiag(l)θ = 1 of Eq. 6.25 (dashed, inside) and the "
            "Euclidean bound λ_max‖θ‖² = 1 (dotted) for rows of λ_max and columns of ω; right: "
            "L_sep/λ_max, l_min/l_max and l_max/λ_max against ω."
        },
    )
)
