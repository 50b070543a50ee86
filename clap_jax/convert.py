r"""Converts published PyTorch CLAP checkpoints and CNN14 classifiers into converted directories.

    python -m clap_jax.convert --source=laion --checkpoint=630k-audioset-best.pt \
        --tokenizer=roberta-base/ --out=converted/laion-tiny [--allow_unsafe_pickle]
    python -m clap_jax.convert --source=hf --checkpoint=clap-htsat-unfused/ --out=converted/hf-tiny
    python -m clap_jax.convert --source=msclap --checkpoint=CLAP_weights_2023.pth --tokenizer=gpt2/ \
        --out=converted/msclap-2023
    python -m clap_jax.convert --source=panns --checkpoint=Cnn14_mAP=0.431.pth --out=converted/panns-cnn14
    python -m clap_jax.convert --source=speechbrain --checkpoint=cnn14-esc50/ --out=converted/sb-cnn14-esc50

The architecture is read from the checkpoint itself (LAION, Microsoft CLAP, PANNs, SpeechBrain:
tensor shapes; HF: config.json and preprocessor_config.json), so any sizes load, not only the
published ones. The sources are a registry, ``clap_jax.converters.SOURCES`` (one module each,
with its rule table ``*_RULES`` mapping our module paths to its names and its list of unused
tensors ``*_IGNORE``; a new source is described there); this module is the command, the same for
every source: check the flags, read, load with every key matched both ways, write atomically.
"""
from __future__ import annotations

import os

from absl import flags

from clap_jax import checkpoint, cli_errors, weights
from clap_jax.converters import SOURCES, Source
from clap_jax.spec import ClapSpec, ClassifierSpec

# The sources' tables and spec readers that callers (tests, benchmarks) take from this module.
from clap_jax.converters.hf import hf_to_laion
from clap_jax.converters.laion import LAION_IGNORE, LAION_RULES, laion_spec
from clap_jax.converters.msclap import MSCLAP_2022_RULES, MSCLAP_2023_RULES, MSCLAP_IGNORE, msclap_spec
from clap_jax.converters.panns import panns_spec
from clap_jax.converters.speechbrain import SPEECHBRAIN_IGNORE, SPEECHBRAIN_RULES, speechbrain_spec

__all__ = ["SOURCES", "check_arguments", "convert", "describe", "main",
           "hf_to_laion", "LAION_IGNORE", "LAION_RULES", "laion_spec", "MSCLAP_2022_RULES", "MSCLAP_2023_RULES",
           "MSCLAP_IGNORE", "msclap_spec", "panns_spec", "SPEECHBRAIN_IGNORE", "SPEECHBRAIN_RULES", "speechbrain_spec"]


def check_arguments(source: str, checkpoint_path: str, out: str, tokenizer: str | None = None,
                    overwrite: bool = False) -> Source:
    """Everything about the flags that can be checked before the checkpoint is read: the source,
    the checkpoint exists, a tokenizer folder where the source needs one, and ``out``
    (``checkpoint.check_output_dir``: new, or with ``overwrite`` a converted model). Returns the source."""
    if source not in SOURCES:
        raise ValueError(f"unknown --source {source!r} ({', '.join(SOURCES)})")
    src = SOURCES[source]
    if not checkpoint_path or not os.path.exists(checkpoint_path):
        raise FileNotFoundError(f"--checkpoint={checkpoint_path}: no such file or folder")
    from clap_jax.tokenizer import TOKENIZER_FILES
    if tokenizer is not None and not os.path.isdir(tokenizer):
        raise FileNotFoundError(f"--tokenizer={tokenizer}: no such folder (a Hugging Face tokenizer directory)")
    tok_dir = tokenizer or (checkpoint_path if src.tokenizer_in_checkpoint and os.path.isdir(checkpoint_path)
                            else None)
    tok_dir = None if src.classifier else tok_dir          # classifiers have no text
    if tok_dir is not None and not any(os.path.exists(os.path.join(tok_dir, f)) for f in TOKENIZER_FILES):
        raise FileNotFoundError(f"{tok_dir}: no tokenizer files ({', '.join(TOKENIZER_FILES)})")
    if tokenizer is None and src.tokenizer:
        raise ValueError(f"{checkpoint_path}: {src.title} checkpoints carry no tokenizer; pass --tokenizer=DIR "
                         f"(a Hugging Face {src.tokenizer} directory)")
    checkpoint.check_output_dir(out, overwrite)
    return src


def convert(source: str, checkpoint_path: str, out: str, tokenizer: str | None = None,
            allow_unsafe_pickle: bool = False, overwrite: bool = False) -> ClapSpec | ClassifierSpec:
    """Converts one checkpoint; returns the spec written to ``out``. The arguments are checked
    first (:func:`check_arguments`); a checkpoint that cannot be read or does not fit raises
    ``weights.CheckpointError`` / ``weights.CheckpointMismatch`` naming the file and the key."""
    src = check_arguments(source, checkpoint_path, out, tokenizer, overwrite)
    try:
        state, spec = src.read(checkpoint_path, allow_unsafe_pickle)
        model = (checkpoint.abstract_classifier if src.classifier else checkpoint.abstract_model)(spec)
        weights.load_state(model, state, src.rules[spec.source], src.ignore, source=checkpoint_path)
        tok_dir = None if src.classifier else tokenizer or (checkpoint_path if src.tokenizer_in_checkpoint else None)
        checkpoint.save_converted(out, spec, model, tok_dir, overwrite)
    except weights.CheckpointMismatch as err:
        raise err.naming(checkpoint_path) from err
    return spec


def _checkpoint_help() -> str:
    names = [s.checkpoint for s in SOURCES.values()]
    return ", ".join(names[:-1]) + ", or " + names[-1] + "." if len(names) > 1 else names[0] + "."


FLAGS = flags.FLAGS
flags.DEFINE_enum("source", None, list(SOURCES), "Checkpoint family.")
flags.DEFINE_string("checkpoint", None, _checkpoint_help())
flags.DEFINE_string("out", None, "Output directory (written atomically).")
flags.DEFINE_string("tokenizer", None, "Tokenizer directory in Hugging Face format (required for LAION: roberta-base; "
                    "msclap 2022: bert-base-uncased; msclap 2023: gpt2).")
flags.DEFINE_bool("allow_unsafe_pickle", False,
                  "Read the checkpoint with torch.load(weights_only=False). The published LAION .pt files need it "
                  "under current torch, but full unpickling executes any code stored in the file: use it only for "
                  "files from a source you trust.")
flags.DEFINE_bool("overwrite", False, "Replace an existing converted model directory (one with spec.json; "
                  "any other existing folder is never replaced), atomically.")


@cli_errors.guard("clap_jax.convert")
def main(argv):
    """Exit status 0 when written; 1 with one line on stderr naming what is wrong (the traceback
    with ``--verbosity=1``), nothing written at ``--out``."""
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {argv[1:]}")
    spec = convert(FLAGS.source, FLAGS.checkpoint, FLAGS.out, FLAGS.tokenizer, FLAGS.allow_unsafe_pickle,
                   FLAGS.overwrite)
    print(f"wrote {FLAGS.out}: {describe(spec)}")
    return 0


def describe(spec: ClapSpec | ClassifierSpec) -> str:
    """One line about a converted model's architecture."""
    a = spec.model if isinstance(spec, ClassifierSpec) else spec.model.audio
    if a.kind == "htsat":
        audio = f"HTSAT embed_dim={a.embed_dim} depths={a.depths} fusion={a.fusion}"
    else:
        audio = f"CNN14 mels={a.n_mels} embedding={a.num_features} classes={a.num_classes}"
    if isinstance(spec, ClassifierSpec):
        return f"{spec.source} classifier, {audio}, {spec.audio.spectrogram.sample_rate} Hz"
    t = spec.model.text
    return f"{spec.source} {audio}, text {t.kind} layers={t.num_layers}, joint_dim={spec.model.joint_dim}"


if __name__ == "__main__":
    from clap_jax import runtime
    flags.mark_flags_as_required(["source", "checkpoint", "out"])
    runtime.run(main)
