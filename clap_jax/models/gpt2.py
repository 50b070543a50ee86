"""GPT-2 text encoder (pre-LayerNorm causal transformer), as Microsoft CLAP 2023 uses it.

Token ids (B, L) pass through token + position embeddings (positions 0..L-1), ``n_layer``
blocks ``x + attn(ln_1(x))``, ``x + mlp(ln_2(x))`` with causal self-attention (keys that are
padding are masked too, as transformers' ``GPT2Model`` does with an attention mask) and the
tanh-approximated GELU (``gelu_new``), then ``ln_f``.

Pooling is Microsoft CLAP's: the hidden state at index ``count(ids != 0) - 1``. Id 0 is both
the pad token (``pad_token='!'``) and the ordinary token ``!``, so for a text containing ``!``
the index falls short of the last real token by the number of ``!`` tokens (e.g. "rain!" pools
the space before ``<|endoftext|>`` instead of it). We reproduce that quirk; it depends only on
the ids, not on how much padding follows.

GPT-2's ``Conv1D`` layers store their weights (in, out) in PyTorch, the layout of a Flax
kernel, so they are :class:`Conv1D` (a Linear that ``clap_jax.weights`` does not transpose).
Attribute names follow transformers' ``GPT2Model`` so checkpoints map by name.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx


@dataclasses.dataclass(frozen=True)
class GPT2Config:
    """Sizes of a GPT-2; defaults are ``gpt2`` (124M), as ``GPT2Config()`` builds it."""
    kind: str = "gpt2"
    vocab_size: int = 50257
    max_positions: int = 1024
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    layer_norm_eps: float = 1e-5
    pad_token_id: int = 0           # Microsoft CLAP: pad_token='!', which is id 0

    @property
    def intermediate_size(self) -> int:
        return 4 * self.hidden_size


class Conv1D(nnx.Linear):
    """GPT-2's ``Conv1D``: a Linear whose PyTorch ``weight`` is already stored (in, out)."""
    torch_weight_layout = "in_out"


class Attention(nnx.Module):
    def __init__(self, cfg: GPT2Config, *, dtype, rngs: nnx.Rngs):
        d = cfg.hidden_size
        self.heads = cfg.num_heads
        self.c_attn = Conv1D(d, 3 * d, dtype=dtype, rngs=rngs)
        self.c_proj = Conv1D(d, d, dtype=dtype, rngs=rngs)

    def __call__(self, x: jnp.ndarray, bias: jnp.ndarray) -> jnp.ndarray:
        """x: (B, L, D); bias: (B, 1, L, L) additive causal + padding mask."""
        b, l, d = x.shape
        q, k, v = jnp.split(self.c_attn(x), 3, axis=-1)
        split = lambda t: t.reshape(b, l, self.heads, d // self.heads).transpose(0, 2, 1, 3)
        q, k, v = split(q), split(k), split(v)
        scores = jnp.einsum("bhld,bhmd->bhlm", q, k) * (d // self.heads) ** -0.5 + bias
        probs = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(v.dtype)
        return self.c_proj(jnp.einsum("bhlm,bhmd->blhd", probs, v).reshape(b, l, d))


class Mlp(nnx.Module):
    def __init__(self, cfg: GPT2Config, *, dtype, rngs: nnx.Rngs):
        self.c_fc = Conv1D(cfg.hidden_size, cfg.intermediate_size, dtype=dtype, rngs=rngs)
        self.c_proj = Conv1D(cfg.intermediate_size, cfg.hidden_size, dtype=dtype, rngs=rngs)

    def __call__(self, x):
        return self.c_proj(jax.nn.gelu(self.c_fc(x), approximate=True))     # gelu_new


class Block(nnx.Module):
    def __init__(self, cfg: GPT2Config, *, dtype, rngs: nnx.Rngs):
        eps, d = cfg.layer_norm_eps, cfg.hidden_size
        self.ln_1 = nnx.LayerNorm(d, epsilon=eps, dtype=dtype, rngs=rngs)
        self.attn = Attention(cfg, dtype=dtype, rngs=rngs)
        self.ln_2 = nnx.LayerNorm(d, epsilon=eps, dtype=dtype, rngs=rngs)
        self.mlp = Mlp(cfg, dtype=dtype, rngs=rngs)

    def __call__(self, x, bias):
        x = x + self.attn(self.ln_1(x), bias)
        return x + self.mlp(self.ln_2(x))


def last_token_index(ids: jnp.ndarray, pad_token_id: int = 0) -> jnp.ndarray:
    """Microsoft CLAP's pooling index ``(ids != pad).sum(-1) - 1`` (B,): see the module docstring."""
    return (ids != pad_token_id).sum(axis=-1) - 1


class GPT2(nnx.Module):
    """Token ids (B, L) + attention mask (B, L) -> pooled text feature (B, hidden_size)."""

    def __init__(self, cfg: GPT2Config, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.cfg = cfg
        init = nnx.initializers.normal(0.02)
        self.wte = nnx.Embed(cfg.vocab_size, cfg.hidden_size, embedding_init=init, dtype=dtype, rngs=rngs)
        self.wpe = nnx.Embed(cfg.max_positions, cfg.hidden_size, embedding_init=init, dtype=dtype, rngs=rngs)
        self.h = nnx.List([Block(cfg, dtype=dtype, rngs=rngs) for _ in range(cfg.num_layers)])
        self.ln_f = nnx.LayerNorm(cfg.hidden_size, epsilon=cfg.layer_norm_eps, dtype=dtype, rngs=rngs)

    def __call__(self, ids: jnp.ndarray, mask: jnp.ndarray,
                 token_types: jnp.ndarray | None = None) -> dict[str, jnp.ndarray]:
        """Returns ``pooled`` (B, D) at :func:`last_token_index` and ``hidden`` (B, L, D)."""
        del token_types
        b, l = ids.shape
        x = self.wte(ids) + self.wpe(jnp.arange(l))[None]
        causal = jnp.tril(jnp.ones((l, l), bool))
        allowed = causal[None, None] & (mask[:, None, None, :] > 0)
        bias = jnp.where(allowed, 0.0, jnp.finfo(x.dtype).min).astype(x.dtype)
        for block in self.h:
            x = block(x, bias)
        x = self.ln_f(x)
        index = last_token_index(ids, self.cfg.pad_token_id)
        pooled = jnp.take_along_axis(x, index[:, None, None], axis=1)[:, 0]
        return {"pooled": pooled.astype(jnp.float32), "hidden": x}
