"""The corpus: settings, clips and events, and their generation.

    (seed, index, SoundscapeConfig) -> np.random.default_rng([seed, index])
        -> _synth_events: classes, durations, SYNTHS[...] signals, levels, onsets
        -> background (registry too) -> _mix: peak-normalised audio + the components as mixed
        -> masks._event_masks on cfg.stft's grid -> Event s -> captions._captions -> Clip

:func:`generate_clip` makes one clip, :func:`iter_clips` / :func:`generate` many;
:func:`fold_for` / :func:`split_for` place a clip id in ESC-50 folds and Clotho splits.  A
clip depends on (seed, index, config) only; ``config.stft`` changes the masks only.
"""

from __future__ import annotations

import dataclasses
import math
import random
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from clap_jax.data.soundscapes import noisy, tonal  # noqa: F401  (they register the synthesisers)
from clap_jax.data.soundscapes.captions import _captions
from clap_jax.data.soundscapes.classes import (
    _CLASS_INDEX, BACKGROUNDS, CLASS_IDS, CLASSES, class_index, get_class)
from clap_jax.data.soundscapes.masks import _event_masks, frame_span, ground_truth, mask_grid
from clap_jax.data.soundscapes.primitives import F32, _normalise, _ramp, _rms, _u
from clap_jax.data.soundscapes.registry import SYNTHS
from clap_jax.frontend import SpectrogramConfig

PEAK_MAX = 0.98  # clips are scaled down to at most this peak

_missing = sorted({c.synth for c in CLASSES + BACKGROUNDS} - SYNTHS.keys())
assert not _missing, f"no synthesiser registered for {_missing}"


# ----------------------------------------------------------------------------------------
# Folds and splits
# ----------------------------------------------------------------------------------------

N_FOLDS = 5
SPLITS = ("development", "validation", "evaluation")


def fold_for(clip_id: str) -> int:
    """Deterministic fold in ``1..N_FOLDS`` of a clip id (CRC32 of the id, stable across runs)."""
    return 1 + zlib.crc32(clip_id.encode("utf-8")) % N_FOLDS


def split_for(clip_id: str) -> str:
    """Clotho-style split: folds 1-3 'development', fold 4 'validation', fold 5 'evaluation'."""
    fold = fold_for(clip_id)
    return SPLITS[0] if fold <= 3 else SPLITS[fold - 3]



# ----------------------------------------------------------------------------------------
# Clips and events
# ----------------------------------------------------------------------------------------


@dataclass
class Event:
    """One sound event of a clip.

    Attributes:
      class_id: id of its :class:`SoundClass`.
      onset, offset: start and end in seconds, ``0 <= onset < offset <= duration``.
      level_db: RMS over ``[onset, offset)`` in dB re full scale.
      pitch_hz: representative frequency in Hz (fundamental, centre of a sweep, carrier),
        None for noise-like events.
      mask_frames: ``(start, stop)`` frame range the mask can be non-zero in (the frames
        whose window overlaps the event), or None when no STFT was requested.
      mask_crop: bool ``(stop - start, n_fft // 2 + 1)``: the mask on those frames.  It
        is empty only if other components hide the event everywhere (not seen with the
        default levels, but possible with custom ``event_level_db``/``background_level_db``).
      n_frames: number of STFT frames of the clip.
    """

    class_id: str
    onset: float
    offset: float
    level_db: float
    pitch_hz: float | None = None
    mask_frames: tuple[int, int] | None = None
    mask_crop: np.ndarray | None = field(default=None, repr=False)
    n_frames: int = 0

    @property
    def target(self) -> int:
        """Class index in :data:`CLASSES`."""
        return class_index(self.class_id)

    @property
    def mask(self) -> np.ndarray | None:
        """Ground-truth mask, bool ``(n_frames, n_fft // 2 + 1)`` (frames x frequency bins)."""
        if self.mask_crop is None:
            return None
        full = np.zeros((self.n_frames, self.mask_crop.shape[1]), dtype=bool)
        full[self.mask_frames[0]:self.mask_frames[1]] = self.mask_crop
        return full

    frame_span = staticmethod(frame_span)  # masks.frame_span: the frames a mask can reach


@dataclass
class Clip:
    """One generated clip.

    Attributes:
      clip_id: stable id ``s{seed}_{index:06d}`` (no '-', so it fits ESC-50 file names).
      seed, index: what it was generated from (``np.random.default_rng([seed, index])``).
      audio: float32 ``(n_samples,)``, ``max |audio| <= 0.98``.
      sample_rate: Hz.
      labels: event class ids in onset order.
      captions: ``n_captions`` captions (distinct where the templates allow).
      events: :class:`Event` list in onset order.
      background: :class:`Background` id or None; background_level_db its RMS in dBFS.
      stft: ``(n_fft, hop)`` the masks are on, or None.
      grid: the full STFT grid of the masks (:func:`mask_grid`: window, win_length, hop,
        padding, n_fft), or None.
      config: the :class:`SoundscapeConfig` it was generated with (:func:`ground_truth`
        regenerates the clip from it to put the masks on another grid).
    """

    clip_id: str
    seed: int
    index: int
    audio: np.ndarray = field(repr=False)
    sample_rate: int
    labels: list[str]
    captions: list[str]
    events: list[Event]
    background: str | None = None
    background_level_db: float | None = None
    stft: tuple[int, int] | None = None
    grid: SpectrogramConfig | None = field(default=None, repr=False)
    config: "SoundscapeConfig | None" = field(default=None, repr=False)

    def event_masks(self, spectrogram: "SpectrogramConfig | tuple[int, int] | None" = None) -> np.ndarray:
        """Ground-truth masks bool ``(events, frames, n_freq)`` on ``spectrogram``'s grid (None:
        the clip's own); see :func:`ground_truth`."""
        return ground_truth(self, spectrogram)

    @property
    def duration(self) -> float:
        """Seconds."""
        return len(self.audio) / self.sample_rate

    @property
    def fold(self) -> int:
        return fold_for(self.clip_id)

    @property
    def split(self) -> str:
        return split_for(self.clip_id)

    @property
    def target(self) -> int:
        """Single-label target: class index of the first event (ESC-50 style)."""
        return self.events[0].target


@dataclass(frozen=True)
class SoundscapeConfig:
    """Generator settings (all times in seconds, levels in dB re full scale).

    ``classes`` restricts the classes events are drawn from (ids); ``stft=None`` skips the
    masks; ``stft`` is the grid of the masks: ``(n_fft, hop)`` (the corpus' Hann/reflect
    convention) or a :class:`clap_jax.frontend.SpectrogramConfig` at ``sample_rate`` (any
    window, hop, padding, n_fft; see :func:`mask_grid`).  The audio, events and captions do not
    depend on ``stft``.  ``single_event=True`` forces exactly one event per clip.
    """

    sample_rate: int = 16000
    duration: float = 5.0
    max_events: int = 3
    min_events: int = 1
    single_event: bool = False
    background: bool = True
    classes: tuple[str, ...] | None = None
    stft: tuple[int, int] | SpectrogramConfig | None = (1024, 320)
    n_captions: int = 5
    event_level_db: tuple[float, float] = (-32.0, -14.0)
    background_level_db: tuple[float, float] = (-55.0, -40.0)
    mask_floor_db: float = -30.0
    background_caption_prob: float = 0.4

    def __post_init__(self):
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(self.classes))
            unknown = [c for c in self.classes if c not in _CLASS_INDEX]
            if unknown or not self.classes:
                raise ValueError(f"unknown or empty classes: {unknown}")
        if self.stft is not None:
            if isinstance(self.stft, SpectrogramConfig):
                n_fft, hop = self.stft.n_fft, self.stft.hop_length
                if self.stft.sample_rate != self.sample_rate:
                    raise ValueError(f"stft grid at {self.stft.sample_rate} Hz for clips at {self.sample_rate} Hz")
                if not 0 < self.stft.win_length <= n_fft:
                    raise ValueError(f"bad stft win_length {self.stft.win_length} for n_fft {n_fft}")
            else:
                object.__setattr__(self, "stft", tuple(int(v) for v in self.stft))
                n_fft, hop = self.stft
            if hop <= 0 or n_fft <= 1:
                raise ValueError(f"bad stft {self.stft}")
            if n_fft // 2 >= round(self.duration * self.sample_rate):
                raise ValueError("clip shorter than n_fft // 2: reflect padding impossible")
        if not 1 <= self.min_events <= self.max_events:
            raise ValueError("need 1 <= min_events <= max_events")
        if self.n_captions < 1:
            raise ValueError("need n_captions >= 1")
        if self.duration <= 0:
            raise ValueError("duration must be positive")
        if self.sample_rate < 16000:
            raise ValueError("sample_rate must be >= 16000 Hz (classes reach up to ~7 kHz)")



# ----------------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------------


def _db(x: float) -> float:
    return 20.0 * math.log10(max(x, 1e-12))


def clip_id_for(seed: int, index: int) -> str:
    """The stable id of clip ``index`` of ``seed``: ``s{seed}_{index:06d}``."""
    return f"s{seed}_{index:06d}"


def _synth_events(rng, cfg: SoundscapeConfig, n: int):
    """Draw and synthesise the events of a clip.

    Returns (class ids, signals float32 at their drawn RMS level, spans ``(onset, offset)``
    in samples, pitches in Hz or None), in drawing order.
    """
    sr = cfg.sample_rate
    pool = cfg.classes or CLASS_IDS
    k = 1 if cfg.single_event else int(rng.integers(cfg.min_events, cfg.max_events + 1))
    chosen = [pool[i] for i in rng.choice(len(pool), size=min(k, len(pool)), replace=False)]
    signals, spans, pitches = [], [], []
    for cid in chosen:
        sc = get_class(cid)
        dur = min(_u(rng, sc.duration), cfg.duration)
        L = max(16, min(n, int(dur * sr)))
        x, pitch = SYNTHS[sc.synth](rng, L, sr, sc.params)  # may come back shorter than L
        x = _ramp(np.array(x[:L], dtype=F32), sr, 0.001, 0.005)
        level = _u(rng, cfg.event_level_db)
        start = int(rng.integers(0, n - len(x) + 1))
        signals.append(_normalise(x) * F32(10.0 ** (level / 20.0)))
        spans.append((start, start + len(x)))
        pitches.append(None if pitch is None else float(pitch))
    return chosen, signals, spans, pitches


def _mix(signals, spans, bg: np.ndarray | None, n: int):
    """Place the components in one buffer and peak-normalise the mixture.

    Returns (audio ``(n,)``, buffer ``(C, n)`` of the scaled components with the background
    last, gain applied; their sum is the audio), gain.
    """
    buf = np.zeros((len(signals) + (bg is not None), n), dtype=F32)
    components = buf
    for i, (x, (a, b)) in enumerate(zip(signals, spans)):
        components[i, a:b] = x
    if bg is not None:
        components[-1] = bg
    audio = components.sum(axis=0)
    peak = float(np.max(np.abs(audio)))
    gain = min(1.0, PEAK_MAX / peak) if peak > 0 else 1.0
    if gain < 1.0:
        audio *= F32(gain)
        buf *= F32(gain)
    return audio, buf, gain


def generate_clip(seed: int, index: int, config: SoundscapeConfig | None = None, **kwargs) -> Clip:
    """Generate clip ``index`` of ``seed``; depends only on (seed, index, config).

    kwargs override fields of ``config`` (see :class:`SoundscapeConfig`).
    """
    cfg = config or SoundscapeConfig()
    if kwargs:
        cfg = dataclasses.replace(cfg, **kwargs)
    if seed < 0 or index < 0:
        raise ValueError("seed and index must be >= 0")
    rng = np.random.default_rng([seed, index])
    sr = cfg.sample_rate
    n = int(round(cfg.duration * sr))
    chosen, signals, spans, pitches = _synth_events(rng, cfg, n)

    background, bg, bg_level = None, None, None
    if cfg.background:
        background = BACKGROUNDS[int(rng.integers(0, len(BACKGROUNDS)))]
        bg_level = _u(rng, cfg.background_level_db)
        bg = _normalise(SYNTHS[background.synth](rng, n, sr)) * F32(10.0 ** (bg_level / 20.0))

    audio, buf, gain = _mix(signals, spans, bg, n)
    grid = None if cfg.stft is None else mask_grid(cfg.stft, sr)
    masks = None if grid is None else _event_masks(buf, spans, len(chosen), grid, cfg.mask_floor_db)

    events = []
    for i, (cid, (a, b)) in enumerate(zip(chosen, spans)):
        level = _db(_rms(buf[i, a:b]))
        ev = Event(cid, a / sr, b / sr, level, pitches[i])
        if masks is not None:
            start, stop, crop = masks[i]
            ev.mask_frames, ev.mask_crop, ev.n_frames = (start, stop), crop, grid.num_frames(n)
        events.append(ev)
    events.sort(key=lambda e: (e.onset, e.offset))
    r = random.Random(int(rng.integers(0, 2**63)))
    return Clip(
        clip_id=clip_id_for(seed, index),
        seed=seed,
        index=index,
        audio=audio,
        sample_rate=sr,
        labels=[e.class_id for e in events],
        captions=_captions(r, events, background, cfg.n_captions, cfg.background_caption_prob),
        events=events,
        background=None if background is None else background.id,
        background_level_db=None if bg_level is None else bg_level + _db(gain),
        stft=None if grid is None else (grid.n_fft, grid.hop_length),
        grid=grid,
        config=cfg,
    )


def iter_clips(seed: int, n_clips: int, start: int = 0, config: SoundscapeConfig | None = None,
               **kwargs) -> Iterator[Clip]:
    """Yield clips ``start .. start + n_clips - 1`` of ``seed`` (resumable, parallelisable)."""
    cfg = dataclasses.replace(config or SoundscapeConfig(), **kwargs)
    for i in range(start, start + n_clips):
        yield generate_clip(seed, i, cfg)


def generate(seed: int, n_clips: int, *, sample_rate: int = 16000, duration: float = 5.0,
             max_events: int = 3, single_event: bool = False, background: bool = True,
             classes: Sequence[str] | None = None, stft: tuple[int, int] | None = (1024, 320),
             start: int = 0, **kwargs) -> list[Clip]:
    """Generate ``n_clips`` clips of ``seed`` as a list (see :class:`SoundscapeConfig`)."""
    cfg = SoundscapeConfig(sample_rate=sample_rate, duration=duration, max_events=max_events,
                           single_event=single_event, background=background,
                           classes=None if classes is None else tuple(classes), stft=stft, **kwargs)
    return list(iter_clips(seed, n_clips, start, cfg))
