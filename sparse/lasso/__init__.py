"""Nonnegative lasso for concept decomposition, in JAX: min_{w >= 0} ||C^T w - z||^2 + lam ||w||_1.

    C (c, d) --prepare--> PreparedDictionary (device copy + C C^T / L / Q^-1)   prepared.py
    Z (n, d), lam --nonneg_lasso--> chunks -> row buckets -> one jitted solve  driver.py
        working_set (default): working sets + restricted FISTA                  working_set.py
        fista / ista / admm: over the whole dictionary                          full.py
    -> LassoResult (weights (n, c), objective, l0, kkt, iterations, converged)  problem.py

Conventions (rows of C are concepts; the squared error is not halved, so sklearn
alpha = lam / (2 d) and SPAMS lambda1 = lam / 2; the scaled KKT residual every solver stops
on): ``sparse.lasso.problem``. Shape buckets (compile once): ``sparse.lasso.buckets``.

A caller that solves many times with one dictionary prepares it once::

    prepared = prepare(C, method="working_set")
    for lam in lams:
        res = nonneg_lasso(prepared, Z, lam)
"""

from sparse.lasso.driver import nonneg_lasso
from sparse.lasso.prepared import PreparedDictionary, prepare
from sparse.lasso.problem import METHODS, LassoResult, kkt_residual, objective

__all__ = ["METHODS", "LassoResult", "PreparedDictionary", "kkt_residual", "nonneg_lasso", "objective",
           "prepare"]
