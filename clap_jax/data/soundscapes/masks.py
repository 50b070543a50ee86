"""Ground-truth masks: where each event dominates the mixture, on any STFT grid.

    components (C, n) as mixed (events, then the background)
        -> |frontend.stft| on a frontend.SpectrogramConfig (_magnitudes, one jit per grid)
        -> per event: |X_i| > sum of the others' and >= floor * max |X_i|, inside frame_span
        -> Event.mask_crop (frames of the span) / ground_truth (events, frames, n_freq)

The STFT is the project's one, :func:`clap_jax.frontend.stft`, so masks sit on exactly the
(frame, bin) grid of the classifier being explained; :func:`mask_grid` turns the corpus'
``(n_fft, hop)`` shorthand into its ``SpectrogramConfig`` (periodic Hann, reflect padding) and
:func:`stft` is ``frontend.stft`` on that grid.  Conventions: the package docstring.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING

import jax
import numpy as np

from clap_jax import frontend
from clap_jax.data.soundscapes.primitives import F32
from clap_jax.frontend import SpectrogramConfig

if TYPE_CHECKING:
    from clap_jax.data.soundscapes.corpus import Clip


def mask_grid(stft: "tuple[int, int] | SpectrogramConfig", sample_rate: int) -> SpectrogramConfig:
    """The STFT grid masks are computed on, as a :class:`clap_jax.frontend.SpectrogramConfig`.

    A ``SpectrogramConfig`` is used as given (its window, ``win_length``, hop, padding and
    ``n_fft``: the grid of the classifier being explained; mel fields are ignored). A tuple
    ``(n_fft, hop)`` is the corpus' own convention: periodic Hann of ``n_fft`` samples,
    reflect padding (``librosa.stft`` defaults).
    """
    if isinstance(stft, SpectrogramConfig):
        return stft
    n_fft, hop = (int(v) for v in stft)
    return SpectrogramConfig(sample_rate=sample_rate, n_fft=n_fft, win_length=n_fft, hop_length=hop,
                             window="hann", pad_mode="reflect")


@functools.partial(jax.jit, static_argnums=1)
def _magnitudes(x, grid: SpectrogramConfig):
    """|frontend.stft| of signals (C, n) -> (C, frames, n_freq) float32 (no magnitude eps)."""
    return frontend.magnitude(frontend.stft(x, grid))


def stft(x: np.ndarray, n_fft: int = 1024, hop: int = 320) -> np.ndarray:
    """STFT with the corpus convention, complex ``(..., 1 + n // hop, n_fft // 2 + 1)``.

    :func:`clap_jax.frontend.stft` on :func:`mask_grid` ``((n_fft, hop))``: centred frames (frame
    k centred on sample k * hop), reflect padding of n_fft // 2, periodic Hann window, rfft (no
    scaling).  ``x``: float ``(..., n)``.
    """
    x = np.asarray(x, dtype=F32)
    grid = mask_grid((n_fft, hop), 16000)      # the rate does not enter the STFT
    out = frontend.stft(x.reshape(-1, x.shape[-1]), grid)
    return np.asarray(out).reshape(*x.shape[:-1], *out.shape[1:])


def frame_span(onset_sample: int, offset_sample: int, n_samples: int, n_fft: int,
               hop: int) -> tuple[int, int]:
    """Frames ``[start, stop)`` whose centred window overlaps samples ``[onset, offset)``.

    Frame ``k`` covers samples ``(k*hop - n_fft//2, k*hop + n_fft//2)``.
    """
    half = n_fft // 2
    n_frames = 1 + n_samples // hop
    start = max(0, (onset_sample - half) // hop + 1)
    stop = min(n_frames, -(-(offset_sample + half) // hop))
    return start, stop


def _event_masks(components: np.ndarray, spans, n_events: int, grid: SpectrogramConfig,
                 floor_db: float):
    """Ground-truth masks of the first ``n_events`` rows of ``components`` on ``grid``.

    components: float32 ``(C, n)`` separate signals (events first, then the background), as
    mixed (their sum is the clip).  spans: ``[(onset_sample, offset_sample)]`` of the events.
    Returns ``[(start, stop, crop bool (stop - start, n_freq))]`` per event, ``[start, stop)``
    being :func:`frame_span` (the mask is False outside it).

    Every component goes through the same STFT as the classifier (:func:`_magnitudes`:
    ``frontend.stft`` with ``grid``'s window, hop, padding and ``n_fft``); the mixture's
    magnitude budget ``tot`` sums their magnitudes.  Event ``i`` is True where
    ``|X_i| > tot - |X_i|`` (it dominates everything else) and ``|X_i| >= floor * max |X_i|``.
    """
    n = components.shape[1]
    mags = np.asarray(_magnitudes(components, grid))          # (C, frames, n_freq)
    tot = mags.sum(axis=0)
    floor = F32(10.0 ** (floor_db / 20.0))
    out = []
    for i, (a, b) in enumerate(spans[:n_events]):
        s, e = frame_span(a, b, n, grid.n_fft, grid.hop_length)
        if e <= s:
            out.append((s, s, np.zeros((0, grid.n_freq), dtype=bool)))
            continue
        m = mags[i]
        peak = m.max()
        full = (m > tot - m) & (m >= floor * peak) & (peak > 0)
        out.append((s, e, full[s:e].copy()))
    return out


def ground_truth(clip: Clip, spectrogram: "SpectrogramConfig | tuple[int, int] | None" = None) -> np.ndarray:
    """The clip's ground-truth masks on any STFT grid: bool ``(events, frames, n_freq)``, events
    in onset order (``clip.events``), ``frames = spectrogram.num_frames(len(clip.audio))``.

    ``spectrogram``: the explained classifier's :class:`~clap_jax.frontend.SpectrogramConfig`
    (e.g. ``classifier.spec.audio.spectrogram``), a corpus ``(n_fft, hop)``, or None for the
    grid the clip was generated with.  Another grid regenerates the clip from ``(seed, index,
    config)`` with masks on that grid (the audio does not depend on the grid; checked).
    """
    if spectrogram is not None and mask_grid(spectrogram, clip.sample_rate) != clip.grid:
        from clap_jax.data.soundscapes.corpus import generate_clip  # corpus imports this module
        if clip.config is None:
            raise ValueError(f"{clip.clip_id}: no generation config recorded; cannot recompute its masks")
        other = generate_clip(clip.seed, clip.index, dataclasses.replace(clip.config, stft=spectrogram))
        if not np.array_equal(other.audio, clip.audio):
            raise ValueError(f"{clip.clip_id}: regenerated audio differs; was the clip modified?")
        clip = other
    if clip.grid is None:
        raise ValueError(f"{clip.clip_id}: generated with stft=None; pass a spectrogram config")
    n_frames = clip.grid.num_frames(len(clip.audio))
    if not clip.events:
        return np.zeros((0, n_frames, clip.grid.n_freq), dtype=bool)
    return np.stack([e.mask for e in clip.events])
