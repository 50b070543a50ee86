"""The SpLiCE audio mean of the concept decomposition: shipped, from the inputs, or from audio.

(Batched audio embedding of many inputs is :mod:`clap_jax.streaming`.)

* :func:`soundscapes_audio_mean`: the SpLiCE audio mean of 256 synthetic soundscapes clips
  (seed 20000, disjoint from training and evaluation seeds) at the model's rate and window: how
  the ``audio_mean.npy`` a bundled model ships (``Clap.reference_audio_mean``) is made. It is
  a mean for the models trained on that corpus only; a real CLAP's mean must come from real
  audio, so no command ever uses it on its own.
* :func:`resolve_audio_mean`: the ``--audio_mean`` flag of the CLIs. ``auto`` (the default):
  the model's shipped reference mean when it has one (the bundled models), else the mean of the
  inputs being decomposed, with a logged note.
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from clap_jax import shards, streaming
from clap_jax.data import readers
from sparse import dictionary

REFERENCE_SEED, REFERENCE_CLIPS = 20000, 256


def soundscapes_audio_mean(model, cache_dir: str | None = None, progress: bool = False,
                           clips: int = REFERENCE_CLIPS, seed: int = REFERENCE_SEED) -> np.ndarray:
    """SpLiCE audio mean (d,) of synthetic soundscapes clips, cached per model (module docstring)."""
    from clap_jax.data.datasets import soundscapes_records
    path = dictionary.cache_path(cache_dir, "audio-mean", model.fingerprint,
                                  f"soundscapes seed={seed} clips={clips}")
    if path and os.path.exists(path):
        with np.load(path) as f:
            return f["mean"]
    cfg = model.spec.audio
    rate = cfg.spectrogram.sample_rate
    duration = min(10.0, cfg.clip_samples / rate)
    data = soundscapes_records(seed, clips, rate, duration, single_event=False)
    mean = dictionary.audio_mean(streaming.embed_records(model, data.records, progress=progress, desc="reference mean"))
    if path:
        dictionary.save_npz(path, mean=mean)
    return mean


def reference_audio_mean(model) -> np.ndarray:
    """The model's shipped audio mean (d,); a one-line error for a model without one."""
    if getattr(model, "reference_audio_mean", None) is None:
        raise ValueError("--audio_mean=reference: this model ships no reference audio mean (only the bundled "
                         "models do); pass --audio_mean=FOLDER (audio like yours), an extraction folder, "
                         "a .npy file or inputs")
    return model.reference_audio_mean


def uses_inputs(spec: str, model) -> bool:
    """Whether ``--audio_mean=spec`` is the mean of the inputs themselves (all needed first)."""
    return spec == "inputs" or (spec == "auto" and getattr(model, "reference_audio_mean", None) is None)


def resolve_audio_mean(spec: str, model, inputs: np.ndarray | None = None, cache_dir: str | None = None,
                       batch_size: int = 32, progress: bool = False) -> np.ndarray | None:
    """The ``--audio_mean`` flag: ``auto`` (the model's shipped mean, else the mean of ``inputs``
    with a logged note), ``reference`` (the shipped mean, refused for a model without one),
    ``inputs`` (the mean of ``inputs``, the embeddings being decomposed), ``none`` (None: no
    audio centring possible, use with center=False), a ``.npy`` file of shape (d,), a folder of
    audio (its mean, cached), or an extraction folder of ``clap_jax.extract`` (the mean of its
    shards)."""
    if spec == "none":
        return None
    if spec == "reference" or (spec == "auto" and not uses_inputs(spec, model)):
        return reference_audio_mean(model)
    if uses_inputs(spec, model):
        if inputs is None:
            raise ValueError(f"--audio_mean={spec}: no input embeddings")
        if spec == "auto":
            warnings.warn(f"audio mean: the mean of the {len(inputs)} decomposed inputs (the model ships no "
                          "reference mean); --audio_mean=FOLDER sets one from audio like yours", stacklevel=2)
        return dictionary.audio_mean(inputs)
    if spec.endswith(".npy"):
        if not os.path.exists(spec):
            raise FileNotFoundError(f"{spec}: no such audio-mean file")
        return np.load(spec).astype(np.float32).reshape(-1)
    if shards.is_extraction(spec):
        return shards.read(spec)[1].mean()
    if os.path.isdir(spec):
        paths = [r.path for r in readers.AudioFolder(spec)]
        key = "\n".join(f"{p}:{os.path.getsize(p)}:{os.path.getmtime(p)}" for p in paths)
        path = dictionary.cache_path(cache_dir, "audio-mean", model.fingerprint, key)
        if path and os.path.exists(path):
            with np.load(path) as f:
                return f["mean"]
        mean = dictionary.audio_mean(streaming.embed_files(model, paths, batch_size, progress))
        if path:
            dictionary.save_npz(path, mean=mean)
        return mean
    raise ValueError(f"--audio_mean={spec!r}: expected auto, reference, inputs, none, a .npy file or a folder")
