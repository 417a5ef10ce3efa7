"""Representations: the matrix objects a quantity is returned in.

Pure matrices built from tensors — :class:`CurvatureOperator` (matrix-free),
:class:`KFAC` (Kronecker-factored blocks), :class:`BlockDiagonal` — with one interface:
``@``, ``solve(v, damping)``, ``sqrt``/``power``, ``diag``, ``trace``, ``to_dense`` and
``to_scipy``. They know no model, no data and no engine; :mod:`fisherlab.forms` builds them.
"""

from fisherlab.representations.blockdiag import Block, BlockDiagonal
from fisherlab.representations.kfac import KFAC, KroneckerBlock
from fisherlab.representations.operator import CurvatureOperator

__all__ = ["Block", "BlockDiagonal", "CurvatureOperator", "KFAC", "KroneckerBlock"]
