"""Optimizers and batch-size rules built on gradient moments and gradient noise.

Gradient-moment optimizers ("Dissecting Adam", Balles 2021, ch. 5 and App. B):
:class:`MSVAG`, :class:`SVAG`, :class:`MinibatchMSVAG`, :class:`AdamStar`, :class:`MSGD`.
Sign-based optimizers (ch. 5-6): :class:`SignDescent`, :class:`L1SignDescent`, :class:`MSSD`.
Preconditioned gradient descent (Kunstner et al. 2019): :class:`PreconditionedGD` (NGD,
EF-preconditioned GD, GGN, damped Newton; variance adaptation, Eq. 19).
Batch-size rules (ch. 4): :class:`CABS`, :class:`NormTest`, and :class:`AdaptiveBatchSampler`.

All optimizers are :class:`torch.optim.Optimizer` subclasses that use ``p.grad``; their
update rules are plain functions on lists of tensors in :mod:`fisherlab.optim._functional`.
"""

from ._utils import split_flat
from .batch_size import CABS, AdaptiveBatchSampler, BatchSizeRule, NormTest
from .moments import MSGD, MSVAG, SVAG, AdamStar, MinibatchMSVAG
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
    "BatchSizeRule",
    "L1SignDescent",
    "MinibatchMSVAG",
    "NormTest",
    "PreconditionedGD",
    "SignDescent",
    "split_flat",
]
