r"""Instruments of the training monitor: one small class per measured quantity.

Each instrument names the hook statistics it needs in the step's backward pass
(:mod:`fisherlab.engine.hooks`), how often it measures (``every``) and how to compute its
values from a :class:`StepData` (the step's batch, the filled collector and cached
derived quantities). Conventions are the library's (DESIGN.md): the training loss is
:math:`L = c\sum_n l_n` with :math:`c = 1/N` (``reduction="mean"``) or :math:`1`
(``"sum"``), :math:`g_n = \nabla l_n`, the empirical Fisher :math:`\tilde F = c\sum_n g_n
g_n^\top`, and the gradient covariance :math:`\Sigma = \tilde F - \nabla L \nabla L^\top`
(mean reduction; :math:`N\sum_n g_n g_n^\top - \nabla L\nabla L^\top` for sum), all of the
step's minibatch of size :math:`N`.

Instruments by ``track=`` name, with the record keys they write:

- ``loss`` (``loss``): :math:`L` of the minibatch.
- ``gradient_norm`` (``gradient_norm``): :math:`\|\nabla L\|_2`.
- ``variance_trace`` (``variance_trace``): :math:`\operatorname{tr}\Sigma`.
- ``noise_to_signal`` (``noise_to_signal``): :math:`\eta^2 = \operatorname{tr}\Sigma /
  \|\nabla L\|^2` (Balles 2021, Eq. 4.9).
- ``layer_snr`` (``layer_snr``, one value per layer): :math:`\|\nabla_\ell L\|^2 /
  \operatorname{tr}\Sigma_\ell = 1/\eta_\ell^2`.
- ``ef_vs_fisher`` (``ef_fisher_trace_ratio``, ``ef_fisher_frobenius_ratio``,
  ``ef_natural_cosine``): :math:`\operatorname{tr}\tilde F / \operatorname{tr}\hat F`,
  :math:`\|\tilde F\|_F / \|\hat F\|_F` and :math:`\cos\big((\tilde F+\lambda I)^{-1}\nabla L,
  (\hat F+\lambda I)^{-1}\nabla L\big)` (Kunstner et al. 2019, §3-4, Fig. 3).
- ``hessian_max_eig`` (``hessian_max_eigenvalue``): :math:`\lambda_{\max}(\nabla^2 L)` by
  Lanczos.
- ``ggn_max_eig`` (``ggn_max_eigenvalue``): :math:`\lambda_{\max}(G)` by Lanczos.
- ``edge_of_stability`` (``lr_times_max_eigenvalue``): :math:`\alpha\,\lambda_{\max}(\nabla^2
  L)`; gradient descent on a quadratic is stable iff it is :math:`< 2`.
- ``cabs`` (``cabs_batch_size``): :math:`\alpha\operatorname{tr}\Sigma / L`, smoothed
  (Balles 2021, Eq. 4.20, Alg. 1).
- ``norm_test`` (``norm_test_batch_size``): :math:`\operatorname{tr}\Sigma /
  (\theta^2\|\nabla L\|^2)`, smoothed (Balles 2021, Eq. 4.18).
- ``gradient_histogram`` (``gradient_histogram``): counts of :math:`\log_{10}|\partial_i L|`.

:math:`\hat F` is the Monte-Carlo Fisher with labels sampled from the model,
:math:`\hat F = \frac{c}{S}\sum_n\sum_s \hat g_{s,n}\hat g_{s,n}^\top`, exactly as
``Curvature(...).fisher(mc_samples=S, generator=...)`` computes it. Random numbers of step
``t`` (sampled labels, Lanczos start vectors) come from a generator seeded with
``seed + t``, so a value can be recomputed from the step alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
from torch import Tensor

from fisherlab.engine.hooks import Collector, Statistic
from fisherlab.likelihoods import Likelihood
from fisherlab.representations import CurvatureOperator
from fisherlab.scaling import Scaling

__all__ = [
    "CABSBatchSize",
    "EdgeOfStability",
    "EFvsFisher",
    "GGNMaxEigenvalue",
    "GradientHistogram",
    "GradientNorm",
    "HessianMaxEigenvalue",
    "INSTRUMENTS",
    "Instrument",
    "LayerSNR",
    "Loss",
    "NoiseToSignal",
    "NormTestBatchSize",
    "Panel",
    "StepData",
    "VarianceTrace",
    "make_instrument",
    "panels_by_key",
]

Value = float | dict[str, float] | dict[str, Any]


@dataclass(frozen=True)
class Panel:
    """How the dashboard draws one recorded key.

    Parameters
    ----------
    key : str
        The record key.
    title : str
        Panel title.
    ylabel : str
        Label of the y axis.
    log : bool
        Logarithmic y axis (used when every plotted value is positive).
    reference : float or None
        A horizontal dashed line (e.g. the stability threshold 2).
    kind : {"line", "lines", "histogram"}
        One curve, one curve per entry of a dict value, or a heat map of histograms.
    """

    key: str
    title: str
    ylabel: str
    log: bool = False
    reference: float | None = None
    kind: str = "line"


class StepData:
    """What the instruments of one step see: the batch, the collector and cached values.

    Parameters
    ----------
    step : int
        The step index ``t`` (0-based).
    model : torch.nn.Module
        The model, at the parameters of this step's forward pass.
    likelihood : Likelihood
        The likelihood of the training loss.
    X, y : Tensor
        The step's minibatch.
    reduction : {"mean", "sum"}
        The training loss's reduction.
    collector : Collector or None
        Filled by the step's backward pass (None when no instrument needs statistics).
    loss : float or None
        The value returned by ``s.loss(...)``, if it was called.
    lr : float or None
        The learning rate of the step (optimizer's first parameter group, or given).
    """

    def __init__(
        self,
        step: int,
        model: torch.nn.Module,
        likelihood: Likelihood,
        X: Tensor,
        y: Tensor,
        reduction: str,
        collector: Collector | None,
        loss: float | None,
        lr: float | None,
    ) -> None:
        self.step = step
        self.model = model
        self.likelihood = likelihood
        self.X = X
        self.y = y
        self.reduction = reduction
        self._collector = collector
        self.loss = loss
        self.lr = lr
        self._eigenvalues: dict[tuple[str, int, int], float] = {}

    @property
    def collector(self) -> Collector:
        """The step's filled collector."""
        if self._collector is None:
            raise RuntimeError("no hook statistics were collected at this step")
        return self._collector

    @property
    def num_samples(self) -> int:
        """Batch size ``N`` of the step."""
        return self.collector.num_samples

    @cached_property
    def gradient(self) -> Tensor:
        r""":math:`\nabla L`, flat ``(D,)``."""
        return self.collector.flat(Statistic.GRADIENT)

    @cached_property
    def variance(self) -> Tensor:
        r""":math:`\operatorname{diag}\Sigma`, flat ``(D,)``."""
        return self.collector.flat(Statistic.VARIANCE)

    @cached_property
    def gradient_norm_sq(self) -> float:
        r""":math:`\|\nabla L\|^2`."""
        return float(self.gradient.square().sum())

    @cached_property
    def variance_sum(self) -> float:
        r""":math:`\operatorname{tr}\Sigma`."""
        return float(self.variance.sum())

    @cached_property
    def variance_abs_sum(self) -> float:
        r""":math:`\|\operatorname{diag}\Sigma\|_1` (differs from the trace by round-off)."""
        return float(self.variance.abs().sum())

    @cached_property
    def curvature(self) -> Any:
        """``fl.Curvature`` of the model on this process's batch (no collective operations)."""
        from fisherlab.curvature import Curvature

        return Curvature(
            self.model,
            self.likelihood,
            self.X,
            self.y,
            reduction=self.reduction,
            distributed=False,
        )

    def generator(self, seed: int) -> torch.Generator:
        """A generator on the parameters' device seeded with ``seed + step``."""
        device = next(self.model.parameters()).device
        return torch.Generator(device=device).manual_seed(seed + self.step)

    def products(self, matrix: str) -> CurvatureOperator:
        r"""The Hessian or GGN of the step's batch loss as a matrix-free operator.

        One forward pass builds the graph once; each product then costs one extra backward
        pass through it: :math:`\nabla^2 L\,v = \nabla(\nabla L^\top v)` (Pearlmutter) and
        :math:`G v = c\sum_n J_n^\top \nabla_f^2 l_n\,(J_n v)` with :math:`J v` from the
        double-backward trick (:math:`J v = \partial_u (J^\top u)^\top v`). Same numbers as
        ``Curvature(...).hessian(form="operator")`` / ``.ggn(form="operator")``, without
        repeating the forward pass for every product.
        """
        if matrix not in ("hessian", "ggn"):
            raise ValueError(f"matrix must be 'hessian' or 'ggn', got {matrix!r}")
        model, lik = self.model, self.likelihood
        params = [p for p in model.parameters() if p.requires_grad]
        sizes = [p.numel() for p in params]
        c = Scaling(self.reduction, self.X.shape[0]).c
        with torch.enable_grad():
            f = model(self.X)
            f = f.reshape(f.shape[0], -1)
            y = lik.flatten_targets(self.y)
            if matrix == "hessian":
                loss = c * lik.nll(f, y).sum()
                first = torch.autograd.grad(loss, params, create_graph=True)
            else:
                H = c * lik.output_hessian(f.detach(), y)
                u = torch.zeros_like(f, requires_grad=True)
                first = torch.autograd.grad(f, params, u, create_graph=True)

        def flat(parts: Sequence[Tensor | None]) -> Tensor:
            return torch.cat(
                [
                    (torch.zeros(n, dtype=f.dtype, device=f.device) if t is None else t.reshape(-1))
                    for t, n in zip(parts, sizes, strict=True)
                ]
            )

        def product(v: Tensor) -> Tensor:
            pieces = [t.view_as(p) for t, p in zip(v.split(sizes), params, strict=True)]
            if matrix == "hessian":
                return flat(
                    torch.autograd.grad(first, params, pieces, retain_graph=True, allow_unused=True)
                )
            (Jv,) = torch.autograd.grad(first, u, pieces, retain_graph=True)
            HJv = torch.einsum("ncd,nd->nc", H, Jv)
            return flat(torch.autograd.grad(f, params, HJv, retain_graph=True, allow_unused=True))

        def matmat(V: Tensor) -> Tensor:
            return torch.stack([product(v) for v in V.T], dim=1).detach()

        return CurvatureOperator(
            matmat, sum(sizes), f.dtype, f.device, name=f"{matrix} (step {self.step})"
        )

    def max_eigenvalue(self, matrix: str, num_steps: int, seed: int) -> float:
        r"""Largest eigenvalue of the Hessian or GGN by ``num_steps`` Lanczos steps.

        The Ritz value :math:`\max \operatorname{eig}(T)` of the Lanczos tridiagonal matrix
        :math:`T` (full reorthogonalisation, :func:`fisherlab.linalg.lanczos`) on
        :meth:`products`, started from a Gaussian vector; a lower bound, exact once
        ``num_steps >= D``. Cached per step.
        """
        key = (matrix, num_steps, seed)
        if key not in self._eigenvalues:
            from fisherlab import linalg

            op = self.products(matrix)
            g = self.generator(seed)
            v0 = torch.randn(op.dim, generator=g, device=g.device, dtype=op.dtype)
            alpha, beta = linalg.lanczos(op, v0, num_steps)
            T = torch.diag(alpha)
            if beta.numel():
                T = T + torch.diag(beta, 1) + torch.diag(beta, -1)
            self._eigenvalues[key] = float(torch.linalg.eigvalsh(T).max())
        return self._eigenvalues[key]


class Instrument:
    """Base class: a named measurement taken every ``every`` steps.

    Parameters
    ----------
    every : int or None
        Measure at steps ``t`` with ``t % every == 0``. ``None``: the class's
        ``default_every`` if it has one (expensive instruments), else the monitor's ``every``.
    """

    #: name in ``Monitor(track=...)``
    name: str = ""
    #: hook statistics the step's backward must collect
    statistics: tuple[Statistic, ...] = ()
    #: the period of an instrument created without ``every`` (None: the monitor's)
    default_every: int | None = None
    #: how the dashboard draws the recorded keys
    panels: tuple[Panel, ...] = ()

    def __init__(self, every: int | None = None) -> None:
        if every is not None and (isinstance(every, bool) or not isinstance(every, int)):
            raise TypeError(f"every must be a positive int or None, got {every!r}")
        if every is not None and every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.every = every if every is not None else self.default_every

    def period(self, monitor_every: int) -> int:
        """Steps between two measurements when the monitor's period is ``monitor_every``."""
        return self.every if self.every is not None else monitor_every

    def check(self, reduction: str) -> None:
        """Raise ``ValueError`` if the instrument does not apply to the training loss."""

    def measure(self, data: StepData) -> dict[str, Value]:
        """Return the recorded values of this step, keyed as in :attr:`panels`."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(every={self.every!r})"


class Loss(Instrument):
    r"""The minibatch training loss :math:`L = c\sum_n l_n` returned by ``s.loss(...)``."""

    name = "loss"
    panels = (Panel("loss", "Minibatch loss", "L", log=True),)

    def measure(self, data: StepData) -> dict[str, Value]:
        """Return ``{"loss": L}``."""
        if data.loss is None:
            raise RuntimeError("the 'loss' instrument needs the loss: call s.loss(output, y)")
        return {"loss": data.loss}


class GradientNorm(Instrument):
    r"""The minibatch gradient norm :math:`\|\nabla L\|_2`."""

    name = "gradient_norm"
    statistics = (Statistic.GRADIENT,)
    panels = (Panel("gradient_norm", "Gradient norm", r"$\|\nabla L\|_2$", log=True),)

    def measure(self, data: StepData) -> dict[str, Value]:
        """Return ``{"gradient_norm": ‖∇L‖}``."""
        return {"gradient_norm": math.sqrt(data.gradient_norm_sq)}


class VarianceTrace(Instrument):
    r"""The trace of the gradient covariance, :math:`\operatorname{tr}\Sigma`.

    :math:`\Sigma = \frac1N\sum_n g_n g_n^\top - \nabla L\nabla L^\top` (mean reduction,
    Balles 2021 Eq. 3.29, population form), the same number as
    ``fl.Curvature(model, lik, X, y).variance().sum()`` on the step's batch.
    """

    name = "variance_trace"
    statistics = (Statistic.GRADIENT, Statistic.VARIANCE)
    panels = (Panel("variance_trace", "Gradient variance", r"tr $\Sigma$", log=True),)

    def measure(self, data: StepData) -> dict[str, Value]:
        """Return ``{"variance_trace": tr Σ}``."""
        return {"variance_trace": data.variance_sum}


class NoiseToSignal(Instrument):
    r"""The noise-to-signal ratio :math:`\eta^2 = \operatorname{tr}\Sigma / \|\nabla L\|^2`.

    Balles 2021, Eq. 4.9, estimated with the minibatch's empirical moments. The minibatch
    gradient's own relative variance is :math:`\eta^2/N`; the optimal batch size is
    proportional to :math:`\eta^2` (Eq. 4.13). The plug-in estimate is biased upwards and
    scatters widely when :math:`\eta^2 \gg N` (§4.3, Fig. 4.1).
    """

    name = "noise_to_signal"
    statistics = (Statistic.GRADIENT, Statistic.VARIANCE)
    panels = (Panel("noise_to_signal", "Noise-to-signal ratio", r"$\eta^2$", log=True),)

    def measure(self, data: StepData) -> dict[str, Value]:
        """Return ``{"noise_to_signal": η²}`` (inf for a zero gradient)."""
        signal, noise = data.gradient_norm_sq, data.variance_sum
        return {"noise_to_signal": noise / signal if signal > 0 else math.inf}


class LayerSNR(Instrument):
    r"""Signal-to-noise ratio per layer, :math:`\|\nabla_\ell L\|^2 / \operatorname{tr}\Sigma_\ell`.

    :math:`\nabla_\ell L` and :math:`\Sigma_\ell` are the gradient and the covariance block
    of the parameters of layer :math:`\ell` (a module's weight and bias together): the
    inverse of the layer's noise-to-signal ratio :math:`\eta_\ell^2` (Balles 2021, Eq. 4.9).
    Recorded as ``{"layer_snr": {"<module name> (<type>)": value}}``.
    """

    name = "layer_snr"
    statistics = (Statistic.GRADIENT, Statistic.VARIANCE)
    panels = (
        Panel("layer_snr", "Signal-to-noise per layer", r"$1/\eta_\ell^2$", True, None, "lines"),
    )

    def measure(self, data: StepData) -> dict[str, Value]:
        """Return ``{"layer_snr": {layer: SNR}}``."""
        col = data.collector
        gradient, variance = col[Statistic.GRADIENT], col[Statistic.VARIANCE]
        modules = dict(data.model.named_modules())
        signal: dict[str, float] = {}
        noise: dict[str, float] = {}
        for name, p in zip(col.names, col.params, strict=True):
            path = name.rsplit(".", 1)[0] if "." in name else ""
            layer = f"{path or 'model'} ({type(modules[path]).__name__})"
            signal[layer] = signal.get(layer, 0.0) + float(gradient[p].square().sum())
            noise[layer] = noise.get(layer, 0.0) + float(variance[p].sum())
        return {
            "layer_snr": {k: signal[k] / noise[k] if noise[k] > 0 else math.inf for k in signal}
        }


def _frobenius_of_gram(rows: Tensor, scale: float) -> float:
    r""":math:`\|s R^\top R\|_F = s\|R R^\top\|_F` for rows :math:`R` ``(K, D)``."""
    return scale * float(torch.linalg.matrix_norm(rows @ rows.T))


def _damped_solve(rows: Tensor, scale: float, damping: float, v: Tensor) -> Tensor:
    r""":math:`(sR^\top R + \lambda I)^{-1} v` by the Woodbury identity (a ``K × K`` solve).

    :math:`(\lambda I + sR^\top R)^{-1} = \lambda^{-1}\big(I - R^\top(\tfrac{\lambda}{s} I +
    RR^\top)^{-1}R\big)`.
    """
    K = rows.shape[0]
    gram = rows @ rows.T + (damping / scale) * torch.eye(K, dtype=rows.dtype, device=rows.device)
    inner = torch.linalg.solve(gram, rows @ v)
    return (v - rows.T @ inner) / damping


class EFvsFisher(Instrument):
    r"""How far the empirical Fisher is from the (Monte-Carlo) Fisher (Kunstner et al. 2019).

    Records, for the step's batch,

    - ``ef_fisher_trace_ratio`` :math:`\operatorname{tr}\tilde F / \operatorname{tr}\hat F`,
    - ``ef_fisher_frobenius_ratio`` :math:`\|\tilde F\|_F / \|\hat F\|_F`,
    - ``ef_natural_cosine``: the cosine between the EF-preconditioned direction
      :math:`(\tilde F + \lambda I)^{-1}\nabla L` and the natural-gradient direction
      :math:`(\hat F + \lambda I)^{-1}\nabla L` (Kunstner et al. Eq. 5 vs Eq. 6, the
      comparison of their Fig. 3, bottom row).

    :math:`\tilde F = c\,G^\top G` with the per-sample gradients :math:`G` (rows
    :math:`g_n`), :math:`\hat F = c\,\hat G^\top\hat G` with the rows
    :math:`\hat g_{s,n}/\sqrt S` of sampled labels. Frobenius norms and solves use the
    ``N × N`` Gram matrices (Woodbury), never a ``D × D`` matrix. At a well-specified
    optimum both traces agree; far from it the EF is dominated by
    :math:`\nabla L\nabla L^\top` and the directions part (Kunstner et al. §3).

    Parameters
    ----------
    damping : float
        :math:`\lambda > 0` of both preconditioners.
    mc_samples : int
        Sampled labels per input :math:`S`.
    seed : int
        Step ``t`` draws its labels from a generator seeded with ``seed + t``.
    every : int or None
        Default 100: per-sample gradients, one Jacobian-transpose product per sample and
        label and two ``N × D`` Gram products cost of the order of 100 training steps on
        the benchmark MLP (``benchmarks/monitor_overhead.py``).
    """

    name = "ef_vs_fisher"
    statistics = (Statistic.GRADIENT, Statistic.PER_SAMPLE_GRADIENTS)
    default_every = 100
    panels = (
        Panel(
            "ef_fisher_trace_ratio",
            "EF vs Fisher: trace ratio",
            r"tr $\tilde F$ / tr $\hat F$",
            True,
            1.0,
        ),
        Panel(
            "ef_fisher_frobenius_ratio",
            "EF vs Fisher: Frobenius ratio",
            r"$\|\tilde F\|_F / \|\hat F\|_F$",
            True,
            1.0,
        ),
        Panel("ef_natural_cosine", "EF vs natural gradient direction", "cosine", False, 1.0),
    )

    def __init__(
        self,
        damping: float = 1e-4,
        mc_samples: int = 1,
        seed: int = 0,
        every: int | None = None,
    ) -> None:
        super().__init__(every)
        if not damping > 0 or not math.isfinite(damping):
            raise ValueError(f"damping must be a positive finite number, got {damping!r}")
        if isinstance(mc_samples, bool) or not isinstance(mc_samples, int) or mc_samples < 1:
            raise ValueError(f"mc_samples must be a positive int, got {mc_samples!r}")
        self.damping = float(damping)
        self.mc_samples = mc_samples
        self.seed = seed

    def measure(self, data: StepData) -> dict[str, Value]:
        """Return the two ratios and the cosine."""
        from fisherlab.engine.generic import factors
        from fisherlab.quantities import Quantity, QuantitySpec

        col = data.collector
        G = col.flat(Statistic.PER_SAMPLE_GRADIENTS).detach()
        # this rank's batch throughout (under torch.distributed the collector's gradient
        # and N are the global batch's, its per-sample rows this rank's)
        c = Scaling(data.reduction, G.shape[0]).c
        fm = data.curvature.functional_model
        spec = QuantitySpec(Quantity.FISHER_MC, self.mc_samples, data.generator(self.seed))
        with torch.no_grad():
            R = fm.sandwich_rows(data.X, factors(fm, data.X, spec)).reshape(-1, G.shape[1])
            g = c * G.sum(0)
            d_ef = _damped_solve(G, c, self.damping, g)
            d_nat = _damped_solve(R, c, self.damping, g)
            cosine = float(torch.dot(d_ef, d_nat) / (d_ef.norm() * d_nat.norm()))
            trace_ef, trace_f = float(G.square().sum()), float(R.square().sum())
        return {
            "ef_fisher_trace_ratio": trace_ef / trace_f if trace_f > 0 else math.inf,
            "ef_fisher_frobenius_ratio": _frobenius_of_gram(G, c) / _frobenius_of_gram(R, c),
            "ef_natural_cosine": cosine,
        }


class _MaxEigenvalue(Instrument):
    matrix = ""
    key = ""
    default_every = 50

    def __init__(self, num_steps: int = 10, seed: int = 0, every: int | None = None) -> None:
        super().__init__(every)
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
            raise ValueError(f"num_steps must be a positive int, got {num_steps!r}")
        self.num_steps = num_steps
        self.seed = seed

    def measure(self, data: StepData) -> dict[str, Value]:
        """Return the Lanczos estimate of the largest eigenvalue."""
        return {self.key: data.max_eigenvalue(self.matrix, self.num_steps, self.seed)}


class HessianMaxEigenvalue(_MaxEigenvalue):
    r"""Largest Hessian eigenvalue :math:`\lambda_{\max}(\nabla^2 L)` (sharpness) by Lanczos.

    ``num_steps`` Hessian-vector products on the step's batch (generic engine), started
    from a Gaussian vector drawn with seed ``seed + t``; the largest Ritz value is a lower
    bound that converges quickly for a separated top eigenvalue and is exact once
    ``num_steps >= D``. Default every 50 steps.
    """

    name = "hessian_max_eig"
    matrix = "hessian"
    key = "hessian_max_eigenvalue"
    panels = (Panel(key, "Sharpness (Hessian)", r"$\lambda_{\max}(\nabla^2 L)$", log=True),)


class GGNMaxEigenvalue(_MaxEigenvalue):
    r"""Largest eigenvalue of the generalized Gauss-Newton :math:`G` (= Fisher) by Lanczos.

    As :class:`HessianMaxEigenvalue` with GGN-vector products
    (:math:`G = c\sum_n J_n^\top\nabla_f^2 l_n J_n`, Kunstner et al. Eq. 10).
    """

    name = "ggn_max_eig"
    matrix = "ggn"
    key = "ggn_max_eigenvalue"
    panels = (Panel(key, "Largest GGN eigenvalue", r"$\lambda_{\max}(G)$", log=True),)


class EdgeOfStability(_MaxEigenvalue):
    r"""Learning rate times sharpness, :math:`\alpha\,\lambda_{\max}(\nabla^2 L)`.

    Gradient descent with step :math:`\alpha` on a quadratic with curvature
    :math:`\lambda_{\max}` diverges along the top eigenvector iff
    :math:`\alpha\lambda_{\max} > 2`; full-batch training tends to hover at 2 ("edge of
    stability", Cohen et al. 2021). The Lanczos estimate is shared with
    :class:`HessianMaxEigenvalue` at the same settings. Needs the learning rate
    (``Monitor(optimizer=...)`` or ``lr=...``).
    """

    name = "edge_of_stability"
    matrix = "hessian"
    key = "lr_times_max_eigenvalue"
    panels = (Panel(key, "Edge of stability", r"$\alpha\,\lambda_{\max}$", False, 2.0),)

    def measure(self, data: StepData) -> dict[str, Value]:
        """Return ``{"lr_times_max_eigenvalue": α λ_max}``."""
        if data.lr is None:
            raise RuntimeError(
                "edge_of_stability needs the learning rate: Monitor(..., optimizer=opt) or lr="
            )
        return {self.key: data.lr * data.max_eigenvalue(self.matrix, self.num_steps, self.seed)}


class _BatchSize(Instrument):
    statistics = (Statistic.GRADIENT, Statistic.VARIANCE)

    def __init__(
        self, min_batch: int = 1, max_batch: int = 2**20, mu: float = 0.9, every: int | None = None
    ) -> None:
        super().__init__(every)
        self.min_batch, self.max_batch, self.mu = min_batch, max_batch, mu

    def check(self, reduction: str) -> None:
        """The rules are stated for a mean loss (Balles 2021, ch. 4)."""
        if reduction != "mean":
            raise ValueError(
                f"{self.name} applies to a mean training loss (reduction='mean'), "
                f"got reduction={reduction!r}"
            )

    @staticmethod
    def unbiased_variance(data: StepData) -> float:
        r"""The trace of the per-sample variance estimate.

        :math:`\|s\|_1` of :math:`s = \frac{N}{N-1}\operatorname{diag}\Sigma` (Eq. 3.30).
        """
        N = data.num_samples
        if N < 2:
            raise ValueError("batch-size rules need minibatches of at least 2 samples")
        return data.variance_abs_sum * (N / (N - 1))


class CABSBatchSize(_BatchSize):
    r"""The batch size CABS would choose next (Balles 2021, Eq. 4.20, Alg. 1).

    :math:`m = \alpha\,\overline{\operatorname{tr}\Sigma} / \overline{L}` with running
    averages over the measured steps, rounded and clipped to ``[min_batch, max_batch]`` —
    :class:`fisherlab.optim.CABS` fed with the step's loss, the unbiased per-sample
    variance :math:`\frac{N}{N-1}\operatorname{diag}\Sigma` (Eq. 3.30) and the optimizer's
    learning rate :math:`\alpha`.
    """

    name = "cabs"
    panels = (Panel("cabs_batch_size", "Batch size CABS would choose", "m", log=True),)

    def __init__(
        self, min_batch: int = 1, max_batch: int = 2**20, mu: float = 0.9, every: int | None = None
    ) -> None:
        super().__init__(min_batch, max_batch, mu, every)
        self._rule: Any = None

    def measure(self, data: StepData) -> dict[str, Value]:
        """Update the CABS rule and return ``{"cabs_batch_size": m}``."""
        from fisherlab.optim.batch_size import CABS

        if data.lr is None:
            raise RuntimeError("cabs needs the learning rate: Monitor(..., optimizer=opt) or lr=")
        if data.loss is None:
            raise RuntimeError("cabs needs the loss: call s.loss(output, y)")
        if self._rule is None:
            self._rule = CABS(
                data.lr, min_batch=self.min_batch, max_batch=self.max_batch, mu=self.mu
            )
        self._rule.lr = data.lr
        size = self._rule.update(loss=data.loss, variance=self.unbiased_variance(data))
        return {"cabs_batch_size": float(size)}


class NormTestBatchSize(_BatchSize):
    r"""The batch size the norm test would choose next (Balles 2021, Eq. 4.18, §4.4.4).

    :math:`m = \overline{\operatorname{tr}\Sigma} / (\theta^2\,\overline{\|\nabla L\|^2})`
    with running averages, rounded and clipped — :class:`fisherlab.optim.NormTest` fed with
    the unbiased per-sample variance and the minibatch gradient.
    """

    name = "norm_test"
    panels = (
        Panel("norm_test_batch_size", "Batch size the norm test would choose", "m", log=True),
    )

    def __init__(
        self,
        theta: float = 1.0,
        min_batch: int = 1,
        max_batch: int = 2**20,
        mu: float = 0.9,
        every: int | None = None,
    ) -> None:
        super().__init__(min_batch, max_batch, mu, every)
        from fisherlab.optim.batch_size import NormTest

        self._rule = NormTest(theta, min_batch=min_batch, max_batch=max_batch, mu=mu)

    def measure(self, data: StepData) -> dict[str, Value]:
        """Update the norm-test rule and return ``{"norm_test_batch_size": m}``."""
        size = self._rule.update(variance=self.unbiased_variance(data), gradient=data.gradient)
        return {"norm_test_batch_size": float(size)}


class GradientHistogram(Instrument):
    r"""Histogram of :math:`\log_{10}|\partial_i L|` over the coordinates of the gradient.

    ``bins`` equal bins on ``[low, high]``; values below ``low`` go to the first bin, values
    above ``high`` to the last, exact zeros (e.g. weights of inputs that are always 0) are
    counted apart; default every 10 steps (a few passes over the gradient). Recorded as
    ``{"gradient_histogram": {"low": l, "high": h, "counts": [...], "zeros": z}}``; the
    dashboard draws the histograms of all steps as a heat map.
    """

    name = "gradient_histogram"
    statistics = (Statistic.GRADIENT,)
    default_every = 10
    panels = (
        Panel(
            "gradient_histogram",
            "Gradient histogram",
            r"$\log_{10}|\partial_i L|$",
            False,
            None,
            "histogram",
        ),
    )

    def __init__(
        self, low: float = -8.0, high: float = 1.0, bins: int = 36, every: int | None = None
    ) -> None:
        super().__init__(every)
        if not low < high:
            raise ValueError(f"low must be < high, got low={low}, high={high}")
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
            raise ValueError(f"bins must be a positive int, got {bins!r}")
        self.low, self.high, self.bins = float(low), float(high), bins

    def measure(self, data: StepData) -> dict[str, Value]:
        """Return the counts per bin."""
        magnitude = data.gradient.detach().abs()
        zeros = int((magnitude == 0).sum())
        exponent = torch.log10(magnitude[magnitude > 0])
        width = (self.high - self.low) / self.bins
        index = ((exponent - self.low) / width).floor().clamp(0, self.bins - 1).long()
        counts = torch.bincount(index, minlength=self.bins)
        return {
            "gradient_histogram": {
                "low": self.low,
                "high": self.high,
                "counts": [int(v) for v in counts.tolist()],
                "zeros": zeros,
            }
        }


#: instrument classes by their ``track=`` name
INSTRUMENTS: dict[str, type[Instrument]] = {
    cls.name: cls
    for cls in (
        Loss,
        GradientNorm,
        VarianceTrace,
        NoiseToSignal,
        LayerSNR,
        EFvsFisher,
        HessianMaxEigenvalue,
        GGNMaxEigenvalue,
        EdgeOfStability,
        CABSBatchSize,
        NormTestBatchSize,
        GradientHistogram,
    )
}


def make_instrument(spec: str | Instrument) -> Instrument:
    """Return ``spec`` if it is an instrument, else a default instance of the named class."""
    if isinstance(spec, Instrument):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"track entries must be names or Instrument objects, got {spec!r}")
    if spec not in INSTRUMENTS:
        raise ValueError(f"unknown instrument {spec!r}; known: {', '.join(INSTRUMENTS)}")
    return INSTRUMENTS[spec]()


def panels_by_key() -> dict[str, Panel]:
    """Every instrument's panels keyed by record key."""
    return {p.key: p for cls in INSTRUMENTS.values() for p in cls.panels}
