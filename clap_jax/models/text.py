"""BERT-family text encoders (post-LayerNorm transformer): RoBERTa for LAION/HF CLAP, BERT for
Microsoft CLAP 2022. One module, two position conventions:

* RoBERTa counts positions from ``pad_token_id + 1`` over non-pad tokens (pads keep position
  ``pad_token_id``), one token type, LayerNorm eps 1e-5 in LAION's roberta-base and 1e-12 in
  Hugging Face's ``ClapTextConfig`` (a difference we keep per checkpoint);
* BERT uses positions 0..L-1 and two token types.

Pooling: ``pooler`` = tanh(dense(h[:, 0])) (RoBERTa ``pooler_output``); ``cls`` = h[:, 0].
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx


@dataclasses.dataclass(frozen=True)
class TextConfig:
    """Sizes of a BERT-family encoder (``kind="bert"`` covers BERT and RoBERTa); defaults are
    roberta-base as LAION-CLAP builds it. bert-base-uncased (Microsoft CLAP 2022) is
    ``vocab_size=30522, max_positions=512, type_vocab_size=2, layer_norm_eps=1e-12,
    pad_token_id=0, positions="absolute", pooling="cls"``."""
    kind: str = "bert"
    vocab_size: int = 50265
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_positions: int = 514
    type_vocab_size: int = 1
    layer_norm_eps: float = 1e-5
    pad_token_id: int = 1
    positions: str = "roberta"     # "roberta" (offset past padding_idx) or "absolute" (BERT)
    pooling: str = "pooler"        # "pooler" (tanh dense on h[:,0]) or "cls" (h[:,0])


def _gelu(x):
    return jax.nn.gelu(x, approximate=False)


class Embeddings(nnx.Module):
    def __init__(self, cfg: TextConfig, *, dtype, rngs: nnx.Rngs):
        init = nnx.initializers.normal(0.02)
        self.word = nnx.Embed(cfg.vocab_size, cfg.hidden_size, embedding_init=init, dtype=dtype, rngs=rngs)
        self.position = nnx.Embed(cfg.max_positions, cfg.hidden_size, embedding_init=init, dtype=dtype, rngs=rngs)
        self.token_type = nnx.Embed(cfg.type_vocab_size, cfg.hidden_size, embedding_init=init, dtype=dtype,
                                    rngs=rngs)
        self.norm = nnx.LayerNorm(cfg.hidden_size, epsilon=cfg.layer_norm_eps, dtype=dtype, rngs=rngs)
        self.cfg = cfg

    def __call__(self, ids: jnp.ndarray, mask: jnp.ndarray, token_types: jnp.ndarray | None) -> jnp.ndarray:
        if self.cfg.positions == "roberta":
            keep = (ids != self.cfg.pad_token_id).astype(jnp.int32)
            pos = jnp.cumsum(keep, axis=1) * keep + self.cfg.pad_token_id
        else:
            pos = jnp.broadcast_to(jnp.arange(ids.shape[1]), ids.shape)
        types = jnp.zeros_like(ids) if token_types is None else token_types
        return self.norm(self.word(ids) + self.position(pos) + self.token_type(types))


class SelfAttention(nnx.Module):
    """Multi-head attention + output dense + residual + LayerNorm (BERT's post-norm layout)."""

    def __init__(self, cfg: TextConfig, *, dtype, rngs: nnx.Rngs):
        d = cfg.hidden_size
        self.heads = cfg.num_heads
        self.query = nnx.Linear(d, d, dtype=dtype, rngs=rngs)
        self.key = nnx.Linear(d, d, dtype=dtype, rngs=rngs)
        self.value = nnx.Linear(d, d, dtype=dtype, rngs=rngs)
        self.out = nnx.Linear(d, d, dtype=dtype, rngs=rngs)
        self.norm = nnx.LayerNorm(d, epsilon=cfg.layer_norm_eps, dtype=dtype, rngs=rngs)

    def __call__(self, x: jnp.ndarray, bias: jnp.ndarray) -> jnp.ndarray:
        """x: (B, L, D); bias: (B, 1, 1, L) additive mask."""
        b, l, d = x.shape
        split = lambda t: t.reshape(b, l, self.heads, d // self.heads).transpose(0, 2, 1, 3)
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = jnp.einsum("bhld,bhmd->bhlm", q, k) * (d // self.heads) ** -0.5 + bias
        probs = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(v.dtype)
        ctx = jnp.einsum("bhlm,bhmd->blhd", probs, v).reshape(b, l, d)
        return self.norm(x + self.out(ctx))


class Layer(nnx.Module):
    def __init__(self, cfg: TextConfig, *, dtype, rngs: nnx.Rngs):
        self.attention = SelfAttention(cfg, dtype=dtype, rngs=rngs)
        self.intermediate = nnx.Linear(cfg.hidden_size, cfg.intermediate_size, dtype=dtype, rngs=rngs)
        self.output = nnx.Linear(cfg.intermediate_size, cfg.hidden_size, dtype=dtype, rngs=rngs)
        self.output_norm = nnx.LayerNorm(cfg.hidden_size, epsilon=cfg.layer_norm_eps, dtype=dtype, rngs=rngs)

    def __call__(self, x, bias):
        x = self.attention(x, bias)
        return self.output_norm(x + self.output(_gelu(self.intermediate(x))))


class TextTransformer(nnx.Module):
    """Token ids (B, L) + attention mask (B, L) -> pooled text feature (B, hidden_size)."""

    def __init__(self, cfg: TextConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.cfg = cfg
        self.embeddings = Embeddings(cfg, dtype=dtype, rngs=rngs)
        self.layers = nnx.List([Layer(cfg, dtype=dtype, rngs=rngs) for _ in range(cfg.num_layers)])
        self.pooler = (nnx.Linear(cfg.hidden_size, cfg.hidden_size, dtype=dtype, rngs=rngs)
                       if cfg.pooling == "pooler" else None)

    def __call__(self, ids: jnp.ndarray, mask: jnp.ndarray,
                 token_types: jnp.ndarray | None = None) -> dict[str, jnp.ndarray]:
        """Returns ``pooled`` (B, D) and ``hidden`` (B, L, D)."""
        x = self.embeddings(ids, mask, token_types)
        bias = jnp.where(mask[:, None, None, :] > 0, 0.0, jnp.finfo(x.dtype).min).astype(x.dtype)
        for layer in self.layers:
            x = layer(x, bias)
        pooled = x[:, 0] if self.pooler is None else jnp.tanh(self.pooler(x[:, 0]))
        return {"pooled": pooled.astype(jnp.float32), "hidden": x}
