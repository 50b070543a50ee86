r"""The LMAC-ZS objective solved for each (prompt, clip) pair on its own: masks without a decoder.

    masks = optimized_masks(clap_model, mag, text, text_unit, spectrogram, cfg, scale)    # (N, T, F')

LMAC-ZS trains one decoder to output, for any prompt and clip, the mask that keeps CLAP's
similarity with the fewest bins. Here that objective is minimised directly, for each row n
(prompt embedding t_n, clip magnitude X_n) apart, over free mask logits θ_n on the mask grid of
``cfg.domain`` (:func:`lmac.zero_shot.mask_grid`):

    min_θ  |C_n − s t̂_nᵀ f̂(σ(θ_n) ⊙ X_n)| + λ1_n mean σ(θ_n)          C_n = s t̂_nᵀ f̂(X_n)

with λ1_n = ``cfg.l1`` + ``cfg.l1_rejected`` σ(m_n − C_n), m_n the clip's mean logit over the K
prompts ``text_unit`` (the loss's ``l1_weights``, the class prompts standing for the batch's texts).
Eq. 7's diversity term compares the masks of different prompts on one clip and has no per-pair
form; it is left out. Adam (``lr``) from θ = 0 (every bin half kept) for ``steps`` steps, all rows
in one batched encoder call per step: a local optimum, the same for every row count (rows do not
interact). It answers what the objective itself asks of the masks on a given CLAP, apart from
what a decoder learns to amortise (``lmac.evaluate --zero_shot --methods=optimized``).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from clap_jax.linalg import l2_normalize
from lmac import zero_shot

STEPS = 200
LR = 0.3


def optimized_masks(clap_model, mag: jnp.ndarray, text: jnp.ndarray, text_unit: jnp.ndarray, spectrogram,
                    cfg: zero_shot.ZsLossConfig, scale, *, steps: int = STEPS, lr: float = LR,
                    l1: float | None = None, l1_rejected: float | None = None) -> jnp.ndarray:
    """(N, T, F') masks in [0, 1] for rows ``mag`` (N, T, F) and prompt embeddings ``text`` (N, D) as
    the model returns them; ``text_unit`` (K, D) normalised prompts whose mean logit sets λ1_n.
    ``l1``, ``l1_rejected``: the sparsity weights (None: ``cfg``'s, the decoder's own)."""
    cfg = dataclasses.replace(cfg, **{k: v for k, v in (("l1", l1), ("l1_rejected", l1_rejected)) if v is not None})
    normalize = zero_shot.normalizes(cfg)
    t = l2_normalize(text) if normalize else text
    audio, _ = zero_shot._embed(clap_model, zero_shot.encoder_input(mag, None, spectrogram, cfg), normalize)
    clean = scale * jnp.sum(t * audio, axis=1)                                    # (N,) C_n
    mean = scale * (l2_normalize(audio) @ text_unit.T).mean(axis=1)               # (N,) m_n
    weight = zero_shot.l1_weights(clean, cfg, clip_mean=mean)                    # (N,) λ1_n

    def objective(theta):
        mask = jax.nn.sigmoid(theta)
        masked, _ = zero_shot._embed(clap_model, zero_shot.encoder_input(mag, mask, spectrogram, cfg), normalize)
        sim = scale * jnp.sum(t * masked, axis=1)
        return jnp.sum(jnp.abs(jax.lax.stop_gradient(clean) - sim) + weight * mask.mean(axis=(1, 2)))

    opt = optax.adam(lr)
    theta = jnp.zeros((mag.shape[0],) + zero_shot.mask_grid(cfg.domain, spectrogram, mag.shape[1]), jnp.float32)

    def step(_, carry):
        theta, state = carry
        grad = jax.grad(objective)(theta)
        updates, state = opt.update(grad, state)
        return optax.apply_updates(theta, updates), state

    theta, _ = jax.lax.fori_loop(0, steps, step, (theta, opt.init(theta)))
    return jax.nn.sigmoid(theta)
