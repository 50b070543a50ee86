"""Sanity checks for explanation maps: SSIM and cascading model-parameter randomisation
(Adebayo et al. 2018; L-MAC and LMAC-ZS re-initialise CNN14's blocks top-down)::

    state_0 = classifier state          maps_0 = explain(state_0)
    state_1 = head re-initialised       maps_1 = explain(state_1)   ssim(maps_0, maps_1) (B,)
    state_2 = + conv_block6             ...                          (cumulative, top-down)
    ...       + conv_block1             -> ssim (steps + 1, B), row 0 = 1

A faithful explanation changes as the weights it explains are destroyed; one that stays similar
(GradCAM++ in LMAC-ZS' figure) does not depend on what the classifier learnt. "Similar" is read
against :func:`unrelated_ssim`: the SSIM of each clip's original map to another clip's, the level a
map that no longer depends on the clip's explanation reaches (not 0: maps share a layout).
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

# (step name, attributes of Cnn14 re-initialised at that step), applied cumulatively in order
CASCADE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("head", ("head", "fc1")),
    *((f"block{i}", (f"conv_block{i}",)) for i in range(6, 0, -1)),
)


def _as_images(a: jnp.ndarray) -> jnp.ndarray:
    """(B, ..., H, W) with every axis between the batch and the last two of size 1 -> (B, H, W)."""
    if a.ndim < 3 or int(np.prod(a.shape[1:-2], dtype=np.int64)) != 1:
        raise ValueError(f"ssim compares 2-D maps (B, H, W) or (B, 1, H, W), got {a.shape}")
    return a.reshape(a.shape[0], *a.shape[-2:])


def ssim(a: jnp.ndarray, b: jnp.ndarray, *, data_range, win_size: int = 7, k1: float = 0.01,
         k2: float = 0.03, use_sample_covariance: bool = True) -> jnp.ndarray:
    """Mean structural similarity per example, (B,) float32: ``skimage.metrics.structural_similarity``
    with its defaults, ``gaussian_weights=False`` (a ``win_size`` x ``win_size`` uniform window),
    ``use_sample_covariance=True`` (variances scaled by N / (N - 1), N = win_size^2), K1 0.01, K2 0.03,
    and the mean taken over the windows that lie inside the image (skimage crops (win_size - 1) / 2
    at each border, so its filter's boundary mode never matters). ``data_range`` (L in
    C1 = (K1 L)^2, C2 = (K2 L)^2) must be given: a scalar or (B,). Maps (B, H, W) or (B, 1, H, W)."""
    a, b = _as_images(jnp.asarray(a, jnp.float32)), _as_images(jnp.asarray(b, jnp.float32))
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if win_size % 2 == 0 or win_size > min(a.shape[1:]):
        raise ValueError(f"win_size must be odd and at most the map's sides {a.shape[1:]}, got {win_size}")
    n = win_size * win_size
    mean = lambda v: jax.lax.reduce_window(v, 0.0, jax.lax.add, (1, win_size, win_size), (1, 1, 1),
                                           "VALID") / n
    cov_norm = n / (n - 1) if use_sample_covariance else 1.0
    ux, uy = mean(a), mean(b)
    vx = cov_norm * (mean(a * a) - ux * ux)
    vy = cov_norm * (mean(b * b) - uy * uy)
    vxy = cov_norm * (mean(a * b) - ux * uy)
    rng = jnp.broadcast_to(jnp.asarray(data_range, jnp.float32), (a.shape[0],))[:, None, None]
    c1, c2 = (k1 * rng) ** 2, (k2 * rng) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(axis=(1, 2))


def minmax(maps: jnp.ndarray) -> jnp.ndarray:
    """Per-example rescaling to [0, 1]: (m - min) / (max - min); a constant map becomes 0."""
    axes = tuple(range(1, maps.ndim))
    lo, hi = maps.min(axis=axes, keepdims=True), maps.max(axis=axes, keepdims=True)
    span = hi - lo
    return jnp.where(span > 0, (maps - lo) / jnp.where(span > 0, span, 1.0), 0.0)


def _fresh(graphdef, state, seed: int) -> dict:
    """Pure-dict state of a new ``Cnn14`` of the same config, from the modules' own initialisers."""
    model = nnx.merge(graphdef, state)
    return nnx.to_pure_dict(nnx.state(type(model)(model.cfg, dtype=model.dtype, rngs=nnx.Rngs(seed))))


def _replace(state, fresh: dict, names: Sequence[str]):
    pure = nnx.to_pure_dict(state)
    for name in names:
        if name in pure:
            pure[name] = fresh[name]
    out = jax.tree.map(lambda v: v, state)
    nnx.replace_by_pure_dict(out, pure)
    return out


def reinitialize(graphdef, state, names: Sequence[str], seed: int = 0):
    """A copy of a ``Cnn14`` state (from ``nnx.split``) whose submodules ``names`` (e.g. "head",
    "conv_block6"; missing ones such as an absent ``fc1`` are skipped) carry fresh weights from the
    modules' own initialisers (a new ``Cnn14(cfg, rngs=nnx.Rngs(seed))``): kernels re-drawn, BatchNorm
    back to scale 1, bias 0, running mean 0, variance 1. The input state is not modified."""
    return _replace(state, _fresh(graphdef, state, seed), names)


def unrelated_ssim(maps: jnp.ndarray, *, data_range, win_size: int = 7) -> np.ndarray:
    """SSIM of each example's map to the next example's (the last to the first), (B,) float32; empty
    for fewer than 2 maps. Maps (B, H, W) or (B, 1, H, W), scaled as the curve's are."""
    m = jnp.asarray(maps)
    if m.shape[0] < 2:
        return np.zeros((0,), np.float32)
    return np.asarray(ssim(m, jnp.roll(m, 1, axis=0), data_range=data_range, win_size=win_size))


def summary(scores: np.ndarray, unrelated: np.ndarray) -> dict:
    """A method's JSON record: ``ssim`` (steps, B) and its ``ssim_mean`` / ``ssim_std`` over clips, and
    ``unrelated_mean`` / ``unrelated_std`` of :func:`unrelated_ssim`; NaN (or no pair) is None."""
    finite = lambda v: float(v) if np.isfinite(v) else None
    s, u = np.asarray(scores, np.float64), np.asarray(unrelated, np.float64)
    return {"ssim": [[finite(v) for v in row] for row in s], "ssim_mean": [finite(v) for v in s.mean(1)],
            "ssim_std": [finite(v) for v in s.std(1)],
            "unrelated_mean": finite(u.mean()) if u.size else None, "unrelated_std": finite(u.std()) if u.size else None}


def cascading_randomization(graphdef, state, explain: Callable, *, seed: int = 0,
                            steps: Sequence[tuple[str, Sequence[str]]] = CASCADE, normalize: bool = True,
                            data_range: float | None = None, win_size: int = 7) -> dict:
    """Cascading randomisation of a ``Cnn14`` (split ``graphdef, state``). ``explain(state)`` -> maps
    (B, H, W) or (B, 1, H, W) for fixed inputs and targets (jit it with the state as an argument:
    one compile for all steps). ``steps`` are re-initialised cumulatively in order (default
    :data:`CASCADE`: the head, then conv_block6 down to conv_block1), with the weights of one fresh
    ``Cnn14`` drawn from ``seed`` (see :func:`reinitialize`).

    With ``normalize`` (default) every map is min-max scaled per example to [0, 1] and SSIM uses
    data_range 1; otherwise ``data_range`` must be given. Returns ``steps`` (("original", "head",
    "block6", ...)), ``ssim`` (len(steps), B) numpy float32 against the original maps (row 0 = 1),
    ``unrelated`` (B,) (:func:`unrelated_ssim` of the original maps) and ``maps`` (the maps of every
    step, numpy)."""
    if not normalize and data_range is None:
        raise ValueError("normalize=False needs an explicit data_range")
    prep = minmax if normalize else (lambda m: m)
    rng = 1.0 if normalize else data_range
    ref = prep(jnp.asarray(explain(state)))
    names, scores, maps = ["original"], [np.asarray(ssim(ref, ref, data_range=rng, win_size=win_size))], [ref]
    current, fresh = state, _fresh(graphdef, state, seed)
    for name, attrs in steps:
        current = _replace(current, fresh, attrs)
        m = prep(jnp.asarray(explain(current)))
        names.append(name)
        scores.append(np.asarray(ssim(ref, m, data_range=rng, win_size=win_size)))
        maps.append(m)
    return {"steps": tuple(names), "ssim": np.stack(scores), "maps": np.stack([np.asarray(m) for m in maps]),
            "unrelated": unrelated_ssim(ref, data_range=rng, win_size=win_size)}
