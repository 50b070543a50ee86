"""CNN14 audio classifiers (PANNs AudioSet tagging, SpeechBrain's ESC-50 classifier of the L-MAC
recipe): ``clap_jax.load_classifier(dir)`` -> :class:`Classifier`.

    clf = clap_jax.load_classifier("converted/sb-cnn14-esc50")     # no torch needed
    out = clf(waves, sample_rate=16000)       # logits (B, classes), embedding, blocks 1-6
    probs = clf.probabilities(waves, 16000)   # softmax (SpeechBrain) or sigmoid (PANNs)

For explanation methods the pieces are pure functions of arrays: ``clf.log_mel_from_magnitude``
maps a (masked) linear STFT magnitude to the classifier's input features with the source's mel
bank and compression, and ``clf.apply(state, features)`` runs the network, both differentiable.
"""
from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from clap_jax import api, audio, batching, checkpoint, frontend, pipeline
from clap_jax.models.cnn14 import Cnn14
from clap_jax.spec import ClassifierSpec


@functools.partial(jax.jit, static_argnames=("graphdef", "cfg"))
def classify(graphdef, cfg: frontend.SpectrogramConfig, state, waves: jnp.ndarray) -> dict:
    """Prepared clips (B, clip_samples) -> the network's outputs; one program per architecture,
    front end and batch shape, shared by every :class:`Classifier`."""
    with jax.default_matmul_precision("highest"):
        return nnx.merge(graphdef, state)(frontend.log_mel(waves, cfg)[:, None])


class Classifier:
    """A CNN14 classifier with its source's audio pipeline. Outputs are float32 numpy arrays;
    ``blocks`` are the six ConvBlock outputs, NHWC (B, frames / 2^k, mels / 2^k, channels)."""

    def __init__(self, spec: ClassifierSpec, model: Cnn14):
        if not spec.model.num_classes:
            raise ValueError(f"{spec.source}: this CNN14 has no classification head (num_classes=0)")
        self.spec = spec
        self.graphdef, self.state = nnx.split(model)

    def apply(self, state, features: jnp.ndarray) -> dict:
        """Pure: parameters + input features (B, 1, frames, n_mels) -> ``logits``, ``embedding``, ``blocks``."""
        return nnx.merge(self.graphdef, state)(features)

    def log_mel_from_magnitude(self, mag: jnp.ndarray) -> jnp.ndarray:
        """Pure: linear STFT magnitude (B, frames, n_freq) -> input features (B, 1, frames, n_mels)."""
        return frontend.log_mel_from_magnitude(mag, self.spec.audio.spectrogram)[:, None]

    def magnitude(self, waves: jnp.ndarray) -> jnp.ndarray:
        """Pure: prepared clips (B, clip_samples) -> linear STFT magnitude (B, frames, n_freq)."""
        cfg = self.spec.audio.spectrogram
        return frontend.magnitude(frontend.stft(waves, cfg), cfg.magnitude_eps)

    def prepare_audio(self, waveforms, sample_rate, crop: str | None = None, seed: int | None = None) -> np.ndarray:
        """Host preparation: resampling, normalisation, padding/cropping -> (B, clip_samples)."""
        clips = audio.as_waveform_list(waveforms, sample_rate)
        return pipeline.prepare(clips, self.spec.audio, crop, seed).waves

    def __call__(self, waveforms, sample_rate, *, crop: str | None = None, seed: int | None = None) -> dict:
        """``logits`` (B, classes), ``embedding`` (B, D) and ``blocks`` for a batch of clips (any
        lengths and rates; see :meth:`clap_jax.api.Clap.embed_audio` for the length policy)."""
        waves = self.prepare_audio(waveforms, sample_rate, crop, seed)
        outs = []
        for start, stop in batching.spans(len(waves)):
            arrays, valid = batching.pad_rows({"waves": waves[start:stop]}, batching.bucket(stop - start))
            out = classify(self.graphdef, self.spec.audio.spectrogram, self.state, arrays["waves"])
            outs.append(jax.tree.map(lambda x: np.asarray(x)[valid], out))
        return jax.tree.map(lambda *xs: np.concatenate(xs), *outs)

    def logits(self, waveforms, sample_rate, **kw) -> np.ndarray:
        return self(waveforms, sample_rate, **kw)["logits"]

    def probabilities(self, waveforms, sample_rate, **kw) -> np.ndarray:
        """Class probabilities (B, classes): ``spec.activation`` (sigmoid or softmax) of the logits."""
        logits = jnp.asarray(self.logits(waveforms, sample_rate, **kw))
        act = {"sigmoid": jax.nn.sigmoid, "softmax": lambda x: jax.nn.softmax(x, axis=-1)}[self.spec.activation]
        return np.asarray(act(logits))


def load_classifier(name_or_dir: str, dtype=jnp.float32) -> Classifier:
    """Loads a converted classifier directory (``--source=panns|speechbrain``, or one written by
    ``train.classifier``) or the name of a bundled classifier (``"soundscapes-cnn14"``, resolved in
    :data:`clap_jax.api.BUNDLED_DIR` as :func:`clap_jax.load` resolves names) without torch."""
    directory = name_or_dir
    if not os.path.isdir(directory) and os.path.isdir(os.path.join(api.BUNDLED_DIR, name_or_dir)):
        directory = os.path.join(api.BUNDLED_DIR, name_or_dir)
    spec = checkpoint.read_spec(directory, ClassifierSpec)
    model = checkpoint.restore_params(os.path.join(directory, checkpoint.PARAMS_DIR),
                                      checkpoint.abstract_classifier(spec, dtype))
    return Classifier(spec, model)
