"""Representations: the matrix objects a quantity is returned in.

Pure matrices built from tensors — :class:`CurvatureOperator` (matrix-free),
:class:`KFAC` (Kronecker-factored blocks), :class:`BlockDiagonal`, and
:class:`DenseMatrix` / :class:`DiagonalMatrix` (the wrappers :mod:`fisherlab.linalg` puts
around the plain tensors of ``form="dense"`` / ``"diag"``) — with one interface, declared
on :class:`~fisherlab.representations.operator._SquareMatrix`: ``@``, ``solve(v, damping)``,
``power``/``sqrt``/``inv_sqrt``, ``diag``, ``trace``, ``frobenius_norm``, ``abs_sum``,
``eigenvalues``, ``to_dense``, ``to_scipy`` and ``to_operator``. They know no model, no
data and no engine; :mod:`fisherlab.forms` builds them.
"""

from fisherlab.representations.blockdiag import Block, BlockDiagonal
from fisherlab.representations.dense import DenseMatrix, DiagonalMatrix
from fisherlab.representations.ekfac import EKFAC
from fisherlab.representations.kfac import KFAC, KroneckerBlock
from fisherlab.representations.operator import CurvatureOperator

__all__ = [
    "Block",
    "BlockDiagonal",
    "CurvatureOperator",
    "DenseMatrix",
    "DiagonalMatrix",
    "EKFAC",
    "KFAC",
    "KroneckerBlock",
]
