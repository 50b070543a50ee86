"""The two-tower CLAP model: audio encoder + text encoder, projections into a joint space,
and the learned logit scales. Attribute names follow LAION's ``CLAP`` module.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from clap_jax.models.htsat import HTSAT, HTSATConfig
from clap_jax.models.text import TextConfig, TextTransformer


@dataclasses.dataclass(frozen=True)
class ClapConfig:
    """Architecture of a CLAP model (data only; saved as JSON beside converted weights)."""
    audio: HTSATConfig = HTSATConfig()
    text: TextConfig = TextConfig()
    joint_dim: int = 512
    logit_scale_init: float = float(np.log(1 / 0.07))


class MlpProjection(nnx.Module):
    """LAION/HF projection head: Linear -> ReLU -> Linear."""

    def __init__(self, din: int, dout: int, *, dtype, rngs: nnx.Rngs):
        self.linear1 = nnx.Linear(din, dout, dtype=dtype, rngs=rngs)
        self.linear2 = nnx.Linear(dout, dout, dtype=dtype, rngs=rngs)

    def __call__(self, x):
        return self.linear2(jax.nn.relu(self.linear1(x)))


class ClapModel(nnx.Module):
    """Log-mel (B, C, frames, n_mels) and token ids (B, L) -> joint-space embeddings (B, joint_dim)."""

    def __init__(self, cfg: ClapConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.cfg = cfg
        self.audio_branch = HTSAT(cfg.audio, dtype=dtype, rngs=rngs)
        self.text_branch = TextTransformer(cfg.text, dtype=dtype, rngs=rngs)
        self.audio_projection = MlpProjection(cfg.audio.num_features, cfg.joint_dim, dtype=dtype, rngs=rngs)
        self.text_projection = MlpProjection(cfg.text.hidden_size, cfg.joint_dim, dtype=dtype, rngs=rngs)
        self.logit_scale_a = nnx.Param(jnp.asarray(cfg.logit_scale_init, jnp.float32))
        self.logit_scale_t = nnx.Param(jnp.asarray(cfg.logit_scale_init, jnp.float32))

    def encode_audio(self, mel: jnp.ndarray, longer: jnp.ndarray | None = None) -> dict[str, jnp.ndarray]:
        """``embedding``: projected, unnormalised (B, joint_dim); ``features``: encoder output."""
        out = self.audio_branch(mel, longer)
        emb = self.audio_projection(out["embedding"]).astype(jnp.float32)
        return {"embedding": emb, "features": out["embedding"], "tokens": out["tokens"]}

    def encode_text(self, ids: jnp.ndarray, mask: jnp.ndarray) -> dict[str, jnp.ndarray]:
        out = self.text_branch(ids, mask)
        emb = self.text_projection(out["pooled"]).astype(jnp.float32)
        return {"embedding": emb, "features": out["pooled"]}

    def logit_scales(self) -> tuple[jnp.ndarray, jnp.ndarray]:
        """exp of the (audio->text, text->audio) logit scales."""
        return jnp.exp(self.logit_scale_a[...]), jnp.exp(self.logit_scale_t[...])
