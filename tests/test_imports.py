"""Command modules import side by side: their absl flags are defined only when they run as a
command (``_define_flags()`` under ``if __name__ == "__main__"``), so importing several in one
process claims no flag and raises no ``DuplicateFlagError``."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS = ["train.concept_head", "train.evaluate_clap", "clap_jax.classify", "lmac.explain", "lmac.evaluate",
            "sparse.decompose", "sparse.evaluate"]
# At least one flag each command defines when it runs.
FLAG_NAMES = ["config", "workdir", "model", "audio", "labels", "prompt", "top_k", "batch_size", "strict",
              "explainer", "methods", "protocols", "vocabulary", "lam", "dataset"]


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args, *(["-c", code] if code else [])], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_command_modules_import_together_without_defining_flags():
    code = "\n".join([
        "import importlib", "from absl import flags",
        *(f"importlib.import_module({m!r})" for m in COMMANDS),
        f"defined = [n for n in {FLAG_NAMES!r} if n in flags.FLAGS]",
        "print('defined:', defined)", "assert not defined, defined",
        # The classify API other code uses stays at module level.
        "from clap_jax import classify",
        "assert classify.EXAMPLES and classify.EVERYDAY_LABELS",
        "assert callable(classify.audio_paths) and callable(classify.classify) and callable(classify.iter_classify)",
    ])
    proc = _python(code)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("module, required", [("train.concept_head", "--config"), ("train.evaluate_clap", "--config")])
def test_commands_still_define_their_required_flags(module, required):
    proc = _python("", "-m", module)
    assert proc.returncode == 1 and f"Flag {required} must have a value other than None" in proc.stderr, proc.stderr
