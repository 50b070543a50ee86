"""HTSAT (hierarchical token-semantic audio transformer): the Swin audio encoder of CLAP.

Input is a log-mel (B, C, frames, n_mels) in dB, C = 1 (or 4 for the fusion model: the whole
clip shrunk, then front/middle/back crops). It is batch-normalised per mel bin, stretched to
``spec_size * freq_ratio`` frames with PyTorch's bicubic kernel and folded into a
``spec_size``-square image whose row is ``chunk * n_mels + mel`` and column the frame within
the chunk. Patches of 4x4 go through four Swin stages; the embedding is the mean of the last
stage's tokens. Attribute names follow LAION's ``audio_branch`` so checkpoints map by name.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from clap_jax import resize


@dataclasses.dataclass(frozen=True)
class HTSATConfig:
    """Sizes of an HTSAT. Defaults are HTSAT-tiny; HTSAT-base has embed_dim 128, depths 2,2,12,2."""
    kind: str = "htsat"
    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (4, 8, 16, 32)
    window_size: int = 8
    spec_size: int = 256
    patch_size: int = 4
    n_mels: int = 64
    mlp_ratio: float = 4.0
    fusion: bool = False
    aff_ratio: int = 4
    layer_norm_eps: float = 1e-5

    @property
    def num_features(self) -> int:
        """Width of the last stage, i.e. of the audio embedding."""
        return self.embed_dim * 2 ** (len(self.depths) - 1)

    @property
    def freq_ratio(self) -> int:
        return self.spec_size // self.n_mels


def _gelu(x):
    return jax.nn.gelu(x, approximate=False)


@functools.lru_cache(maxsize=None)
def _relative_position_index(ws: int) -> np.ndarray:
    """(ws*ws, ws*ws) index into the (2ws-1)^2 bias table, as Swin builds it."""
    coords = np.stack(np.meshgrid(np.arange(ws), np.arange(ws), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0) + (ws - 1)
    return rel[..., 0] * (2 * ws - 1) + rel[..., 1]


@functools.lru_cache(maxsize=None)
def _shift_mask(res: int, ws: int, shift: int) -> np.ndarray:
    """(num_windows, ws*ws, ws*ws) additive mask of shifted windows; -100 between regions.

    The value is -100, not -inf: the reference adds -100 and we reproduce it.
    """
    img = np.zeros((res, res), np.float32)
    cuts = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    for k, (h, w) in enumerate((h, w) for h in cuts for w in cuts):
        img[h, w] = k
    win = img.reshape(res // ws, ws, res // ws, ws).transpose(0, 2, 1, 3).reshape(-1, ws * ws)
    diff = win[:, None, :] - win[:, :, None]
    return np.where(diff != 0, -100.0, 0.0).astype(np.float32)


class WindowAttention(nnx.Module):
    """Multi-head self-attention inside ws x ws windows with a learned relative position bias."""

    def __init__(self, dim: int, heads: int, ws: int, *, dtype, rngs: nnx.Rngs):
        self.heads, self.ws = heads, ws
        self.qkv = nnx.Linear(dim, 3 * dim, dtype=dtype, rngs=rngs)
        self.proj = nnx.Linear(dim, dim, dtype=dtype, rngs=rngs)
        self.relative_position_bias_table = nnx.Param(
            0.02 * jax.random.truncated_normal(rngs.params(), -2, 2, ((2 * ws - 1) ** 2, heads)))

    def __call__(self, x: jnp.ndarray, mask: np.ndarray | None) -> jnp.ndarray:
        """x: (B, num_windows, N, C) with N = ws*ws; mask: (num_windows, N, N) or None."""
        b, nw, n, c = x.shape
        qkv = self.qkv(x).reshape(b, nw, n, 3, self.heads, c // self.heads)
        q, k, v = jnp.moveaxis(qkv, 3, 0).transpose(0, 1, 2, 4, 3, 5)   # (B, nW, H, N, hd) each
        q = q * (c // self.heads) ** -0.5
        attn = jnp.einsum("bwhnd,bwhmd->bwhnm", q, k)
        bias = self.relative_position_bias_table[...][_relative_position_index(self.ws).reshape(-1)]
        attn = attn + bias.reshape(n, n, self.heads).transpose(2, 0, 1)
        if mask is not None:
            attn = attn + mask[None, :, None]
        attn = jax.nn.softmax(attn.astype(jnp.float32), axis=-1).astype(v.dtype)
        out = jnp.einsum("bwhnm,bwhmd->bwnhd", attn, v).reshape(b, nw, n, c)
        return self.proj(out)


class Mlp(nnx.Module):
    def __init__(self, dim: int, hidden: int, *, dtype, rngs: nnx.Rngs):
        self.fc1 = nnx.Linear(dim, hidden, dtype=dtype, rngs=rngs)
        self.fc2 = nnx.Linear(hidden, dim, dtype=dtype, rngs=rngs)

    def __call__(self, x):
        return self.fc2(_gelu(self.fc1(x)))


class SwinBlock(nnx.Module):
    """Pre-norm (shifted) window attention + MLP on a (B, H, W, C) token grid."""

    def __init__(self, dim: int, heads: int, res: int, ws: int, shift: int, cfg: HTSATConfig,
                 *, dtype, rngs: nnx.Rngs):
        if res <= ws:          # the window covers the whole grid: one window, no shift
            ws, shift = res, 0
        self.ws, self.shift, self.res = ws, shift, res
        eps = cfg.layer_norm_eps
        self.norm1 = nnx.LayerNorm(dim, epsilon=eps, dtype=dtype, rngs=rngs)
        self.attn = WindowAttention(dim, heads, ws, dtype=dtype, rngs=rngs)
        self.norm2 = nnx.LayerNorm(dim, epsilon=eps, dtype=dtype, rngs=rngs)
        self.mlp = Mlp(dim, int(dim * cfg.mlp_ratio), dtype=dtype, rngs=rngs)

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        b, h, w, c = x.shape
        ws, s = self.ws, self.shift
        y = self.norm1(x)
        if s:
            y = jnp.roll(y, (-s, -s), axis=(1, 2))
        y = y.reshape(b, h // ws, ws, w // ws, ws, c).transpose(0, 1, 3, 2, 4, 5)
        mask = _shift_mask(self.res, ws, s) if s else None
        y = self.attn(y.reshape(b, -1, ws * ws, c), mask)
        y = y.reshape(b, h // ws, w // ws, ws, ws, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
        if s:
            y = jnp.roll(y, (s, s), axis=(1, 2))
        x = x + y
        return x + self.mlp(self.norm2(x))


class PatchMerging(nnx.Module):
    """2x2 neighbourhood concatenation (4C) -> LayerNorm -> Linear to 2C; halves H and W."""

    def __init__(self, dim: int, eps: float, *, dtype, rngs: nnx.Rngs):
        self.norm = nnx.LayerNorm(4 * dim, epsilon=eps, dtype=dtype, rngs=rngs)
        self.reduction = nnx.Linear(4 * dim, 2 * dim, use_bias=False, dtype=dtype, rngs=rngs)

    def __call__(self, x):
        x = jnp.concatenate([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x))


class Stage(nnx.Module):
    def __init__(self, i: int, res: int, cfg: HTSATConfig, *, dtype, rngs: nnx.Rngs):
        dim = cfg.embed_dim * 2 ** i
        self.blocks = nnx.List([
            SwinBlock(dim, cfg.num_heads[i], res, cfg.window_size, (j % 2) * (cfg.window_size // 2),
                      cfg, dtype=dtype, rngs=rngs) for j in range(cfg.depths[i])])
        last = i == len(cfg.depths) - 1
        self.downsample = None if last else PatchMerging(dim, cfg.layer_norm_eps, dtype=dtype, rngs=rngs)

    def __call__(self, x):
        return self.features(x)[1]

    def features(self, x):
        """(B, H, W, C) -> (the stage's own output before merging (B, H, W, C), the next stage's input)."""
        for blk in self.blocks:
            x = blk(x)
        return x, (x if self.downsample is None else self.downsample(x))


class ConvBN(nnx.Module):
    """1x1 conv + batch norm (running statistics at inference)."""

    def __init__(self, cin: int, cout: int, *, dtype, rngs: nnx.Rngs):
        self.conv = nnx.Conv(cin, cout, (1, 1), dtype=dtype, rngs=rngs)
        self.bn = nnx.BatchNorm(cout, use_running_average=True, dtype=dtype, rngs=rngs)

    def __call__(self, x):
        return self.bn(self.conv(x))


class AttentionalFeatureFusion(nnx.Module):
    """AFF (``aff_2d``): fuses global patches x with local-crop patches r by a learned gate."""

    def __init__(self, channels: int, ratio: int, *, dtype, rngs: nnx.Rngs):
        inner = channels // ratio
        self.local_in = ConvBN(channels, inner, dtype=dtype, rngs=rngs)
        self.local_out = ConvBN(inner, channels, dtype=dtype, rngs=rngs)
        self.global_in = ConvBN(channels, inner, dtype=dtype, rngs=rngs)
        self.global_out = ConvBN(inner, channels, dtype=dtype, rngs=rngs)

    def __call__(self, x, r):
        """x, r: (B, H, W, C)."""
        xa = x + r
        local = self.local_out(jax.nn.relu(self.local_in(xa)))
        pooled = xa.mean(axis=(1, 2), keepdims=True)
        glob = self.global_out(jax.nn.relu(self.global_in(pooled)))
        gate = jax.nn.sigmoid(local + glob)
        return 2 * x * gate + 2 * r * (1 - gate)


class PatchEmbed(nnx.Module):
    """4x4 patches -> tokens (B, 64, 64, D); with fusion, long clips mix in their 3 local crops."""

    def __init__(self, cfg: HTSATConfig, *, dtype, rngs: nnx.Rngs):
        p, d = cfg.patch_size, cfg.embed_dim
        self.proj = nnx.Conv(1, d, (p, p), strides=(p, p), padding="VALID", dtype=dtype, rngs=rngs)
        self.norm = nnx.LayerNorm(d, epsilon=cfg.layer_norm_eps, dtype=dtype, rngs=rngs)
        self.fusion = cfg.fusion
        if cfg.fusion:
            self.mel_conv2d = nnx.Conv(1, d, (p, 3 * p), strides=(p, 3 * p), padding="VALID",
                                       dtype=dtype, rngs=rngs)
            self.fusion_model = AttentionalFeatureFusion(d, cfg.aff_ratio, dtype=dtype, rngs=rngs)

    def __call__(self, img: jnp.ndarray, longer: jnp.ndarray | None) -> jnp.ndarray:
        """img: (B, S, S, C) image; longer: (B,) bool, rows whose local crops are fused."""
        x = self.proj(img[..., :1])
        if self.fusion and longer is not None:
            b, _, _, c = img.shape
            local = jnp.moveaxis(img[..., 1:], -1, 1).reshape(b * (c - 1), *img.shape[1:3], 1)
            local = self.mel_conv2d(local)                        # (B*3, H', W', D)
            _, hh, ww, d = local.shape
            local = local.reshape(b, c - 1, hh, ww, d).transpose(0, 2, 1, 3, 4).reshape(b, hh, -1, d)
            width = x.shape[2]
            local = local[:, :, :width]
            local = jnp.pad(local, ((0, 0), (0, 0), (0, width - local.shape[2]), (0, 0)))
            fused = self.fusion_model(x, local)
            x = jnp.where(longer[:, None, None, None], fused, x)
        return self.norm(x)


class HTSAT(nnx.Module):
    """HTSAT audio encoder: log-mel (B, C, frames, n_mels) dB -> embedding (B, num_features)."""

    def __init__(self, cfg: HTSATConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.cfg = cfg
        self.bn0 = nnx.BatchNorm(cfg.n_mels, use_running_average=True, rngs=rngs)
        self.patch_embed = PatchEmbed(cfg, dtype=dtype, rngs=rngs)
        grid = cfg.spec_size // cfg.patch_size
        self.layers = nnx.List([Stage(i, grid // 2 ** i, cfg, dtype=dtype, rngs=rngs)
                                for i in range(len(cfg.depths))])
        self.norm = nnx.LayerNorm(cfg.num_features, epsilon=cfg.layer_norm_eps, dtype=dtype, rngs=rngs)
        self.dtype = dtype

    def to_image(self, mel: jnp.ndarray) -> jnp.ndarray:
        """(B, C, T, n_mels) -> (B, S, S, C): bicubic stretch of T to S*freq_ratio, then fold."""
        cfg = self.cfg
        b, c, t, f = mel.shape
        target = cfg.spec_size * cfg.freq_ratio
        if t > target or f != cfg.n_mels:
            raise ValueError(f"HTSAT takes at most {target} frames of {cfg.n_mels} mels, got {t} x {f}")
        if t < target:
            mel = resize.resize_axis(mel, resize.bicubic_align_corners(t, target), axis=2)
        img = mel.transpose(0, 1, 3, 2).reshape(b, c, f, cfg.freq_ratio, target // cfg.freq_ratio)
        img = img.transpose(0, 1, 3, 2, 4).reshape(b, c, cfg.spec_size, cfg.spec_size)
        return img.transpose(0, 2, 3, 1)

    def __call__(self, mel: jnp.ndarray, longer: jnp.ndarray | None = None) -> dict[str, jnp.ndarray]:
        """Returns ``embedding`` (B, num_features), ``tokens`` (B, 8, 8, num_features) (the last
        stage, final LayerNorm applied) and ``stages``: the four stage outputs before patch merging
        (Swin's feature pyramid), NHWC token grids (B, G / 2^k, G / 2^k, embed_dim * 2^k) with
        G = spec_size / patch_size; ``stages[-1]`` is ``tokens`` before the final norm. A token
        grid is laid out as the folded image (see :meth:`to_image`): row = chunk * n_mels / (patch
        * 2^k) + mel token, column = time token within the chunk; ``lmac.decoders`` unfolds it.
        """
        x = self.bn0(mel.astype(jnp.float32))           # normalises the mel axis (last)
        x = self.to_image(x).astype(self.dtype)
        x = self.patch_embed(x, longer)
        stages = []
        for stage in self.layers:
            out, x = stage.features(x)
            stages.append(out)
        tokens = self.norm(x)
        return {"embedding": tokens.mean(axis=(1, 2)).astype(jnp.float32), "tokens": tokens, "stages": stages}
