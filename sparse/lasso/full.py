"""Full-dictionary solvers: ISTA / FISTA (projected proximal gradient) and the SpLiCE ADMM.

Every iteration works on all c atoms of every example (problem and KKT residual:
``sparse.lasso.problem``):

``"fista"``
    Plain FISTA over the whole dictionary, step 1 / L with L = 2 ||C||_2^2 (computed
    once per dictionary, :func:`dictionary_aux`), O'Donoghue-Candes gradient restart.
``"ista"``
    Plain projected proximal gradient over the whole dictionary, same step.
``"admm"``
    The SpLiCE ADMM (splice/admm.py): Q = 2 C C^T + rho I is Cholesky-factored once
    (and Q^-1 formed from the factor); x <- Q^-1 (2 C z + rho (v - u));
    v <- max(0, x + u - lam / rho); u <- u + x - v.
    Deterministic start (zeros), per-example stopping on the KKT residual of v.
    Cost per iteration is O(c^2 n): meant for small dictionaries / parity.

The gradient goes through the Gram matrix C C^T (one matmul) when the dictionary was prepared
with it, else through the residual (two matmuls). :func:`prox_grad` is also the restricted
solver of the working-set method (``sparse.lasso.working_set``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from sparse.lasso.problem import TINY, scaled_kkt


def prox_grad(grad, x, gx, lam, step, scale, tol, max_iter, accelerate, mask=None, done=None):
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
    kkt0 = scaled_kkt(x, gx, lam, scale, mask)
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
        kn = scaled_kkt(xn, gn, lam, scale, mask)
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
    return jnp.maximum(2 * jnp.linalg.eigvalsh(m)[-1] * (1 + 1e-4), TINY)


@functools.partial(jax.jit, static_argnames=("method", "use_gram"))
def dictionary_aux(C, rho, method, use_gram):
    """Per-dictionary precomputation of a full-dictionary method, done once
    (``sparse.lasso.prepared``). C: (c, d); rho: scalar (ADMM only).

    fista / ista: (L, gram or None). admm: (Q^-1, gram or None, rho): Q = 2 C C^T + rho I is
    Cholesky-factored once and Q^-1 formed from the factor (on CPU one (n, c) x (c, c) matmul
    per iteration is far faster than two batched triangular solves; Q is well conditioned for
    rho ~ ||C||^2).
    """
    gram = C @ C.T if (use_gram or method == "admm") else None
    if method == "admm":
        eye = jnp.eye(C.shape[0], dtype=C.dtype)
        q_inv = jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(2 * gram + rho * eye), True), eye)
        return 0.5 * (q_inv + q_inv.T), gram if use_gram else None, rho
    return _lipschitz(C), gram


def finish(C, Z, lam, w, g, scale, iters, tol):
    """Objective, L0 and the full-dictionary KKT residual of w (n, c) with gradient g."""
    r = w @ C - Z
    kkt = scaled_kkt(w, g, lam, scale)
    return dict(weights=w, objective=jnp.sum(r * r, axis=1) + lam * jnp.sum(w, axis=1),
                l0=jnp.sum(w > 0, axis=1).astype(jnp.int32), kkt=kkt,
                iterations=iters, converged=kkt <= tol)


def _full_grad(C, Z, Cz, gram):
    """Gradient 2 C (C^T w - z) for a batch w (n, c); through the Gram matrix when given
    (one matmul), else through the residual (two matmuls, the more accurate form)."""
    if gram is not None:
        return lambda w: 2 * (w @ gram - Cz)
    return lambda w: 2 * ((w @ C - Z) @ C.T)


def solve_prox(C, Z, Cz, lam, scale, init, aux, cfg):
    """ISTA / FISTA (cfg.method) from zeros or init (n, c). Cz: (n, c) Z C^T; aux from
    :func:`dictionary_aux`. Returns the result dict of :func:`finish`."""
    lipschitz, gram = aux
    grad = _full_grad(C, Z, Cz, gram)
    w0 = jnp.zeros_like(Cz) if init is None else init
    g0 = -2 * Cz if init is None else grad(w0)
    step = jnp.broadcast_to(1 / lipschitz, lam.shape).astype(Z.dtype)
    w, g, _, iters, _ = prox_grad(grad, w0, g0, lam, step, scale, cfg.tol, cfg.max_iter,
                                  accelerate=cfg.method == "fista")
    return finish(C, Z, lam, w, g, scale, iters, cfg.tol)


def solve_admm(C, Z, Cz, lam, scale, init, aux, cfg):
    """The SpLiCE ADMM (module docstring), arguments as :func:`solve_prox`."""
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
    kkt = scaled_kkt(v, g, lam, scale)

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
        kn = scaled_kkt(vn, gn, lam, scale)
        live = ~stop
        lv = live[:, None]
        return (it + 1, jnp.where(lv, vn, v), jnp.where(lv, un, u), jnp.where(lv, gn, g),
                jnp.where(live, kn, kkt), iters + live.astype(jnp.int32),
                stop | (live & (kn <= cfg.tol)))

    state = (jnp.int32(0), v, u, g, kkt, jnp.zeros((n,), jnp.int32), kkt <= cfg.tol)
    _, v, _, g, _, iters, _ = lax.while_loop(cond, body, state)
    return finish(C, Z, lam, v, g, scale, iters, cfg.tol)


SOLVERS = {"fista": solve_prox, "ista": solve_prox, "admm": solve_admm}
