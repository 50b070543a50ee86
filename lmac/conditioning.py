"""Text conditioning for LMAC-ZS decoders: a prompt's CLAP text embedding steers a decoder level.

    t (B, D) --Linear, reshape--> context (B, L, C_ctx) --LayerNorm-->  keys / values
    h (B, H, W, C) --LayerNorm, flatten--> queries (B, H W, C)
    h + W_o · softmax(q kᵀ / sqrt(d_head)) v          (``CrossAttention``: Stable Diffusion's cross-attention)
    h · (1 + γ(t)) + β(t)                             (``FiLM``: the alternative)

The paper conditions "by using cross-attention similar to that used in Stable Diffusion":
queries come from the decoder's spatial features, keys and values from the text. Stable Diffusion
attends over CLIP's 77 token states; CLAP gives one pooled embedding per prompt, so the embedding
is projected to ``text_tokens`` context tokens (with one token the softmax would be constant and
cross-attention would reduce to a prompt-dependent bias). Shapes: ``t`` (B, D) float32; ``h``
NHWC (B, H, W, C).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

HIGHEST = jax.lax.Precision.HIGHEST
KINDS = ("cross_attention", "film")


@dataclasses.dataclass(frozen=True)
class ConditioningConfig:
    """How the prompt enters the decoder (JSON-able; every field a documented design choice).

    ``kind``: ``cross_attention`` (default, the paper's) or ``film``. ``levels``: the decoder levels
    conditioned, counted from the coarsest (0) (HTSAT decoder: 0 .. stages - 1; CNN14 decoder: 0 .. 2),
    None = every level. ``heads``: attention heads; ``text_tokens``: context tokens the embedding is
    projected to; ``context_dim``: their width (None: the level's width). ``text_dim``: D, the CLAP's
    joint dimension (set from the model). ``similarity_map``: also give the coarsest level the dense
    similarity of the prompt to the encoder's last features, each position mapped into the joint
    space by the model's own audio projection (as MaskCLIP reads CLIP densely): a prompt-presence
    signal the decoder need not learn from scratch (see ``lmac.zero_shot.dense_similarity``).
    """
    kind: str = "cross_attention"
    levels: tuple[int, ...] | None = None
    similarity_map: bool = True
    heads: int = 4
    text_tokens: int = 8
    context_dim: int | None = None
    text_dim: int = 512

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"conditioning kind must be one of {KINDS}, got {self.kind!r}")
        if self.levels is not None:
            object.__setattr__(self, "levels", tuple(int(v) for v in self.levels))

    def conditions(self, level: int) -> bool:
        return self.levels is None or level in self.levels


class CrossAttention(nnx.Module):
    """Pre-norm multi-head cross-attention from NHWC features (queries) to text context tokens
    (keys, values), added residually: Stable Diffusion's ``BasicTransformerBlock`` attn2."""

    def __init__(self, dim: int, cfg: ConditioningConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
        if dim % cfg.heads:
            raise ValueError(f"width {dim} is not divisible by {cfg.heads} heads")
        ctx = cfg.context_dim or dim
        self.heads, self.tokens, self.ctx = cfg.heads, cfg.text_tokens, ctx
        lin = lambda i, o, bias=True: nnx.Linear(i, o, use_bias=bias, dtype=dtype, precision=HIGHEST, rngs=rngs)
        self.text_proj = lin(cfg.text_dim, cfg.text_tokens * ctx)
        self.norm_ctx = nnx.LayerNorm(ctx, dtype=dtype, rngs=rngs)
        self.norm = nnx.LayerNorm(dim, dtype=dtype, rngs=rngs)
        self.to_q, self.to_k, self.to_v = lin(dim, dim, False), lin(ctx, dim, False), lin(ctx, dim, False)
        self.to_out = lin(dim, dim)

    def __call__(self, h: jnp.ndarray, t: jnp.ndarray) -> jnp.ndarray:
        b, hh, ww, c = h.shape
        context = self.norm_ctx(self.text_proj(t).reshape(b, self.tokens, self.ctx))     # (B, L, C_ctx)
        split = lambda x: x.reshape(b, x.shape[1], self.heads, c // self.heads)
        q = split(self.to_q(self.norm(h).reshape(b, hh * ww, c)))                      # (B, N, H, d)
        k, v = split(self.to_k(context)), split(self.to_v(context))                     # (B, L, H, d)
        logits = jnp.einsum("bnhd,blhd->bhnl", q, k, precision=HIGHEST) * (c // self.heads) ** -0.5
        attn = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(v.dtype)
        out = jnp.einsum("bhnl,blhd->bnhd", attn, v, precision=HIGHEST).reshape(b, hh, ww, c)
        return h + self.to_out(out)


class FiLM(nnx.Module):
    """Feature-wise affine modulation h (1 + γ(t)) + β(t), γ and β linear in t (zero-initialised,
    so an untrained FiLM is the identity)."""

    def __init__(self, dim: int, cfg: ConditioningConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.film = nnx.Linear(cfg.text_dim, 2 * dim, dtype=dtype, precision=HIGHEST,
                               kernel_init=nnx.initializers.zeros, rngs=rngs)

    def __call__(self, h: jnp.ndarray, t: jnp.ndarray) -> jnp.ndarray:
        gamma, beta = jnp.split(self.film(t)[:, None, None, :], 2, axis=-1)
        return h * (1.0 + gamma) + beta


_LAYERS = {"cross_attention": CrossAttention, "film": FiLM}


def build_layers(widths: list[int], cfg: ConditioningConfig, *, dtype=jnp.float32,
                 rngs: nnx.Rngs) -> nnx.List:
    """One conditioning layer per decoder level of width ``widths[level]`` (None where unconditioned)."""
    make = _LAYERS[cfg.kind]
    return nnx.List([make(w, cfg, dtype=dtype, rngs=rngs) if cfg.conditions(k) else None
                     for k, w in enumerate(widths)])


def hook(layers: nnx.List, t: jnp.ndarray):
    """``condition(level, h) -> h`` for a decoder's ``condition`` argument."""
    def condition(level: int, h: jnp.ndarray) -> jnp.ndarray:
        layer = layers[level]
        return h if layer is None else layer(h, t)
    return condition
