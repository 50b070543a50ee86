"""The two-tower CLAP model: audio encoder + text encoder, projections into a joint space,
and the learned logit scales. Attribute names follow LAION's ``CLAP`` module.

One model object covers every published family by configuration:

* LAION / Hugging Face: HTSAT + RoBERTa, ``MlpProjection`` heads, two logit scales;
* Microsoft CLAP 2022: CNN14 + BERT ([CLS] state), ``MsclapProjection`` heads, one logit scale;
* Microsoft CLAP 2023: HTSAT + GPT-2 (state at the last non-pad token), as 2022 otherwise.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from clap_jax.models.cnn14 import Cnn14, Cnn14Config
from clap_jax.models.gpt2 import GPT2, GPT2Config
from clap_jax.models.htsat import HTSAT, HTSATConfig
from clap_jax.models.text import TextConfig, TextTransformer


@dataclasses.dataclass(frozen=True)
class ClapConfig:
    """Architecture of a CLAP model (data only; saved as JSON beside converted weights).

    ``audio``/``text`` are told apart in JSON by their ``kind`` field. ``projection``: ``mlp``
    (LAION/HF: Linear -> ReLU -> Linear) or ``msclap`` (Microsoft's ``Projection``).
    ``shared_logit_scale``: one ``logit_scale`` for both directions (Microsoft CLAP) instead of
    ``logit_scale_a``/``logit_scale_t``.
    """
    audio: HTSATConfig | Cnn14Config = HTSATConfig()
    text: TextConfig | GPT2Config = TextConfig()
    joint_dim: int = 512
    logit_scale_init: float = float(np.log(1 / 0.07))
    projection: str = "mlp"
    shared_logit_scale: bool = False


class MlpProjection(nnx.Module):
    """LAION/HF projection head: Linear -> ReLU -> Linear."""

    def __init__(self, din: int, dout: int, *, dtype, rngs: nnx.Rngs):
        self.linear1 = nnx.Linear(din, dout, dtype=dtype, rngs=rngs)
        self.linear2 = nnx.Linear(dout, dout, dtype=dtype, rngs=rngs)

    def __call__(self, x):
        return self.linear2(jax.nn.relu(self.linear1(x)))


class MsclapProjection(nnx.Module):
    """Microsoft CLAP's ``Projection``: e1 = linear1(x); e2 = linear2(GELU(e1)) (exact erf GELU,
    no biases; dropout is inactive at inference); LayerNorm(e1 + e2), eps 1e-5."""

    def __init__(self, din: int, dout: int, *, dtype, rngs: nnx.Rngs):
        self.linear1 = nnx.Linear(din, dout, use_bias=False, dtype=dtype, rngs=rngs)
        self.linear2 = nnx.Linear(dout, dout, use_bias=False, dtype=dtype, rngs=rngs)
        self.layer_norm = nnx.LayerNorm(dout, epsilon=1e-5, dtype=dtype, rngs=rngs)

    def __call__(self, x):
        e1 = self.linear1(x)
        return self.layer_norm(e1 + self.linear2(jax.nn.gelu(e1, approximate=False)))


_AUDIO = {"htsat": HTSAT, "cnn14": Cnn14}
_TEXT = {"bert": TextTransformer, "gpt2": GPT2}
_PROJECTION = {"mlp": MlpProjection, "msclap": MsclapProjection}


class ClapModel(nnx.Module):
    """Log-mel (B, C, frames, n_mels) and token ids (B, L) -> joint-space embeddings (B, joint_dim)."""

    def __init__(self, cfg: ClapConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.cfg = cfg
        if cfg.projection not in _PROJECTION:
            raise ValueError(f"projection must be one of {sorted(_PROJECTION)}, got {cfg.projection!r}")
        self.audio_branch = _AUDIO[cfg.audio.kind](cfg.audio, dtype=dtype, rngs=rngs)
        self.text_branch = _TEXT[cfg.text.kind](cfg.text, dtype=dtype, rngs=rngs)
        proj = _PROJECTION[cfg.projection]
        self.audio_projection = proj(cfg.audio.num_features, cfg.joint_dim, dtype=dtype, rngs=rngs)
        self.text_projection = proj(cfg.text.hidden_size, cfg.joint_dim, dtype=dtype, rngs=rngs)
        if cfg.shared_logit_scale:
            self.logit_scale = nnx.Param(jnp.asarray(cfg.logit_scale_init, jnp.float32))
        else:
            self.logit_scale_a = nnx.Param(jnp.asarray(cfg.logit_scale_init, jnp.float32))
            self.logit_scale_t = nnx.Param(jnp.asarray(cfg.logit_scale_init, jnp.float32))

    def encode_audio(self, mel: jnp.ndarray, longer: jnp.ndarray | None = None) -> dict[str, jnp.ndarray]:
        """``embedding``: projected, unnormalised (B, joint_dim); ``features``: encoder output;
        plus the encoder's intermediate outputs (HTSAT ``tokens``; CNN14 ``blocks``)."""
        out = dict(self.audio_branch(mel, longer))
        features = out.pop("embedding")
        emb = self.audio_projection(features).astype(jnp.float32)
        return {"embedding": emb, "features": features, **out}

    def encode_text(self, ids: jnp.ndarray, mask: jnp.ndarray) -> dict[str, jnp.ndarray]:
        out = self.text_branch(ids, mask)
        emb = self.text_projection(out["pooled"]).astype(jnp.float32)
        return {"embedding": emb, "features": out["pooled"]}

    def logit_scales(self) -> tuple[jnp.ndarray, jnp.ndarray]:
        """exp of the (audio->text, text->audio) logit scales (the same one twice when shared)."""
        if self.cfg.shared_logit_scale:
            scale = jnp.exp(self.logit_scale[...])
            return scale, scale
        return jnp.exp(self.logit_scale_a[...]), jnp.exp(self.logit_scale_t[...])
