"""LMAC-ZS decoders: an L-MAC decoder whose levels are steered by a prompt's text embedding.

    HTSAT stages (4 token grids) | CNN14 blocks (6 NHWC maps)   t (B, D) prompt embedding
        --HtsatGridDecoder | Cnn14PsiDecoder, ``condition(level, h)`` after each level-->
        pre-sigmoid map (B, frames, n_freq) on the mask grid (STFT bins or mel bands)

The HTSAT decoder (LAION, Hugging Face, Microsoft CLAP 2023, the bundled ``soundscapes-small``)
writes onto the grid itself; the CNN14 decoder (Microsoft CLAP 2022, the paper's model) is
SpeechBrain's transposed-convolution stack on blocks 6-3, whose output is stretched (fixed linear
interpolation, corners aligned) to the grid. Conditioning layers: :mod:`lmac.conditioning`; with
``similarity_map`` the dense prompt similarity (``lmac.zero_shot.dense_similarity``) enters the
coarsest level through a learned projection and the output logits through a learned gain.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from clap_jax.spec import from_dict
from lmac import conditioning, decoders, masking
from lmac.conditioning import ConditioningConfig
from lmac.decoders import DecoderConfig

HIGHEST = jax.lax.Precision.HIGHEST
SIMILARITY_GAIN = 4.0


@dataclasses.dataclass(frozen=True)
class ZsDecoderConfig:
    """A text-conditioned decoder: the base ``decoder``, its ``conditioning`` and the output grid
    (``frames`` x ``n_freq``: the clip's STFT frames and bins, or mel bands for mel masks).

    ``freq_repeat`` (CNN14 only): each block map's mel axis is repeated this many times before the
    stack. L-MAC's stack was laid out for 80 mels; it needs blocks 6 and 5 at least two bands wide
    (64 mels and more, as Microsoft CLAP 2022 has): from one band it outputs a single frequency
    bin, a time-only mask. A 32-mel CNN14 needs 2 (``train.lmac_zs.decoder_config`` picks it for 0)."""
    decoder: DecoderConfig
    conditioning: ConditioningConfig = ConditioningConfig()
    frames: int = 501
    n_freq: int = 257
    freq_repeat: int = 1

    def to_dict(self) -> dict:
        return {"decoder": self.decoder.to_dict(), "conditioning": dataclasses.asdict(self.conditioning),
                "frames": self.frames, "n_freq": self.n_freq, "freq_repeat": self.freq_repeat}

    @classmethod
    def from_dict(cls, d: Mapping) -> "ZsDecoderConfig":
        return from_dict(cls, dict(d))

    def widths(self) -> list[int]:
        """Channels of the features at each conditioned level, coarsest first."""
        d = self.decoder
        if d.kind == "htsat_grid":
            return [d.dim] * d.num_stages
        return [d.dim, d.dim, d.dim // 2]


def _stretch(y: jnp.ndarray, frames: int, n_freq: int) -> jnp.ndarray:
    """(B, T', F') -> (B, frames, n_freq) by separable linear interpolation, corners aligned."""
    pos = lambda n_out, n_in: np.arange(n_out) * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
    tm = decoders._interp_matrix(pos(frames, y.shape[1]), y.shape[1])
    fm = decoders._interp_matrix(pos(n_freq, y.shape[2]), y.shape[2])
    return jnp.einsum("tp,bpq,fq->btf", tm, y, fm, precision=HIGHEST)


class TextConditionedDecoder(nnx.Module):
    """(encoder features, text embedding) -> pre-sigmoid mask logits (B, frames, n_freq) float32."""

    def __init__(self, cfg: ZsDecoderConfig, *, rngs: nnx.Rngs, dtype=jnp.float32):
        if cfg.decoder.outdim != 1:
            raise ValueError("a text-conditioned decoder outputs one mask (outdim=1)")
        self.cfg = cfg
        self.base = decoders.build_decoder(cfg.decoder, rngs=rngs, dtype=dtype)
        self.conditioning = conditioning.build_layers(cfg.widths(), cfg.conditioning, dtype=dtype, rngs=rngs)
        self.similarity_proj = (nnx.Linear(1, cfg.widths()[0], dtype=dtype, rngs=rngs)
                                if cfg.conditioning.similarity_map else None)
        # The same map added to the output logits with a learned gain (initially SIMILARITY_GAIN):
        # an absent prompt's mask starts darker than a present one's.
        self.similarity_gain = (nnx.Param(jnp.asarray(SIMILARITY_GAIN, jnp.float32))
                                if cfg.conditioning.similarity_map else None)

    def __call__(self, features: dict, t: jnp.ndarray) -> jnp.ndarray:
        """``features``: the audio encoder's outputs (``stages`` for HTSAT, ``blocks`` for CNN14), batch B,
        and with ``similarity_map`` the dense prompt similarity ``similarity`` (B, T', F') (time, mel);
        ``t``: (B, D) the prompt embedding each row is conditioned on."""
        condition = conditioning.hook(self.conditioning, t)
        if self.similarity_proj is not None:
            sim, text_condition = features["similarity"], condition

            def condition(level, h):
                if level == 0:
                    h = h + self.similarity_proj(_stretch(sim, h.shape[1], h.shape[2])[..., None])
                return text_condition(level, h)
        if self.cfg.decoder.kind == "htsat_grid":
            y = self.base(features["stages"], self.cfg.frames, condition)
        else:
            blocks = [jnp.repeat(h, self.cfg.freq_repeat, axis=2) for h in masking.decoder_inputs(features["blocks"])]
            y = _stretch(self.base(blocks, condition), self.cfg.frames, self.cfg.n_freq)
        if self.similarity_gain is not None:
            y = y + self.similarity_gain[...] * _stretch(features["similarity"], self.cfg.frames, self.cfg.n_freq)
        return y


def build(cfg: ZsDecoderConfig, *, rngs: nnx.Rngs, dtype=jnp.float32) -> TextConditionedDecoder:
    return TextConditionedDecoder(cfg, rngs=rngs, dtype=dtype)


def init(cfg: ZsDecoderConfig, seed: int = 0, dtype=jnp.float32) -> TextConditionedDecoder:
    """``build(cfg)`` initialised in one compiled call (eager initialisation is slow on CPU)."""
    make = lambda: build(cfg, rngs=nnx.Rngs(seed), dtype=dtype)
    graphdef, _ = nnx.split(nnx.eval_shape(make))
    return nnx.merge(graphdef, jax.jit(lambda: nnx.split(make())[1])())
