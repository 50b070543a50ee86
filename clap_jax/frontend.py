"""Audio front end as composable pure functions: waveform -> STFT -> |.| -> mel -> log.

The chain is split at the linear magnitude so that explanation methods can insert a
mask there and differentiate through the mel bank and the log into an encoder::

        spec = stft(wave, cfg)                     # (B, frames, n_freq) complex
        mag = jnp.abs(spec)                        # (B, frames, n_freq) linear magnitude
        masked = apply_mask(mag, mask, "log1p")    # expm1(M log1p|X|), or M |X| ("linear")
        logmel = log_mel_from_magnitude(masked, cfg)      # (B, frames, n_mels) dB or log1p
        audio = istft(masked * phase(spec), cfg, length)  # listenable, original phase

Frame convention (all references here): centred frames, frame k covers samples
[k*hop - n_fft/2, k*hop + n_fft/2), padding at both ends (reflect; SpeechBrain: zeros), so a
clip of T samples has 1 + T // hop frames. The analysis window is a periodic Hann (SpeechBrain:
Hamming) of ``win_length`` samples, zero-padded to ``n_fft`` at the centre (librosa
``pad_center``, which is also where ``torch.stft`` puts a shorter window).

Two families of features come out of the same chain:

* dB log-mel (LAION, Hugging Face, PANNs, Microsoft CLAP): ``10 log10(|X|^2 @ bank)``;
* SpeechBrain's ``Fbank(log_mel=False)`` + ``log1p`` of the L-MAC recipe: ``log1p(|X| @ bank)``
  with SpeechBrain's own triangular bank (``mel_scale="speechbrain"``), applied to the
  magnitude, not the power.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import librosa
import numpy as np


@dataclasses.dataclass(frozen=True)
class SpectrogramConfig:
    """Log-mel front end parameters. Units: Hz for frequencies and rates, samples for sizes.

    ``mel_sample_rate`` builds the mel bank for a rate other than the audio's: Microsoft CLAP
    2023 applies a bank designed for 32 kHz to 44.1 kHz audio (a quirk we reproduce).
    ``mel_scale``/``mel_norm``: ("slaney", "slaney") is librosa/torchlibrosa (LAION non-fusion,
    HF ``rand_trunc``, PANNs, Microsoft CLAP); ("htk", None) is torchaudio's default (LAION and HF
    fusion); ("speechbrain", None) is SpeechBrain's ``Filterbank`` (triangles on the
    2595 log10(1 + f/700) scale, peak 1, built in float32 as torch builds it).
    ``mel_exponent``: the bank is applied to ``|X| ** mel_exponent`` (2: power; SpeechBrain's
    recipe: 1, the magnitude). ``compression``: ``db`` (10 log10 with ``amin``/``ref``/``top_db``)
    or ``log1p``. ``magnitude_eps`` is added to |X|^2 before the square root, as SpeechBrain's
    ``spectral_magnitude(power=0.5)`` does (1e-14). ``window``: ``hann`` or ``hamming``
    (periodic; SpeechBrain's ``STFT`` default is ``torch.hamming_window``).
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
    window: str = "hann"
    mel_exponent: float = 2.0
    compression: str = "db"
    magnitude_eps: float = 0.0

    @property
    def n_freq(self) -> int:
        return self.n_fft // 2 + 1

    def num_frames(self, num_samples: int) -> int:
        """Frames of a centred STFT of ``num_samples`` samples."""
        return 1 + num_samples // self.hop_length


@functools.lru_cache(maxsize=32)
def window(n_fft: int, win_length: int, kind: str = "hann") -> np.ndarray:
    """Periodic Hann (or Hamming) of ``win_length`` centred in ``n_fft`` samples, float32 (n_fft,)."""
    if kind not in ("hann", "hamming"):
        raise ValueError(f"window must be 'hann' or 'hamming', got {kind!r}")
    win = librosa.filters.get_window(kind, win_length, fftbins=True)
    return librosa.util.pad_center(win, size=n_fft).astype(np.float32)


def _torch_linspace_f32(start: float, end: float, steps: int) -> np.ndarray:
    """``torch.linspace(start, end, steps)`` in float32: the first half counts up from ``start``,
    the second half down from ``end``, as PyTorch's CPU kernel does."""
    f32 = np.float32
    step = (f32(end) - f32(start)) / f32(steps - 1)
    i = np.arange(steps)
    up = f32(start) + step * i.astype(f32)
    down = f32(end) - step * (steps - 1 - i).astype(f32)
    return np.where(i < steps // 2, up, down).astype(f32)


def speechbrain_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """SpeechBrain ``Filterbank(filter_shape="triangular", freeze=True)`` matrix (n_freq, n_mels).

    Filter centres are equally spaced on mel = 2595 log10(1 + f/700) between ``fmin`` and
    ``fmax``; each triangle reaches 1 at its centre and 0 at the neighbouring centres
    (``band`` = distance to the next one, used on both sides); bins sit at
    ``linspace(0, sample_rate // 2, n_freq)``. Float32 arithmetic, as in the reference (equal to
    it within 3.3e-6 per weight).
    """
    f32 = np.float32
    to_mel = lambda hz: 2595 * np.log10(1 + hz / 700)
    mel = _torch_linspace_f32(to_mel(fmin), to_mel(fmax), n_mels + 2)
    # 10**x correctly rounded to float32; torch's vectorised pow is within an ulp of it, which moves
    # a few filter weights by up to ~3e-6.
    hz = f32(700) * (np.power(10.0, (mel / f32(2595)).astype(np.float64)).astype(f32) - f32(1))
    band, centre = (hz[1:] - hz[:-1])[:-1], hz[1:-1]
    freqs = _torch_linspace_f32(0, sample_rate // 2, n_fft // 2 + 1)
    slope = (freqs[None, :] - centre[:, None]) / band[:, None]
    return np.maximum(f32(0), np.minimum(slope + f32(1), f32(1) - slope)).T.astype(f32)


@functools.lru_cache(maxsize=32)
def mel_filterbank(cfg: SpectrogramConfig) -> np.ndarray:
    """Mel bank (n_freq, n_mels), float32, applied as ``|X|**mel_exponent @ bank``."""
    if cfg.mel_scale not in ("slaney", "htk", "speechbrain"):
        raise ValueError(f"mel_scale must be 'slaney', 'htk' or 'speechbrain', got {cfg.mel_scale!r}")
    sr = cfg.mel_sample_rate or cfg.sample_rate
    if cfg.mel_scale == "speechbrain":
        return speechbrain_filterbank(sr, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax)
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
    return jnp.fft.rfft(frames * window(cfg.n_fft, cfg.win_length, cfg.window), axis=-1)


def magnitude(spec: jnp.ndarray, eps: float = 0.0) -> jnp.ndarray:
    """Linear magnitude |X| (the stage where L-MAC masks are applied); with ``eps``,
    sqrt(|X|^2 + eps) as SpeechBrain's ``spectral_magnitude(power=0.5)`` (eps 1e-14)."""
    if not eps:
        return jnp.abs(spec)
    return jnp.sqrt(jnp.real(spec) ** 2 + jnp.imag(spec) ** 2 + eps)


def phase(spec: jnp.ndarray) -> jnp.ndarray:
    """Unit-modulus phase factor X/|X| (1 where |X| = 0), for resynthesis with the original phase."""
    mag = jnp.abs(spec)
    return jnp.where(mag > 0, spec / jnp.where(mag > 0, mag, 1.0), 1.0 + 0j)


@jax.custom_jvp
def _log10_floor(power: jnp.ndarray, amin: float) -> jnp.ndarray:
    """log10(max(P, amin)) with the gradient of log10(P + amin).

    The value is the references' hard floor, so features stay equal to theirs. The hard floor's
    gradient is 0 wherever P < amin, which would silently freeze an explanation mask in bins it
    has pushed below the floor (and ``d/dP log10 P`` alone explodes as P -> 0). The soft
    gradient 1 / (ln10 (P + amin)) is never 0 and is bounded by 1 / (ln10 amin).
    """
    return jnp.log10(jnp.maximum(power, amin))


@_log10_floor.defjvp
def _log10_floor_jvp(primals, tangents):
    power, amin = primals
    return _log10_floor(power, amin), tangents[0] / (np.log(10.0) * (power + amin))


def power_to_db(power: jnp.ndarray, cfg: SpectrogramConfig) -> jnp.ndarray:
    """10 log10(max(P, amin)) - 10 log10(max(amin, ref)), optionally floored at max - top_db.

    Differentiable everywhere: below ``amin`` the gradient is that of 10 log10(P + amin) (see
    :func:`_log10_floor`), not the hard floor's 0."""
    db = 10.0 * _log10_floor(power, cfg.amin)
    db = db - 10.0 * np.log10(max(cfg.amin, cfg.ref))
    if cfg.top_db is not None:
        db = jnp.maximum(db, db.max(axis=(-2, -1), keepdims=True) - cfg.top_db)
    return db


def mel_power(mag: jnp.ndarray, cfg: SpectrogramConfig) -> jnp.ndarray:
    """Mel energies (..., frames, n_mels) from a linear magnitude (..., frames, n_freq): the bank
    applied to ``mag ** cfg.mel_exponent`` (power for 2, SpeechBrain's magnitude fbank for 1)."""
    spec = mag * mag if cfg.mel_exponent == 2 else mag if cfg.mel_exponent == 1 else mag ** cfg.mel_exponent
    return jnp.matmul(spec, mel_filterbank(cfg), precision="highest")


def log_mel_from_magnitude(mag: jnp.ndarray, cfg: SpectrogramConfig) -> jnp.ndarray:
    """Log-mel (..., frames, n_mels) from a (possibly masked) linear magnitude: dB, or log1p
    (SpeechBrain's recipe) as ``cfg.compression`` says."""
    mel = mel_power(mag, cfg)
    if cfg.compression == "db":
        return power_to_db(mel, cfg)
    if cfg.compression == "log1p":
        return jnp.log1p(mel)
    raise ValueError(f"compression must be 'db' or 'log1p', got {cfg.compression!r}")


MASK_DOMAINS = ("log1p", "linear")


def apply_mask(mag: jnp.ndarray, mask: jnp.ndarray, domain: str = "log1p") -> jnp.ndarray:
    """A mask (..., frames, n_freq) in [0, 1] applied to a linear magnitude of the same shape;
    returns a linear magnitude, ready for :func:`log_mel_from_magnitude` or :func:`istft`.

    ``domain="log1p"`` (the L-MAC recipe): the mask multiplies log1p|X|, so the result is
    expm1(M log1p|X|); ``"linear"`` (the paper's wording): M |X|. Masked-out audio is
    ``apply_mask(mag, 1 - mask, domain)``. Both are smooth in M, with finite gradients at 0 and 1.
    """
    if domain == "log1p":
        return jnp.expm1(mask * jnp.log1p(mag))
    if domain == "linear":
        return mask * mag
    raise ValueError(f"mask domain must be one of {MASK_DOMAINS}, got {domain!r}")


def log_mel(x: jnp.ndarray, cfg: SpectrogramConfig, center: bool = True) -> jnp.ndarray:
    """Log-mel (B, frames, n_mels) of waveforms (B, T), in dB or log1p units (``cfg.compression``)."""
    return log_mel_from_magnitude(magnitude(stft(x, cfg, center), cfg.magnitude_eps), cfg)


def istft(spec: jnp.ndarray, cfg: SpectrogramConfig, length: int) -> jnp.ndarray:
    """Inverse of :func:`stft` (centred) by weighted overlap-add, returning (B, length).

    Each frame is windowed again and the sum is divided by the summed squared window, so
    ``istft(stft(x)) == x`` up to float error wherever the window envelope is non-zero.
    """
    n_fft, hop = cfg.n_fft, cfg.hop_length
    win = window(n_fft, cfg.win_length, cfg.window)
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
