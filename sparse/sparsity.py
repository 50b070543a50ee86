"""Choosing the l1 penalty lam for a wanted number of non-zero concepts (L0).

Neither A (arXiv 2504.14076) nor SpLiCE searches for lam; this is the extension of
methods.md A.9: bisection on log(lam), since L0 falls roughly monotonically as lam
grows. Every step re-solves all examples at once, warm-started from the previous
step's weights, so later steps cost little more than one KKT check.
"""

from __future__ import annotations

import numpy as np

from sparse.lasso import LassoResult, PreparedDictionary, nonneg_lasso, prepare
from sparse.lasso.problem import solver_dtype


def _lam_max(dictionary, embeddings):
    """Per example, the smallest lam with w = 0 optimal: 2 max_i (C z)_i. Returns (n,)."""
    C = np.asarray(dictionary, np.float64)
    Z = np.asarray(embeddings, np.float64)
    return 2 * np.maximum((Z @ C.T).max(axis=1), 0)


def lambda_for_l0(dictionary, embeddings, target_l0, per_example=False, *, l0_tol=0.5,
                  max_steps=40, lam_range=None, method=None, tol=1e-6, **kwargs):
    """Bisect lam (on a log scale) so that L0 hits target_l0.

    Without ``lam_range`` the search comes down from lam_max = 2 max_i (C z)_i (where
    w = 0), dividing lam by 4 until L0 exceeds the target, then bisects that bracket:
    the solutions it visits are never much denser than the target, which keeps the
    working sets (and the time) small.

    Args:
      dictionary: (c, d) concepts as rows, or a ``sparse.lasso.PreparedDictionary`` (reused;
        a plain array is prepared once for all the steps). embeddings: (n, d).
      target_l0: wanted number of non-zero weights (mean over the examples, or for every
        example when per_example=True).
      per_example: one lam per example, all bisected together (vectorized), instead of
        one lam shared by all examples that hits the mean L0.
      l0_tol: stop when |L0 - target| <= l0_tol (mean, or each example's).
      max_steps: solves at most. Each example keeps the lam whose L0 came closest to
        the target (ties: the larger lam, i.e. the sparser solution).
      lam_range: optional (low, high) bracket, numbers or (n,) arrays.
      method, tol, **kwargs: passed to sparse.nonneg_lasso (rho and gram: to
        sparse.lasso.prepare for a plain array).
    Returns:
      (lam, result): lam is a float, or (n,) when per_example; result is the
      LassoResult at that lam.
    """
    if target_l0 < 0:
        raise ValueError(f"target_l0 must be >= 0, got {target_l0}")
    Z = np.asarray(embeddings)
    if not isinstance(dictionary, PreparedDictionary):
        C = np.asarray(dictionary)
        dictionary = prepare(C, method or "working_set", dtype=solver_dtype(C, Z),
                             rho=kwargs.pop("rho", 1.0), gram=kwargs.pop("gram", None))
    C = dictionary.host
    n = Z.shape[0]
    if lam_range is None:
        lam_max = np.maximum(_lam_max(C, Z), 1e-12)
        hi = lam_max if per_example else np.full(n, lam_max.max())
        lo = np.zeros(n)  # not bracketed yet: go down from hi
    else:
        lo, hi = (np.broadcast_to(np.asarray(x, np.float64), (n,)).copy() for x in lam_range)
        if not ((0 < lo).all() and (lo < hi).all()):
            raise ValueError(f"lam_range must satisfy 0 < low < high, got {lam_range}")

    best_lam = hi.copy()
    best_err = np.full(n, np.inf)
    best = None
    init = None
    for _ in range(max_steps):
        mid = np.where(lo > 0, np.sqrt(lo * hi), hi / 4)
        res = nonneg_lasso(dictionary, Z, mid, method=method, tol=tol, init=init, **kwargs)
        init = res.weights
        l0 = res.l0.astype(np.float64)
        too_dense = (l0 > target_l0) if per_example else np.full(n, l0.mean() > target_l0)
        lo = np.where(too_dense, mid, lo)  # lam too small
        hi = np.where(too_dense, hi, mid)
        if per_example:
            err = np.abs(l0 - target_l0)
            better = (err < best_err) | ((err == best_err) & (mid > best_lam))
            best_lam = np.where(better, mid, best_lam)
            best_err = np.where(better, err, best_err)
            best = _merge(best, res, better)
            done = best_err <= l0_tol
            if done.all():
                break
            # Examples on target stay put: their next solves start from their solution.
            lo = np.where(done, best_lam, lo)
            hi = np.where(done, best_lam, hi)
        else:
            err = abs(l0.mean() - target_l0)
            if err < best_err[0] or (err == best_err[0] and mid[0] > best_lam[0]):
                best_lam[:], best_err[:], best = mid, err, res
            if best_err[0] <= l0_tol:
                break
    if per_example:
        return best_lam, best
    return float(best_lam[0]), best


def _merge(best, res, take):
    """Rows of res where take, else rows of best (LassoResult fields are (n, ...))."""
    if best is None:
        return res
    return LassoResult(*(np.where(take.reshape((-1,) + (1,) * (b.ndim - 1)), r, b)
                         for b, r in zip(best, res)))
