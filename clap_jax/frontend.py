"""Audio front end as composable pure functions: waveform -> STFT -> |.| -> mel -> dB.

The chain is split at the linear magnitude so that explanation methods can insert a
mask there and differentiate through the mel bank and the log into an encoder::

        spec = stft(wave, cfg)                     # (B, frames, n_freq) complex
        mag = jnp.abs(spec)                        # (B, frames, n_freq) linear magnitude
        logmel = log_mel_from_magnitude(mag * mask, cfg)   # (B, frames, n_mels) dB
        audio = istft(mask * mag * phase(spec), cfg, length)   # listenable, original phase

Frame convention (all references here): centred frames, frame k covers samples
[k*hop - n_fft/2, k*hop + n_fft/2), reflect padding at both ends, so a clip of T samples has
1 + T // hop frames. The analysis window is a periodic Hann of ``win_length`` samples,
zero-padded to ``n_fft`` at the centre (librosa ``pad_center``), as torchlibrosa does.
"""
from __future__ import annotations

import dataclasses
import functools

import jax.numpy as jnp
import librosa
import numpy as np


@dataclasses.dataclass(frozen=True)
class SpectrogramConfig:
    """Log-mel front end parameters. Units: Hz for frequencies and rates, samples for sizes.

    ``mel_sample_rate`` builds the mel bank for a rate other than the audio's: Microsoft CLAP
    2023 applies a bank designed for 32 kHz to 44.1 kHz audio (a quirk we reproduce).
    ``mel_scale``/``mel_norm``: ("slaney", "slaney") is librosa/torchlibrosa (LAION non-fusion,
    HF ``rand_trunc``); ("htk", None) is torchaudio's default (LAION and HF fusion).
    """
    sample_rate: int = 48000
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 480
    n_mels: int = 64
    fmin: float = 50.0
    fmax: float = 14000.0
    mel_scale: str = "slaney"
    mel_norm: str | None = "slaney"
    mel_sample_rate: int | None = None
    amin: float = 1e-10
    ref: float = 1.0
    top_db: float | None = None
    pad_mode: str = "reflect"

    @property
    def n_freq(self) -> int:
        return self.n_fft // 2 + 1

    def num_frames(self, num_samples: int) -> int:
        """Frames of a centred STFT of ``num_samples`` samples."""
        return 1 + num_samples // self.hop_length


@functools.lru_cache(maxsize=32)
def window(n_fft: int, win_length: int) -> np.ndarray:
    """Periodic Hann of ``win_length`` centred in ``n_fft`` samples, float32 (n_fft,)."""
    win = librosa.filters.get_window("hann", win_length, fftbins=True)
    return librosa.util.pad_center(win, size=n_fft).astype(np.float32)


@functools.lru_cache(maxsize=32)
def mel_filterbank(cfg: SpectrogramConfig) -> np.ndarray:
    """Mel bank (n_freq, n_mels), float32, applied as ``power @ bank``."""
    if cfg.mel_scale not in ("slaney", "htk"):
        raise ValueError(f"mel_scale must be 'slaney' or 'htk', got {cfg.mel_scale!r}")
    sr = cfg.mel_sample_rate or cfg.sample_rate
    bank = librosa.filters.mel(
        sr=sr, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax,
        htk=cfg.mel_scale == "htk", norm=cfg.mel_norm, dtype=np.float64)
    return bank.T.astype(np.float32)


def frame(x: jnp.ndarray, n_fft: int, hop: int, center: bool = True,
          pad_mode: str = "reflect") -> jnp.ndarray:
    """Slices (B, T) into overlapping frames (B, frames, n_fft)."""
    if center:
        x = jnp.pad(x, ((0, 0), (n_fft // 2, n_fft // 2)), mode=pad_mode)
    num = 1 + (x.shape[-1] - n_fft) // hop
    idx = hop * np.arange(num)[:, None] + np.arange(n_fft)[None, :]
    return x[:, idx]


def stft(x: jnp.ndarray, cfg: SpectrogramConfig, center: bool = True) -> jnp.ndarray:
    """Complex STFT (B, frames, n_freq) of waveforms (B, T).

    ``center=False`` takes signals that are already padded by n_fft//2 on each side (used to
    batch clips of different lengths whose ends must each be reflect-padded by their own
    samples).
    """
    frames = frame(x, cfg.n_fft, cfg.hop_length, center, cfg.pad_mode)
    return jnp.fft.rfft(frames * window(cfg.n_fft, cfg.win_length), axis=-1)


def magnitude(spec: jnp.ndarray) -> jnp.ndarray:
    """Linear magnitude |X| (the stage where L-MAC masks are applied)."""
    return jnp.abs(spec)


def phase(spec: jnp.ndarray) -> jnp.ndarray:
    """Unit-modulus phase factor X/|X| (1 where |X| = 0), for resynthesis with the original phase."""
    mag = jnp.abs(spec)
    return jnp.where(mag > 0, spec / jnp.where(mag > 0, mag, 1.0), 1.0 + 0j)


def power_to_db(power: jnp.ndarray, cfg: SpectrogramConfig) -> jnp.ndarray:
    """10 log10(max(P, amin)) - 10 log10(max(amin, ref)), optionally floored at max - top_db."""
    db = 10.0 * jnp.log10(jnp.maximum(power, cfg.amin))
    db = db - 10.0 * np.log10(max(cfg.amin, cfg.ref))
    if cfg.top_db is not None:
        db = jnp.maximum(db, db.max(axis=(-2, -1), keepdims=True) - cfg.top_db)
    return db


def mel_power(mag: jnp.ndarray, cfg: SpectrogramConfig) -> jnp.ndarray:
    """Mel power (..., frames, n_mels) from a linear magnitude (..., frames, n_freq)."""
    return jnp.matmul(mag * mag, mel_filterbank(cfg), precision="highest")


def log_mel_from_magnitude(mag: jnp.ndarray, cfg: SpectrogramConfig) -> jnp.ndarray:
    """Log-mel in dB (..., frames, n_mels) from a (possibly masked) linear magnitude."""
    return power_to_db(mel_power(mag, cfg), cfg)


def log_mel(x: jnp.ndarray, cfg: SpectrogramConfig, center: bool = True) -> jnp.ndarray:
    """Log-mel in dB (B, frames, n_mels) of waveforms (B, T)."""
    return log_mel_from_magnitude(magnitude(stft(x, cfg, center)), cfg)


def istft(spec: jnp.ndarray, cfg: SpectrogramConfig, length: int) -> jnp.ndarray:
    """Inverse of :func:`stft` (centred) by weighted overlap-add, returning (B, length).

    Each frame is windowed again and the sum is divided by the summed squared window, so
    ``istft(stft(x)) == x`` up to float error wherever the window envelope is non-zero.
    """
    n_fft, hop = cfg.n_fft, cfg.hop_length
    win = window(n_fft, cfg.win_length)
    frames = jnp.fft.irfft(spec, n=n_fft, axis=-1) * win          # (B, F, n_fft)
    num = frames.shape[-2]
    total = n_fft + hop * (num - 1)
    idx = (hop * np.arange(num)[:, None] + np.arange(n_fft)[None, :]).reshape(-1)
    out = jnp.zeros(frames.shape[:-2] + (total,), frames.dtype)
    out = out.at[..., idx].add(frames.reshape(frames.shape[:-2] + (-1,)))
    envelope = np.zeros(total, np.float64)
    np.add.at(envelope, idx, np.tile(win.astype(np.float64) ** 2, num))
    envelope = np.where(envelope > 1e-8, envelope, 1.0).astype(np.float32)
    out = out / envelope
    start = n_fft // 2
    out = out[..., start:start + length]
    if out.shape[-1] < length:
        out = jnp.pad(out, [(0, 0)] * (out.ndim - 1) + [(0, length - out.shape[-1])])
    return out
