"""PyTorch's 1-D interpolation kernels as dense matrices, applied with one matmul.

``jax.image.resize`` uses Keys' cubic (A=-0.5) with half-pixel centres; HTSAT stretches
1001 (or 965) mel frames to 1024 with ``F.interpolate(mode="bicubic", align_corners=True)``
(A=-0.75, corner-aligned). The fusion path shrinks long mels with bilinear resizing, either
plain (Hugging Face: ``F.interpolate(bilinear, align_corners=False)``) or antialiased
(LAION: torchvision ``Resize``, which antialiases tensors). Each kernel here is a matrix
W (out, in) so that ``resized = W @ x`` along the resized axis, exact to float rounding.
"""
from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np


def _cubic_weights(t: np.ndarray, a: float = -0.75) -> np.ndarray:
    """PyTorch's cubic convolution weights for taps at offsets -1, 0, 1, 2 (…, 4)."""
    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=-1)


@functools.lru_cache(maxsize=16)
def bicubic_align_corners(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix of ``F.interpolate(mode="bicubic", align_corners=True)`` on float32
    input; positions and weights in float32 arithmetic, as PyTorch computes them."""
    f32 = np.float32
    scale = f32(n_in - 1) / f32(n_out - 1) if n_out > 1 else f32(0)
    real = scale * np.arange(n_out, dtype=f32)
    base = np.floor(real).astype(np.int64)
    weights = _cubic_weights(real - base.astype(f32), f32(-0.75))
    taps = np.clip(base[:, None] + np.arange(-1, 3)[None, :], 0, n_in - 1)
    out = np.zeros((n_out, n_in), f32)
    np.add.at(out, (np.repeat(np.arange(n_out), 4), taps.reshape(-1)), weights.reshape(-1))
    return out


@functools.lru_cache(maxsize=16)
def bilinear(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix of ``F.interpolate(mode="bilinear", align_corners=False)`` on float32
    input. Source positions and weights are computed in float32 as PyTorch does for float32
    tensors (float64 positions differ by up to 0.1 dB on long log-mels). The position
    ``scale * (i + 0.5) - 0.5`` is rounded once, as PyTorch's kernel computes it with a fused
    multiply-add."""
    f32 = np.float32
    scale = f32(n_in) / f32(n_out)
    half_pixel = np.arange(n_out, dtype=f32) + f32(0.5)
    real = (np.float64(scale) * half_pixel.astype(np.float64) - 0.5).astype(f32)
    real = np.maximum(real, f32(0))
    lo = real.astype(np.int64)
    frac = real - lo.astype(f32)
    hi = np.where(lo < n_in - 1, lo + 1, lo)
    out = np.zeros((n_out, n_in), f32)
    np.add.at(out, (np.arange(n_out), lo), f32(1) - frac)
    np.add.at(out, (np.arange(n_out), hi), frac)
    return out


@functools.lru_cache(maxsize=16)
def bilinear_antialias(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix of ``F.interpolate(bilinear, antialias=True)`` on float32 input, the
    kernel torchvision's ``Resize`` uses on tensors: a triangle filter widened by the shrink
    factor, weights normalised per output sample, arithmetic in float32 as in PyTorch."""
    f32 = np.float32
    scale = f32(n_in) / f32(n_out)
    support = scale if scale >= 1 else f32(1)
    inv = f32(1) / scale if scale >= 1 else f32(1)
    out = np.zeros((n_out, n_in), f32)
    for i in range(n_out):  # one-off table construction, cached
        centre = scale * (f32(i) + f32(0.5))
        lo = max(int(centre - support + f32(0.5)), 0)
        hi = min(int(centre + support + f32(0.5)), n_in)
        j = np.arange(hi - lo, dtype=f32)
        w = np.maximum(f32(0), f32(1) - np.abs((j + f32(lo) - centre + f32(0.5)) * inv))
        out[i, lo:hi] = w / w.sum(dtype=f32)
    return out


def resize_axis(x: jnp.ndarray, matrix: np.ndarray, axis: int) -> jnp.ndarray:
    """Applies an (n_out, n_in) interpolation matrix along ``axis`` of ``x``."""
    x = jnp.moveaxis(x, axis, -1)
    y = jnp.matmul(x, jnp.asarray(matrix).T, precision="highest")
    return jnp.moveaxis(y, -1, axis)
