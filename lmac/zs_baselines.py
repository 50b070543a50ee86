"""Gradient baselines for CLAP's zero-shot decisions: ``lmac.baselines`` on the CLAP audio encoder.

    forward = zero_shot_forward(clap, text_unit, scale)     # magnitude (B, T, F) -> logits (B, K), blocks
    lmac.baselines.explain_with("gradcam_pp", forward, mag, target)          # (B, T, F) maps

``logits`` are the model's zero-shot logits s · cos(f_audio(x), t_k) against the K prompt embeddings
``text_unit`` (normalised); the target is a prompt index (the zero-shot decision, or the prompt a
map is asked for). ``blocks`` holds one layer, the encoder's last spatial features on the (time,
mel) grid: HTSAT's last-stage tokens after the final norm, unfolded (the embedding is their mean,
so a tap added there is a tap on the embedding's inputs), or CNN14's last block. GradCAM and
GradCAM++ take ``layer=-1``; the saliency family differentiates with respect to the magnitude.
"""
from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from clap_jax.linalg import l2_normalize
from lmac import decoders, zero_shot
from lmac.baselines import _Tapped


def zero_shot_forward(graphdef, state, spectrogram, cfg: zero_shot.ZsLossConfig, text_unit: jnp.ndarray,
                      scale) -> callable:
    """``forward(mag, taps=None) -> {"logits": (B, K), "blocks": [last features (B, T', F', C)]}``."""
    normalize = zero_shot.normalizes(cfg)

    def forward(mag, taps: dict | None = None) -> dict:
        model = nnx.merge(graphdef, state)
        tap = (taps or {}).get(-1, (taps or {}).get(0))
        audio = model.audio_branch
        feats = zero_shot.encoder_input(mag, None, spectrogram, cfg)
        if hasattr(audio, "patch_embed"):                       # HTSAT: tokens -> mean -> projection
            out = audio(feats)
            grid = decoders.unfold_tokens(out["tokens"], audio.cfg.freq_ratio)
            if tap is not None:
                grid = grid + tap
            pooled = grid.mean(axis=(1, 2)).astype(jnp.float32)
        else:                                                   # CNN14: tap on the last block's output
            n = len(audio.blocks)
            if tap is not None:
                setattr(audio, f"conv_block{n}", _Tapped(getattr(audio, f"conv_block{n}"), post=tap))
            out = audio(feats)
            grid, pooled = out["blocks"][-1], out["embedding"]
        emb = model.audio_projection(pooled).astype(jnp.float32)
        emb = l2_normalize(emb) if normalize else emb
        return {"logits": scale * emb @ text_unit.T, "blocks": [grid]}
    return forward
