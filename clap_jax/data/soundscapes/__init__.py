"""Soundscapes: a synthetic, labelled, captioned sound corpus with ground truth.

Real datasets cannot be downloaded here, so the project makes its own.  Every clip is a
mixture of 1-3 synthesised *sound events* (beeps, sirens, bells, rain, a dog-like bark,
...) at random times, levels and pitches over an optional quiet background.  A clip comes
with

* ``labels``: the class ids of its events, in onset order;
* ``captions``: several everyday-language captions that follow the events' order in time
  and their overlap ("a high beep, then rain", "rain falling while something beeps",
  "a siren wails over distant traffic");
* per event: class id, onset/offset (seconds), level (dB), a representative pitch (Hz),
  and a ground-truth time-frequency mask over the STFT grid (see below).

Everything is numpy (plus ``scipy.fft`` and ``scipy.signal.lfilter``), vectorised over
samples, and deterministic: clip ``i`` of seed ``s`` is drawn from
``np.random.default_rng([s, i])`` only, so clips can be generated in parallel, resumed, or
generated one at a time with :func:`generate_clip`.

API
---
Everything below is importable from the package; the modules, by responsibility:

* ``classes``: :data:`CLASSES` (tuple of :class:`SoundClass`: id, label, family, caption
  phrases, synthesis parameters; the class table is data), :data:`FAMILIES`,
  :data:`BACKGROUNDS`, :func:`get_class`, :func:`class_index`.
* ``corpus``: :func:`generate` (list), :func:`iter_clips` (generator), :func:`generate_clip`
  (one clip) with settings from :class:`SoundscapeConfig` -> :class:`Clip` with :class:`Event` s;
  :func:`fold_for` (1..5) and :func:`split_for` (development / validation / evaluation).
* ``masks``: :func:`stft`: the STFT convention of the masks; :func:`ground_truth` /
  :meth:`Clip.event_masks`: the masks on any :class:`clap_jax.frontend.SpectrogramConfig`;
  :func:`mask_grid`.
* ``captions``: :func:`caption_for` (any events), :func:`tag_caption` (tag lists).
* ``primitives`` (signal building blocks), ``registry`` (``@synth("name")`` -> ``SYNTHS``),
  ``tonal`` and ``noisy`` (the synthesisers); ``python -m clap_jax.data.soundscapes``
  (``__main__``): throughput.
* ``clap_jax.data.export``: ESC-50 and Clotho folder layouts.

Speed: synthesis is a few numpy passes per event (wavetables, FFT-shaped noise, grains
overlap-added with ``bincount``, decaying partials as one small matrix product), the masks
one jitted :func:`clap_jax.frontend.stft` over the components.  ``python -m
clap_jax.data.soundscapes --n 200`` prints the throughput.  The matrix product may use several
BLAS threads; set ``OPENBLAS_NUM_THREADS=1`` when generating in parallel processes.

STFT / mask convention
----------------------
Masks live on an STFT grid, ``SoundscapeConfig.stft``, and are computed with the project's
one STFT, :func:`clap_jax.frontend.stft`, so they sit on exactly the (frame, bin) grid of the
classifier being explained.  The grid is a ``frontend.SpectrogramConfig`` (its window,
``win_length``, hop, padding and ``n_fft``: e.g. SpeechBrain's Hamming 372 / hop 186 / zero
padding / 1024) or a tuple ``(n_fft, hop)``, the corpus' default convention: frames are
*centred* (frame ``k`` centred on sample ``k * hop``), the signal reflect-padded by ``n_fft //
2`` on both sides, so there are ``1 + n_samples // hop`` frames; each frame is multiplied by a
periodic Hann window of length ``n_fft`` and transformed with ``rfft`` (``n_fft // 2 + 1``
bins, bin ``j`` at ``j * sample_rate / n_fft`` Hz), which is ``librosa.stft(center=True,
pad_mode="reflect", window="hann")``.  The grid changes only the masks: audio, events and
captions of a (seed, index) are bit-identical on every grid.

An event's mask is ``True`` at ``(frame, bin)`` where the event *dominates* the mixture:
its magnitude is larger than the sum of the magnitudes of all other components (other
events and the background) and at least ``mask_floor_db`` (default -30 dB) relative to the
event's own peak magnitude.  Components (as mixed, after the clip's gain) are transformed
separately on the grid.  Because frames are centred and ``n_fft`` spans several hops, a mask
can reach ``n_fft / (2 hop)`` frames beyond the event's samples (1.6 frames for ``n_fft=1024,
hop=320``): at most the frames whose window overlaps the event, see :meth:`Event.frame_span`.

Levels
------
``Event.level_db`` is the event's RMS over its own span ``[onset, offset)`` in dB re full
scale (a full-scale sine is -3 dB), after the clip's peak normalisation.  Clips are scaled
down (never up) so that ``max |audio| <= 0.98``.
"""

from __future__ import annotations

from clap_jax.data.soundscapes.captions import caption_for, tag_caption
from clap_jax.data.soundscapes.classes import (
    BACKGROUNDS, CLASS_IDS, CLASSES, FAMILIES, Background, SoundClass, class_index, get_class)
from clap_jax.data.soundscapes.corpus import (
    N_FOLDS, PEAK_MAX, SPLITS, Clip, Event, SoundscapeConfig, clip_id_for, fold_for, generate,
    generate_clip, iter_clips, split_for)
from clap_jax.data.soundscapes.masks import _event_masks, ground_truth, mask_grid, stft
from clap_jax.data.soundscapes.primitives import _normalise
from clap_jax.data.soundscapes.registry import SYNTHS as _SYNTHS

# Private names kept here for their users: _SYNTHS and _normalise (train.lmac_data's background
# beds), _event_masks (tests/test_soundscapes.py).

__all__ = [
    "BACKGROUNDS",
    "CLASSES",
    "CLASS_IDS",
    "FAMILIES",
    "N_FOLDS",
    "SPLITS",
    "Background",
    "Clip",
    "Event",
    "SoundClass",
    "SoundscapeConfig",
    "caption_for",
    "class_index",
    "clip_id_for",
    "fold_for",
    "generate",
    "generate_clip",
    "get_class",
    "ground_truth",
    "iter_clips",
    "mask_grid",
    "split_for",
    "stft",
    "tag_caption",
]
