"""Progress bars for long loops: shown on a terminal, silent otherwise.

A bar appears only when stderr is a TTY, the loop has at least ``min_total`` items, and
``$FISHERLAB_PROGRESS`` is not ``"0"``; in logs, tests and pipes the loop runs bare.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["progress"]

T = TypeVar("T")


def progress(
    iterable: Iterable[T],
    total: int | None = None,
    desc: str | None = None,
    min_total: int = 1,
    enabled: bool = True,
) -> Iterator[T]:
    """Iterate over ``iterable``, with a tqdm bar where one would be seen.

    Parameters
    ----------
    iterable : iterable
        The loop.
    total : int, optional
        Its length, if known (no bar below ``min_total``).
    desc : str, optional
        The bar's label.
    min_total : int, optional
        Loops shorter than this run without a bar.
    enabled : bool, optional
        ``False`` turns the bar off.
    """
    show = (
        enabled
        and os.environ.get("FISHERLAB_PROGRESS", "1") != "0"
        and sys.stderr.isatty()
        and (total is None or total >= min_total)
    )
    if not show:
        return iter(iterable)
    from tqdm.auto import tqdm

    return iter(tqdm(iterable, total=total, desc=desc, leave=False, file=sys.stderr))
