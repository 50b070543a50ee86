"""clap_jax.plots: the legend of a line plot stays outside its axes, save writes a real PNG, the
spectrogram image puts time right and frequency up."""
from __future__ import annotations

import numpy as np
from matplotlib import image

from clap_jax import plots


def test_lines_legend_outside_the_axes_and_save_writes_a_png(tmp_path):
    x = np.array([0.005, 0.01, 0.05, 0.1, 0.5])
    fig, [[ax]] = plots.figure(size=(7, 4))
    legend = plots.lines(ax, x, {"a": np.linspace(0.9, 0.1, 5), "b": np.full(5, 0.5)},
                         baselines={"a": ("a baseline", 0.95)}, logx=True, xlabel="λ", ylabel="score")
    assert [t.get_text() for t in legend.get_texts()] == ["a", "a baseline", "b"]
    assert ax.get_xscale() == "log" and [t.get_text() for t in ax.get_xticklabels()] == ["0.005", "0.01", "0.05",
                                                                                         "0.1", "0.5"]
    fig.canvas.draw()
    box, axes_box = legend.get_window_extent(), ax.get_window_extent()
    assert box.x0 >= axes_box.x1 and box.x1 <= fig.bbox.x1                  # right of the axes, in the figure
    path = plots.save(fig, str(tmp_path / "sub" / "lines.png"), dpi=100)
    png = image.imread(path)
    assert png.shape[:2] == (400, 700) and (png[..., :3] < 0.9).any(axis=2).mean() > 0.01


def test_spectrogram_image_is_time_by_frequency():
    grid = np.zeros((10, 4))
    grid[9, 0] = 1.0                                                         # last frame, lowest bin
    fig, [[ax]] = plots.figure()
    im = plots.spectrogram_image(ax, grid, extent=[0, 1, 0, 8])
    assert im.get_array().shape == (4, 10) and im.origin == "lower"
    assert im.get_array()[0, 9] == 1.0
    plots.pyplot().close(fig)
