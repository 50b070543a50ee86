"""The command line every training job shares: ``--config`` (an ml_collections file), ``--workdir``,
``--export``, multi-host start-up (``--coordinator_address``, ``--num_processes``, ``--process_id``
where JAX does not detect the cluster), the compilation cache and quiet logs
(``clap_jax.runtime``). Flags are defined only when a job runs as a script, so job modules
import side by side without claiming each other's flags.

    if __name__ == "__main__":
        cli.main(run, export_help="Write the trained classifier as a converted directory here.")

``--config`` takes a path or the name of a config shipped in the installed ``configs`` package,
so installed commands run from any directory (:func:`config_path`)::

    --config=configs/clap_soundscapes.py   a file (relative to the working directory)
    --config=clap_soundscapes              the shipped one (as does configs/clap_soundscapes.py
                                           where that file does not exist)
"""
from __future__ import annotations

import importlib.util
import logging
import os
from typing import Any, Callable

from absl import flags
from ml_collections import config_flags

from clap_jax import runtime


def config_path(name: str) -> str:
    """The config file ``name`` stands for: ``name`` itself when the file exists; else, for a bare
    name (``clap_soundscapes``, ``clap_soundscapes.py``) or ``configs/<name>.py``, that file of the
    installed ``configs`` package. Raises ``ValueError`` (listing the shipped names) otherwise."""
    if os.path.exists(name):
        return name
    head, base = os.path.split(name)
    stem = base[:-3] if base.endswith(".py") else base
    found = importlib.util.find_spec("configs")
    folder = os.path.dirname(found.origin) if found and found.origin else None
    shipped = sorted(f[:-3] for f in os.listdir(folder) if f.endswith(".py") and f != "__init__.py") if folder else []
    if stem in shipped and os.path.normpath(head) in ("", ".", "configs"):
        return os.path.join(folder, stem + ".py")
    if stem in shipped:
        raise ValueError(f"{name}: no such config file (the shipped one: --config={stem})")
    raise ValueError(f"{name}: no such config file, and no shipped config of that name ({', '.join(shipped)})")


class _ConfigNameParser(flags.ArgumentParser):
    """Wraps ml_collections' config file parser: it is given :func:`config_path` of the flag's
    value (the part before a ``:``; ml_collections passes the rest on to ``get_config``)."""

    def __init__(self, inner: flags.ArgumentParser):
        self.inner = inner

    def parse(self, argument):
        file, colon, rest = argument.partition(":")
        return self.inner.parse(config_path(file) + colon + rest)

    def flag_type(self) -> str:
        return self.inner.flag_type()


def define_config_flag(help_string: str, flag_values: flags.FlagValues = flags.FLAGS) -> flags.FlagHolder:
    """``--config`` (with ``--config.a.b=value`` overrides, locked), accepting paths and shipped names."""
    holder = config_flags.DEFINE_config_file("config", None, help_string, flag_values=flag_values, lock_config=True)
    flag = flag_values["config"]
    flag.parser = _ConfigNameParser(flag.parser)
    return holder


def main(run: Callable[[Any, str, str | None], Any], export_help: str,
         report: Callable[[Any, Any], None] | None = None) -> None:
    """Defines the job flags and runs ``run(cfg, workdir, export)``; ``report(cfg, result)`` prints."""
    define_config_flag("Training config: a configs/*.py file or a shipped config's name (clap_soundscapes).")
    flags.DEFINE_string("workdir", None, "Checkpoints and metrics.jsonl go here; rerun to resume.")
    flags.DEFINE_string("export", None, export_help)
    flags.DEFINE_bool("strict", False, "Stop at the first training example that fails to decode (default: "
                      "replace it, list it in WORKDIR/skipped.jsonl, count it).")
    flags.mark_flags_as_required(["config", "workdir"])
    runtime.define_distributed_flags()

    def _main(argv):
        del argv
        logging.getLogger().setLevel(logging.INFO)
        f = flags.FLAGS
        if f.config.distributed:
            runtime.start_distributed()
        result = run(f.config, f.workdir, f.export)
        if report:
            report(f.config, result)
    runtime.run(_main)
