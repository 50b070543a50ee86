"""``nonneg_lasso``: checks, chunks, row buckets, sharding, and the one jitted solve.

    nonneg_lasso(C or PreparedDictionary, Z (n, d), lam)
      -> chunks of chunk_size rows  -> padded to a row bucket (sparse.lasso.buckets.rows)
      -> _solve (jit; rows sharded over mesh "data", dictionary replicated)
           working_set: sparse.lasso.working_set    fista / ista / admm: sparse.lasso.full
      -> padding cut off on the host -> LassoResult (sparse.lasso.problem)

Large inputs are streamed in chunks of ``chunk_size`` rows; inside a chunk the rows are
sharded over the prepared dictionary's devices (mesh axis "data", embeddings ``P("data")``,
dictionary replicated ``P()``).

Compile once: every solve goes through one module-level jitted function (``_solve``),
keyed on a static config and the input shapes only. Rows are padded with zero rows to
a row bucket and working sets take bucketed sizes (``sparse.lasso.buckets``: powers of two);
the padding is cut off on the host, so it never reaches a result, an objective or a
``converged`` flag. Zero rows are solved by w = 0: the working-set method drops them
before its first check, the full-dictionary methods carry them (stopped) through each
iteration.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from clap_jax import programs
from sparse import checks
from sparse.lasso import buckets, full, problem
from sparse.lasso.prepared import PreparedDictionary, _prepare, mesh
from sparse.lasso.working_set import solve_working_set, ws_config

_DEFAULT_CHUNK = 4096  # rows per chunk when chunk_size is None
_MAX_GRAM_BYTES = 1 << 30  # largest C C^T the working-set method builds by itself
_MAX_CAPACITY = 1024  # largest working set tried before giving up on an example
_MAX_INIT_SUPPORT = 128  # a warm start keeps at most this many largest entries per row
_PROBE = 256  # working_set=None: rows solved first to learn the working-set size
_PROBE_SELECT = 32  # the probe's working-set size (too small costs only its rows a re-solve)
_FIRST_SELECT = 64  # working_set=None without a probe: the first guess


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
        out = solve_working_set(C, Z, lam, init, aux, cfg)
    else:
        Cz = Z @ C.T
        scale = jnp.maximum(2 * jnp.max(jnp.abs(Cz), axis=1), problem.TINY)
        out = full.SOLVERS[cfg.method](C, Z, Cz, lam, scale, init, aux, cfg)
    return {k: v[:n] for k, v in out.items()}


def _solve_program(C, Z, lam, init, aux, tol, max_iter, *, cfg, n_devices):
    """Every solve runs through this one jitted function: one program per (cfg, n_devices)
    and input shapes, shared by all callers. Rows are sharded over the mesh ("data"), the
    dictionary and aux replicated. C: (c, d); Z: (n, d); lam: (n,); init: (n, c) or a
    (n, 1) placeholder; tol, max_iter: scalars. Returns a dict of (n, ...) arrays."""
    if n_devices == 1:  # the same program without the mesh: quicker to trace and lower
        return _solve_chunk(C, Z, lam, init, aux, tol, max_iter, cfg=cfg)
    fn = jax.shard_map(functools.partial(_solve_chunk, cfg=cfg), mesh=mesh(n_devices)[0],
                       in_specs=(P(), P("data"), P("data"), P("data"), P(), P(), P()),
                       out_specs=P("data"), check_vma=False)
    return fn(C, Z, lam, init, aux, tol, max_iter)


# Kept in the program store (clap_jax.programs) while the compilation cache is on: a new process
# loads the solver's programs without tracing them. Every module the solve is built from is named.
_solve = programs.stored(_solve_program, static_argnames=("cfg", "n_devices"),
                         sources=("sparse.lasso", "sparse.checks", "clap_jax.linalg"))


def _run(cfg, C, aux, Z, lam, init, n_devices, tol, max_iter, rows=1):
    """Solve rows Z (m, d), lam (m,), init (m, c) or None in one call of ``_solve``. The rows
    are padded with zero rows (solved by w = 0 at once) to the bucket of max(m, rows)
    (sparse.lasso.buckets.rows), and the padding is cut off on the host. Returns a dict of
    NumPy (m, ...) arrays."""
    m = Z.shape[0]
    pad = buckets.rows(max(m, rows), n_devices) - m
    dtype = C.dtype
    Zp = np.pad(Z, ((0, pad), (0, 0))).astype(dtype)
    lp = np.pad(lam, (0, pad), constant_values=1).astype(dtype)
    # Without a warm start a (m, 1) placeholder is passed and ignored (cfg.has_init).
    ip = (np.zeros((m + pad, 1), dtype) if init is None
          else np.pad(init, ((0, pad), (0, 0))).astype(dtype))
    _, _, sharded = mesh(n_devices)
    out = _solve(C, jax.device_put(Zp, sharded), jax.device_put(lp, sharded),
                 jax.device_put(ip, sharded),
                 aux, np.asarray(tol, dtype), np.int32(max_iter),
                 cfg=dataclasses.replace(cfg, has_init=init is not None), n_devices=n_devices)
    return {k: np.asarray(v)[:m].copy() for k, v in out.items()}  # writable host copies


def _as_prepared(dictionary, Z, method, rho, gram):
    """The PreparedDictionary of a solve: ``dictionary`` itself (whose settings ``method``,
    ``rho`` and ``gram`` must not contradict) or a checked host C prepared for this call."""
    if isinstance(dictionary, PreparedDictionary):
        for name, value in (("method", method), ("rho", rho), ("gram", gram)):
            if value is not None and value != getattr(dictionary, name):
                raise ValueError(f"{name}={value!r} but the dictionary was prepared with "
                                 f"{name}={getattr(dictionary, name)!r}; pass it to prepare()")
        return dictionary
    return _prepare(dictionary, method or "working_set", problem.solver_dtype(dictionary, Z),
                    len(jax.devices()), 1.0 if rho is None else rho, gram)


def nonneg_lasso(dictionary, embeddings, l1, method=None, tol=1e-6, max_iter=None,
                 init=None, chunk_size=None, *, rho=None, working_set=None, gram=None):
    """Solve min_{w >= 0} ||C^T w - z||^2 + l1 ||w||_1 for every row z of ``embeddings``.

    Args:
      dictionary: (c, d) concepts as rows, or a ``PreparedDictionary`` (``sparse.lasso.prepare``:
        its device copy and precomputation are reused; embeddings are cast to its dtype).
      embeddings: (n, d).
      l1: lam >= 0, a number or (n,) (one per embedding).
      method: "working_set" (default), "fista", "ista" or "admm" (``sparse.lasso``); with a
        PreparedDictionary, None or the method it was prepared for.
      tol: stop when the scaled KKT residual (``sparse.lasso.problem``) is <= tol.
      max_iter: iteration cap (per round for "working_set"); default 10,000.
      init: optional (n, c) nonnegative warm start ("working_set": each row's 128 largest
        entries; a larger support would only cost memory).
      chunk_size: rows per chunk (memory bound; padded to its row bucket, a power of two,
        sparse.lasso.buckets.rows); default min(n, 4096).
      rho: ADMM penalty (default 1.0); as method with a PreparedDictionary.
      working_set: atoms in each example's first working set ("working_set" only;
        rounded up to a power of two; it holds up to twice that). None: 64 at first,
        then learned from the L0 of the solutions so far (the first 256 rows of a large
        first chunk are solved apart, at 32, to learn it early).
      gram: use the (c, c) Gram matrix C C^T; None: when it is cheaper (fista / ista / admm:
        c <= 2 d; working_set: when it costs less than the examples' own Gram rows); as method
        with a PreparedDictionary.
    Returns:
      LassoResult of NumPy arrays (see its docstring). Rows that did not converge are counted
      and logged with the worst KKT residual (``sparse.checks.report_convergence``).
    Raises:
      ValueError naming the input: NaN/inf or magnitudes >= 1e15 in ``dictionary`` or
      ``embeddings`` (float32 overflow), bad shapes, l1 < 0 or >= 1e30, settings that
      contradict a PreparedDictionary.
    """
    if isinstance(dictionary, PreparedDictionary):
        shape = dictionary.shape
    else:  # checked before anything is put on the devices
        problem.check_method(method or "working_set")
        dictionary = problem.check_dictionary(dictionary)
        problem.check_rho(1.0 if rho is None else rho)
        shape = dictionary.shape
    Z, lam, init = problem.check_inputs(shape, embeddings, l1, init, tol, max_iter, chunk_size)
    n = Z.shape[0]
    c = shape[0]
    if n == 0:
        dtype = (dictionary.dtype if isinstance(dictionary, PreparedDictionary)
                 else problem.solver_dtype(dictionary, Z))
        return problem.empty_result(c, dtype)
    prepared = _as_prepared(dictionary, Z, method, rho, gram)
    method = prepared.method
    max_iter = 10_000 if max_iter is None else int(max_iter)
    if prepared.gram is not None:
        use_gram = prepared.gram
    else:
        # working_set: the full Gram matrix C C^T pays when it costs less than the examples'
        # own Gram rows (about n cap^2 d flops) and fits in memory. n is taken at its bucket,
        # so that all row counts of a bucket share one program.
        use_gram = (2 * c * c < buckets.rows(n) * (2 * (working_set or _FIRST_SELECT)) ** 2
                    and c * c * 4 <= _MAX_GRAM_BYTES)
    cfg = _Config(method=method, use_gram=use_gram)
    n_devices = prepared.n_devices
    Cj, aux = prepared.array, prepared.aux(use_gram)
    run = functools.partial(_run, n_devices=n_devices, tol=float(tol), max_iter=max_iter)
    chunk = min(n, chunk_size or _DEFAULT_CHUNK)
    chunk += -chunk % n_devices

    parts = []
    select = _FIRST_SELECT  # working_set=None: then learned
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
                                                 None if ic is None else ic[a:b],
                                                 _PROBE_SELECT if a == 0 < probe else select,
                                                 rows=Zc.shape[0] - probe))
                    select = _select_for(np.concatenate([o["l0"] for o in outs])[:real])
            out = {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
        parts.append({k: v[:real] for k, v in out.items()})
    res = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    checks.report_convergence(res["converged"], res["kkt"], tol)  # logged (sparse.checks)
    return problem.LassoResult(**res)


def _select_for(l0):
    """Working-set size for examples like these: a power of two near 0.8 x the 99th
    percentile of their L0 (the first set plus later additions then hold the support)."""
    q = np.percentile(l0, 99) if l0.size else 0
    return int(np.clip(1 << int(np.ceil(np.log2(max(0.8 * q, 1)))), 32, 256))


def _largest(x, k):
    """x (m, c) with all but each row's k largest entries set to zero (a warm start with a
    large support, e.g. a full-dictionary solver's, would give every example that many slots:
    memory in rows x slots^2). The solution does not change: the KKT checks are global."""
    if x.shape[1] <= k or int((x > 0).sum(axis=1).max()) <= k:
        return x
    top = np.argpartition(-x, k - 1, axis=1)[:, :k]
    out = np.zeros_like(x)
    np.put_along_axis(out, top, np.take_along_axis(x, top, 1), axis=1)
    return out


def _run_working_set(run, cfg, C, aux, Z, lam, init, select, rows=1):
    """Working-set solve (padded to the row bucket of at least `rows`); unconverged rows are
    re-solved warm with twice the slots."""
    c = C.shape[0]
    cap = 2 * select
    if init is not None:  # the support of init must fit, with room to grow
        init = _largest(init, _MAX_INIT_SUPPORT)
        cap = max(cap, int((init > 0).sum(axis=1).max()) + select)
    wcfg = ws_config(cfg, select, cap, c)
    out = run(wcfg, C, aux, Z, lam, init, rows=rows)
    while True:
        todo = np.flatnonzero(~out["converged"])
        if todo.size == 0 or wcfg.cap >= min(c, _MAX_CAPACITY):
            return out
        wcfg = ws_config(cfg, select, 2 * wcfg.cap, c)
        redo = run(wcfg, C, aux, Z[todo], lam[todo], out["weights"][todo])  # rows bucketed
        redo["iterations"] = redo["iterations"] + out["iterations"][todo]
        for k in out:
            out[k][todo] = redo[k]
