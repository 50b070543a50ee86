"""Nonnegative lasso solvers for concept decomposition, in JAX.

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

Methods
-------
``"working_set"`` (default; fast on CPU)
    A batched working-set method, all inside one jit: every example keeps up to
    ``cap`` candidate atoms ("slots"). A round is one KKT check on the FULL dictionary
    (the gradient 2 (C^T w - z) C^T: one (m, d) x (d, c) matmul for the m examples not
    converged yet), which appends the worst violators (then near-violators, within
    0.1 lam) to each example's slots, followed by FISTA with adaptive restart on the
    restricted problem, using the example's own (cap, cap) Gram matrix and its own
    step 1 / L (power iteration). The first check takes the atoms most correlated
    with z (or the support of ``init``). Rounds stop when every example passes its
    check. The restricted linear term is re-derived from the full gradient every
    round (iterative refinement), so float32 rounding in the small Gram matrices
    cannot stall convergence. Unconverged examples are gathered in front before each
    pass: a round costs in proportion to the examples still running. The Gram rows
    come from the atoms themselves, or from C C^T when that is cheaper (``gram``).
    Examples that run out of slots are re-solved, warm, with twice the capacity.
``"fista"``
    Plain FISTA over the whole dictionary, step 1 / L with L = 2 ||C||_2^2 (computed
    once per dictionary), O'Donoghue-Candes gradient restart.
``"ista"``
    Plain projected proximal gradient over the whole dictionary, same step.
``"admm"``
    The SpLiCE ADMM (splice/admm.py): Q = 2 C C^T + rho I is Cholesky-factored once
    (and Q^-1 formed from the factor); x <- Q^-1 (2 C z + rho (v - u));
    v <- max(0, x + u - lam / rho); u <- u + x - v.
    Deterministic start (zeros), per-example stopping on the KKT residual of v.
    Cost per iteration is O(c^2 n): meant for small dictionaries / parity.

Large inputs are streamed in chunks of ``chunk_size`` rows; inside a chunk the rows
are sharded over all ``jax.devices()`` (mesh axis "data", embeddings ``P("data")``,
dictionary replicated ``P()``). Everything runs in float32 unless float64 inputs
are given with x64 enabled.

Compile once: every solve goes through one module-level jitted function (``_solve``),
keyed on a static config and the input shapes only. Rows are padded with zero rows to
a row bucket and working sets take bucketed sizes (``sparse.buckets``: powers of two);
the padding is cut off on the host, so it never reaches a result, an objective or a
``converged`` flag. Zero rows are solved by w = 0: the working-set method drops them
before its first check, the full-dictionary methods carry them (stopped) through each
iteration.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from clap_jax.linalg import l2_normalize
from sparse import buckets, checks

METHODS = ("working_set", "fista", "ista", "admm")
_TINY = 1e-30
_DEFAULT_CHUNK = 4096  # rows per chunk when chunk_size is None
_MAX_GRAM_BYTES = 1 << 30  # largest C C^T the working-set method builds by itself
_MAX_CAPACITY = 1024  # largest working set tried before giving up on an example
_NEAR = 0.1  # working set: atoms this close to violating KKT (relative to lam) may join
_PROBE = 256  # working_set=None: rows solved first to learn the working-set size
_CHUNK = 32  # working set: Gram rows of new slots are filled this many at a time


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


@dataclasses.dataclass(frozen=True)
class _Config:
    """Static (hashable) solver settings; one compiled function per config and shape."""

    method: str
    tol: float = 0.0  # replaced by a traced value inside the solver (a runtime argument)
    max_iter: int = 0  # same
    use_gram: bool = False  # full-dictionary methods: gradient through C C^T
    select: int = 0  # working set: atoms selected at the first check
    add: int = 0  # working set: most atoms added at a later check
    cap: int = 0  # working set: slots per example
    rounds: int = 0  # working set: most rounds
    block: int = 1  # working set: examples per restricted-solve block (cache sized)
    check_block: int = 1  # working set: examples per KKT-check block (set from the rows)
    has_init: bool = False


# --------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------


def _kkt(w, g, lam, scale, mask=None):
    """Scaled KKT residual. w, g: (n, k); lam, scale: (n,); mask: (n, k) or None."""
    r = jnp.abs(jnp.minimum(w, g + lam[:, None]))
    if mask is not None:
        r = jnp.where(mask, r, 0)
    return jnp.max(r, axis=1) / scale


def _prox_grad(grad, x, gx, lam, step, scale, tol, max_iter, accelerate, mask=None, done=None):
    """Projected proximal gradient (ISTA) or FISTA with gradient restart, on the batch axis.

    grad: affine map (n, k) -> (n, k), gradient of the smooth part.
    x, gx: (n, k) start point and grad(x). lam, step, scale: (n,). mask: (n, k) bool,
    slots forced to zero. done: (n,) bool, examples to leave untouched.
    Because grad is affine, grad(y) for the extrapolated point is a combination of
    the two last grad(x): one gradient per iteration, and the exact KKT residual of
    every iterate comes for free.
    Returns x, gx, kkt (n,), iterations (n,) int32, converged (n,) bool.
    """
    n = x.shape[0]
    lam_c, step_c = lam[:, None], step[:, None]
    kkt0 = _kkt(x, gx, lam, scale, mask)
    done0 = kkt0 <= tol
    frozen = jnp.zeros((n,), bool) if done is None else done
    state = (jnp.int32(0), x, gx, x, gx, jnp.ones((n,), x.dtype), kkt0,
             jnp.zeros((n,), jnp.int32), done0 | frozen)

    def cond(s):
        return (s[0] < max_iter) & ~jnp.all(s[-1])

    def body(s):
        it, x, gx, y, gy, t, kkt, iters, stop = s
        xn = jnp.maximum(y - step_c * (gy + lam_c), 0)
        if mask is not None:
            xn = jnp.where(mask, xn, 0)
        gn = grad(xn)
        kn = _kkt(xn, gn, lam, scale, mask)
        if accelerate:
            tn = 0.5 * (1 + jnp.sqrt(1 + 4 * t * t))
            restart = jnp.sum((y - xn) * (xn - x), axis=1) > 0
            beta = jnp.where(restart, 0.0, (t - 1) / tn)
            tn = jnp.where(restart, 1.0, tn)
            b = beta[:, None].astype(x.dtype)
            yn, gyn = xn + b * (xn - x), gn + b * (gn - gx)
        else:
            tn, yn, gyn = t, xn, gn
        live = ~stop
        lv = live[:, None]
        return (it + 1, jnp.where(lv, xn, x), jnp.where(lv, gn, gx), jnp.where(lv, yn, y),
                jnp.where(lv, gyn, gy), jnp.where(live, tn, t), jnp.where(live, kn, kkt),
                iters + live.astype(jnp.int32), stop | (live & (kn <= tol)))

    _, x, gx, _, _, _, kkt, iters, _ = lax.while_loop(cond, body, state)
    return x, gx, kkt, iters, kkt <= tol


def _lipschitz(C):
    """L = 2 ||C||_2^2 (largest eigenvalue of 2 C C^T) for the full-dictionary methods."""
    m = C @ C.T if C.shape[0] <= C.shape[1] else C.T @ C
    return jnp.maximum(2 * jnp.linalg.eigvalsh(m)[-1] * (1 + 1e-4), _TINY)


def _finish(C, Z, lam, w, g, scale, iters, tol):
    """Objective, L0 and the full-dictionary KKT residual of w (n, c) with gradient g."""
    r = w @ C - Z
    kkt = _kkt(w, g, lam, scale)
    return dict(weights=w, objective=jnp.sum(r * r, axis=1) + lam * jnp.sum(w, axis=1),
                l0=jnp.sum(w > 0, axis=1).astype(jnp.int32), kkt=kkt,
                iterations=iters, converged=kkt <= tol)


# --------------------------------------------------------------------------------------
# Full-dictionary solvers
# --------------------------------------------------------------------------------------


def _full_grad(C, Z, Cz, gram):
    """Gradient 2 C (C^T w - z) for a batch w (n, c); through the Gram matrix when given
    (one matmul), else through the residual (two matmuls, the more accurate form)."""
    if gram is not None:
        return lambda w: 2 * (w @ gram - Cz)
    return lambda w: 2 * ((w @ C - Z) @ C.T)


def _solve_prox(C, Z, Cz, lam, scale, init, aux, cfg):
    lipschitz, gram = aux
    grad = _full_grad(C, Z, Cz, gram)
    w0 = jnp.zeros_like(Cz) if init is None else init
    g0 = -2 * Cz if init is None else grad(w0)
    step = jnp.broadcast_to(1 / lipschitz, lam.shape).astype(Z.dtype)
    w, g, _, iters, _ = _prox_grad(grad, w0, g0, lam, step, scale, cfg.tol, cfg.max_iter,
                                   accelerate=cfg.method == "fista")
    return _finish(C, Z, lam, w, g, scale, iters, cfg.tol)


def _solve_admm(C, Z, Cz, lam, scale, init, aux, cfg):
    q_inv, gram, rho = aux
    grad = _full_grad(C, Z, Cz, gram)
    lam_c = lam[:, None]
    n = Z.shape[0]
    if init is None:  # deterministic cold start: x = v = u = 0
        v = jnp.zeros_like(Cz)
        g = -2 * Cz
        u = jnp.zeros_like(Cz)
    else:  # warm start at the fixed point implied by v: u = -grad(v) / rho
        v = init
        g = grad(v)
        u = -g / rho
    kkt = _kkt(v, g, lam, scale)

    def cond(s):
        return (s[0] < cfg.max_iter) & ~jnp.all(s[-1])

    def body(s):
        it, v, u, g, kkt, iters, stop = s
        # x = Q^-1 (2 C z + rho (v - u)), written as a correction of v: the same value,
        # but float32 errors in Q^-1 scale with the correction, which vanishes at the end.
        x = v - (g + rho * u) @ q_inv  # Q^-1 is symmetric
        vn = jnp.maximum(x + u - lam_c / rho, 0)
        un = u + x - vn
        gn = grad(vn)
        kn = _kkt(vn, gn, lam, scale)
        live = ~stop
        lv = live[:, None]
        return (it + 1, jnp.where(lv, vn, v), jnp.where(lv, un, u), jnp.where(lv, gn, g),
                jnp.where(live, kn, kkt), iters + live.astype(jnp.int32),
                stop | (live & (kn <= cfg.tol)))

    state = (jnp.int32(0), v, u, g, kkt, jnp.zeros((n,), jnp.int32), kkt <= cfg.tol)
    _, v, _, g, _, iters, _ = lax.while_loop(cond, body, state)
    return _finish(C, Z, lam, v, g, scale, iters, cfg.tol)


# --------------------------------------------------------------------------------------
# Working-set solver
# --------------------------------------------------------------------------------------


class _WS(NamedTuple):
    """Per-example working sets of K slots (the first axis of every field is the example).

    idx, valid: (n, K) atom in each slot and whether the slot is in use.
    w: (n, K) slot weights. G: (n, K, K) Gram matrix of the slots.
    gidx: (n, K) full-dictionary gradient at the slots, from the last KKT check.
    lo, nslot: (n,) slots [0, nslot) are in use; [lo, nslot) still need Gram rows.
    u: (n, d) reconstruction C^T w. kkt, scale: (n,). iters: (n,) inner iterations.
    """

    idx: jax.Array
    valid: jax.Array
    w: jax.Array
    G: jax.Array
    gidx: jax.Array
    lo: jax.Array
    nslot: jax.Array
    u: jax.Array
    kkt: jax.Array
    scale: jax.Array
    iters: jax.Array


def _lmax(G, valid, iters=12):
    """Upper estimate of the largest eigenvalue of each masked Gram G (m, k, k), (m,)."""
    v = valid.astype(G.dtype)
    v = l2_normalize(v, axis=1, eps=_TINY)

    def body(_, v):
        v = jnp.einsum("mkj,mj->mk", G, v)
        return l2_normalize(v, axis=1, eps=_TINY)

    v = lax.fori_loop(0, iters, body, v)
    rayleigh = jnp.sum(v * jnp.einsum("mkj,mj->mk", G, v), axis=1)
    gershgorin = jnp.max(jnp.sum(jnp.abs(G), axis=2), axis=1)
    return jnp.maximum(jnp.minimum(gershgorin, 1.1 * rayleigh), _TINY)


def _restricted_solve(G, b, w, valid, lam, scale, done, tol, max_iter):
    """FISTA on min_{w >= 0} w^T G w - 2 b^T w + lam sum(w) over the valid slots.

    G: (m, k, k); b, w: (m, k); valid: (m, k) bool; lam, scale: (m,); done: (m,) bool.
    """
    def grad(x):
        return 2 * (jnp.einsum("mkj,mj->mk", G, x) - b)

    step = 1 / (2 * _lmax(G, valid))
    w, _, _, iters, _ = _prox_grad(grad, w, grad(w), lam, step, scale, tol, max_iter,
                                   accelerate=True, mask=valid, done=done)
    return w, iters


def _over_rows(state, order, count, block, fn):
    """state = fn(rows, state) for consecutive blocks of `order` covering its first count."""
    def body(i, s):
        return fn(lax.dynamic_slice_in_dim(order, i * block, block), s)

    return lax.fori_loop(0, (count + block - 1) // block, body, state)


def _set_slots(x, pos, val):
    """x[i, pos[i, j]] = val[i, j] per row; positions >= x.shape[1] are dropped."""
    return jax.vmap(lambda xi, pi, vi: xi.at[pi].set(vi, mode="drop"))(x, pos, val)


def _gram_update(G, A, valid, lo, nslot):
    """Fill the Gram rows and columns of slots [lo, nslot) of each row, _CHUNK at a time.

    G: (m, k, k); A: (m, k, d) slot atoms; valid: (m, k); lo, nslot: (m,).
    """
    m, k, _ = A.shape
    chunks = jnp.max((nslot - lo + _CHUNK - 1) // _CHUNK)

    def body(j, G):
        pos = lo[:, None] + j * _CHUNK + jnp.arange(_CHUNK)[None, :]  # (m, CHUNK)
        ok = pos < nslot[:, None]
        A_new = jnp.take_along_axis(A, jnp.minimum(pos, k - 1)[:, :, None], axis=1)
        R = jnp.einsum("mkd,mad->mka", A, A_new) * (valid[:, :, None] & ok[:, None, :])
        pos = jnp.where(ok, pos, k)  # dropped
        G = jax.vmap(lambda g, p, r: g.at[:, p].set(r, mode="drop"))(G, pos, R)
        return jax.vmap(lambda g, p, r: g.at[p, :].set(r.T, mode="drop"))(G, pos, R)

    return lax.fori_loop(0, chunks, body, G)


def _solve_working_set(C, Z, lam, init, aux, cfg):
    """Working-set solver (module docstring). C: (c, d), Z: (n, d), lam: (n,).

    aux = (norms2, gram). norms2: (c,) squared atom norms, rounded once from float64:
    the diagonal of every small Gram matrix (float32 dot products are least accurate
    there). gram: (c, c) C C^T, or None to compute each example's Gram rows itself.

    Each round is one full KKT check of every unconverged example (gradient
    2 (u - z) C^T, one matmul) that appends its worst violators to its slots, then a
    restricted solve of those examples. Unconverged rows are moved to the front first,
    so a round costs in proportion to the examples still running. The restricted
    linear term is re-derived from the full gradient every round (iterative
    refinement): float32 rounding in the small Gram matrices then only slows the
    rounds down instead of limiting the final accuracy.
    """
    n, d = Z.shape
    norms2, gram = aux
    K, nb, nbc = cfg.cap, cfg.block, cfg.check_block
    tol, inner_tol = cfg.tol, 0.25 * cfg.tol  # margin for Gram rounding: fewer refinements
    dtype = Z.dtype
    lam_c = lam[:, None]

    s = _WS(idx=jnp.zeros((n, K), jnp.int32), valid=jnp.zeros((n, K), bool),
            w=jnp.zeros((n, K), dtype),
            G=jnp.zeros((n, K, K) if gram is None else (n, 1, 1), dtype),
            gidx=jnp.zeros((n, K), dtype), lo=jnp.zeros((n,), jnp.int32),
            nslot=jnp.zeros((n,), jnp.int32), u=jnp.zeros((n, d), dtype),
            kkt=jnp.full((n,), jnp.inf, dtype), scale=jnp.ones((n,), dtype),
            iters=jnp.zeros((n,), jnp.int32))
    # Zero rows (the bucket's padding) are solved by w = 0: converged before the first check.
    zero = jnp.all(Z == 0, axis=1) & (jnp.all(init == 0, axis=1) if cfg.has_init else True)
    s = s._replace(kkt=jnp.where(zero, 0, s.kkt))
    if cfg.has_init:  # the support of init fills the first slots
        vals, top = lax.top_k(init, K)
        ok = vals > 0
        s = s._replace(idx=jnp.where(ok, top, 0), valid=ok, w=vals * ok,
                       nslot=jnp.sum(ok, axis=1).astype(jnp.int32), u=init @ C)

        def scale_of(rows, s):
            sc = jnp.maximum(2 * jnp.max(jnp.abs(Z[rows] @ C.T), axis=1), _TINY)
            return s._replace(scale=s.scale.at[rows].set(sc))

        s = _over_rows(s, jnp.argsort(zero, stable=True).astype(jnp.int32), jnp.sum(~zero), nbc,
                       scale_of)

    def check(rows, s, first):
        """Full-dictionary KKT check of `rows`; appends their worst violators as slots."""
        lam_b = lam_c[rows]
        idx, valid, w, nslot = s.idx[rows], s.valid[rows], s.w[rows], s.nslot[rows]
        g = 2 * ((s.u[rows] - Z[rows]) @ C.T)  # (m, c)
        scale = s.scale[rows]
        if not cfg.has_init:  # at the first check u = 0, so g = -2 C z
            scale = jnp.where(first, jnp.maximum(jnp.max(jnp.abs(g), axis=1), _TINY), scale)
        viol = -(g + lam_b)
        gi = jnp.take_along_axis(g, idx, 1)
        k_in = jnp.max(jnp.where(valid, jnp.abs(jnp.minimum(w, gi + lam_b)), 0), axis=1)
        kkt = jnp.maximum(jnp.maximum(jnp.max(viol, axis=1), 0), k_in) / scale
        conv = kkt <= tol
        # The worst violators that are not slots yet, then near-violators (within
        # _NEAR lam of violating: likely to violate once the residual moves), as many as
        # allowed and as fit.
        extra = min(16, C.shape[0] - cfg.select)
        vals, cand = lax.top_k(viol, cfg.select + extra)
        dup = jnp.any(cand[:, :, None] == jnp.where(valid, idx, -1)[:, None, :], axis=2)
        vals, j = lax.top_k(jnp.where(dup, -jnp.inf, vals), cfg.select)
        new = jnp.take_along_axis(cand, j, 1)
        rank = jnp.arange(cfg.select)[None, :]
        limit = jnp.where(first, cfg.select, cfg.add)
        new_ok = ((vals > -_NEAR * lam_b) & ~conv[:, None] & (rank < limit)
                  & (rank < (K - nslot)[:, None]))  # a prefix of each row
        pos = jnp.where(new_ok, nslot[:, None] + rank, K)
        idx = _set_slots(idx, pos, new)
        valid = _set_slots(valid, pos, new_ok)
        gi = _set_slots(gi, pos, jnp.take_along_axis(g, new, 1))
        lo = jnp.where(first, 0, nslot)  # the first time, the init slots need Gram rows too
        nslot = nslot + jnp.sum(new_ok, axis=1).astype(jnp.int32)
        return s._replace(idx=s.idx.at[rows].set(idx), valid=s.valid.at[rows].set(valid),
                          gidx=s.gidx.at[rows].set(gi), lo=s.lo.at[rows].set(lo),
                          nslot=s.nslot.at[rows].set(nslot), kkt=s.kkt.at[rows].set(kkt),
                          scale=s.scale.at[rows].set(scale))

    def inner(rows, s):
        """For one block of rows: Gram rows of the new slots, the refined linear term,
        restricted FISTA, and the reconstruction u = C^T w."""
        idx, valid, w, G = s.idx[rows], s.valid[rows], s.w[rows], s.G[rows]
        done = s.kkt[rows] <= tol
        if gram is None:  # fill in the Gram rows of the new slots from the atoms
            A = jnp.take(C, idx, axis=0)  # (m, K, d)
            G = _gram_update(G, A, valid, s.lo[rows], jnp.where(done, s.lo[rows], s.nslot[rows]))
            Gs = G
        else:  # gather the slots' Gram matrix from the dictionary's
            Gs = gram[idx[:, :, None], idx[:, None, :]] * (valid[:, :, None] & valid[:, None, :])
        Gs = jnp.where(jnp.eye(K, dtype=bool), (norms2[idx] * valid)[:, :, None], Gs)
        b = jnp.einsum("mkj,mj->mk", Gs, w) - 0.5 * s.gidx[rows]
        w, it = _restricted_solve(Gs, b, w, valid, lam[rows], s.scale[rows], done, inner_tol,
                                  cfg.max_iter)
        if gram is None:
            u = jnp.einsum("mk,mkd->md", w, A)
        else:  # only the slots in use: gathered _CHUNK at a time
            used = jnp.max(jnp.where(done, 0, s.nslot[rows]))

            ch = _CHUNK if K % _CHUNK == 0 else K

            def add_chunk(j, u):
                sl = lambda x: lax.dynamic_slice_in_dim(x, j * ch, ch, axis=1)
                return u + jnp.einsum("mk,mkd->md", sl(w), jnp.take(C, sl(idx), axis=0))

            u = lax.fori_loop(0, (used + ch - 1) // ch, add_chunk,
                              jnp.zeros((idx.shape[0], d), dtype))
            u = jnp.where(done[:, None], s.u[rows], u)
        return s._replace(G=s.G.at[rows].set(G), w=s.w.at[rows].set(w), u=s.u.at[rows].set(u),
                          iters=s.iters.at[rows].add(it))

    def active(s):
        """Unconverged rows first; their count."""
        conv = s.kkt <= tol
        return jnp.argsort(conv, stable=True).astype(jnp.int32), jnp.sum(~conv)

    def cond(carry):
        r, s = carry
        return (r == 0) | ((r <= cfg.rounds) & jnp.any(s.kkt > tol))

    def body(carry):
        """A full KKT check of the unconverged rows, then a restricted solve of those still
        unconverged (not in the last round: its check is the final one)."""
        r, s = carry
        order, count = active(s)
        s = _over_rows(s, order, count, nbc, functools.partial(check, first=r == 0))
        order, count = active(s)
        s = _over_rows(s, order, jnp.where(r < cfg.rounds, count, 0), nb, inner)
        return r + 1, s

    _, s = lax.while_loop(cond, body, (jnp.int32(0), s))
    w = jnp.where(s.valid & (jnp.arange(K) < s.nslot[:, None]), s.w, 0)
    rows = jnp.arange(n)[:, None]
    w_dense = jnp.zeros((n, C.shape[0]), dtype).at[rows, s.idx].add(w)
    r = s.u - Z
    return dict(weights=w_dense, objective=jnp.sum(r * r, axis=1) + lam * jnp.sum(w, axis=1),
                l0=jnp.sum(w > 0, axis=1).astype(jnp.int32), kkt=s.kkt, iterations=s.iters,
                converged=s.kkt <= tol)


_SOLVERS = {"fista": _solve_prox, "ista": _solve_prox, "admm": _solve_admm}


def _solve_chunk(C, Z, lam, init, aux, tol, max_iter, *, cfg):
    """One chunk (or one device's shard of it). C: (c, d); Z: (n, d); lam: (n,).

    tol and max_iter are traced scalars: changing them does not recompile.
    """
    cfg = dataclasses.replace(cfg, tol=tol, max_iter=max_iter)
    n = Z.shape[0]
    init = init if cfg.has_init else None
    if cfg.method == "working_set":  # KKT checks in blocks of a multiple of cfg.block rows
        cfg = dataclasses.replace(cfg, check_block=cfg.block * max(1, min(128, n) // cfg.block))
        pad = -n % cfg.check_block
        if pad:  # zero rows are solved by w = 0 at once
            Z = jnp.pad(Z, ((0, pad), (0, 0)))
            lam = jnp.pad(lam, (0, pad), constant_values=1)
            init = None if init is None else jnp.pad(init, ((0, pad), (0, 0)))
        out = _solve_working_set(C, Z, lam, init, aux, cfg)
    else:
        Cz = Z @ C.T
        scale = jnp.maximum(2 * jnp.max(jnp.abs(Cz), axis=1), _TINY)
        out = _SOLVERS[cfg.method](C, Z, Cz, lam, scale, init, aux, cfg)
    return {k: v[:n] for k, v in out.items()}


@functools.lru_cache(maxsize=None)
def _mesh(n_devices):
    """The 1-D "data" mesh of the first n_devices devices: replicated and row shardings."""
    mesh = Mesh(np.asarray(jax.devices()[:n_devices]), ("data",))
    return mesh, NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))


@functools.partial(jax.jit, static_argnames=("cfg", "n_devices"))
def _solve(C, Z, lam, init, aux, tol, max_iter, *, cfg, n_devices):
    """Every solve runs through this one jitted function: one program per (cfg, n_devices)
    and input shapes, shared by all callers. Rows are sharded over the mesh ("data"), the
    dictionary and aux replicated. C: (c, d); Z: (n, d); lam: (n,); init: (n, c) or a
    (n, 1) placeholder; tol, max_iter: scalars. Returns a dict of (n, ...) arrays."""
    if n_devices == 1:  # the same program without the mesh: quicker to trace and lower
        return _solve_chunk(C, Z, lam, init, aux, tol, max_iter, cfg=cfg)
    fn = jax.shard_map(functools.partial(_solve_chunk, cfg=cfg), mesh=_mesh(n_devices)[0],
                       in_specs=(P(), P("data"), P("data"), P("data"), P(), P(), P()),
                       out_specs=P("data"), check_vma=False)
    return fn(C, Z, lam, init, aux, tol, max_iter)


@functools.partial(jax.jit, static_argnames=("method", "use_gram"))
def _dictionary_aux(C, rho, method, use_gram):
    """Per-dictionary precomputation, done once for all chunks.

    ADMM: Q = 2 C C^T + rho I is Cholesky-factored once and Q^-1 formed from the factor
    (on CPU one (n, c) x (c, c) matmul per iteration is far faster than two batched
    triangular solves; Q is well conditioned for rho ~ ||C||^2).
    """
    gram = C @ C.T if (use_gram or method == "admm") else None
    if method == "admm":
        eye = jnp.eye(C.shape[0], dtype=C.dtype)
        q_inv = jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(2 * gram + rho * eye), True), eye)
        return 0.5 * (q_inv + q_inv.T), gram if use_gram else None, rho
    if method in ("fista", "ista"):
        return _lipschitz(C), gram
    return None


_CACHE = {}  # the last dictionary seen: its key and precomputed pieces


def _dictionary(C, dtype, method, rho, use_gram, n_devices):
    """The dictionary on the devices (replicated) and the method's precomputed pieces (aux),
    cached for the last dictionary seen (repeated calls, e.g. by lambda_for_l0, reuse C C^T)."""
    key = (C.shape, str(dtype), n_devices,
           hashlib.blake2b(np.ascontiguousarray(C).view(np.uint8), digest_size=16).hexdigest())
    replicated = _mesh(n_devices)[1]
    if _CACHE.get("key") != key:
        _CACHE.clear()
        _CACHE["key"] = key
        _CACHE["C"] = jax.device_put(C.astype(dtype), replicated)
    Cj = _CACHE["C"]
    if method == "working_set":
        if "norms2" not in _CACHE:  # summed in float64, rounded once
            C64 = np.asarray(C, np.float64)
            _CACHE["norms2"] = jax.device_put(np.einsum("cd,cd->c", C64, C64).astype(dtype),
                                              replicated)
        aux_key = ("working_set", use_gram)
        if aux_key not in _CACHE:
            _CACHE[aux_key] = (_CACHE["norms2"], _gram(Cj) if use_gram else None)
    else:
        aux_key = (method, use_gram, rho if method == "admm" else None)
        if aux_key not in _CACHE:
            _CACHE[aux_key] = _dictionary_aux(Cj, jnp.asarray(rho, dtype), method, use_gram)
    return Cj, _CACHE[aux_key]


@jax.jit
def _gram(C):
    return C @ C.T


# --------------------------------------------------------------------------------------
# Public driver
# --------------------------------------------------------------------------------------


def _bad_rows(x):
    return np.flatnonzero(~np.isfinite(x).all(axis=1))


_describe_rows = checks.describe_rows


def _validate(dictionary, embeddings, l1, method, init, tol, max_iter, chunk_size, rho):
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    C = np.asarray(dictionary)
    Z = np.asarray(embeddings)
    if C.ndim != 2:
        raise ValueError(f"dictionary must have shape (c, d), got shape {C.shape}")
    if Z.ndim != 2:
        raise ValueError(f"embeddings must have shape (n, d), got shape {Z.shape}")
    if C.shape[0] == 0:
        raise ValueError(f"empty dictionary: shape {C.shape} has no concepts (c == 0)")
    if C.shape[1] != Z.shape[1]:
        raise ValueError(f"dimension mismatch: dictionary has shape {C.shape} (c, d) but "
                         f"embeddings have shape {Z.shape} (n, d)")
    for name, x in (("dictionary", C), ("embeddings", Z)):
        checks.check_array(name, x)  # NaN/inf or |x| >= 1e15 (float32 overflow), by row
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
        if init.shape != (Z.shape[0], C.shape[0]):
            raise ValueError(f"init must have shape (n, c) = {(Z.shape[0], C.shape[0])}, "
                             f"got shape {init.shape}")
        bad = _bad_rows(init)
        if bad.size:
            raise ValueError(f"init contains NaN or inf in row(s) {_describe_rows(bad)}")
        if (init < 0).any():
            raise ValueError("init must be nonnegative")
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol}")
    if max_iter is not None and max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    if not rho > 0:
        raise ValueError(f"rho must be > 0, got {rho}")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return C, Z, lam, init


def _ws_config(base, select, cap, c):
    """Working-set sizes, bucketed (sparse.buckets.slots): `select` first atoms, select / 2
    more per round, cap slots. c: dictionary size."""
    select = buckets.slots(select, c)
    cap = buckets.slots(max(cap, select), c)
    add = max(select // 2, 1)
    rounds = -(-(cap - select) // add) + 3  # additions, then refinement-only rounds
    block = int(np.clip(2 ** int(np.log2(max(2 ** 18 // cap ** 2, 1))), 4, 64))
    return dataclasses.replace(base, select=select, add=add, cap=cap, rounds=rounds, block=block)


def _run(cfg, C, aux, Z, lam, init, n_devices, tol, max_iter, rows=1):
    """Solve rows Z (m, d), lam (m,), init (m, c) or None in one call of ``_solve``. The rows
    are padded with zero rows (solved by w = 0 at once) to the bucket of max(m, rows)
    (sparse.buckets.rows), and the padding is cut off on the host. Returns a dict of NumPy
    (m, ...) arrays."""
    m = Z.shape[0]
    pad = buckets.rows(max(m, rows), n_devices) - m
    dtype = C.dtype
    Zp = np.pad(Z, ((0, pad), (0, 0))).astype(dtype)
    lp = np.pad(lam, (0, pad), constant_values=1).astype(dtype)
    # Without a warm start a (m, 1) placeholder is passed and ignored (cfg.has_init).
    ip = (np.zeros((m + pad, 1), dtype) if init is None
          else np.pad(init, ((0, pad), (0, 0))).astype(dtype))
    _, _, sharded = _mesh(n_devices)
    out = _solve(C, jax.device_put(Zp, sharded), jax.device_put(lp, sharded),
                 jax.device_put(ip, sharded),
                 aux, np.asarray(tol, dtype), np.int32(max_iter),
                 cfg=dataclasses.replace(cfg, has_init=init is not None), n_devices=n_devices)
    return {k: np.asarray(v)[:m].copy() for k, v in out.items()}  # writable host copies


def nonneg_lasso(dictionary, embeddings, l1, method="working_set", tol=1e-6, max_iter=None,
                 init=None, chunk_size=None, *, rho=1.0, working_set=None, gram=None):
    """Solve min_{w >= 0} ||C^T w - z||^2 + l1 ||w||_1 for every row z of ``embeddings``.

    Args:
      dictionary: (c, d) concepts as rows.
      embeddings: (n, d).
      l1: lam >= 0, a number or (n,) (one per embedding).
      method: "working_set" (default), "fista", "ista" or "admm" (module docstring).
      tol: stop when the scaled KKT residual (module docstring) is <= tol.
      max_iter: iteration cap (per round for "working_set"); default 10,000.
      init: optional (n, c) nonnegative warm start.
      chunk_size: rows per chunk (memory bound; padded to its row bucket, a power of two,
        sparse.buckets.rows); default min(n, 4096).
      rho: ADMM penalty.
      working_set: atoms in each example's first working set ("working_set" only;
        rounded up to a power of two; it holds up to twice that). None: 64 at first,
        then learned from the L0 of the solutions so far (the first 256 rows of a large
        first chunk are solved apart to learn it early).
      gram: use the (c, c) Gram matrix C C^T (computed once per dictionary and cached);
        None: when it is cheaper (module docstring).
    Returns:
      LassoResult of NumPy arrays (see its docstring). Rows that did not converge are counted
      and logged with the worst KKT residual (``sparse.checks.report_convergence``).
    Raises:
      ValueError naming the input: NaN/inf or magnitudes >= 1e15 in ``dictionary`` or
      ``embeddings`` (float32 overflow), bad shapes, l1 < 0 or >= 1e30.
    """
    C, Z, lam, init = _validate(dictionary, embeddings, l1, method, init, tol, max_iter,
                                chunk_size, rho)
    dtype = jax.dtypes.canonicalize_dtype(np.result_type(C.dtype, Z.dtype, np.float32))
    n, d = Z.shape
    c = C.shape[0]
    if n == 0:
        return LassoResult(np.zeros((0, c), dtype), np.zeros((0,), dtype),
                           np.zeros((0,), np.int32), np.zeros((0,), dtype),
                           np.zeros((0,), np.int32), np.zeros((0,), bool))
    max_iter = 10_000 if max_iter is None else int(max_iter)
    if method == "working_set":
        # The full Gram matrix C C^T pays when it costs less than the examples' own
        # Gram rows (about n cap^2 d flops) and fits in memory. n is taken at its bucket,
        # so that all row counts of a bucket share one program.
        use_gram = (2 * c * c < buckets.rows(n) * (2 * (working_set or 64)) ** 2
                    and c * c * 4 <= _MAX_GRAM_BYTES if gram is None else bool(gram))
    else:
        use_gram = c <= 2 * d if gram is None else bool(gram)  # one matmul per gradient
    cfg = _Config(method=method, use_gram=use_gram)
    n_devices = len(jax.devices())
    Cj, aux = _dictionary(C, dtype, method, float(rho), use_gram, n_devices)
    run = functools.partial(_run, n_devices=n_devices, tol=float(tol), max_iter=max_iter)
    chunk = min(n, chunk_size or _DEFAULT_CHUNK)
    chunk += -chunk % n_devices

    parts = []
    select = 64  # working_set=None: first guess, then learned
    for start in range(0, n, chunk):
        sl = slice(start, start + chunk)
        Zc, lc = Z[sl], lam[sl]
        ic = None if init is None else init[sl]
        if Zc.shape[0] < chunk and n > chunk:  # pad the last chunk: no recompilation
            extra = chunk - Zc.shape[0]
            Zc = np.pad(Zc, ((0, extra), (0, 0)))
            lc = np.pad(lc, (0, extra), constant_values=1)
            ic = None if ic is None else np.pad(ic, ((0, extra), (0, 0)))
        real = min(chunk, n - start)
        if method != "working_set":
            out = run(cfg, Cj, aux, Zc, lc, ic)
        elif working_set is not None:
            out = _run_working_set(run, cfg, Cj, aux, Zc, lc, ic, working_set)
        else:  # learn the working-set size from the solutions' L0
            probe = _PROBE if start == 0 and real >= 4 * _PROBE else 0
            outs = []
            for a, b in ((0, probe), (probe, Zc.shape[0])):
                if b > a:  # the probe takes the rest's row bucket: one program if select stays
                    outs.append(_run_working_set(run, cfg, Cj, aux, Zc[a:b], lc[a:b],
                                                 None if ic is None else ic[a:b], select,
                                                 rows=Zc.shape[0] - probe))
                    select = _select_for(np.concatenate([o["l0"] for o in outs])[:real])
            out = {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
        parts.append({k: v[:real] for k, v in out.items()})
    res = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    checks.report_convergence(res["converged"], res["kkt"], tol)  # logged (sparse.checks)
    return LassoResult(**res)


def _select_for(l0):
    """Working-set size for examples like these: a power of two near 0.8 x the 99th
    percentile of their L0 (the first set plus later additions then hold the support)."""
    q = np.percentile(l0, 99) if l0.size else 0
    return int(np.clip(1 << int(np.ceil(np.log2(max(0.8 * q, 1)))), 32, 256))


def _run_working_set(run, cfg, C, aux, Z, lam, init, select, rows=1):
    """Working-set solve (padded to the row bucket of at least `rows`); unconverged rows are
    re-solved warm with twice the slots."""
    c = C.shape[0]
    cap = 2 * select
    if init is not None:  # the support of init must fit, with room to grow
        cap = max(cap, int((init > 0).sum(axis=1).max()) + select)
    wcfg = _ws_config(cfg, select, cap, c)
    out = run(wcfg, C, aux, Z, lam, init, rows=rows)
    while True:
        todo = np.flatnonzero(~out["converged"])
        if todo.size == 0 or wcfg.cap >= min(c, _MAX_CAPACITY):
            return out
        wcfg = _ws_config(cfg, select, 2 * wcfg.cap, c)
        redo = run(wcfg, C, aux, Z[todo], lam[todo], out["weights"][todo])  # rows bucketed
        redo["iterations"] = redo["iterations"] + out["iterations"][todo]
        for k in out:
            out[k][todo] = redo[k]


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
    scale = np.maximum(2 * np.abs(cz).max(1), _TINY)
    return np.abs(np.minimum(w, g + lam)).max(1) / scale
