r"""Supervised training of a CNN14 sound classifier on single-event soundscapes clips.

    python -m train.classifier --config=configs/classifier_soundscapes.py \
        --workdir=runs/soundscapes-cnn14 --export=clap_jax/bundled/soundscapes-cnn14

The model is the project's :class:`clap_jax.models.cnn14.Cnn14` (any widths; SpeechBrain-style
``embed_dim=0``: the embedding is the pooled last block) with a linear head over the corpus'
56 classes, on the SpeechBrain L-MAC recipe's 16 kHz front end (the config's ``frontend``;
:func:`clap_jax.convert.speechbrain_spec` is the same chain). Data flow of one step::

    clip (soundscapes, one event over a background)  --pipeline.prepare (max-normalise, fit)-->
    waves (B, clip_samples) --frontend.log_mel--> (B, 1, frames, n_mels) --Cnn14 (BN on batch
    statistics)--> logits (B, classes) --softmax cross-entropy with the event's class index

Three disjoint seeds of the corpus: ``data.seed`` trains, ``data.eval_seed`` is the validation
set evaluated every ``eval_every`` steps (accuracy), ``data.test_seed`` is used once, after
training, for the held-out test accuracy (printed and written to ``workdir/test.json``).
``--export`` writes a converted classifier directory (``clap_jax.load_classifier``).
"""
from __future__ import annotations

import functools
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from clap_jax import checkpoint, frontend, pipeline
from clap_jax.data import soundscapes
from clap_jax.configs import from_config
from clap_jax.frontend import SpectrogramConfig
from clap_jax.models.cnn14 import Cnn14, Cnn14Config
from clap_jax.spec import AudioConfig, ClassifierSpec
from train import cli, loop
from train.data import Loader

LABELS = tuple(c.label for c in soundscapes.CLASSES)   # index order of the head


class SingleEventSource:
    """Random access to single-event soundscapes clips (one event over a background, no masks):
    index -> :class:`soundscapes.Clip`, generated on demand from ``(seed, index)``."""

    def __init__(self, seed: int, size: int, sample_rate: int, duration: float):
        self.seed, self.size = seed, size
        self.cfg = soundscapes.SoundscapeConfig(sample_rate=sample_rate, duration=duration, single_event=True,
                                                stft=None)

    def __len__(self):
        return self.size

    def __getitem__(self, index: int) -> soundscapes.Clip:
        return soundscapes.generate_clip(self.seed, int(index), self.cfg)


def build_spec(cfg: ml_collections.ConfigDict) -> ClassifierSpec:
    """The converted-classifier spec of the config: ``model`` (CNN14 sizes), ``frontend``, ``audio``, labels."""
    f = cfg.frontend
    model = from_config(Cnn14Config, cfg.model, "config.model", n_mels=f.n_mels, num_classes=len(LABELS))
    spectrogram = from_config(SpectrogramConfig, f, "config.frontend")
    audio = from_config(AudioConfig, cfg.audio, "config.audio", spectrogram=spectrogram,
                        clip_samples=int(round(f.sample_rate * cfg.data.duration)))
    return ClassifierSpec(model=model, audio=audio, source="clap-jax", activation="softmax", labels=LABELS)


def prepare(clips: list[soundscapes.Clip], spec: ClassifierSpec) -> np.ndarray:
    """Clips -> (B, clip_samples) float32, prepared exactly as :class:`Classifier` prepares input."""
    return pipeline.prepare([(c.audio, c.sample_rate) for c in clips], spec.audio).waves.astype(np.float32)


def make_decode(spec: ClassifierSpec):
    def decode(clip: soundscapes.Clip, rng: np.random.Generator) -> dict[str, np.ndarray]:
        del rng
        return {"waves": prepare([clip], spec)[0], "label": np.int32(clip.target)}
    return decode


def classification_loss(spec: ClassifierSpec):
    """Softmax cross-entropy of the logits against the clip's class; batch accuracy as a metric.
    The model must be in training mode (``model.train()``: BatchNorm on batch statistics, its
    running averages updated in place, which the loop carries)."""
    sg = spec.audio.spectrogram

    def loss(model: Cnn14, batch, rng):
        del rng
        logits = model(frontend.log_mel(batch["waves"], sg)[:, None])["logits"]
        labels = batch["label"]
        value = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return value, {"batch_accuracy": (jnp.argmax(logits, -1) == labels).mean()}
    return loss


@functools.partial(jax.jit, static_argnums=(0, 1))
def _logits(graphdef, sg: SpectrogramConfig, state, waves):
    return nnx.merge(graphdef, state)(frontend.log_mel(waves, sg)[:, None])["logits"]


def predict(model: Cnn14, spec: ClassifierSpec, waves: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Class indices (N,) for prepared clips (N, clip_samples), with running BN statistics."""
    model.eval()
    graphdef, state = nnx.split(model)
    return np.concatenate([np.argmax(np.asarray(_logits(graphdef, spec.audio.spectrogram, state,
                                                        waves[i:i + batch_size])), -1)
                           for i in range(0, len(waves), batch_size)])


def held_out(seed: int, n: int, spec: ClassifierSpec, duration: float) -> tuple[np.ndarray, np.ndarray]:
    """(prepared waves (n, clip_samples), class indices (n,)) of single-event clips 0..n-1 of ``seed``."""
    source = SingleEventSource(seed, n, spec.audio.spectrogram.sample_rate, duration)
    clips = [source[i] for i in range(n)]
    return prepare(clips, spec), np.array([c.target for c in clips])


def initial_model(spec: ClassifierSpec, seed: int) -> Cnn14:
    return Cnn14(spec.model, rngs=nnx.Rngs(seed))


def run(cfg: ml_collections.ConfigDict, workdir: str, export: str | None = None) -> tuple[Cnn14, dict[str, float]]:
    """Trains (resuming from ``workdir``), evaluates on the test seed, exports; returns the
    model (evaluation mode) and the test metrics."""
    d = cfg.data
    if len({d.seed, d.eval_seed, d.test_seed}) != 3:
        raise ValueError(f"data.seed, data.eval_seed, data.test_seed must differ: {d.seed}, {d.eval_seed}, {d.test_seed}")
    spec = build_spec(cfg)
    model = initial_model(spec, cfg.seed)
    model.train()
    val_waves, val_labels = held_out(d.eval_seed, d.eval_clips, spec, d.duration)

    def evaluate_model(m):
        return {"val_accuracy": float((predict(m, spec, val_waves) == val_labels).mean())}

    loader = Loader(SingleEventSource(d.seed, d.train_clips, spec.audio.spectrogram.sample_rate, d.duration),
                    make_decode(spec), cfg.batch_size, seed=d.seed, process_index=jax.process_index(),
                    process_count=jax.process_count(), workers=d.workers)
    task = loop.Task(model=model, loss=classification_loss(spec), evaluate=evaluate_model)
    trained = loop.train(cfg, task, loader, workdir)
    trained.eval()
    test_waves, test_labels = held_out(d.test_seed, d.test_clips, spec, d.duration)
    pred = predict(trained, spec, test_waves)
    result = {"test_accuracy": float((pred == test_labels).mean()), "test_clips": int(len(test_labels)),
              "test_seed": int(d.test_seed), "steps": int(cfg.steps)}
    if jax.process_index() == 0:
        with open(os.path.join(workdir, "test.json"), "w") as f:
            json.dump(result, f, indent=2)
        if export:
            checkpoint.save_converted(export, spec, trained, None, overwrite=True)
    return trained, result


if __name__ == "__main__":
    cli.main(run, "Write the trained classifier as a converted directory here.",
             report=lambda cfg, out: print(json.dumps(out[1])))
