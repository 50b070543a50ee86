"""The command line every training job shares: ``--config`` (an ml_collections file), ``--workdir``,
``--export``, multi-host start-up (``--coordinator_address``, ``--num_processes``, ``--process_id``
where JAX does not detect the cluster), the compilation cache and quiet logs
(``clap_jax.runtime``). Flags are defined only when a job runs as a script, so job modules
import side by side without claiming each other's flags.

    if __name__ == "__main__":
        cli.main(run, export_help="Write the trained classifier as a converted directory here.")
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from absl import flags
from ml_collections import config_flags

from clap_jax import runtime


def main(run: Callable[[Any, str, str | None], Any], export_help: str,
         report: Callable[[Any, Any], None] | None = None) -> None:
    """Defines the job flags and runs ``run(cfg, workdir, export)``; ``report(cfg, result)`` prints."""
    config_flags.DEFINE_config_file("config", None, "Training config (a configs/*.py file).", lock_config=True)
    flags.DEFINE_string("workdir", None, "Checkpoints and metrics.jsonl go here; rerun to resume.")
    flags.DEFINE_string("export", None, export_help)
    flags.mark_flags_as_required(["config", "workdir"])
    runtime.define_distributed_flags()

    def _main(argv):
        del argv
        logging.getLogger().setLevel(logging.INFO)
        f = flags.FLAGS
        if f.config.get("distributed", False):
            runtime.start_distributed()
        result = run(f.config, f.workdir, f.export)
        if report:
            report(f.config, result)
    runtime.run(_main)
