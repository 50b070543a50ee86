"""The L-MAC forward pass, shared by training and explanation: one pure function of modules and arrays.

    mag (B, T, F) ──features──> classifier ──logits_clean, blocks 6,5,4,3──> decoder ──σ──> mask (B, T', F)
    mag[:, :T'] ──apply_mask(M)────> features ──> classifier ──> logits_in
    mag[:, :T'] ──apply_mask(1 − M)─> features ──> classifier ──> logits_out
    apply_mask(M) ⊙ phase ──ISTFT──> masked-in waveform (listenable); 1 − M: masked-out

The decoder may return fewer frames than it was given (SpeechBrain's ``CNN14PSI_stft`` maps 431
frames to 425): as the recipe does, the spectrogram is cropped to the mask's T' frames before
masking. Resynthesis covers the whole clip: frames past T' count as masked out (mask 0).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from clap_jax import frontend
from clap_jax.frontend import SpectrogramConfig


def decoder_inputs(blocks: list[jnp.ndarray]) -> list[jnp.ndarray]:
    """CNN14 block outputs (six NHWC maps) -> what L-MAC's decoder reads: blocks 6, 5, 4, 3."""
    return [blocks[5], blocks[4], blocks[3], blocks[2]]


def features(mag: jnp.ndarray, spectrogram: SpectrogramConfig) -> jnp.ndarray:
    """Linear magnitude (B, T, F) -> CNN14 input (B, 1, T, n_mels) with the classifier's bank and log."""
    return frontend.log_mel_from_magnitude(mag, spectrogram)[:, None]


def forward(classifier, decoder, mag: jnp.ndarray, spectrogram: SpectrogramConfig,
            domain: str = "log1p") -> dict[str, jnp.ndarray]:
    """Masks and the classifier's logits on clean, masked-in and masked-out inputs.

    ``classifier``: a CNN14 module (features -> ``logits``, ``blocks``); ``decoder``: blocks 6-3 ->
    pre-sigmoid (B, T', F). Returns ``mask`` (B, T', F) in [0, 1], ``mask_logits``,
    ``logits_clean`` / ``logits_in`` / ``logits_out`` (B, K).
    """
    clean = classifier(features(mag, spectrogram))
    mask_logits = decoder(decoder_inputs(clean["blocks"]))
    mask = jax.nn.sigmoid(mask_logits)
    cropped = mag[:, :mask.shape[1]]
    both = jnp.concatenate([frontend.apply_mask(cropped, mask, domain), frontend.apply_mask(cropped, 1.0 - mask, domain)])
    logits_in, logits_out = jnp.split(classifier(features(both, spectrogram))["logits"], 2)   # one 2B pass
    return {"mask": mask, "mask_logits": mask_logits, "logits_clean": clean["logits"],
            "logits_in": logits_in, "logits_out": logits_out}


def full_grid(mask: jnp.ndarray, frames: int) -> jnp.ndarray:
    """A mask of T' ≤ ``frames`` frames padded with zeros to the clip's whole STFT grid (B, frames, F)."""
    return jnp.pad(mask, ((0, 0), (0, frames - mask.shape[1]), (0, 0)))


def resynthesize(spec: jnp.ndarray, mask: jnp.ndarray, spectrogram: SpectrogramConfig, length: int,
                 domain: str = "log1p") -> tuple[jnp.ndarray, jnp.ndarray]:
    """Listenable explanation: (masked-in, masked-out) waveforms (B, length) from the complex STFT
    ``spec`` (B, T, F) and a mask on its full grid (B, T, F): ISTFT of the masked magnitude with
    the original phase (in the log1p domain the masked magnitude is expm1(M log1p|X|))."""
    mag = frontend.magnitude(spec, spectrogram.magnitude_eps)
    ph = frontend.phase(spec)
    wave = lambda m: frontend.istft(frontend.apply_mask(mag, m, domain) * ph, spectrogram, length)
    return wave(mask), wave(1.0 - mask)
