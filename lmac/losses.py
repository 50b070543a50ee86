"""L-MAC's training objective and its noise augmentation, as SpeechBrain's recipe computes them.

    logits_clean = f(X)                      ŷ = argmax: the classifier's own decision, not the label
    logits_in    = f(M ⊙ X)                  masked-in  (``frontend.apply_mask(mag, M, domain)``)
    logits_out   = f((1 − M) ⊙ X)            masked-out
    loss = 4 CE_in − 0.2 CE_out + 0.4 B mean|M|  [+ TV]  [+ FT: 4 BCE(M, oracle) where cc ≥ 0.6]

Recipe arithmetic kept on purpose (``train_lmac.py``, ``hparams/lmac_cnn14.yaml``):

* the L1 term is ``reg_w_l1 · mean(|M|)`` over the whole batch tensor, *summed* over the samples
  (an effective weight of 0.4 B: 6.4 at B = 16); in fine-tuning the sum runs over the samples
  whose cross-correlation is below the threshold, so a passing sample drops its share;
* the fine-tuning cross-correlation is the normalised dot product ("dotp") of the clean log1p
  spectrogram and the masked-in noisy log1p spectrogram, both cropped to the mask's frames;
  the oracle is 1 where the clean log1p spectrogram reaches ``bin_th`` × its per-sample maximum;
  BCE clamps its logs at −100 as ``torch.nn.functional.binary_cross_entropy`` does;
* total variation: squared differences along both axes summed over the batch, / (2 B).

Shapes: logits (B, classes); masks and spectrograms (B, frames, n_freq).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from clap_jax.linalg import l2_normalize


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """The recipe's weights (``lmac_cnn14.yaml``): ``l_in_w``, ``l_out_w``, ``reg_w_l1``, ``reg_w_tv``;
    fine-tuning: ``g_w`` (oracle BCE weight), ``crosscor_th``, ``bin_th``."""
    l_in: float = 4.0
    l_out: float = 0.2
    l1: float = 0.4
    tv: float = 0.0
    guide: float = 4.0
    crosscor_threshold: float = 0.6
    oracle_threshold: float = 0.35


def cross_entropy(logits: jnp.ndarray, target: jnp.ndarray) -> jnp.ndarray:
    """Mean over the batch of −log softmax(logits)[target]; logits (B, K), target (B,) ints."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(logp, target[:, None], axis=-1)[:, 0].mean()


def total_variation(mask: jnp.ndarray) -> jnp.ndarray:
    """The recipe's ``tv_loss`` (power 2): Σ squared neighbour differences along frames and bins
    over the whole batch, divided by 2 B."""
    dt = jnp.sum((mask[:, :-1, :] - mask[:, 1:, :]) ** 2)
    df = jnp.sum((mask[:, :, :-1] - mask[:, :, 1:]) ** 2)
    return (dt + df) / (2.0 * mask.shape[0])


def crosscorrelation(clean_log: jnp.ndarray, masked_log: jnp.ndarray) -> jnp.ndarray:
    """Normalised dot product per sample (B,): mean(a b) / (rms(a) rms(b)) over frames and bins."""
    dot = jnp.mean(clean_log * masked_log, axis=(-2, -1))
    rms = lambda x: jnp.sqrt(jnp.mean(x ** 2, axis=(-2, -1)))
    return dot / (rms(clean_log) * rms(masked_log))


def oracle_mask(clean_log: jnp.ndarray, threshold: float = 0.35) -> jnp.ndarray:
    """1 where the clean log1p spectrogram is ≥ ``threshold`` × its per-sample maximum (B, T, F)."""
    peak = clean_log.reshape(clean_log.shape[0], -1).max(axis=1)[:, None, None]
    return (clean_log >= threshold * peak).astype(clean_log.dtype)


def binary_cross_entropy(p: jnp.ndarray, target: jnp.ndarray) -> jnp.ndarray:
    """Elementwise BCE with logs clamped at −100 (PyTorch's ``binary_cross_entropy``)."""
    log_p = jnp.maximum(jnp.log(p), -100.0)
    log_1mp = jnp.maximum(jnp.log1p(-p), -100.0)
    return -(target * log_p + (1 - target) * log_1mp)


def lmac_loss(logits_clean: jnp.ndarray, logits_in: jnp.ndarray, logits_out: jnp.ndarray, mask: jnp.ndarray,
              weights: LossWeights = LossWeights(), *, clean_log: jnp.ndarray | None = None,
              noisy_log: jnp.ndarray | None = None) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    """L-MAC loss (scalar) and its parts.

    ``mask`` (B, T, F) is the sigmoid output. Fine-tuning ("L-MAC FT") is on when ``clean_log``
    and ``noisy_log`` are given: the log1p magnitudes of the clean and of the (noise-augmented)
    input, cropped to the mask's T frames. The target is argmax of ``logits_clean`` (computed on
    the input the mask was made for, the noisy one when augmenting), held constant.
    """
    target = jax.lax.stop_gradient(jnp.argmax(logits_clean, axis=-1))
    ce_in, ce_out = cross_entropy(logits_in, target), cross_entropy(logits_out, target)
    batch = mask.shape[0]
    if clean_log is not None:
        cc = crosscorrelation(clean_log, mask * noisy_log)
        passed = (cc >= weights.crosscor_threshold).astype(mask.dtype)
        oracle = oracle_mask(clean_log, weights.oracle_threshold)
        guide = jnp.mean(binary_cross_entropy(mask, oracle).mean(axis=(-2, -1)) * weights.guide * passed)
    else:
        passed, guide = jnp.zeros((batch,), mask.dtype), jnp.zeros((), mask.dtype)
    kept = jnp.sum(1.0 - passed)                     # samples that keep their regulariser
    l1 = jnp.mean(jnp.abs(mask)) * weights.l1 * kept
    tv = total_variation(mask) * weights.tv * kept if weights.tv else jnp.zeros((), mask.dtype)
    loss = weights.l_in * ce_in - weights.l_out * ce_out + l1 + tv + guide
    return loss, {"ce_in": ce_in, "ce_out": ce_out, "l1": l1, "tv": tv, "guide": guide,
                  "guided_fraction": passed.mean(), "mask_mean": mask.mean()}


def mix_at_0db(clean: jnp.ndarray, noise: jnp.ndarray, peak: str = "signed") -> jnp.ndarray:
    """The recipe's ``combine_batches``: clean and noise (B, T) each scaled to unit L2 norm, summed,
    divided by the signed maximum sample (``peak="signed"``, ``torch.max``, as the recipe and its
    OOD mixtures do) or by max |x| (``peak="abs"``, which keeps the mixture within [−1, 1])."""
    mixed = l2_normalize(jnp.asarray(clean)) + l2_normalize(jnp.asarray(noise))
    if peak == "signed":
        return mixed / mixed.max(axis=-1, keepdims=True)
    if peak == "abs":
        return mixed / jnp.abs(mixed).max(axis=-1, keepdims=True)
    raise ValueError(f"peak must be 'signed' or 'abs', got {peak!r}")
