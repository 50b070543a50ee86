r"""Nonnegative lasso speed at an equal objective: sparse.nonneg_lasso vs sklearn and SPAMS.

Problem (sparse/solvers.py): min_{w >= 0} ||C^T w - z||^2 + lam ||w||_1 for every target z.
Synthetic data: unit-norm Gaussian atoms C (concepts, d); each target is a nonnegative mix
of --planted atoms plus Gaussian noise (--noise, relative), normalised to unit norm.

The reference objective is sklearn coordinate descent with tol=1e-10 on the first
--ref_rows targets; every solver's relative objective gap is measured on those rows, in
float64. Our solvers run with tol = --gap on the KKT residual (sparse/solvers.py), which
is conservative: the resulting objective gap is far smaller. Wall times exclude JAX
compilation (each JAX solver is warmed up on the same shapes first).

Example:
  nice -n 10 python -m benchmarks.sparse_solvers --n 1000 --d 512 --concepts 10000 \
      --lam 0.1 --solver working_set,sklearn,spams

Prints a markdown header and ONE table row per solver.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("n", 1000, "number of targets (embeddings)")
flags.DEFINE_integer("d", 512, "embedding dimension")
flags.DEFINE_integer("concepts", 10000, "dictionary size c")
flags.DEFINE_float("lam", 0.1, "l1 penalty, unhalved convention (sklearn alpha = lam / 2d)")
flags.DEFINE_list("solver", ["working_set", "sklearn", "spams"],
                  "comma list of: working_set, fista, ista, admm, sklearn, spams")
flags.DEFINE_integer("seed", 0, "random seed")
flags.DEFINE_float("gap", 1e-6, "target relative objective gap; our solvers use tol=gap")
flags.DEFINE_integer("ref_rows", 100, "rows solved by the tight sklearn reference")
flags.DEFINE_integer("planted", 20, "atoms in each planted mix")
flags.DEFINE_float("noise", 0.43, "noise norm relative to the (unit) planted signal")
flags.DEFINE_integer("threads", 0, "SPAMS threads (0: all cores)")
flags.DEFINE_integer("max_iter", 10000, "iteration cap of our solvers")


def make_problem(n, d, c, planted, noise, seed):
    """Unit-norm atoms C (c, d) and unit-norm targets Z (n, d), float32."""
    rng = np.random.default_rng(seed)
    C = rng.standard_normal((c, d))
    C /= np.linalg.norm(C, axis=1, keepdims=True)
    W = np.zeros((n, c))
    cols = np.argsort(rng.random((n, c)), axis=1)[:, :planted]
    np.put_along_axis(W, cols, rng.uniform(0.2, 1.0, (n, planted)), axis=1)
    S = W @ C
    S /= np.linalg.norm(S, axis=1, keepdims=True)
    Z = S + noise * rng.standard_normal((n, d)) / np.sqrt(d)
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    return C.astype(np.float32), Z.astype(np.float32)


def objective(C, Z, W, lam):
    C, Z, W = (np.asarray(x, np.float64) for x in (C, Z, W))
    r = W @ C - Z
    return (r * r).sum(1) + lam * W.sum(1)


def sklearn_solve(C, Z, lam, tol=1e-4, max_iter=1000):
    """Multi-target sklearn Lasso(positive=True): the sklearn baseline. Returns (n, c)."""
    from sklearn.linear_model import Lasso

    d = C.shape[1]
    model = Lasso(alpha=lam / (2 * d), positive=True, fit_intercept=False, tol=tol,
                  max_iter=max_iter)
    model.fit(np.asarray(C, np.float64).T, np.asarray(Z, np.float64).T)
    return np.atleast_2d(model.coef_)


def spams_solve(C, Z, lam, threads):
    """SPAMS LARS, mode 2: 0.5||x - D a||^2 + lambda1 ||a||_1, so lambda1 = lam / 2."""
    import spams

    X = np.asfortranarray(np.asarray(Z, np.float64).T)
    D = np.asfortranarray(np.asarray(C, np.float64).T)
    A = spams.lasso(X, D=D, mode=2, lambda1=lam / 2, lambda2=0.0, pos=True,
                    numThreads=threads or -1)
    return np.asarray(A.todense()).T


def device_name():
    import jax

    cpu = platform.processor() or "cpu"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = [l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name")]
        cpu = model[0] if model else cpu
    except (OSError, subprocess.CalledProcessError):
        pass
    dev = jax.devices()[0]
    where = "CPU only" if dev.platform == "cpu" else dev.device_kind
    return f"{os.cpu_count()}-core {cpu}, {where}"


def run_ours(method, C, Z, lam, tol, max_iter):
    import sparse

    kwargs = dict(method=method, tol=tol, max_iter=max_iter)
    if method == "working_set":  # warm-up: the same shapes, so the same executables
        sparse.nonneg_lasso(C, Z, lam, **kwargs)
    else:  # max_iter is a runtime argument: one iteration compiles the same executable
        sparse.nonneg_lasso(C, Z, lam, method=method, tol=tol, max_iter=1)
    t = time.perf_counter()
    res = sparse.nonneg_lasso(C, Z, lam, **kwargs)
    wall = time.perf_counter() - t
    note = "" if res.converged.all() else f"{(~res.converged).sum()} not converged"
    return res.weights, wall, note


def main(argv):
    del argv
    n, d, c, lam = FLAGS.n, FLAGS.d, FLAGS.concepts, FLAGS.lam
    C, Z = make_problem(n, d, c, FLAGS.planted, FLAGS.noise, FLAGS.seed)
    m = min(FLAGS.ref_rows, n)
    t = time.perf_counter()
    W_ref = sklearn_solve(C, Z[:m], lam, tol=1e-10, max_iter=100000)
    ref = objective(C, Z[:m], W_ref, lam)
    ref_time = time.perf_counter() - t
    device = device_name()
    print(f"<!-- reference: sklearn tol=1e-10 on {m} rows, {ref_time:.1f} s, mean objective "
          f"{ref.mean():.7f}, mean L0 {(W_ref > 0).sum(1).mean():.1f} -->")
    print("| solver | N | d | concepts | lam | wall s (no compile) | mean L0 | mean rel. gap "
          "| device | note |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in FLAGS.solver:
        note = ""
        try:
            if name == "sklearn":
                t = time.perf_counter()
                W = sklearn_solve(C, Z, lam)
                wall = time.perf_counter() - t
                note = "multi-target fit, default tol=1e-4"
            elif name == "spams":
                t = time.perf_counter()
                W = spams_solve(C, Z, lam, FLAGS.threads)
                wall = time.perf_counter() - t
                note = f"LARS mode=2, lambda1=lam/2, numThreads={FLAGS.threads or 'all'}"
            else:
                W, wall, note = run_ours(name, C, Z, lam, FLAGS.gap, FLAGS.max_iter)
                note = f"tol={FLAGS.gap:g} (KKT) " + note
        except ImportError as e:  # e.g. spams-bin not installed
            print(f"| {name} | {n} | {d} | {c} | {lam:g} | - | - | - | {device} | "
                  f"unavailable: {e} |", flush=True)
            continue
        gap = (objective(C, Z[:m], W[:m], lam) - ref) / ref
        flag = "" if gap.mean() <= FLAGS.gap else f" gap above {FLAGS.gap:g}"
        print(f"| {name} | {n} | {d} | {c} | {lam:g} | {wall:.2f} | {(W > 0).sum(1).mean():.1f} "
              f"| {gap.mean():.1e} | {device} | {note}{flag} |", flush=True)


if __name__ == "__main__":
    app.run(main)
