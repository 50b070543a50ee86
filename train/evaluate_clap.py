r"""Held-out evaluation of a CLAP on soundscapes: zero-shot accuracy and text-to-audio R@1.

    python -m train.evaluate_clap --config=configs/clap_soundscapes.py --model=soundscapes-small

Zero-shot: single-event clips of a seed never used in training, prompts "This is a sound of
{label}." over all classes. Retrieval: multi-event clips, their first caption as the query,
recall@1 over the clips. Sizes from ``config.data`` (``--config.data.eval_clips=1000``).
"""
from __future__ import annotations

import json

from absl import flags

import clap_jax
from train import clap, cli


def _define_flags() -> None:
    """The command's flags, defined only when it runs (importers do not claim them)."""
    cli.define_config_flag("Training config: configs/clap_soundscapes.py, or a shipped config's name.")
    flags.DEFINE_string("model", "soundscapes-small", "Converted model directory or bundled name.")
    flags.mark_flags_as_required(["config"])


def main(argv):
    del argv
    FLAGS = flags.FLAGS
    model = clap_jax.load(FLAGS.model)
    single, multi = clap.evaluation_sets(FLAGS.config)
    metrics = clap.evaluate(model, single, multi)
    print(json.dumps({"model": FLAGS.model, "eval_clips": len(single), **metrics}))


if __name__ == "__main__":
    from clap_jax import runtime
    _define_flags()
    runtime.run(main)
