"""Tests of sparse.nonneg_lasso and sparse.lambda_for_l0.

Problem: min_{w >= 0} ||C^T w - z||^2 + lam ||w||_1 (C: (c, d) concepts as rows).
The problems are small (c <= 300, d = 64, n = 20) and shared between tests, so that each
solver compiles only a few times; the whole file runs in well under a minute on 2 cores.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import sparse
from sparse.lasso import kkt_residual, objective

METHODS = ("working_set", "fista", "ista", "admm")
LAM = 0.1


def unit_rows(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def problem():
    """Random unit-norm dictionary (300, 64) and 20 unit-norm targets, float32."""
    rng = np.random.default_rng(0)
    C = unit_rows(rng.standard_normal((300, 64))).astype(np.float32)
    Z = unit_rows(rng.standard_normal((20, 64))).astype(np.float32)
    return C, Z


@pytest.fixture(scope="module")
def sklearn_weights(problem):
    """sklearn Lasso(alpha = lam / 2d, positive=True) at tol 1e-10: the oracle."""
    from sklearn.linear_model import Lasso

    C, Z = problem
    d = C.shape[1]
    model = Lasso(alpha=LAM / (2 * d), positive=True, fit_intercept=False, tol=1e-10,
                  max_iter=100000)
    return np.stack([model.fit(C.T.astype(np.float64), z.astype(np.float64)).coef_ for z in Z])


# ----------------------------------------------------------------------------------------
# Known solutions
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_orthonormal_dictionary_exact_solution(method):
    """Orthonormal rows: w_i = max(0, (C z)_i - lam / 2) exactly; planted support found."""
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.standard_normal((64, 64)))
    C = q[:48].astype(np.float32)  # (48, 64), orthonormal rows
    W = np.zeros((20, 48))
    for i in range(20):
        W[i, rng.choice(48, 5, replace=False)] = rng.uniform(0.5, 1.0, 5)
    Z = (W @ C).astype(np.float32)
    lam = 0.01
    res = sparse.nonneg_lasso(C, Z, lam, method=method)
    assert res.converged.all()
    np.testing.assert_array_equal(res.weights > 0, W > 0)
    np.testing.assert_allclose(res.weights, np.where(W > 0, W - lam / 2, 0), atol=2e-5)
    np.testing.assert_array_equal(res.l0, 5)


@pytest.mark.parametrize("method", METHODS)
def test_planted_support_overcomplete(method, problem):
    """Noise-free nonnegative mixes of 4 random atoms out of 300 (d = 64), small lam."""
    C, _ = problem
    rng = np.random.default_rng(2)
    W = np.zeros((20, 300))
    for i in range(20):
        W[i, rng.choice(300, 4, replace=False)] = rng.uniform(0.5, 1.0, 4)
    Z = (W @ C).astype(np.float32)
    res = sparse.nonneg_lasso(C, Z, 1e-3, method=method, tol=1e-6)
    assert res.converged.all()
    np.testing.assert_array_equal(res.weights > 1e-4, W > 0)
    np.testing.assert_allclose(res.weights, W, atol=5e-3)


# ----------------------------------------------------------------------------------------
# Parity with sklearn
# ----------------------------------------------------------------------------------------


@pytest.mark.parity
@pytest.mark.parametrize("method", METHODS)
def test_objective_matches_sklearn(method, problem, sklearn_weights):
    C, Z = problem
    res = sparse.nonneg_lasso(C, Z, LAM, method=method, tol=1e-5 if method == "ista" else 1e-6)
    assert res.converged.all()
    ref = objective(C, Z, sklearn_weights, LAM)
    ours = objective(C, Z, res.weights, LAM)
    rel = (ours - ref) / ref
    assert rel.max() < 1e-4, rel.max()
    assert rel.min() > -1e-6, rel.min()  # sklearn at tol 1e-10 is (near) optimal
    # The reported objective is the float32 value of the same thing.
    np.testing.assert_allclose(res.objective, ours, rtol=1e-5)
    # The oracle's supports (mean L0 43.65 of 300): measured identical for working_set, fista and
    # admm; ista (at its looser tol) has one row one concept off.
    support = sklearn_weights > 0
    off = ((res.weights > 0) != support).sum(1)
    assert off.max() <= 1 and (off == 0).mean() >= 0.9, off
    assert abs(res.l0.mean() - support.sum(1).mean()) <= 0.1


@pytest.mark.parity
def test_per_example_lam_matches_sklearn(problem):
    """l1 of shape (n,): each row solved with its own lam."""
    from sklearn.linear_model import Lasso

    C, Z = problem
    lam = np.linspace(0.05, 0.3, len(Z))
    res = sparse.nonneg_lasso(C, Z, lam)
    ref = np.stack([
        Lasso(alpha=l / (2 * C.shape[1]), positive=True, fit_intercept=False, tol=1e-10,
              max_iter=100000).fit(C.T.astype(np.float64), z.astype(np.float64)).coef_
        for l, z in zip(lam, Z)])
    rel = (objective(C, Z, res.weights, lam) - objective(C, Z, ref, lam))
    rel /= objective(C, Z, ref, lam)
    assert np.abs(rel).max() < 1e-5


@pytest.mark.slow
@pytest.mark.parity
def test_working_set_matches_sklearn_at_vocabulary_scale():
    """The default solver at SpLiCE's scale (2,000 correlated concepts in 512 dimensions, targets
    mixing 30 of them, L0 91-151): large working sets, which the small problems above never reach.
    Optimal as sklearn at tol 1e-10 (measured: objectives equal to 2e-11, identical supports, KKT
    4e-7); about 20 s of sklearn and 30 s of ours on 2 cores."""
    from sklearn.linear_model import Lasso

    rng = np.random.default_rng(0)
    c, d, n, lam = 2000, 512, 24, 0.05
    C = unit_rows(rng.standard_normal((c, d)) + 0.6 * rng.standard_normal(d)).astype(np.float32)
    W = np.zeros((n, c))
    for w in W:
        w[rng.choice(c, 30, replace=False)] = rng.uniform(0.2, 1.0, 30)
    Z = unit_rows(W @ C + 0.05 * rng.standard_normal((n, d))).astype(np.float32)
    model = Lasso(alpha=lam / (2 * d), positive=True, fit_intercept=False, tol=1e-10, max_iter=200000)
    ref = np.stack([model.fit(C.T.astype(np.float64), z.astype(np.float64)).coef_ for z in Z])
    assert (ref > 0).sum(1).min() > 64                        # beyond the small working-set buckets
    res = sparse.nonneg_lasso(C, Z, lam, tol=1e-6)
    assert res.converged.all() and kkt_residual(C, Z, res.weights, lam).max() < 1e-6
    rel = (objective(C, Z, res.weights, lam) - objective(C, Z, ref, lam)) / objective(C, Z, ref, lam)
    assert np.abs(rel).max() < 1e-6, rel
    off = ((res.weights > 0) != (ref > 0)).sum(1)
    assert off.max() <= 1 and (off == 0).mean() >= 0.9, off


# ----------------------------------------------------------------------------------------
# Optimality, warm starts
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ("working_set", "fista"))
def test_kkt_below_tolerance_and_warm_start(method, problem):
    C, Z = problem
    res = sparse.nonneg_lasso(C, Z, LAM, method=method, tol=1e-6)
    assert res.converged.all()
    assert (res.kkt <= 1e-6).all()
    # Recomputed independently in float64 (float32 rounding leaves a small margin).
    assert kkt_residual(C, Z, res.weights, LAM).max() < 2e-6
    assert (res.weights >= 0).all()
    np.testing.assert_array_equal(res.l0, (res.weights > 0).sum(1))
    warm = sparse.nonneg_lasso(C, Z, LAM, method=method, tol=1e-6, init=res.weights)
    assert warm.converged.all()
    assert warm.iterations.max() <= 3
    np.testing.assert_allclose(warm.objective, res.objective, rtol=1e-6)


def test_warm_start_from_another_lam(problem):
    C, Z = problem
    res = sparse.nonneg_lasso(C, Z, 0.2)
    warm = sparse.nonneg_lasso(C, Z, LAM, init=res.weights)
    cold = sparse.nonneg_lasso(C, Z, LAM)
    assert warm.converged.all()
    np.testing.assert_allclose(warm.objective, cold.objective, rtol=1e-6)


def test_dense_warm_start():
    """A warm start with every entry positive (a full-dictionary solver's) is cut to its largest
    entries per row: the solve stays as small and as optimal as a cold one (it took minutes and
    ran out of memory before)."""
    rng = np.random.default_rng(5)
    C = unit_rows(rng.standard_normal((2000, 64)))
    Z = unit_rows(rng.standard_normal((200, 64)))
    cold = sparse.nonneg_lasso(C, Z, LAM)
    warm = sparse.nonneg_lasso(C, Z, LAM, init=cold.weights + 1e-3)
    assert warm.converged.all()
    np.testing.assert_allclose(warm.objective, cold.objective, rtol=1e-6)


def test_learned_working_set_size(problem):
    """working_set=None: the first 256 rows of a large chunk are solved apart and their
    L0 sets the working-set size for the rest; the answer is still optimal."""
    from sparse.lasso.driver import _select_for

    assert _select_for(np.full(100, 20)) == 32
    assert _select_for(np.full(100, 80)) == 64
    assert _select_for(np.full(100, 130)) == 128
    C, _ = problem
    rng = np.random.default_rng(3)
    Z = unit_rows(rng.standard_normal((1024, 64))).astype(np.float32)
    res = sparse.nonneg_lasso(C, Z, 0.3)
    assert res.converged.all()
    assert kkt_residual(C, Z, res.weights, 0.3).max() < 2e-6


def test_prepared_dictionary_is_reused(problem, monkeypatch):
    """A PreparedDictionary solves as the plain array does and is never prepared again: its
    C C^T (working set, gram=None: built by the first solve that wants it) is made once."""
    from sparse import dictionary
    from sparse.lasso import working_set

    C, Z = problem
    built = []
    gram_matrix = working_set.gram_matrix
    monkeypatch.setattr(working_set, "gram_matrix", lambda c: built.append(1) or gram_matrix(c))
    prepared = sparse.prepare(C)
    assert not built  # decided per solve
    for lam in (0.2, LAM):
        res = sparse.nonneg_lasso(prepared, Z, lam)
    assert len(built) == 1
    plain = sparse.nonneg_lasso(C, Z, LAM)  # a plain array is prepared for the call
    assert len(built) == 2
    np.testing.assert_array_equal(res.weights, plain.weights)
    fista = sparse.prepare(C, "fista")
    np.testing.assert_array_equal(sparse.nonneg_lasso(fista, Z, LAM).weights,
                                  sparse.nonneg_lasso(C, Z, LAM, method="fista").weights)
    with pytest.raises(ValueError, match=r"method='admm' but the dictionary was prepared with "
                                         r"method='fista'"):
        sparse.nonneg_lasso(fista, Z, LAM, method="admm")
    with pytest.raises(ValueError, match=r"dimension mismatch"):
        sparse.nonneg_lasso(fista, Z[:, :32], LAM)
    concepts = dictionary.from_embeddings([f"c{i}" for i in range(len(C))], C, center=False)
    assert concepts.for_solver("fista") is concepts.for_solver("fista")


# ----------------------------------------------------------------------------------------
# lambda_for_l0
# ----------------------------------------------------------------------------------------


def test_lambda_for_mean_l0(problem):
    C, Z = problem
    lam, res = sparse.lambda_for_l0(C, Z, 12)
    assert isinstance(lam, float) and lam > 0
    assert abs(res.l0.mean() - 12) <= 1
    assert res.converged.all()
    again = sparse.nonneg_lasso(C, Z, lam)
    np.testing.assert_array_equal(again.l0, res.l0)


def test_lambda_for_per_example_l0(problem):
    C, Z = problem
    lam, res = sparse.lambda_for_l0(C, Z, 8, per_example=True, lam_range=(0.1, 2.0))
    assert lam.shape == (len(Z),)
    assert abs(res.l0.mean() - 8) <= 1
    assert (np.abs(res.l0 - 8) <= 1).mean() >= 0.9
    again = sparse.nonneg_lasso(C, Z, lam)
    np.testing.assert_array_equal(again.l0, res.l0)


# ----------------------------------------------------------------------------------------
# Chunks and devices
# ----------------------------------------------------------------------------------------

_MULTI_DEVICE = textwrap.dedent("""
    import json, sys
    import jax
    jax.config.update("jax_num_cpu_devices", 4)
    import numpy as np
    import sparse
    data = np.load(sys.argv[1])
    out = {"devices": len(jax.devices())}
    for method in ("working_set", "fista"):
        res = sparse.nonneg_lasso(data["C"], data["Z"], 0.1, method=method, chunk_size=8)
        np.save(sys.argv[1] + f".{method}.npy", res.weights)
        out[method] = bool(res.converged.all())
    print(json.dumps(out))
""")


def test_chunked_multi_device_matches_one_chunk(problem, tmp_path):
    """chunk_size=8 on a 4-device CPU mesh (20 rows: chunks of 8, 8, 4 padded) gives the
    same weights as one chunk on one device."""
    C, Z = problem
    path = str(tmp_path / "problem.npz")
    np.savez(path, C=C, Z=Z)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               PYTHONPATH=os.pathsep.join([os.getcwd()] + sys.path))
    out = subprocess.run([sys.executable, "-c", _MULTI_DEVICE, path], env=env,
                         capture_output=True, text=True, timeout=240,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.returncode == 0, out.stderr[-3000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info == {"devices": 4, "working_set": True, "fista": True}
    for method in ("working_set", "fista"):
        one = sparse.nonneg_lasso(C, Z, 0.1, method=method)
        multi = np.load(path + f".{method}.npy")
        np.testing.assert_allclose(multi, one.weights, atol=2e-5)
        np.testing.assert_allclose(objective(C, Z, multi, 0.1), one.objective, rtol=1e-5)


# ----------------------------------------------------------------------------------------
# Compile once per bucket
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ("working_set", "fista"))
def test_one_program_per_row_bucket(method):
    """Row counts 1..33, 300, 301 and 380 compile at most one program per row bucket
    (sparse.lasso.buckets.rows: 8, 16, 32, 64 and 512 here), counted twice: the solver's
    compiled programs (jit cache) and every XLA compilation (jax.monitoring), which also
    catches eager device ops on new shapes (e.g. slicing off the padding on the device)."""
    import jax

    from sparse.lasso import buckets, driver

    rng = np.random.default_rng(4)
    C = unit_rows(rng.standard_normal((40, 16))).astype(np.float32)  # a shape of its own
    Z = unit_rows(rng.standard_normal((380, 16))).astype(np.float32)
    counts = [*range(1, 34), 300, 301, 380]
    bucket_sizes = {buckets.rows(n, len(jax.devices())) for n in counts}
    assert len(bucket_sizes) == 5
    sparse.nonneg_lasso(C, Z[:1], LAM, method=method)  # the dictionary's own programs
    compiles = []

    def on_event(name, secs, **kwargs):
        if name == "/jax/core/compile/backend_compile_duration":
            compiles.append(secs)

    programs = driver._solve._cache_size()
    jax.monitoring.register_event_duration_secs_listener(on_event)
    try:
        for n in counts:
            res = sparse.nonneg_lasso(C, Z[:n], LAM, method=method)
            assert res.weights.shape == (n, 40) and res.converged.all()
    finally:
        jax.monitoring.unregister_event_duration_listener(on_event)
    new_programs = driver._solve._cache_size() - programs
    assert new_programs <= len(bucket_sizes) - 1, new_programs  # bucket 8 was compiled above
    assert len(compiles) <= len(bucket_sizes) - 1, len(compiles)
    # Padding never shows: 5 rows (bucket 8) solve as they do among 380 (bucket 512).
    part = sparse.nonneg_lasso(C, Z[:5], LAM, method=method)
    whole = sparse.nonneg_lasso(C, Z, LAM, method=method)
    np.testing.assert_allclose(part.weights, whole.weights[:5], atol=1e-6)
    np.testing.assert_allclose(part.objective, whole.objective[:5], rtol=1e-6)
    assert np.abs(part.iterations - whole.iterations[:5]).max() <= 1


# ----------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("case, match", [
    ("nan_embedding", r"embeddings contains NaN or inf in row\(s\) 3"),
    ("inf_dictionary", r"dictionary contains NaN or inf in row\(s\) 5"),
    ("dim_mismatch", r"dimension mismatch.*\(300, 64\).*\(20, 32\)"),
    ("empty_dictionary", r"empty dictionary"),
    ("negative_lam", r"l1 must be >= 0"),
    ("lam_shape", r"l1 must be a number or have shape"),
    ("unknown_method", r"unknown method 'lars'"),
    ("init_shape", r"init must have shape"),
    ("negative_init", r"init must be nonnegative"),
    ("embeddings_1d", r"embeddings must have shape \(n, d\)"),
])
def test_bad_input_raises(case, match, problem):
    C, Z = problem
    C, Z = C.copy(), Z.copy()
    kwargs = dict(dictionary=C, embeddings=Z, l1=LAM)
    if case == "nan_embedding":
        Z[3, 7] = np.nan
    elif case == "inf_dictionary":
        C[5, 0] = np.inf
    elif case == "dim_mismatch":
        kwargs["embeddings"] = Z[:, :32]
    elif case == "empty_dictionary":
        kwargs["dictionary"] = C[:0]
    elif case == "negative_lam":
        kwargs["l1"] = -0.1
    elif case == "lam_shape":
        kwargs["l1"] = np.full(3, 0.1)
    elif case == "unknown_method":
        kwargs["method"] = "lars"
    elif case == "init_shape":
        kwargs["init"] = np.zeros((20, 3))
    elif case == "negative_init":
        kwargs["init"] = -np.ones((20, 300))
    elif case == "embeddings_1d":
        kwargs["embeddings"] = Z[0]
    with pytest.raises(ValueError, match=match):
        sparse.nonneg_lasso(**kwargs)


def test_empty_batch_and_zero_rows(problem):
    C, Z = problem
    res = sparse.nonneg_lasso(C, Z[:0], LAM)
    assert res.weights.shape == (0, 300)
    Z0 = Z.copy()
    Z0[2] = 0  # w = 0 is the solution
    res = sparse.nonneg_lasso(C, Z0, LAM)
    assert res.l0[2] == 0 and res.converged.all()
