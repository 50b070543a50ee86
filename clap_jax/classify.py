r"""Zero-shot classification of audio files with text prompts.

    python -m clap_jax.classify                                   # bundled model and example clips
    python -m clap_jax.classify --model=converted/laion-tiny --audio=clips/ \
        --labels="dog barking,rain,siren" --prompt="This is a sound of {}." --top_k=3

Prints, per file, the top-k labels with their probabilities (softmax over the prompts of
exp(logit_scale) * cosine), a batch at a time as they are computed; near-silent clips (below
-90 dBFS after the mono mix, ``audio.silence_reason``) are marked ``[near-silent]``.
``--audio`` takes files and folders, comma-separated or with the flag repeated (a value naming
an existing file is taken whole, commas and all).

A file that cannot be used (does not decode, empty, NaN/inf or huge samples) is skipped: one
line on stderr naming it and why, counted in the summary line at the end; ``--strict`` stops
at the first instead. Exit status (``clap_jax.cli_errors``): 0 every file classified, 3 some
skipped, 1 none classified or a user error (one line; the traceback with ``--verbosity=1``).
"""
from __future__ import annotations

import os
import sys

import jax
import numpy as np
from absl import flags

from clap_jax import api, cli_errors, streaming
from clap_jax.examples import EVERYDAY_LABELS, EXAMPLES_DIR as EXAMPLES


audio_paths = cli_errors.audio_paths


def iter_classify(model: api.Clap, paths: list[str], labels: list[str], prompt: str, batch_size: int = 16,
                  skip=None):
    """Yields ``(path, probabilities (n_labels,), near_silent)`` per usable file, a batch at a
    time. A file that fails calls ``skip(path, error)`` (None: the error is raised)."""
    text = model.embed_text([prompt.format(label) for label in labels])
    for idx, emb, silent in streaming.iter_files(model, paths, batch_size, skip):
        probs = np.asarray(jax.nn.softmax(model.similarity(emb, text), axis=-1))
        yield from zip([paths[i] for i in idx], probs, silent)


def classify(model: api.Clap, paths: list[str], labels: list[str], prompt: str, batch_size: int = 16) -> np.ndarray:
    """Probabilities (n_files, n_labels); a bad file raises."""
    return np.stack([p for _, p, _ in iter_classify(model, paths, labels, prompt, batch_size)])


@cli_errors.guard("clap_jax.classify")
def main(argv):
    FLAGS = flags.FLAGS
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {argv[1:]}")
    labels = [label for label in FLAGS.labels if label.strip()]
    if not labels:
        raise ValueError("--labels: no class names")
    if FLAGS.top_k < 1 or FLAGS.batch_size < 1:
        raise ValueError(f"--top_k and --batch_size must be >= 1, got {FLAGS.top_k} and {FLAGS.batch_size}")
    paths = audio_paths(FLAGS.audio)                           # missing files: before the model loads
    model = api.load(FLAGS.model)
    skips = cli_errors.Skips("clap_jax.classify", FLAGS.strict)
    done = 0
    for path, p, silent in iter_classify(model, paths, labels, FLAGS.prompt, FLAGS.batch_size, skips):
        top = np.argsort(-p)[:FLAGS.top_k]
        print(f"{os.path.basename(path)}: " + ", ".join(f"{labels[j]} {p[j]:.2f}" for j in top)
              + (" [near-silent]" if silent else ""), flush=True)
        done += 1
    print(skips.summary(done, "files"), file=sys.stderr)
    return skips.exit_code(done)


def _define_flags() -> None:
    """The command's flags, defined only when it runs (importers do not claim them)."""
    flags.DEFINE_string("model", "soundscapes-small", "Converted model directory or bundled name.")
    cli_errors.define_input_flags([EXAMPLES])
    flags.DEFINE_list("labels", list(EVERYDAY_LABELS), "Class names, comma-separated.")
    flags.DEFINE_string("prompt", "This is a sound of {}.", "Prompt template; {} is replaced by the label.")
    flags.DEFINE_integer("top_k", 3, "Labels to print per file.")
    flags.DEFINE_integer("batch_size", 16, "Clips per batch.")


if __name__ == "__main__":
    from clap_jax import runtime
    _define_flags()
    runtime.run(main)
