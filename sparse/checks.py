"""Input and convergence checks shared by the solvers and ``sparse.decompose``.

* :func:`check_array`: a dictionary (c, d) or embeddings (n, d) that is not numeric, holds
  NaN/inf, or holds magnitudes >= ``MAX_MAGNITUDE`` (1e15) is refused with a ValueError naming
  it and its rows. The solvers run in float32 (largest 3.4e38): squares, Gram entries and the
  objective of such inputs overflow to inf, and inf - inf to NaN weights.
* :func:`report_convergence`: rows whose KKT residual stayed above ``tol`` are counted and logged
  (logger ``sparse``, WARNING) with the worst residual and its row; results keep a ``converged``
  flag per row. Inside :func:`quiet` nothing is logged: a caller that solves repeatedly
  (``lambda_for_l0``'s bisection, chunked decompositions) reports its final result once itself.
"""
from __future__ import annotations

import contextlib
import contextvars
import logging

import numpy as np

MAX_MAGNITUDE = 1e15
MAX_L1 = 1e30
log = logging.getLogger("sparse")
_QUIET = contextvars.ContextVar("sparse_checks_quiet", default=False)


def describe_rows(rows) -> str:
    """``"3, 7, 9"`` or ``"0, 1, 2, 3, 4, ... (12 rows)"``."""
    rows = np.asarray(rows).reshape(-1)
    shown = ", ".join(str(int(i)) for i in rows[:5])
    return shown + (f", ... ({len(rows)} rows)" if len(rows) > 5 else "")


def check_array(name: str, x: np.ndarray) -> None:
    """ValueError naming ``name`` and its rows if the 2-D array ``x`` is not numeric, holds
    NaN/inf, or holds values with magnitude >= MAX_MAGNITUDE."""
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real numbers, got dtype {x.dtype}")
    if x.size == 0:
        return
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if bad.size:
        raise ValueError(f"{name} contains NaN or inf in row(s) {describe_rows(bad)}")
    peak = np.abs(x).max(axis=1)
    big = np.flatnonzero(peak >= MAX_MAGNITUDE)
    if big.size:
        raise ValueError(f"{name} has values of magnitude up to {float(peak.max()):.3g} (>= {MAX_MAGNITUDE:g}) "
                         f"in row(s) {describe_rows(big)}: the float32 solvers would overflow; rescale it "
                         "(CLAP embeddings and concept rows are unit vectors)")


def row_problems(x: np.ndarray) -> np.ndarray:
    """Per row of embeddings (n, d): why it cannot be decomposed ("" when it can): NaN/inf, all
    zeros, or magnitudes >= MAX_MAGNITUDE."""
    finite = np.isfinite(x).all(axis=1)
    peak = np.abs(np.where(np.isfinite(x), x, 0)).max(axis=1) if x.size else np.zeros(len(x))
    return np.array(["embedding holds NaN or inf" if not ok else "embedding is all zeros" if p == 0 else
                     f"embedding reaches {p:.3g} (>= {MAX_MAGNITUDE:g})" if p >= MAX_MAGNITUDE else ""
                     for ok, p in zip(finite, peak)], dtype=object)


def check_l1(lam: np.ndarray) -> None:
    """ValueError if an l1 penalty (n,) would overflow float32 (>= MAX_L1)."""
    if lam.size and float(np.max(lam)) >= MAX_L1:
        raise ValueError(f"l1 must be < {MAX_L1:g} (float32 overflow), got {float(np.max(lam)):.3g}")


@contextlib.contextmanager
def quiet():
    """Within the block :func:`report_convergence` logs nothing."""
    token = _QUIET.set(True)
    try:
        yield
    finally:
        _QUIET.reset(token)


def report_convergence(converged, kkt, tol: float, what: str = "nonneg_lasso", names=None) -> int:
    """Logs a WARNING when some rows did not converge: how many, the worst KKT residual and its
    row (its name, given ``names``). Returns the number of rows that did not converge (also
    inside :func:`quiet`, which only silences the log)."""
    converged = np.asarray(converged, bool).reshape(-1)
    failed = int((~converged).sum())
    if failed and not _QUIET.get():
        k = np.where(converged, -np.inf, np.asarray(kkt, np.float64).reshape(-1))
        worst = int(np.argmax(k))
        row = f"row {worst}" if names is None else str(names[worst])
        log.warning("%s: %d of %d rows did not converge (worst KKT residual %.3g > tol %.3g, %s); "
                    "raise max_iter or tol, or check the inputs", what, failed, converged.size, k[worst], tol, row)
    return failed
