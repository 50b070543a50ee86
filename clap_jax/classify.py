r"""Zero-shot classification of audio files with text prompts.

    python -m clap_jax.classify                                   # bundled model and example clips
    python -m clap_jax.classify --model=converted/laion-tiny --audio=clips/ \
        --labels="dog barking,rain,siren" --prompt="This is a sound of {}." --top_k=3

Prints, per file, the top-k labels with their probabilities (softmax over the prompts of
exp(logit_scale) * cosine). ``--audio`` takes files and folders (comma-separated).
"""
from __future__ import annotations

import os

import numpy as np
from absl import app, flags

from clap_jax import api, audio
from clap_jax.data import readers

EXAMPLES = os.path.join(api.BUNDLED_DIR, "examples")
EVERYDAY_LABELS = ("high beep", "low beep", "rain", "siren wailing", "dog barking", "clock ticking", "white noise",
                   "rising chirp", "bell", "wind", "engine idling", "birds chirping", "applause", "footsteps")

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "soundscapes-small", "Converted model directory or bundled name.")
flags.DEFINE_list("audio", [EXAMPLES], "Audio files and/or folders.")
flags.DEFINE_list("labels", list(EVERYDAY_LABELS), "Class names, comma-separated.")
flags.DEFINE_string("prompt", "This is a sound of {}.", "Prompt template; {} is replaced by the label.")
flags.DEFINE_integer("top_k", 3, "Labels to print per file.")
flags.DEFINE_integer("batch_size", 16, "Clips per batch.")


def audio_paths(entries: list[str]) -> list[str]:
    paths = []
    for entry in entries:
        paths += [r.path for r in readers.AudioFolder(entry)] if os.path.isdir(entry) else [entry]
    if not paths:
        raise FileNotFoundError(f"no audio files in {entries}")
    return paths


def classify(model: api.Clap, paths: list[str], labels: list[str], prompt: str, batch_size: int = 16) -> np.ndarray:
    """Probabilities (n_files, n_labels)."""
    text = model.embed_text([prompt.format(label) for label in labels])
    probs = []
    for i in range(0, len(paths), batch_size):
        clips = [audio.read_audio(p) for p in paths[i:i + batch_size]]
        emb = model.embed_audio([x for x, _ in clips], [r for _, r in clips])
        logits = model.similarity(emb, text)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs.append(e / e.sum(axis=1, keepdims=True))
    return np.concatenate(probs)


def main(argv):
    del argv
    model = api.load(FLAGS.model)
    paths = audio_paths(FLAGS.audio)
    probs = classify(model, paths, FLAGS.labels, FLAGS.prompt, FLAGS.batch_size)
    for path, p in zip(paths, probs):
        top = np.argsort(-p)[:FLAGS.top_k]
        print(f"{os.path.basename(path)}: " + ", ".join(f"{FLAGS.labels[j]} {p[j]:.2f}" for j in top))


if __name__ == "__main__":
    app.run(main)
