"""Figures through matplotlib, headless, for every command that draws one (``lmac``'s spectrogram
and mask pictures, ``sparse.evaluate``'s λ sweep)::

    fig, axes = plots.figure(1, 2, size=(11, 4))     # Agg backend, chosen once on first use
    plots.spectrogram_image(ax, grid)                # (frames, bins): time right, frequency up
    plots.lines(ax, x, {"label": y}, baselines=..., logx=True)   # markers, legend outside the axes
    plots.save(fig, "out/plot.png")                  # PNG, folders created, figure closed

matplotlib is imported only when a figure is made (importing this module costs nothing) and never
needs a display: the Agg backend is forced before ``pyplot`` is first imported.
"""
from __future__ import annotations

import os

import numpy as np

_PLT = None


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (set once, headless)."""
    global _PLT
    if _PLT is None:
        import matplotlib
        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
        _PLT = plt
    return _PLT


def figure(rows: int = 1, cols: int = 1, *, size: tuple[float, float] = (6.0, 4.0), layout: str = "constrained",
           **kwargs):
    """``(fig, axes)``: a grid of ``rows`` x ``cols`` axes, ``size`` in inches; ``axes`` is always
    a 2-D array (``squeeze=False``). ``layout``: ``"constrained"`` (room made for titles, colour
    bars and legends outside the axes), ``"tight"`` or None."""
    plt = pyplot()
    return plt.subplots(rows, cols, figsize=size, squeeze=False, layout=layout, **kwargs)


def save(fig, path: str, dpi: int = 110) -> str:
    """Writes ``fig`` as PNG to ``path`` (folders created) and closes it; returns ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    pyplot().close(fig)
    return path


def spectrogram_image(ax, grid: np.ndarray, *, extent=None, **kwargs):
    """Shows a (frames, bins) grid with time to the right and frequency upwards, one cell per
    bin (no smoothing); ``extent`` [t0, t1, f0, f1] in axis units (default: frame and bin
    indices); kwargs go to ``imshow`` (``cmap``, ``vmin``, ``vmax``). Returns the image."""
    return ax.imshow(np.asarray(grid).T, origin="lower", aspect="auto", extent=extent, interpolation="nearest",
                     **kwargs)


def lines(ax, x, series: dict, *, baselines: dict | None = None, bands: dict | None = None, logx: bool = False,
          xlabel: str | None = None, ylabel: str | None = None, title: str | None = None, legend: bool = True):
    """Line plot with markers of ``series`` {label: y (n,)} against ``x`` (n,).

    ``baselines`` {series label: (label, value)}: a dashed horizontal line in that series' colour
    (e.g. the dense accuracy under the concepts' accuracy); ``bands`` {series label: (lo, hi)}: a
    shaded band around it (± std). ``logx``: log-scale x with a tick at every x value. The legend
    goes to the right of the axes, outside them, so it never covers a line (with
    :func:`figure`'s constrained layout the figure makes room for it). Returns the legend (or None).
    """
    x = np.asarray(x, float)
    for label, y in series.items():
        (line,) = ax.plot(x, np.asarray(y, float), marker="o", label=label)
        if bands and label in bands:
            lo, hi = bands[label]
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2)
        if baselines and label in baselines:
            name, value = baselines[label]
            ax.axhline(value, color=line.get_color(), linestyle="--", linewidth=1.2, label=name)
    if logx:
        ax.set_xscale("log")
        ax.set_xticks(x, [f"{v:g}" for v in x], rotation=45, fontsize=8)
        ax.minorticks_off()
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if not legend:
        return None
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=8)
