"""Pictures of listenable explanations: a clip's log spectrogram, its mask and what the mask keeps.

    fig = figures.mask_figure(explanation, explainer.classifier.spec.audio.spectrogram,
                              "dog_bark.wav: dog barking 0.97")
    plots.save(fig, "out/dog_bark.png")             # clap_jax.plots

Three panels on the classifier's own STFT grid (time in s, frequency in kHz): the clip's
linear-frequency log spectrogram (dB re its loudest bin) with the outline of the mask at half its
peak drawn over it, the mask in [0, 1], and the spectrogram of the masked-in waveform (what the
explanation says the classifier used, on the same dB scale, so removed energy shows as dark). Drawn with
:mod:`clap_jax.plots` (matplotlib, headless). The spectrograms use ``clap_jax.frontend.stft`` itself.
"""
from __future__ import annotations

import numpy as np

from clap_jax import frontend, plots
from clap_jax.frontend import SpectrogramConfig

DYNAMIC_RANGE_DB = 80.0


def log_spectrogram(wave: np.ndarray, cfg: SpectrogramConfig) -> np.ndarray:
    """20 log10 |STFT| (frames, n_freq) of one waveform (samples,) on ``cfg``'s grid, in dB re 1
    (floored at -200 dB)."""
    spec = frontend.stft(np.asarray(wave, np.float32)[None], cfg)[0]
    return 20.0 * np.log10(np.maximum(np.abs(np.asarray(spec)), 1e-10))


def _extent(frames: int, cfg: SpectrogramConfig) -> list[float]:
    """imshow extent for a (frames, n_freq) grid: frame centres at t·hop/rate s, bins at k·rate/n_fft."""
    dt, df = cfg.hop_length / cfg.sample_rate, cfg.sample_rate / cfg.n_fft / 1000.0
    return [-dt / 2, (frames - 0.5) * dt, -df / 2, (cfg.n_freq - 0.5) * df]


def contour_level(mask: np.ndarray, min_range: float = 0.1) -> float | None:
    """The outline drawn over the spectrogram: half the mask's peak, or None for a mask too flat
    (peak − floor < ``min_range``) for an outline to say anything."""
    hi, lo = float(mask.max()), float(mask.min())
    return 0.5 * hi if hi - lo >= min_range and lo < 0.5 * hi else None


def mask_figure(explanation, spectrogram_cfg: SpectrogramConfig, title: str, *,
                subtitle: str | None = None, model: str = "the classifier"):
    """A matplotlib Figure: original | mask | masked-in spectrogram, colour bars for dB and mask.

    ``explanation``: anything with ``waveform``, ``masked_in`` (samples,) and ``mask``
    (frames, n_freq), e.g. :class:`lmac.Explanation`. ``subtitle`` (optional) goes under the title;
    by default the mask mean and, when the explanation has them, the predicted class's
    probability on the masked-in and masked-out input. ``model`` names what was explained in the
    third panel's title.
    """
    cfg = spectrogram_cfg
    mask = np.asarray(explanation.mask, np.float32)
    original = log_spectrogram(explanation.waveform, cfg)
    kept = log_spectrogram(explanation.masked_in, cfg)
    if mask.shape != original.shape:
        raise ValueError(f"mask {mask.shape} is not on the spectrogram's grid {original.shape}")
    top = float(original.max())
    original, kept = original - top, kept - top          # dB re the clip's loudest bin
    vmin, vmax = -DYNAMIC_RANGE_DB, 0.0
    extent = _extent(mask.shape[0], cfg)
    if subtitle is None:
        subtitle = f"mask mean {mask.mean():.3f}"
        if hasattr(explanation, "probabilities_in") and hasattr(explanation, "prediction"):
            k = int(explanation.prediction)
            subtitle += (f"   ·   p(predicted) clean {float(explanation.probabilities[k]):.2f}, "
                         f"masked-in {float(explanation.probabilities_in[k]):.2f}, "
                         f"masked-out {float(explanation.probabilities_out[k]):.2f}")

    fig, [axes] = plots.figure(1, 3, size=(16, 4.6), sharex=True, sharey=True)
    show = lambda ax, img, **kw: plots.spectrogram_image(ax, img, extent=extent, **kw)
    im = show(axes[0], original, cmap="magma", vmin=vmin, vmax=vmax)
    axes[0].set_title("spectrogram")
    level = contour_level(mask)
    if level is not None:
        from scipy import ndimage
        t = np.arange(mask.shape[0]) * cfg.hop_length / cfg.sample_rate
        f = np.arange(mask.shape[1]) * cfg.sample_rate / cfg.n_fft / 1000.0
        smooth = ndimage.uniform_filter(mask, size=(3, 5), mode="nearest")
        axes[0].contour(t, f, smooth.T, levels=[level], colors="cyan", linewidths=1.0)
        axes[0].set_title(f"spectrogram (cyan: mask = {level:.2f}, half its peak)")
    mk = show(axes[1], mask, cmap="viridis", vmin=0.0, vmax=1.0)
    axes[1].set_title("mask")
    show(axes[2], kept, cmap="magma", vmin=vmin, vmax=vmax)
    axes[2].set_title(f"masked-in (what {model} used)")
    for ax in axes:
        ax.set_xlabel("time (s)")
    axes[0].set_ylabel("frequency (kHz)")
    for ax, img, label in ((axes[0], im, "dB re the clip's loudest bin"), (axes[1], mk, "mask"),
                           (axes[2], im, "dB re the clip's loudest bin")):
        fig.colorbar(img, ax=ax, label=label, fraction=0.05, pad=0.02)
    fig.suptitle(f"{title}\n{subtitle}" if subtitle else title, fontsize=12)
    return fig

