"""What every ``python -m`` command sets up before it works: the persistent compilation cache and
quiet logs.

* **Compilation cache**: XLA programs are written to ``$CLAP_JAX_CACHE/xla`` (default
  ``~/.cache/clap_jax/xla``), so a second run of any command over the same model and shapes
  loads its programs instead of compiling them. ``--nocompilation_cache`` turns it off. The
  lasso solver's programs are also kept in the program store beside it (``xla/programs``,
  ``clap_jax.programs``): a new process loads them without even tracing.
* **Quiet logs**: dependencies' INFO lines (orbax, jax, absl) are hidden unless ``--verbosity``
  is given (``--verbosity=0`` shows INFO, ``1`` debug and tracebacks).

Commands end with ``runtime.run(main)`` instead of ``absl.app.run(main)``.
"""
from __future__ import annotations

import logging
import os

import jax

CACHE_ENV = "CLAP_JAX_CACHE"
_QUIET = ("absl", "orbax", "jax", "flax", "etils", "tensorstore", "grain", "matplotlib", "PIL")


def cache_root() -> str:
    """The project's cache directory: ``$CLAP_JAX_CACHE`` or ``~/.cache/clap_jax``."""
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "clap_jax")


def enable_compilation_cache(directory: str | None = None) -> str:
    """Turns on JAX's persistent compilation cache (every program, however fast it compiled) in
    ``directory`` (default ``cache_root()/xla``); returns the directory."""
    directory = directory or os.path.join(cache_root(), "xla")
    os.makedirs(directory, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return directory


def quiet_logs() -> None:
    """Dependencies log WARNING and above only."""
    from absl import logging as absl_logging
    absl_logging.set_verbosity(absl_logging.WARNING)
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)


def define_flags() -> None:
    """The flags :func:`run` reads (once per process)."""
    from absl import flags
    if "compilation_cache" not in flags.FLAGS:
        flags.DEFINE_bool("compilation_cache", True, f"Persistent XLA compilation cache under ${CACHE_ENV}/xla "
                          "(default ~/.cache/clap_jax/xla); --nocompilation_cache turns it off.")


def configure() -> None:
    """Applies the runtime flags: the cache (unless ``--nocompilation_cache``) and quiet logs
    (unless ``--verbosity`` was given)."""
    from absl import flags
    f = flags.FLAGS
    if f.compilation_cache:
        enable_compilation_cache()
    if not f["verbosity"].present:
        quiet_logs()


def define_distributed_flags() -> None:
    """``--coordinator_address``, ``--num_processes``, ``--process_id``: multi-host start-up where the
    cluster does not say (Cloud TPU, SLURM, Open MPI and Kubernetes are detected by JAX itself)."""
    from absl import flags
    flags.DEFINE_string("coordinator_address", None, "Multi-host: host:port of process 0 (or "
                        "$JAX_COORDINATOR_ADDRESS); not needed where JAX detects the cluster.")
    flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
    flags.DEFINE_integer("process_id", None, "Multi-host: this process's index.")


def start_distributed() -> None:
    """``jax.distributed.initialize`` with :func:`define_distributed_flags`' values (None: detected);
    CPU collectives go over gloo."""
    from absl import flags
    f = flags.FLAGS
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f.coordinator_address, f.num_processes, f.process_id)


def run(main) -> None:
    """``absl.app.run(main)`` after :func:`define_flags`, with :func:`configure` before ``main``."""
    from absl import app
    define_flags()

    def _main(argv):
        configure()
        return main(argv)
    app.run(_main)
