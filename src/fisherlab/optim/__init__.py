"""Optimizers and batch-size rules built on gradient moments and gradient noise.

Gradient-moment optimizers ("Dissecting Adam", Balles 2021, ch. 5 and App. B):
:class:`MSVAG`, :class:`SVAG`, :class:`MinibatchMSVAG`, :class:`AdamStar`, :class:`MSGD`.
Sign-based optimizers (ch. 5-6): :class:`SignDescent`, :class:`L1SignDescent`, :class:`MSSD`.
Preconditioned gradient descent (Kunstner et al. 2019): :class:`PreconditionedGD` (NGD,
EF-preconditioned GD, GGN, damped Newton; variance adaptation, Eq. 19).
Covariance-noise SGD (Wen et al. 2020, Algorithm 1): :class:`CovarianceNoiseSGD` and the
BatchChange baseline :class:`BatchChangeSampler`.
Batch-size rules (ch. 4): :class:`CABS`, :class:`NormTest`, and :class:`AdaptiveBatchSampler`.

The gradient-moment and sign optimizers are :class:`torch.optim.Optimizer` subclasses that
use ``p.grad``; :class:`PreconditionedGD` and :class:`CovarianceNoiseSGD` take the batch in
``step(X, y)``. The update rules are plain functions on lists of tensors
(:mod:`fisherlab.optim._functional`, :mod:`fisherlab.optim.preconditioned`,
:mod:`fisherlab.optim.noisy`).
"""

from ._utils import split_flat
from .batch_size import CABS, AdaptiveBatchSampler, BatchSizeRule, NormTest
from .moments import MSGD, MSVAG, SVAG, AdamStar, MinibatchMSVAG
from .noisy import BatchChangeSampler, CovarianceNoiseSGD, NoiseType
from .preconditioned import PreconditionedGD
from .sign import MSSD, L1SignDescent, SignDescent

__all__ = [
    "CABS",
    "MSGD",
    "MSSD",
    "MSVAG",
    "SVAG",
    "AdamStar",
    "AdaptiveBatchSampler",
    "BatchChangeSampler",
    "BatchSizeRule",
    "CovarianceNoiseSGD",
    "L1SignDescent",
    "MinibatchMSVAG",
    "NoiseType",
    "NormTest",
    "PreconditionedGD",
    "SignDescent",
    "split_flat",
]
