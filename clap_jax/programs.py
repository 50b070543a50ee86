"""Ahead-of-time program store: compiled programs found without tracing.

JAX's persistent compilation cache (``clap_jax.runtime``) spares a new process XLA's compilation,
but not the tracing and lowering that compute its key: 0.3-0.5 s per call site for the lasso
solver's programs, longer than some whole solves. ``stored(fn, sources=...)`` jits ``fn`` so that, while the cache is on, each program is keyed on what determines it without
tracing it and saved beside the cache; a later process loads the executable (10-90 ms) and calls it::

    solve = programs.stored(f, static_argnames=("cfg",), sources=("sparse.lasso", "clap_jax.linalg"))
    solve(C, Z, cfg=cfg)     # 1st process: traces, compiles, writes <cache>/programs/<key>.exe
                             # 2nd process: loads that file; same outputs, no tracing

The key is a SHA-256 of: the function's module and qualified name; the source files of
``sources`` (modules or whole packages: edit the code and the key changes); the static
arguments' reprs (one that holds a memory address differs per process: such calls go to the
jitted function, unstored); every other argument's pytree structure and, per leaf, shape,
dtype, weak type and sharding; jax and jaxlib versions, the backend, the devices, ``XLA_FLAGS``
and the jax settings that change a trace (x64, default matmul precision, dtype and rank
promotion, PRNG implementation). A ``sources`` list that misses a module the function is built
from makes edits there invisible to the key: name every package the traced code imports from.

Executables are written whole or not at all (``clap_jax.atomic``). The store compiles apart from
XLA's cache (under another program name, never written there), because jaxlib cannot serialize
an executable it loaded from that cache again (on CPU the copy fails to run: "Function ... not
found"); a compile that XLA's cache served anyway is run and not stored. Nothing here is fatal:
a file that cannot be read back (another jaxlib, a damaged file), or that loads but fails on its
first call, is logged and compiled again; a directory that cannot be written is logged. With the
cache off (``--nocompilation_cache``, or ``jax_compilation_cache_dir`` unset) the function is
jitted as usual. Files are pickles of ``jax.experimental.serialize_executable``'s bytes: the
store is as trusted as the cache directory it lives in.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import logging
import os
import pickle
from typing import Callable, Sequence

import jax
import numpy as np
from jax.experimental import serialize_executable

from clap_jax import atomic

log = logging.getLogger(__name__)
SUBDIR = "programs"   # under the persistent compilation cache's directory
# jax settings that change what a function traces to (read at each call: context managers count)
_TRACE_CONFIG = ("jax_enable_x64", "jax_default_matmul_precision", "jax_numpy_dtype_promotion",
                 "jax_numpy_rank_promotion", "jax_default_prng_impl", "jax_threefry_partitionable")


def directory() -> str | None:
    """Where programs are stored: ``<jax_compilation_cache_dir>/programs``, or None (cache off)."""
    root = jax.config.jax_compilation_cache_dir
    return os.path.join(root, SUBDIR) if root else None


@functools.lru_cache(maxsize=None)
def _sources_digest(names: tuple[str, ...]) -> str:
    """SHA-256 over the .py files of the named modules (a package: every .py file in its folder)."""
    h = hashlib.sha256()
    for name in names:
        module = importlib.import_module(name)
        path = module.__file__
        files = ([os.path.join(os.path.dirname(path), f) for f in sorted(os.listdir(os.path.dirname(path)))
                  if f.endswith(".py")] if os.path.basename(path) == "__init__.py" else [path])
        for f in files:
            h.update(os.path.basename(f).encode())
            with open(f, "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def _platform() -> str:
    import jaxlib
    devices = ",".join(f"{d.platform}:{d.device_kind}:{d.id}" for d in jax.devices())
    return f"jax={jax.__version__} jaxlib={jaxlib.__version__} {jax.default_backend()} [{devices}]"


def _leaf(x) -> str:
    """Shape, dtype, weak type and sharding of one argument leaf: what its program depends on."""
    if isinstance(x, jax.Array):
        aval = x.aval
        return f"{aval.str_short()} weak={aval.weak_type} {x.sharding} committed={x.committed}"
    if isinstance(x, (np.ndarray, np.generic)):
        return f"np {x.dtype}{list(np.shape(x))}"
    return f"py {type(x).__name__}"   # Python scalars trace as weak-typed: the type decides


class StoredProgram:
    """A jitted function whose programs are kept in :func:`directory` (module docstring)."""

    def __init__(self, fn: Callable, *, sources: Sequence[str], static_argnames: Sequence[str] = ()):
        self._static = tuple(static_argnames)
        self._jitted = jax.jit(fn, static_argnames=self._static)     # the cache-off path
        # The store's compiles go through a copy named apart ("stored_<name>"), so that XLA's cache
        # never holds them: an executable loaded from there cannot be serialized again.
        renamed = functools.wraps(fn)(lambda *a, **k: fn(*a, **k))
        renamed.__name__ = renamed.__qualname__ = f"stored_{fn.__name__}"
        self._aot = jax.jit(renamed, static_argnames=self._static)
        self._sources = tuple(sources)
        self._loaded: dict[str, Callable] = {}          # key -> executable, for this process
        functools.update_wrapper(self, fn)

    def key(self, args: tuple, kwargs: dict) -> str | None:
        """The program's key (module docstring), computed without tracing; None when a static
        argument's repr holds a memory address (it would differ in every process)."""
        static = repr(sorted((k, v) for k, v in kwargs.items() if k in self._static))
        if " at 0x" in static:
            return None
        dynamic = {k: v for k, v in kwargs.items() if k not in self._static}
        leaves, tree = jax.tree.flatten((args, dynamic))
        parts = [f"{self.__module__}.{self.__qualname__}", _sources_digest(self._sources), static,
                 str(tree), *map(_leaf, leaves), _platform(), os.environ.get("XLA_FLAGS", ""),
                 *(f"{name}={getattr(jax.config, name)}" for name in _TRACE_CONFIG)]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def __call__(self, *args, **kwargs):
        folder = directory()
        if folder is None:
            return self._jitted(*args, **kwargs)
        key = self.key(args, kwargs)
        if key is None:
            return self._jitted(*args, **kwargs)
        dynamic = {k: v for k, v in kwargs.items() if k not in self._static}
        program = self._loaded.get(key)
        if program is not None:
            return program(*args, **dynamic)
        path = os.path.join(folder, key + ".exe")
        program = self._load(path)
        if program is not None:
            try:   # an executable this jaxlib loads but cannot run fails on its first call
                out = jax.block_until_ready(program(*args, **dynamic))
                self._loaded[key] = program
                return out
            except jax.errors.JaxRuntimeError as e:
                log.warning("program store: %s failed to run (%s); compiling again", path, e)
        program = self._loaded[key] = self._compile(path, args, kwargs)
        return program(*args, **dynamic)

    def _load(self, path: str):
        if not os.path.exists(path):
            return None
        try:
            with open(path, "rb") as f:
                payload, in_tree, out_tree = pickle.load(f)
            return serialize_executable.deserialize_and_load(payload, in_tree, out_tree)
        except Exception as e:   # another jaxlib, a damaged file: compile again and replace it
            log.warning("program store: %s unreadable (%s: %s); compiling again", path, type(e).__name__, e)
            return None

    def _compile(self, path: str, args: tuple, kwargs: dict):
        """A fresh compile (never one loaded from XLA's cache: jaxlib cannot serialize those
        again), kept out of XLA's cache (the store holds it), serialized to ``path``, replacing
        what was there. The cache's minimum compile time is raised for the call (a process-wide
        jax setting: not thread-safe)."""
        hits = _CACHE_HITS[0]
        minimum = jax.config.jax_persistent_cache_min_compile_time_secs
        jax.config.update("jax_persistent_cache_min_compile_time_secs", float("inf"))
        try:
            compiled = self._aot.lower(*args, **kwargs).compile()
        finally:
            jax.config.update("jax_persistent_cache_min_compile_time_secs", minimum)
        if _CACHE_HITS[0] != hits:   # served by XLA's cache after all: run it, store nothing
            return compiled
        try:
            blob = pickle.dumps(serialize_executable.serialize(compiled))
            with atomic.path(path) as tmp, open(tmp, "wb") as f:
                f.write(blob)
        except OSError as e:     # a read-only or full cache directory: run without storing
            log.warning("program store: cannot write %s (%s)", path, e)
        except Exception as e:   # a backend that cannot serialize: run unstored
            log.warning("program store: %s not serializable (%s: %s)", self.__qualname__, type(e).__name__, e)
        return compiled

    def _cache_size(self) -> int:
        """Programs this process holds: the jitted function's plus those loaded or compiled here."""
        return self._jitted._cache_size() + len(self._loaded)


_CACHE_HITS = [0]     # persistent-cache hits so far in this process (jax.monitoring)


def _count_hits(name: str, **_):
    if name == "/jax/compilation_cache/cache_hits":
        _CACHE_HITS[0] += 1


jax.monitoring.register_event_listener(_count_hits)


def stored(fn: Callable, *, sources: Sequence[str], static_argnames: Sequence[str] = ()) -> StoredProgram:
    """``jax.jit(fn, static_argnames=...)`` with its programs in the store (module docstring)."""
    return StoredProgram(fn, sources=sources, static_argnames=static_argnames)

