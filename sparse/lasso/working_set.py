"""The working-set method (``method="working_set"``, the default; fast on CPU).

A batched working-set method, all inside one jit: every example keeps up to ``cap``
candidate atoms ("slots"). A round is one KKT check on the FULL dictionary (the gradient
2 (C^T w - z) C^T: one (m, d) x (d, c) matmul for the m examples not converged yet), which
appends the worst violators (then near-violators, within 0.1 lam) to each example's slots,
followed by FISTA with adaptive restart on the restricted problem, using the example's own
(cap, cap) Gram matrix and its own step 1 / L (power iteration). The first check takes the
atoms most correlated with z (or the support of ``init``). Rounds stop when every example
passes its check. The restricted linear term is re-derived from the full gradient every
round (iterative refinement), so float32 rounding in the small Gram matrices cannot stall
convergence. Unconverged examples are gathered in front before each pass: a round costs in
proportion to the examples still running. The Gram rows come from the atoms themselves, or
from C C^T when that is cheaper (``gram``; the driver decides, ``sparse.lasso.driver``).
Examples that run out of slots are re-solved, warm, with twice the capacity (by the driver).

Sizes are bucketed (``sparse.lasso.buckets.slots``) so that few programs compile. The
dictionary's precomputation (:func:`squared_norms`, :func:`gram_matrix`) is kept by
``sparse.lasso.prepared.PreparedDictionary``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from clap_jax.linalg import l2_normalize
from sparse.lasso import buckets
from sparse.lasso.full import prox_grad
from sparse.lasso.problem import TINY

_NEAR = 0.1  # atoms this close to violating KKT (relative to lam) may join
_EXTRA = 16  # see check(): how far down the near-violators, slots included, new atoms may rank
_CHUNK = 32  # Gram rows of new slots are filled this many at a time


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
    v = l2_normalize(v, axis=1, eps=TINY)

    def body(_, v):
        v = jnp.einsum("mkj,mj->mk", G, v)
        return l2_normalize(v, axis=1, eps=TINY)

    v = lax.fori_loop(0, iters, body, v)
    rayleigh = jnp.sum(v * jnp.einsum("mkj,mj->mk", G, v), axis=1)
    gershgorin = jnp.max(jnp.sum(jnp.abs(G), axis=2), axis=1)
    return jnp.maximum(jnp.minimum(gershgorin, 1.1 * rayleigh), TINY)


def _restricted_solve(G, b, w, valid, lam, scale, done, tol, max_iter):
    """FISTA on min_{w >= 0} w^T G w - 2 b^T w + lam sum(w) over the valid slots.

    G: (m, k, k); b, w: (m, k); valid: (m, k) bool; lam, scale: (m,); done: (m,) bool.
    """
    def grad(x):
        return 2 * (jnp.einsum("mkj,mj->mk", G, x) - b)

    step = 1 / (2 * _lmax(G, valid))
    w, _, _, iters, _ = prox_grad(grad, w, grad(w), lam, step, scale, tol, max_iter,
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


def solve_working_set(C, Z, lam, init, aux, cfg):
    """Working-set solver (module docstring). C: (c, d), Z: (n, d), lam: (n,);
    init: (n, c) or None; cfg: static config (sizes from :func:`ws_config`).

    aux = (norms2, gram). norms2: (c,) squared atom norms, rounded once from float64:
    the diagonal of every small Gram matrix (float32 dot products are least accurate
    there). gram: (c, c) C C^T (:func:`gram_matrix`), or None to compute each example's
    Gram rows itself.

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
            sc = jnp.maximum(2 * jnp.max(jnp.abs(Z[rows] @ C.T), axis=1), TINY)
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
            scale = jnp.where(first, jnp.maximum(jnp.max(jnp.abs(g), axis=1), TINY), scale)
        viol = -(g + lam_b)
        gi = jnp.take_along_axis(g, idx, 1)
        k_in = jnp.max(jnp.where(valid, jnp.abs(jnp.minimum(w, gi + lam_b)), 0), axis=1)
        kkt = jnp.maximum(jnp.maximum(jnp.max(viol, axis=1), 0), k_in) / scale
        conv = kkt <= tol
        # The worst violators that are not slots yet, then near-violators (within _NEAR lam of
        # violating: likely to violate once the residual moves), as many as allowed and as fit,
        # and only those among the select + _EXTRA atoms nearest to violating, slots included
        # (near-violators fill a working set only while its support is small). Slots and atoms
        # further than _NEAR lam from violating are set to -inf before top_k: that also makes it
        # far cheaper on CPU, where its cost grows with the finite entries (27 ms -> 8 ms for
        # k = 48 over 2048 x 2000 here; masking the slots too: 45 -> 28 ms per benchmark solve).
        near = viol > -_NEAR * lam_b
        slot = jnp.zeros(g.shape, bool).at[jnp.arange(idx.shape[0])[:, None],
                                           jnp.where(valid, idx, g.shape[1])].set(True, mode="drop")
        vals, new = lax.top_k(jnp.where(near & ~slot, viol, -jnp.inf), cfg.select)
        viol_in = jnp.where(valid & (-(gi + lam_b) > -_NEAR * lam_b), -(gi + lam_b), -jnp.inf)
        ahead = jnp.sum(viol_in[:, None, :] > vals[:, :, None], axis=2)  # (m, select) near slots
        rank = jnp.arange(cfg.select)[None, :]
        depth = cfg.select + min(_EXTRA, C.shape[0] - cfg.select)
        new_ok = (vals > -_NEAR * lam_b) & (rank + ahead < depth)
        limit = jnp.where(first, cfg.select, cfg.add)
        new_ok &= ~conv[:, None] & (rank < limit) & (rank < (K - nslot)[:, None])  # a prefix
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


def ws_config(base, select, cap, c):
    """Working-set sizes, bucketed (sparse.lasso.buckets.slots): `select` first atoms,
    select / 2 more per round, cap slots. base: the driver's static config; c: dictionary
    size."""
    select = buckets.slots(select, c)
    cap = buckets.slots(max(cap, select), c)
    add = max(select // 2, 1)
    rounds = -(-(cap - select) // add) + 3  # additions, then refinement-only rounds
    block = int(np.clip(2 ** int(np.log2(max(2 ** 18 // cap ** 2, 1))), 4, 64))
    return dataclasses.replace(base, select=select, add=add, cap=cap, rounds=rounds, block=block)


def squared_norms(C, dtype):
    """(c,) squared atom norms of the host dictionary C (c, d), summed in float64 and rounded
    once to dtype: the diagonal of every small Gram matrix."""
    C64 = np.asarray(C, np.float64)
    return np.einsum("cd,cd->c", C64, C64).astype(dtype)


@jax.jit
def gram_matrix(C):
    """C C^T (c, c) of the device dictionary C (c, d)."""
    return C @ C.T
