"""From a batch of raw clips to model input: host preparation, then one jit-able function.

``prepare`` (numpy, host) resamples, normalises, applies the length policy and quantisation, and packs
clips of different lengths into fixed-shape arrays. ``features`` (JAX, device) turns those
arrays into the log-mel the encoder takes: (B, 1, frames, n_mels), or for fusion models
(B, 4, frames, n_mels) = [whole clip shrunk, front crop, middle crop, back crop] plus the
``longer`` flags.

Fusion batches are computed in one pass: each clip is reflect-padded by its own samples,
zero-padded to a common length, and the STFT runs uncentred; crops are gathered and the shrink
is a banded resampling matrix per clip, so no Python loop touches the device.
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from clap_jax import audio, frontend, resize
from clap_jax.spec import AudioConfig

_SHRINK = {"bilinear": resize.bilinear, "bilinear_antialias": resize.bilinear_antialias}


@dataclasses.dataclass
class Batch:
    """Host arrays for :func:`features`. Non-fusion: ``waves`` (B, clip_samples). Fusion:
    ``waves`` (B, padded) pre-padded signals, ``starts`` (B, 3) crop frames, ``shrink_start``
    (B, chunk) and ``shrink_weights`` (B, chunk, taps) banded shrink, ``longer`` (B,) bool.
    ``crops`` (B,) is host-only bookkeeping: where each clip's window starts (samples at the
    model's rate; 0 for padded clips and fusion models, whose crops are ``starts``)."""
    waves: np.ndarray
    longer: np.ndarray
    starts: np.ndarray | None = None
    shrink_start: np.ndarray | None = None
    shrink_weights: np.ndarray | None = None
    crops: np.ndarray | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        """The fields :func:`features` reads."""
        return {k: v for k, v in vars(self).items() if v is not None and k != "crops"}

    def __len__(self) -> int:
        return len(self.waves)


def _rngs(seed, n: int) -> list[np.random.Generator | None]:
    """One generator per clip: a shared one from an int seed or Generator (the references' order:
    clip i's draw depends on the clips before it), one per clip from a sequence of seeds (a
    clip's draw depends on its own seed only), None without a seed."""
    if seed is None:
        return [None] * n
    if isinstance(seed, (int, np.integer)):
        seed = np.random.default_rng(seed)
    if isinstance(seed, np.random.Generator):
        return [seed] * n
    seeds = list(seed)
    if len(seeds) != n:
        raise ValueError(f"{len(seeds)} crop seeds for {n} clips")
    return [np.random.default_rng(int(s)) for s in seeds]


def _fusion_starts(total: int, chunk: int, mode: str, rng: np.random.Generator | None) -> list[int]:
    """Front/middle/back crop starts (frames), drawn from thirds of the valid range as LAION does."""
    ranges = np.array_split(np.arange(total - chunk + 1), 3)
    ranges = [r if len(r) else np.array([0]) for r in ranges]
    if mode == "random":
        if rng is None:
            raise ValueError("crop='random' needs a seed")
        return [int(rng.choice(r)) for r in ranges]
    if mode == "start":
        return [int(r[0]) for r in ranges]
    return [int(r[len(r) // 2]) for r in ranges]


def _band(matrix: np.ndarray, taps: int) -> tuple[np.ndarray, np.ndarray]:
    """Dense banded (out, in) matrix -> per-row start column (out,) and weights (out, taps)."""
    nz = matrix != 0
    start = np.where(nz.any(1), nz.argmax(1), 0)
    start = np.minimum(start, max(matrix.shape[1] - taps, 0))
    cols = start[:, None] + np.arange(taps)[None, :]
    weights = np.take_along_axis(matrix, np.minimum(cols, matrix.shape[1] - 1), axis=1)
    weights = np.where(cols < matrix.shape[1], weights, 0.0)
    return start.astype(np.int32), weights.astype(np.float32)


def prepare(clips: list[tuple[np.ndarray, int]], cfg: AudioConfig, crop: str | None = None,
            seed=None) -> Batch:
    """Checked ``(waveform, rate)`` pairs -> :class:`Batch` (host numpy).

    ``crop`` overrides the config's crop mode; ``seed`` seeds ``crop='random'``: an int or a
    numpy Generator draws the clips' crops in order, a sequence of ints gives each clip its own.
    """
    spec = cfg.spectrogram
    crop = crop or cfg.crop
    rngs = _rngs(seed, len(clips))
    rng = rngs[0] if rngs else None
    length = cfg.clip_samples
    waves = []
    for x, rate in clips:
        x = audio.normalize(audio.resample(x, rate, spec.sample_rate), cfg.normalize)
        waves.append(audio.quantize_int16(x) if cfg.quantize_int16 else x)
    if not cfg.fusion:
        starts = [audio.crop_start(len(x), length, crop, r) for x, r in zip(waves, rngs)]
        fitted = np.stack([x[s:s + length] if len(x) > length else audio.pad(x, length, cfg.pad)
                           for x, s in zip(waves, starts)])
        return Batch(waves=fitted, longer=np.array([len(x) > length for x in waves]),
                     crops=np.array(starts, np.int64))

    hop, half = spec.hop_length, spec.n_fft // 2
    chunk = spec.num_frames(length)
    signals, starts, shrinks, longer = [], [], [], []
    for x in waves:
        total = spec.num_frames(len(x))
        is_long = len(x) > length and total > chunk
        if not is_long:
            x = audio.pad(x, length, cfg.pad) if len(x) < length else x
            total = spec.num_frames(len(x))
        starts.append(_fusion_starts(total, chunk, crop, rngs[len(starts)]) if is_long else [0, 0, 0])
        shrinks.append(_SHRINK[cfg.fusion_shrink](total, chunk) if is_long else np.eye(chunk, total, dtype=np.float32))
        signals.append(np.pad(x, (half, half), mode=spec.pad_mode))
        longer.append(is_long)
    if cfg.force_longer and not any(longer):
        longer[int((rng or np.random.default_rng(0)).integers(len(longer)))] = True
    # Bucket the padded length to whole multiples of 256 frames: few shapes, few compilations.
    frames = max(spec.num_frames(len(s) - 2 * half) for s in signals)
    frames = -(-frames // 256) * 256
    padded = (frames - 1) * hop + spec.n_fft
    taps = max(int(np.count_nonzero(m, axis=1).max()) for m in shrinks) + 1
    bands = [_band(m, taps) for m in shrinks]
    return Batch(
        waves=np.stack([np.pad(s, (0, padded - len(s))) for s in signals]).astype(np.float32),
        longer=np.array(longer),
        starts=np.array(starts, np.int32),
        shrink_start=np.stack([b[0] for b in bands]),
        shrink_weights=np.stack([b[1] for b in bands]),
        crops=np.zeros(len(signals), np.int64))


def features(batch: dict[str, jnp.ndarray], cfg: AudioConfig, chunk: int) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Device part: log-mel (B, C, chunk, n_mels) dB and ``longer`` (B,) from a prepared batch
    (the :class:`Batch` fields as arrays). ``chunk`` is the model's frame count."""
    spec = cfg.spectrogram
    if not cfg.fusion:
        return frontend.log_mel(batch["waves"], spec)[:, None], batch["longer"]
    mel = frontend.log_mel(batch["waves"], spec, center=False)             # (B, F, M)
    idx = batch["starts"][:, :, None] + jnp.arange(chunk)[None, None, :]    # (B, 3, chunk)
    crops = jnp.take_along_axis(mel[:, None], idx[..., None], axis=2)       # (B, 3, chunk, M)
    taps = batch["shrink_weights"].shape[-1]
    cols = batch["shrink_start"][:, :, None] + jnp.arange(taps)             # (B, chunk, taps)
    cols = jnp.minimum(cols, mel.shape[1] - 1)
    gathered = jnp.take_along_axis(mel[:, None], cols[..., None], axis=2)  # (B, chunk, taps, M)
    shrunk = jnp.einsum("bct,bctm->bcm", batch["shrink_weights"], gathered, precision="highest")
    return jnp.concatenate([shrunk[:, None], crops], axis=1), batch["longer"]
