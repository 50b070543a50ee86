"""Small array helpers shared by the model API, sparse/, lmac/ and train/.

    x (..., d) --l2_normalize--> x / max(||x||_2, eps) on one axis

The same function serves numpy and jax: a jax array (or tracer, inside ``jit``) is normalised
with ``jnp`` and stays a jax array; anything else goes through ``np.asarray`` and comes back a
numpy array (a float input keeps its dtype). A zero row stays zero (no NaN).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def l2_normalize(x, axis: int = -1, eps: float = 1e-12):
    """``x / max(||x||_2, eps)`` along ``axis`` (keepdims); same kind of array as ``x``."""
    if isinstance(x, jax.Array):
        return x / jnp.maximum(jnp.linalg.norm(x, axis=axis, keepdims=True), eps)
    x = np.asarray(x)
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), eps)
