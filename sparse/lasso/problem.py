"""The nonnegative lasso problem: conventions, the optimality check, the result, input checks.

Problem and conventions
-----------------------
``dictionary`` C has shape (c, d): c concepts as ROWS, each a d-dim embedding.
``embeddings`` Z has shape (n, d). For every row z of Z we solve

    minimise_{w >= 0}   F(w) = ||C^T w - z||_2^2 + lam * ||w||_1            (w: (c,))

The squared error is NOT halved (the SpLiCE convention, methods.md A.3/A.8), so the
same solution is obtained from

* sklearn ``Lasso(alpha=lam / (2 d), positive=True, fit_intercept=False)``,
* SPAMS ``spams.lasso(mode=2, pos=True, lambda1=lam / 2)``.

``lam`` may be one number or one per embedding, shape (n,).

Optimality and the reported residual
------------------------------------
The smooth part has gradient g = 2 C (C^T w - z), shape (c,). ``w`` is optimal iff
for every atom i: ``g_i + lam = 0`` where ``w_i > 0`` and ``g_i + lam >= 0`` where
``w_i = 0``. Both conditions are ``min(w_i, g_i + lam) = 0`` (the proximal-gradient
fixed point with unit step). We report

    kkt = max_i |min(w_i, g_i + lam)| / max(||2 C z||_inf, tiny)                 (n,)

The denominator is the size of the gradient at w = 0, so the residual is invariant
to rescaling z and lam together. Every solver stops an example when its ``kkt`` is
at most ``tol`` (checked every iteration, inside ``jax.lax.while_loop``), and the
final ``kkt`` is always recomputed against the FULL dictionary.

Everything runs in float32 unless float64 inputs are given with x64 enabled
(:func:`solver_dtype`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sparse import checks

METHODS = ("working_set", "fista", "ista", "admm")
TINY = 1e-30  # floor of the residual's denominator and of Lipschitz estimates


class LassoResult(NamedTuple):
    """Solutions for n embeddings over c concepts (NumPy arrays on the host).

    weights:    (n, c) nonnegative weights w.
    objective:  (n,) ||C^T w - z||^2 + lam ||w||_1.
    l0:         (n,) int, number of non-zero weights.
    kkt:        (n,) scaled KKT residual on the full dictionary (module docstring).
    iterations: (n,) int, (inner) iterations the example used.
    converged:  (n,) bool, kkt <= tol.
    """

    weights: np.ndarray
    objective: np.ndarray
    l0: np.ndarray
    kkt: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray


def scaled_kkt(w, g, lam, scale, mask=None):
    """Scaled KKT residual on the device. w, g: (n, k); lam, scale: (n,); mask: (n, k) or None
    (slots outside the mask do not count). Returns (n,)."""
    r = jnp.abs(jnp.minimum(w, g + lam[:, None]))
    if mask is not None:
        r = jnp.where(mask, r, 0)
    return jnp.max(r, axis=1) / scale


def objective(dictionary, embeddings, weights, l1):
    """F(w) = ||C^T w - z||^2 + l1 ||w||_1 per row, in float64 NumPy. Returns (n,)."""
    C = np.asarray(dictionary, np.float64)
    r = np.asarray(weights, np.float64) @ C - np.asarray(embeddings, np.float64)
    lam = np.broadcast_to(np.asarray(l1, np.float64), (r.shape[0],))
    return (r * r).sum(1) + lam * np.asarray(weights, np.float64).sum(1)


def kkt_residual(dictionary, embeddings, weights, l1):
    """Scaled KKT residual (module docstring) per row, in float64 NumPy. Returns (n,)."""
    C = np.asarray(dictionary, np.float64)
    Z = np.asarray(embeddings, np.float64)
    w = np.asarray(weights, np.float64)
    lam = np.broadcast_to(np.asarray(l1, np.float64), (Z.shape[0],))[:, None]
    cz = Z @ C.T
    g = 2 * ((w @ C) @ C.T - cz)
    scale = np.maximum(2 * np.abs(cz).max(1), TINY)
    return np.abs(np.minimum(w, g + lam)).max(1) / scale


def empty_result(c, dtype) -> LassoResult:
    """The result for n = 0 embeddings over c concepts."""
    return LassoResult(np.zeros((0, c), dtype), np.zeros((0,), dtype), np.zeros((0,), np.int32),
                       np.zeros((0,), dtype), np.zeros((0,), np.int32), np.zeros((0,), bool))


def solver_dtype(*arrays):
    """The dtype the solvers run in for these inputs: float32, or float64 when an input is
    float64 and x64 is enabled."""
    return jax.dtypes.canonicalize_dtype(np.result_type(*(a.dtype for a in arrays), np.float32))


# --------------------------------------------------------------------------------------
# Input checks (ValueError naming the input)
# --------------------------------------------------------------------------------------


def _bad_rows(x):
    return np.flatnonzero(~np.isfinite(x).all(axis=1))


def check_method(method):
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")


def check_rho(rho):
    if not rho > 0:
        raise ValueError(f"rho must be > 0, got {rho}")


def check_dictionary(dictionary) -> np.ndarray:
    """The dictionary C (c, d) as a NumPy array: 2-D, at least one concept, finite and below
    float32 overflow (``sparse.checks.check_array``)."""
    C = np.asarray(dictionary)
    if C.ndim != 2:
        raise ValueError(f"dictionary must have shape (c, d), got shape {C.shape}")
    if C.shape[0] == 0:
        raise ValueError(f"empty dictionary: shape {C.shape} has no concepts (c == 0)")
    checks.check_array("dictionary", C)  # NaN/inf or |x| >= 1e15 (float32 overflow), by row
    return C


def check_inputs(shape, embeddings, l1, init, tol, max_iter, chunk_size):
    """Checks the rest of a solve against a (c, d) dictionary of this ``shape``.

    Returns Z (n, d), lam (n,) float64 and init (n, c) or None, as NumPy arrays.
    """
    c, d = shape
    Z = np.asarray(embeddings)
    if Z.ndim != 2:
        raise ValueError(f"embeddings must have shape (n, d), got shape {Z.shape}")
    if d != Z.shape[1]:
        raise ValueError(f"dimension mismatch: dictionary has shape {tuple(shape)} (c, d) but "
                         f"embeddings have shape {Z.shape} (n, d)")
    checks.check_array("embeddings", Z)
    lam = np.asarray(l1, dtype=np.float64)
    if lam.ndim == 0:
        lam = np.full((Z.shape[0],), float(lam))
    if lam.shape != (Z.shape[0],):
        raise ValueError(f"l1 must be a number or have shape (n,) = ({Z.shape[0]},), "
                         f"got shape {lam.shape}")
    if not np.isfinite(lam).all():
        raise ValueError("l1 contains NaN or inf")
    if (lam < 0).any():
        raise ValueError(f"l1 must be >= 0, got min {lam.min():g}")
    checks.check_l1(lam)
    if init is not None:
        init = np.asarray(init)
        if init.shape != (Z.shape[0], c):
            raise ValueError(f"init must have shape (n, c) = {(Z.shape[0], c)}, "
                             f"got shape {init.shape}")
        bad = _bad_rows(init)
        if bad.size:
            raise ValueError(f"init contains NaN or inf in row(s) {checks.describe_rows(bad)}")
        if (init < 0).any():
            raise ValueError("init must be nonnegative")
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol}")
    if max_iter is not None and max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return Z, lam, init
