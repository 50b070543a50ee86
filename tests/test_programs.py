"""The program store (clap_jax.programs): a new process loads a solver program without tracing it,
gets the same bits, keys follow everything that changes a program, and a damaged file is replaced."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clap_jax import programs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SOLVE = """
import json, sys
import jax
jax.config.update("jax_num_cpu_devices", int(sys.argv[2]))
import numpy as np
from clap_jax import runtime
runtime.enable_compilation_cache(sys.argv[1])
import sparse
from sparse.lasso import driver
traced = []
body = driver._solve_chunk
driver._solve_chunk = lambda *a, **k: (traced.append(1), body(*a, **k))[1]
rng = np.random.default_rng(0)
C = rng.normal(size=(150, 48)).astype(np.float32)
Z = (rng.uniform(size=(70, 150)) * (rng.uniform(size=(70, 150)) < 0.05)) @ C
out = {m: sparse.nonneg_lasso(C, Z, 0.05, method=m).weights.tolist() for m in ("working_set", "fista")}
print(json.dumps({"traced": len(traced), "devices": len(jax.devices()), "weights": out}))
"""


@pytest.mark.parametrize("devices", [1, 2])
def test_a_second_process_loads_the_solver_without_tracing_it(tmp_path, devices):
    def run():
        r = subprocess.run([sys.executable, "-c", SOLVE, str(tmp_path / "xla"), str(devices)], cwd=ROOT,
                           env={**os.environ, "JAX_PLATFORMS": "cpu"}, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        return json.loads(r.stdout.splitlines()[-1])

    first, second = run(), run()
    assert first["devices"] == second["devices"] == devices
    assert first["traced"] >= 2 and second["traced"] == 0     # every program came from the store
    stored = os.listdir(tmp_path / "xla" / programs.SUBDIR)
    assert len(stored) >= 2 and all(f.endswith(".exe") for f in stored)
    for method in ("working_set", "fista"):                  # the loaded programs compute the same bits
        assert np.array_equal(first["weights"][method], second["weights"][method])
        assert np.asarray(first["weights"][method]).max() > 0


def _double(x, *, scale):
    return x * scale + jnp.sum(x)


def _store():
    return programs.stored(_double, static_argnames=("scale",), sources=("clap_jax.linalg",))


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """The store in tmp_path (as if the persistent cache were on there)."""
    monkeypatch.setattr(programs, "directory", lambda: str(tmp_path))
    return tmp_path


def test_keys_follow_static_arguments_shapes_dtypes_sources_and_precision(cache_dir, monkeypatch):
    fn = _store()
    x = np.ones((3, 2), np.float32)
    key = fn.key((x,), {"scale": 2.0})
    assert key == fn.key((np.zeros((3, 2), np.float32),), {"scale": 2.0})    # values do not matter
    others = [fn.key((x,), {"scale": 3.0}), fn.key((np.ones((4, 2), np.float32),), {"scale": 2.0}),
              fn.key((x.astype(np.int32),), {"scale": 2.0}), fn.key((jnp.asarray(x),), {"scale": 2.0}),
              fn.key(((x, x),), {"scale": 2.0})]
    with jax.default_matmul_precision("highest"):
        others.append(fn.key((x,), {"scale": 2.0}))
    monkeypatch.setattr(programs, "_sources_digest", lambda names: "edited")
    others.append(fn.key((x,), {"scale": 2.0}))
    assert len({key, *others}) == len(others) + 1
    assert fn.key((x,), {"scale": object()}) is None          # an address in a repr: never stored


def test_the_store_is_used_only_with_the_cache_on_and_a_damaged_file_is_replaced(cache_dir, caplog, monkeypatch):
    compiled = []
    compile_ = programs.StoredProgram._compile
    monkeypatch.setattr(programs.StoredProgram, "_compile", lambda self, *a: (compiled.append(1), compile_(self, *a))[1])
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    expected = x * 2.0 + x.sum()
    np.testing.assert_allclose(_store()(x, scale=2.0), expected)
    (path,) = [cache_dir / f for f in os.listdir(cache_dir)]
    np.testing.assert_allclose(_store()(x, scale=2.0), expected)   # a new wrapper loads the file
    assert len(compiled) == 1

    path.write_bytes(b"not a program")
    with caplog.at_level(logging.WARNING, logger="clap_jax.programs"):
        np.testing.assert_allclose(_store()(x, scale=2.0), expected)
    assert "unreadable" in caplog.text and str(path) in caplog.text
    assert len(compiled) == 2 and path.read_bytes() != b"not a program"   # compiled again, file rewritten
    np.testing.assert_allclose(_store()(x, scale=2.0), expected)
    assert len(compiled) == 2

    blocked = cache_dir / "file"                               # a directory that cannot be written
    blocked.write_text("")
    monkeypatch.setattr(programs, "directory", lambda: str(blocked / "programs"))
    with caplog.at_level(logging.WARNING, logger="clap_jax.programs"):
        np.testing.assert_allclose(_store()(x, scale=4.0), x * 4.0 + x.sum())
    assert "cannot write" in caplog.text and len(compiled) == 3

    monkeypatch.setattr(programs, "directory", lambda: None)  # cache off: the plain jitted function
    np.testing.assert_allclose(_store()(x, scale=5.0), x * 5.0 + x.sum())
    assert len(compiled) == 3 and len(os.listdir(cache_dir)) == 2     # the program and "file"


def test_a_compile_that_xla_cache_served_is_run_but_not_stored(cache_dir):
    """jaxlib cannot serialize an executable loaded from XLA's cache again: such a compile is
    used, not written to the store."""
    fn = _store()
    lower = fn._aot.lower

    class Served:                        # a compile during which XLA's cache reported a hit
        def __init__(self, *a, **k):
            self.lowered = lower(*a, **k)

        def compile(self):
            programs._count_hits("/jax/compilation_cache/cache_hits")
            return self.lowered.compile()

    fn._aot = type("Jit", (), {"lower": staticmethod(Served)})()
    x = np.ones((2, 2), np.float32)
    np.testing.assert_allclose(fn(x, scale=3.0), x * 3.0 + 4.0)
    assert os.listdir(cache_dir) == []


def test_a_stored_program_that_fails_to_run_is_compiled_again(cache_dir, caplog, monkeypatch):
    x = np.ones((2, 2), np.float32)
    _store()(x, scale=2.0)
    (path,) = [cache_dir / f for f in os.listdir(cache_dir)]

    def broken(*args):
        def run(*a, **k):
            raise jax.errors.JaxRuntimeError("NOT_FOUND: Function iota_compare_fusion not found")
        return run

    monkeypatch.setattr(programs.serialize_executable, "deserialize_and_load", broken)
    compiled = []
    compile_ = programs.StoredProgram._compile
    monkeypatch.setattr(programs.StoredProgram, "_compile", lambda self, *a: (compiled.append(a[0]), compile_(self, *a))[1])
    with caplog.at_level(logging.WARNING, logger="clap_jax.programs"):
        np.testing.assert_allclose(_store()(x, scale=2.0), x * 2.0 + 4.0)
    assert "failed to run" in caplog.text and "iota_compare_fusion" in caplog.text
    assert compiled == [str(path)] and path.exists()          # compiled again, the file rewritten
