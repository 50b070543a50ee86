"""Host-side audio handling: reading, checking, mono mix-down, resampling, length policies.

Everything here runs on numpy before a batch goes to the device. Errors name the file (or the
index of the clip in a batch) so a bad item in a large extraction job can be found.
"""
from __future__ import annotations

import os
from typing import Sequence

import librosa
import numpy as np
import soundfile as sf


class AudioError(ValueError):
    """A clip that cannot be used: unreadable, empty, non-finite or wrongly shaped."""


def check_waveform(x: np.ndarray, name: str) -> np.ndarray:
    """Returns ``x`` as float32 mono (T,) or raises :class:`AudioError` naming ``name``.

    Accepts (T,) or a channels-first (C, T) array with C < T, which is averaged to mono.
    """
    x = np.asarray(x)
    if x.ndim == 2 and x.shape[0] < x.shape[1]:
        x = x.mean(axis=0)
    elif x.ndim != 1:
        raise AudioError(f"{name}: expected a 1-D waveform or (channels, samples), got shape {x.shape}")
    if x.size == 0:
        raise AudioError(f"{name}: zero-length audio")
    if not np.issubdtype(x.dtype, np.floating):
        if np.issubdtype(x.dtype, np.integer):
            x = x.astype(np.float32) / float(np.iinfo(x.dtype).max)
        else:
            raise AudioError(f"{name}: unsupported sample type {x.dtype}")
    bad = ~np.isfinite(x)
    if bad.any():
        raise AudioError(f"{name}: {int(bad.sum())} NaN/inf samples (first at sample {int(np.argmax(bad))})")
    return x.astype(np.float32, copy=False)


def read_audio(path: str | os.PathLike, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Reads any format soundfile reads, mixed down to mono float32 (T,).

    Returns ``(waveform, rate)``; with ``sample_rate`` the clip is resampled to it (Hz).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such audio file")
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)   # (T, C)
    except Exception as err:  # soundfile raises several types for corrupt files
        raise AudioError(f"{path}: cannot decode audio ({err})") from err
    x = check_waveform(data.mean(axis=1), path)
    if sample_rate is not None and rate != sample_rate:
        x, rate = resample(x, rate, sample_rate), sample_rate
    return x, rate


def resample(x: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Band-limited resampling with soxr (librosa's default, which LAION's loader uses)."""
    if orig_rate == target_rate:
        return x
    return librosa.resample(x, orig_sr=orig_rate, target_sr=target_rate, res_type="soxr_hq").astype(np.float32)


def quantize_int16(x: np.ndarray) -> np.ndarray:
    """LAION's int16 round trip: clip to [-1, 1], scale by 32767, truncate toward 0, scale back."""
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16).astype(np.float32) / 32767.0


def normalize(x: np.ndarray, mode: str | None) -> np.ndarray:
    """``max``: divides by the largest sample, as SpeechBrain's ESC-50 recipes do
    (``sig / sig.max()``: the maximum, not the maximum magnitude; a clip whose largest sample is
    not positive is left unchanged instead of being flipped or divided by zero). None: as is."""
    if mode is None:
        return x
    if mode != "max":
        raise ValueError(f"unknown normalize mode {mode!r} (max or None)")
    peak = float(x.max())
    return (x / np.float32(peak)).astype(np.float32) if peak > 0 else x


def pad(x: np.ndarray, length: int, mode: str) -> np.ndarray:
    """Fills a clip shorter than ``length`` samples.

    ``repeatpad`` (LAION, HF): whole repeats, then zeros; ``repeat`` (msclap, HF): repeats cut
    at ``length``; ``zeros``: zeros only.
    """
    n = len(x)
    if n >= length:
        return x
    if mode == "repeatpad":
        x = np.tile(x, length // n)
    elif mode == "repeat":
        x = np.tile(x, -(-length // n))[:length]
    elif mode != "zeros":
        raise ValueError(f"unknown pad mode {mode!r} (repeatpad, repeat, zeros)")
    return np.pad(x, (0, length - len(x)))


def crop_start(n: int, length: int, mode: str, rng: np.random.Generator | None = None) -> int:
    """Start sample of a ``length`` window in a clip of ``n`` samples.

    ``center`` and ``start`` are deterministic (the default is ``center``: the same clip embeds the
    same way on every call); ``random`` draws uniformly from [0, n - length] like the references'
    ``rand_trunc`` and needs a seeded ``rng``.
    """
    overflow = n - length
    if overflow <= 0:
        return 0
    if mode == "center":
        return overflow // 2
    if mode == "start":
        return 0
    if mode == "random":
        if rng is None:
            raise ValueError("crop='random' needs a seeded numpy Generator")
        return int(rng.integers(0, overflow + 1))
    raise ValueError(f"unknown crop mode {mode!r} (center, start, random)")


def fit_length(x: np.ndarray, length: int, pad_mode: str = "repeatpad", crop: str = "center",
               rng: np.random.Generator | None = None) -> np.ndarray:
    """Pads or crops one clip to exactly ``length`` samples."""
    if len(x) > length:
        s = crop_start(len(x), length, crop, rng)
        return x[s:s + length]
    return pad(x, length, pad_mode)


def as_waveform_list(waveforms, sample_rate: int | Sequence[int]) -> list[tuple[np.ndarray, int]]:
    """Normalises a batch array (B, T), a single (T,) clip or a list of 1-D clips to checked
    ``(waveform, rate)`` pairs. ``sample_rate`` is one rate or one per clip (Hz)."""
    if isinstance(waveforms, (list, tuple)):
        clips = list(waveforms)
    else:
        arr = np.asarray(waveforms)
        if arr.ndim == 1:
            clips = [arr]
        elif arr.ndim == 2:
            clips = list(arr)
        else:
            raise AudioError(f"waveforms: expected (batch, samples) or (samples,), got shape {arr.shape}")
    if not clips:
        raise AudioError("waveforms: empty batch")
    rates = [sample_rate] * len(clips) if np.isscalar(sample_rate) else list(sample_rate)
    if len(rates) != len(clips):
        raise AudioError(f"sample_rate: {len(rates)} rates for {len(clips)} clips")
    return [(check_waveform(np.asarray(c), f"waveform {i}"), int(r)) for i, (c, r) in enumerate(zip(clips, rates))]
