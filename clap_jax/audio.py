"""Host-side audio handling: reading, checking, mono mix-down, resampling, length policies.

Everything here runs on numpy before a batch goes to the device. Errors name the file (or the
index of the clip in a batch) so a bad item in a large extraction job can be found.

Validation lives here, for every reader and API call (:func:`check_waveform`,
:func:`check_rate`, :func:`as_waveform_list`):

* shapes: (T,), channels-first (C, T) with C < T, or channels-last (T, C) with C <= 8 < T (what
  ``soundfile.read`` returns), mixed to mono by the channel mean; other 2-D shapes are refused
  with the fix named;
* integer PCM scaled to [-1, 1): int16 / 32768, uint8 (x - 128) / 128;
* refused (:class:`AudioError`): empty clips, NaN/inf, |x| >= 1e6 (``MAX_ABS``), sample rates
  that are not positive integers of at least 1000 Hz (``MIN_RATE``);
* flagged (:class:`NearSilentWarning`, :func:`is_near_silent`): a peak below -90 dBFS
  (``SILENCE_DBFS``) after the mono mix, or fewer than 32 samples (``MIN_SAMPLES``).
"""
from __future__ import annotations

import os
import warnings
from typing import Sequence

import librosa
import numpy as np
import soundfile as sf


class AudioError(ValueError):
    """A clip that cannot be used: unreadable, empty, non-finite, huge, wrongly shaped or at an
    impossible sample rate. The message names the clip (file path or ``waveform i``)."""


class NearSilentWarning(UserWarning):
    """A clip whose embedding says little: near-silent after the mono mix, or a few samples long."""


MAX_CHANNELS = 8          # a (samples, channels) array has at most this many channels
MAX_ABS = 1e6             # finite samples at least this large are refused (floats are expected in [-1, 1])
MIN_RATE = 1000           # Hz; lower sample rates are refused (resampling up from them is all memory)
SILENCE_DBFS = -90.0      # near-silent: peak below this after the mono mix (1 LSB of int16 is -90.3 dBFS)
MIN_SAMPLES = 32          # near-silent: clips shorter than this many samples
_FIX = "pass a list of 1-D clips or a (channels, samples) array"


def _to_float(x: np.ndarray, name: str) -> np.ndarray:
    """Integer PCM -> float in [-1, 1): signed ints divided by 2^(bits-1) (int16 / 32768, as
    soundfile reads PCM), unsigned ints centred first (uint8: (x - 128) / 128)."""
    if x.dtype == bool or not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise AudioError(f"{name}: unsupported sample type {x.dtype} (expected float or integer PCM)")
    if np.issubdtype(x.dtype, np.signedinteger):
        return (x.astype(np.float64) / float(-np.iinfo(x.dtype).min)).astype(np.float32)
    if np.issubdtype(x.dtype, np.unsignedinteger):
        half = float(np.iinfo(x.dtype).max // 2 + 1)
        return ((x.astype(np.float64) - half) / half).astype(np.float32)
    return x


def _channel_axis(shape: tuple, name: str) -> int | None:
    """Where the channels of a clip are: None for (T,); 0 for channels-first (C, T) with C < T;
    1 for channels-last (T, C) with C <= MAX_CHANNELS and T > C (``soundfile.read``'s
    layout). Other shapes are refused with the fix named."""
    if len(shape) == 1:
        return None
    if len(shape) == 2:
        rows, cols = shape
        if rows < cols:
            return 0
        if cols <= MAX_CHANNELS and rows > cols:
            return 1
        raise AudioError(f"{name}: shape {shape} is neither (channels, samples) nor (samples, channels <= "
                         f"{MAX_CHANNELS}); {_FIX}")
    raise AudioError(f"{name}: expected a 1-D waveform or a (channels, samples) array, got shape {shape}; {_FIX}")


def _check_samples(x: np.ndarray, name: str, channels: int | None) -> np.ndarray:
    """Float samples with channels on axis ``channels`` (None: mono), or :class:`AudioError`:
    empty, NaN/inf, or |x| >= MAX_ABS."""
    if x.size == 0:
        raise AudioError(f"{name}: zero-length audio")
    x = _to_float(x, name)
    bad = ~np.isfinite(x)
    if bad.any():
        first = [int(i) for i in np.argwhere(bad)[0]]
        where = f"sample {first[0]}" if channels is None else f"sample {first[1 - channels]} of channel " \
                                                             f"{first[channels]}"
        raise AudioError(f"{name}: {int(bad.sum())} NaN/inf samples (first at {where})")
    peak = float(np.abs(x).max())
    if peak >= MAX_ABS:
        raise AudioError(f"{name}: samples reach {peak:.3g} (|x| >= {MAX_ABS:g}); float audio is expected in "
                         "[-1, 1]: divide the clip by its scale")
    return x


def check_waveform(x: np.ndarray, name: str) -> np.ndarray:
    """Returns ``x`` as float32 mono (T,) or raises :class:`AudioError` naming ``name``.

    Accepts (T,), a channels-first (C, T) array with C < T, or a channels-last (T, C) array with
    C <= 8 and T > C (``soundfile.read``'s layout); channels are averaged to mono. Integer PCM is
    scaled to [-1, 1) (:func:`_to_float`). NaN/inf samples and finite samples with
    ``|x| >= MAX_ABS`` (1e6) are refused: they would turn into NaN embeddings.
    """
    x = np.asarray(x)
    axis = _channel_axis(x.shape, name)
    x = _check_samples(x, name, axis)
    return (x if axis is None else x.mean(axis=axis)).astype(np.float32, copy=False)


def check_rate(rate, name: str) -> int:
    """A sample rate (Hz) as int, or :class:`AudioError` naming ``name``: None, non-integers,
    values <= 0 and rates below ``MIN_RATE`` (1000 Hz) are refused."""
    if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, (int, np.integer, float, np.floating)):
        raise AudioError(f"{name}: sample_rate must be an integer number of Hz, got {rate!r}")
    if not np.isfinite(rate) or float(rate) != int(rate):
        raise AudioError(f"{name}: sample_rate must be an integer number of Hz, got {rate!r}")
    if rate <= 0:
        raise AudioError(f"{name}: sample_rate must be positive, got {rate!r}")
    if rate < MIN_RATE:
        raise AudioError(f"{name}: sample_rate {rate!r} Hz is below {MIN_RATE} Hz (is it in kHz?)")
    return int(rate)


def silence_reason(x: np.ndarray) -> str | None:
    """Why a mono clip (T,) is near-silent (fewer than ``MIN_SAMPLES`` samples, or a peak below
    ``SILENCE_DBFS`` = -90 dBFS), or None."""
    x = np.asarray(x)
    if x.size < MIN_SAMPLES:
        return f"only {x.size} samples (fewer than {MIN_SAMPLES})"
    peak = float(np.abs(x).max())
    if peak < 10 ** (SILENCE_DBFS / 20):
        level = "-inf" if peak == 0 else f"{20 * np.log10(peak):.1f}"
        return f"peak {level} dBFS after the mono mix (below {SILENCE_DBFS:g} dBFS)"
    return None


def is_near_silent(x: np.ndarray) -> bool:
    """True for a mono clip (T,) that :func:`silence_reason` flags."""
    return silence_reason(x) is not None


def warn_if_near_silent(x: np.ndarray, name: str) -> bool:
    """Issues a :class:`NearSilentWarning` naming ``name`` if the clip is near-silent; returns whether."""
    reason = silence_reason(x)
    if reason:
        warnings.warn(f"{name}: near-silent, {reason}; its embedding says little about any sound",
                      NearSilentWarning, stacklevel=3)
    return reason is not None


def read_audio(path: str | os.PathLike, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Reads any format soundfile reads, mixed down to mono float32 (T,).

    Returns ``(waveform, rate)``; with ``sample_rate`` the clip is resampled to it (Hz).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such audio file")
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)   # (T, C)
    except Exception as err:  # soundfile raises several types for corrupt files
        why = str(err).replace(f"Error opening {path!r}: ", "")
        raise AudioError(f"{path}: cannot decode audio ({why})") from err
    if data.size == 0:
        raise AudioError(f"{path}: zero-length audio (a header without samples: truncated?)")
    x = _check_samples(data, path, channels=1).mean(axis=1)
    rate = check_rate(rate, path)
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


def split_clips(waveforms, sample_rate: int | Sequence[int]) -> list[tuple[object, object]]:
    """Unchecked ``(clip, rate)`` pairs from what :func:`as_waveform_list` accepts, without converting
    any samples (cheap, so callers can check and prepare large inputs a batch at a time)."""
    if isinstance(waveforms, (list, tuple)):
        clips = list(waveforms)
    else:
        arr = np.asarray(waveforms)
        if arr.ndim == 1:
            clips = [arr]
        elif arr.ndim == 2 and arr.shape[0] < arr.shape[1]:
            clips = list(arr)
        elif arr.ndim == 2 and arr.shape[1] <= MAX_CHANNELS and arr.shape[0] > arr.shape[1]:
            clips = [arr]                                      # one (samples, channels) clip
        elif arr.ndim == 2:
            raise AudioError(f"waveforms: shape {arr.shape} is ambiguous (a batch of {arr.shape[0]} clips of "
                             f"{arr.shape[1]} samples, or {arr.shape[1]} channels?); {_FIX} inside a list")
        else:
            raise AudioError(f"waveforms: expected (batch, samples) or (samples,), got shape {arr.shape}; {_FIX}")
    if not clips:
        raise AudioError("waveforms: empty batch")
    if isinstance(sample_rate, (list, tuple, np.ndarray)):
        rates = list(np.asarray(sample_rate, dtype=object).reshape(-1))
        if len(rates) != len(clips):
            raise AudioError(f"sample_rate: {len(rates)} rates for {len(clips)} clips")
    else:
        rates = [sample_rate] * len(clips)
    return list(zip(clips, rates))


def check_clips(pairs, first: int = 0) -> list[tuple[np.ndarray, int]]:
    """Checked ``(waveform, rate)`` pairs; clip ``i`` of ``pairs`` is named ``waveform first+i``."""
    out = []
    for i, (c, r) in enumerate(pairs, start=first):
        name = f"waveform {i}"
        x = check_waveform(np.asarray(c), name)
        out.append((x, check_rate(r, name)))
        warn_if_near_silent(x, name)
    return out


def as_waveform_list(waveforms, sample_rate: int | Sequence[int]) -> list[tuple[np.ndarray, int]]:
    """Checked ``(waveform, rate)`` pairs from a list of clips, a single (T,) clip or a bare 2-D
    array. ``sample_rate`` is one rate or one per clip (Hz, :func:`check_rate`).

    A list holds clips of any lengths, each 1-D or multi-channel (:func:`check_waveform`). A bare
    (B, T) array with B < T is a batch of B clips; a bare (T, C) array with C <= 8 and T > C is one
    channels-last clip (``soundfile.read``'s stereo layout), mixed to mono; other 2-D shapes are
    ambiguous and refused. Near-silent clips (:func:`silence_reason`) raise a NearSilentWarning
    naming them.
    """
    return check_clips(split_clips(waveforms, sample_rate))
