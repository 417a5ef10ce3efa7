"""Small shared plotting helpers: one style, consistent method colors, atomic saving.

matplotlib is imported lazily (with the non-interactive Agg backend), so importing this
module does not require it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "METHOD_COLORS",
    "STYLE",
    "method_color",
    "new_figure",
    "save_figure",
    "style",
    "use_agg",
]

#: Colors of methods and quantities, shared by all figures (colorblind-safe palette).
METHOD_COLORS: dict[str, str] = {
    "GD": "#0072B2",
    "SGD": "#56B4E9",
    "NGD": "#009E73",
    "EFGD": "#D55E00",
    "Adam": "#CC79A7",
    "signSGD": "#E69F00",
    "Fisher": "#009E73",
    "EF": "#D55E00",
    "GGN": "#117733",
    "Hessian": "#332288",
    "Covariance": "#882255",
}
_ALIASES = {
    "F": "Fisher",
    "FISHER": "Fisher",
    "NGD": "NGD",
    "EMPIRICAL_FISHER": "EF",
    "EMPIRICAL FISHER": "EF",
    "EFGD": "EFGD",
    "EF-GD": "EFGD",
    "EF GD": "EFGD",
    "HESSIAN": "Hessian",
    "ADAM": "Adam",
    "SIGNSGD": "signSGD",
    "SIGN-SGD": "signSGD",
    "COVARIANCE": "Covariance",
    "SIGMA": "Covariance",
}
_FALLBACK = ["#000000", "#999999", "#44AA99", "#DDCC77", "#AA4499", "#88CCEE"]

#: matplotlib rcParams of the fisherlab style.
STYLE: dict[str, Any] = {
    "figure.dpi": 100,
    "savefig.dpi": 120,
    "savefig.bbox": "tight",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.5,
    "lines.markersize": 4,
}


def method_color(name: str) -> str:
    """Return the color of method or quantity ``name`` (e.g. ``"GD"``, ``"NGD"``, ``"EF"``).

    Unknown names get a stable color from a fallback palette.
    """
    if name in METHOD_COLORS:
        return METHOD_COLORS[name]
    upper = name.strip().upper()
    key = _ALIASES.get(upper) or next((k for k in METHOD_COLORS if k.upper() == upper), None)
    if key is not None:
        return METHOD_COLORS[key]
    import zlib

    return _FALLBACK[zlib.crc32(name.encode("utf-8")) % len(_FALLBACK)]


def use_agg() -> Any:
    """Import matplotlib with the non-interactive Agg backend and return ``pyplot``."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


@contextmanager
def style() -> Iterator[None]:
    """Context manager applying the fisherlab matplotlib style."""
    plt = use_agg()
    with plt.rc_context(STYLE):
        yield


def new_figure(
    nrows: int = 1,
    ncols: int = 1,
    panel_size: tuple[float, float] = (4.0, 3.0),
    **subplots_kw: Any,
) -> tuple[Any, Any]:
    """Create a figure in the fisherlab style with ``nrows x ncols`` panels.

    Parameters
    ----------
    nrows, ncols : int
        Panel grid.
    panel_size : tuple of float
        Width and height of one panel in inches.
    **subplots_kw
        Passed on to ``plt.subplots`` (e.g. ``squeeze=False``, ``sharey=True``).

    Returns
    -------
    fig, axes
        As returned by ``plt.subplots``.
    """
    plt = use_agg()
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            nrows,
            ncols,
            figsize=(panel_size[0] * ncols, panel_size[1] * nrows),
            layout="constrained",
            **subplots_kw,
        )
    return fig, axes


def save_figure(fig: Any, path: Path | str, close: bool = True) -> Path:
    """Save ``fig`` as PNG to ``path`` atomically and (by default) close it.

    The figure is written to a temporary file in the target directory and moved into
    place with ``os.replace``, so a reader never sees a half-written file.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : Path or str
        Target file; parent directories are created.
    close : bool
        Close the figure afterwards (frees memory).

    Returns
    -------
    Path
        ``path``.
    """
    plt = use_agg()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        with plt.rc_context(STYLE):
            fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        if close:
            plt.close(fig)
    return path
