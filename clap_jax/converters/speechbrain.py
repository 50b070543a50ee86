"""SpeechBrain's CNN14 classifiers (the L-MAC recipe's ESC-50 classifier, e.g. HF ``fpaissan/r``).

    folder/embedding_model.ckpt (Cnn14) + classifier.ckpt (Linear, under ``classifier.``)
        [+ label_encoder.txt] --speechbrain_spec--> ClassifierSpec (16 kHz, softmax, labels)
"""
from __future__ import annotations

import os
import re

from clap_jax import weights
from clap_jax.converters.base import Source, State, cnn14_config, shapes_of
from clap_jax.frontend import SpectrogramConfig
from clap_jax.spec import AudioConfig, ClassifierSpec

# SpeechBrain ``Cnn14`` (embedding_model.ckpt) + the recipe's ``torch.nn.Linear`` (classifier.ckpt,
# read under ``classifier.``).
SPEECHBRAIN_RULES = [
    (r"^bn0\.", "norm0."),
    (r"^(conv_block\d+)\.bn(\d)\.", r"\1.norm\2."),
    (r"^head\.", "classifier."),
]
SPEECHBRAIN_IGNORE = [r"\.num_batches_tracked$"]


def speechbrain_spec(state: State, labels: tuple[str, ...] = ()) -> ClassifierSpec:
    """SpeechBrain's CNN14 ESC-50 classifier as the L-MAC recipe (``lmac_cnn14.yaml``) runs it:
    16 kHz, clips divided by their maximum sample, 5 s windows (zero-padded); ``STFT(n_fft=1024,
    win_length=23.2199 ms, hop_length=11.6099 ms)``: Hamming window of round(16 * 23.2199) = 372
    samples, hop 186, zero padding at the ends; ``spectral_magnitude(power=0.5)``;
    ``Filterbank(n_mels=80, log_mel=False)`` (0-8000 Hz) on the magnitude; ``log1p``. The
    classifier is ``Linear(2048, classes)`` on the pooled CNN14 output; softmax over classes."""
    with shapes_of("speechbrain"):
        model = cnn14_config(state, "", "norm0", "classifier", fc1=False)
    sr = 16000
    ms = lambda v: int(round(sr / 1000.0 * v))        # SpeechBrain's STFT takes milliseconds
    spec = SpectrogramConfig(
        sample_rate=sr, n_fft=1024, win_length=ms(23.2199), hop_length=ms(11.6099), n_mels=model.n_mels, fmin=0.0,
        fmax=8000.0, mel_scale="speechbrain", mel_norm=None, pad_mode="constant", window="hamming",
        mel_exponent=1.0, compression="log1p", magnitude_eps=1e-14)
    return ClassifierSpec(model=model, audio=AudioConfig(spectrogram=spec, clip_samples=5 * sr, pad="zeros",
                                                         quantize_int16=False, normalize="max"),
                          source="speechbrain", activation="softmax", labels=labels)


def read_speechbrain_labels(path: str) -> tuple[str, ...]:
    """Class names from a SpeechBrain ``label_encoder.txt`` (lines ``'dog' => 0``), by index."""
    names = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"^'(.*)' => (\d+)$", line.strip())
            if m and not m.group(1).startswith("starting_index"):
                names[int(m.group(2))] = m.group(1)
    return tuple(names[i] for i in sorted(names))


def read_speechbrain(path: str, allow_unsafe_pickle: bool = False) -> tuple[State, tuple[str, ...]]:
    """A SpeechBrain classifier directory (or a file in it): ``embedding_model.ckpt`` (the CNN14)
    and ``classifier.ckpt`` (its Linear, read under ``classifier.``); ``label_encoder.txt`` if present."""
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    files = {name: os.path.join(directory, f"{name}.ckpt") for name in ("embedding_model", "classifier")}
    for name, f in files.items():
        if not os.path.exists(f):
            raise FileNotFoundError(f"{directory}: no {name}.ckpt (a SpeechBrain classifier directory holds "
                                    "embedding_model.ckpt and classifier.ckpt)")
    state = weights.read_state_dict(files["embedding_model"], allow_unsafe_pickle)
    for k, v in weights.read_state_dict(files["classifier"], allow_unsafe_pickle).items():
        state[f"classifier.{k}"] = v
    labels_file = os.path.join(directory, "label_encoder.txt")
    return state, read_speechbrain_labels(labels_file) if os.path.exists(labels_file) else ()


def read(path: str, allow_unsafe_pickle: bool) -> tuple[State, ClassifierSpec]:
    """A SpeechBrain classifier directory: its state dict and spec (with the labels)."""
    state, labels = read_speechbrain(path, allow_unsafe_pickle)
    return state, speechbrain_spec(state, labels)


SOURCE = Source(name="speechbrain", checkpoint="a SpeechBrain classifier directory "
                "(embedding_model.ckpt + classifier.ckpt)", read=read, rules={"speechbrain": SPEECHBRAIN_RULES},
                ignore=SPEECHBRAIN_IGNORE, classifier=True)
