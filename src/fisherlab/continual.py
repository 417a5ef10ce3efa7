r"""Elastic Weight Consolidation (Kirkpatrick et al. 2017) with a chosen diagonal Fisher.

After training on task :math:`A` to :math:`\theta^*_A`, EWC trains task :math:`B` on

.. math::
    L(\theta) = L_B(\theta) + \sum_i \frac{\lambda}{2} F_i\,(\theta_i - \theta^*_{A,i})^2
    \qquad \text{(Kirkpatrick et al., Eq. 3)},

a Laplace approximation of the posterior :math:`p(\theta | D_A)` around :math:`\theta^*_A`
whose precision (the Hessian of the negative log-likelihood) is replaced by the diagonal
of the Fisher information. With several tasks the penalties add up (one anchor and Fisher
per task); the *online* variant (Schwarz et al. 2018, "Progress & Compress"; Huszár 2018)
keeps one running Fisher :math:`F \leftarrow \gamma F + F_\text{new}` and the latest anchor.

**Which Fisher.** The Fisher of the EWC paper is the Fisher information of the model's
predictive distribution, :math:`F = \mathbb E_{x}\,\mathbb E_{\hat y \sim
p_\theta(\cdot|x)}[\nabla\log p_\theta(\hat y|x)\,\nabla\log p_\theta(\hat y|x)^\top]`:
the expectation over labels is taken under the *model* (this is the identity
:math:`-\mathbb E[\nabla^2 \log p_\theta] = \mathbb E[\nabla \log p_\theta \nabla\log
p_\theta^\top]` for :math:`z \sim p_\theta`, which is what makes it a stand-in for the
Hessian at the optimum). :class:`FisherType` selects

- ``EXACT``: that Fisher in closed form, :math:`\frac1N\sum_n J_n^\top\Lambda(f_n)J_n`
  (``Curvature.fisher(form="diag")``) — the default;
- ``MC``: its Monte-Carlo estimate with ``mc_samples`` labels :math:`\hat y \sim
  p_\theta(\cdot|x_n)` per input (``Curvature.fisher(form="diag", mc_samples=S,
  generator=g)``), unbiased for ``EXACT``;
- ``EMPIRICAL``: the empirical Fisher :math:`\frac1N\sum_n g_n \odot g_n` with the *true*
  labels (``Curvature.empirical_fisher(form="diag")``). Kunstner et al. (2019, Sec. 1) list
  EWC among the algorithms that third parties re-implemented with the empirical Fisher; it
  is a different matrix (it vanishes where the model fits the labels, and grows with the
  residuals), not an estimate of the Fisher, and is offered for comparison only.

Scaling: the Fisher uses :class:`fisherlab.Curvature`'s ``reduction`` (default ``"mean"``:
a per-example average). The posterior precision of a Laplace approximation is
:math:`N_A` times that, so ``lam`` :math:`= N_A` gives the Bayesian reading with a
mean-reduction Fisher and a summed task-B loss.

Example::

    ewc = EWC(model, lam=100.0)
    ewc.consolidate(likelihood, X_a, y_a, fisher="exact")   # after training on task A
    for X, y in loader_b:
        loss = task_loss(model(X), y) + ewc.penalty()
        loss.backward(); opt.step(); opt.zero_grad()
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from fisherlab.curvature import Curvature
from fisherlab.likelihoods import Likelihood
from fisherlab.quantities import FisherType

__all__ = ["EWC", "FisherType", "diagonal_fisher"]


def _fisher_type(value: FisherType | str) -> FisherType:
    try:
        return FisherType(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in FisherType)
        raise ValueError(f"fisher must be one of {allowed}, got {value!r}") from None


def diagonal_fisher(
    curvature: Curvature,
    fisher: FisherType | str = FisherType.EXACT,
    mc_samples: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The diagonal ``(D,)`` of the Fisher of type ``fisher`` (see :mod:`fisherlab.continual`)."""
    kind = _fisher_type(fisher)
    if kind is FisherType.EXACT:
        return curvature.fisher(form="diag")
    if kind is FisherType.MC:
        return curvature.fisher(form="diag", mc_samples=mc_samples, generator=generator)
    return curvature.empirical_fisher(form="diag")


class EWC:
    r"""Elastic Weight Consolidation penalty over one or several consolidated tasks.

    .. math::
        R(\theta) = \frac{\lambda}{2} \sum_{t} \sum_i F_{t,i}\,(\theta_i - \theta^*_{t,i})^2

    (separate tasks :math:`t`), or, with ``online=True``, one term with
    :math:`F \leftarrow \gamma F + F_\text{new}` and the anchor :math:`\theta^*` of the latest
    consolidation.

    Parameters
    ----------
    model : torch.nn.Module
        The model; its trainable parameters (``requires_grad``, in ``parameters()`` order)
        at construction are the penalised ones.
    lam : float
        :math:`\lambda \ge 0`.
    online : bool
        Online EWC (one running Fisher) instead of one penalty per task.
    gamma : float
        Decay :math:`\gamma \in [0, 1]` of the online Fisher.
    """

    def __init__(
        self, model: torch.nn.Module, lam: float = 1.0, online: bool = False, gamma: float = 1.0
    ) -> None:
        if not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam >= 0):
            raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
        if not (isinstance(gamma, (int, float)) and 0.0 <= gamma <= 1.0):
            raise ValueError(f"gamma must lie in [0, 1], got {gamma!r}")
        self.model = model
        self.lam = float(lam)
        self.online = bool(online)
        self.gamma = float(gamma)
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError("model has no trainable parameters")
        self.fishers: list[Tensor] = []
        self.anchors: list[Tensor] = []

    @property
    def num_tasks(self) -> int:
        """Number of stored penalty terms (at most 1 when ``online``)."""
        return len(self.fishers)

    def _flat(self) -> Tensor:
        return torch.cat([p.reshape(-1) for p in self.params])

    @torch.no_grad()
    def consolidate(
        self,
        likelihood: Likelihood,
        X: Any,
        y: Tensor | None = None,
        fisher: FisherType | str = FisherType.EXACT,
        mc_samples: int = 1,
        generator: torch.Generator | None = None,
        reduction: str = "mean",
        batch_size: int | None = None,
    ) -> Tensor:
        """Store the current parameters as an anchor with the diagonal Fisher on ``(X, y)``.

        Parameters
        ----------
        likelihood : Likelihood
            The task's likelihood.
        X, y
            The task's data (tensors, or a DataLoader as ``X``), as for
            :class:`fisherlab.Curvature`.
        fisher : FisherType or str
            ``"exact"`` (default, the EWC paper's Fisher), ``"mc"`` or ``"empirical"``.
        mc_samples : int
            Sampled labels per input for ``"mc"``.
        generator : torch.Generator or None
            Randomness of ``"mc"``.
        reduction, batch_size
            Passed to :class:`fisherlab.Curvature`.

        Returns
        -------
        Tensor
            The new task's Fisher diagonal ``(D,)``.
        """
        kind = _fisher_type(fisher)
        if kind is not FisherType.MC and generator is not None:
            raise ValueError("generator only applies to fisher='mc'")
        curvature = Curvature(
            self.model, likelihood, X, y, reduction=reduction, batch_size=batch_size
        )
        if curvature.num_params != sum(p.numel() for p in self.params):
            raise ValueError("the model's trainable parameters changed since EWC was created")
        diag = diagonal_fisher(curvature, kind, mc_samples, generator).detach().clone()
        anchor = self._flat().detach().clone()
        if self.online and self.fishers:
            self.fishers[0] = self.gamma * self.fishers[0] + diag
            self.anchors[0] = anchor
        else:
            self.fishers.append(diag)
            self.anchors.append(anchor)
        return diag

    def penalty(self) -> Tensor:
        r"""Return :math:`\frac{\lambda}{2}\sum_t\sum_i F_{t,i}(\theta_i - \theta^*_{t,i})^2`.

        Differentiable in the parameters; zero (a scalar tensor) before the first
        :meth:`consolidate`.
        """
        theta = self._flat()
        total = theta.new_zeros(())
        for diag, anchor in zip(self.fishers, self.anchors, strict=True):
            total = total + (diag * (theta - anchor) ** 2).sum()
        return 0.5 * self.lam * total

    def state_dict(self) -> dict[str, Any]:
        """Fishers, anchors and hyperparameters (tensors are cloned)."""
        return {
            "lam": self.lam,
            "online": self.online,
            "gamma": self.gamma,
            "fishers": [f.clone() for f in self.fishers],
            "anchors": [a.clone() for a in self.anchors],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (the parameter count must match)."""
        dim = sum(p.numel() for p in self.params)
        fishers, anchors = list(state_dict["fishers"]), list(state_dict["anchors"])
        if len(fishers) != len(anchors):
            raise ValueError("state_dict has different numbers of Fishers and anchors")
        for t in fishers + anchors:
            if t.shape != (dim,):
                raise ValueError(
                    f"state_dict tensors must have shape ({dim},), got {tuple(t.shape)}"
                )
        self.lam = float(state_dict["lam"])
        self.online = bool(state_dict["online"])
        self.gamma = float(state_dict["gamma"])
        ref = self.params[0]
        self.fishers = [f.clone().to(ref) for f in fishers]
        self.anchors = [a.clone().to(ref) for a in anchors]
