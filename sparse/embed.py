"""Audio embeddings for decomposition: batched extraction and the SpLiCE audio mean.

* :func:`embed_records` / :func:`embed_files`: (n, d) audio embeddings, ``batch_size`` clips per
  call (the last batch is padded with copies of its last clip, so the encoder compiles once),
  clips decoded one batch ahead in a background thread.
* :func:`reference_audio_mean`: the audio mean of a reference set of clips, cached per model:
  synthetic soundscapes clips (256, seed 20000, disjoint from training and evaluation seeds) at
  the model's sample rate and window. It is the natural mean for the bundled model; for a real
  CLAP, prefer the mean of your own audio (``--audio_mean=FOLDER`` in the CLIs).
* :func:`resolve_audio_mean`: the ``--audio_mean`` flag of the CLIs.
"""
from __future__ import annotations

import concurrent.futures
import os
from typing import Sequence

import numpy as np

from clap_jax import audio
from clap_jax.data import readers
from sparse import dictionary

REFERENCE_SEED, REFERENCE_CLIPS = 20000, 256


def _batched(model, load, n: int, batch_size: int, progress: bool, desc: str) -> np.ndarray:
    """Embeds items 0..n-1 where ``load(i) -> (samples, rate)``; returns (n, d) float32."""
    if n == 0:
        raise ValueError(f"{desc}: nothing to embed")
    starts = list(range(0, n, batch_size))
    bar = None
    if progress:
        import tqdm
        bar = tqdm.tqdm(total=n, desc=desc, unit="clip")

    def read(start):
        return [load(i) for i in range(start, min(n, start + batch_size))]

    out = []
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(read, starts[0])
        for k, start in enumerate(starts):
            clips = pending.result()
            if k + 1 < len(starts):
                pending = pool.submit(read, starts[k + 1])
            m = len(clips)
            if n > batch_size:
                clips = clips + clips[-1:] * (batch_size - m)
            emb = model.embed_audio([x for x, _ in clips], [r for _, r in clips])
            out.append(np.asarray(emb, np.float32)[:m])
            if bar:
                bar.update(m)
    if bar:
        bar.close()
    return np.concatenate(out)


def embed_records(model, records: Sequence[readers.Record], batch_size: int = 32, progress: bool = False,
                  desc: str = "audio embeddings") -> np.ndarray:
    """(n, d) audio embeddings of reader records (``readers.load_audio``)."""
    return _batched(model, lambda i: readers.load_audio(records[i]), len(records), batch_size, progress, desc)


def embed_files(model, paths: Sequence[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
    """(n, d) audio embeddings of audio files (any format soundfile reads)."""
    return _batched(model, lambda i: audio.read_audio(paths[i]), len(paths), batch_size, progress,
                    "audio embeddings")


def reference_audio_mean(model, cache_dir: str | None = None, progress: bool = False,
                         clips: int = REFERENCE_CLIPS, seed: int = REFERENCE_SEED) -> np.ndarray:
    """SpLiCE audio mean (d,) of synthetic soundscapes clips, cached per model (module docstring)."""
    from sparse.datasets import soundscapes_records
    path = dictionary.cache_path(cache_dir, "audio-mean", dictionary.model_fingerprint(model),
                                  f"soundscapes seed={seed} clips={clips}")
    if path and os.path.exists(path):
        with np.load(path) as f:
            return f["mean"]
    cfg = model.spec.audio
    rate = cfg.spectrogram.sample_rate
    duration = min(10.0, cfg.clip_samples / rate)
    data = soundscapes_records(seed, clips, rate, duration, single_event=False)
    mean = dictionary.audio_mean(embed_records(model, data.records, progress=progress, desc="reference mean"))
    if path:
        dictionary.save_npz(path, mean=mean)
    return mean


def resolve_audio_mean(spec: str, model, inputs: np.ndarray | None = None, cache_dir: str | None = None,
                       batch_size: int = 32, progress: bool = False) -> np.ndarray | None:
    """The ``--audio_mean`` flag: ``reference`` (:func:`reference_audio_mean`), ``inputs`` (the
    mean of ``inputs``, the embeddings being decomposed), ``none`` (None: no audio centring
    possible, use with center=False), a ``.npy`` file of shape (d,), or a folder of audio
    (its mean, cached)."""
    if spec == "none":
        return None
    if spec == "reference":
        return reference_audio_mean(model, cache_dir, progress)
    if spec == "inputs":
        if inputs is None:
            raise ValueError("--audio_mean=inputs: no input embeddings")
        return dictionary.audio_mean(inputs)
    if spec.endswith(".npy"):
        if not os.path.exists(spec):
            raise FileNotFoundError(f"{spec}: no such audio-mean file")
        return np.load(spec).astype(np.float32).reshape(-1)
    if os.path.isdir(spec):
        paths = [r.path for r in readers.AudioFolder(spec)]
        key = "\n".join(f"{p}:{os.path.getsize(p)}:{os.path.getmtime(p)}" for p in paths)
        path = dictionary.cache_path(cache_dir, "audio-mean", dictionary.model_fingerprint(model), key)
        if path and os.path.exists(path):
            with np.load(path) as f:
                return f["mean"]
        mean = dictionary.audio_mean(embed_files(model, paths, batch_size, progress))
        if path:
            dictionary.save_npz(path, mean=mean)
        return mean
    raise ValueError(f"--audio_mean={spec!r}: expected reference, inputs, none, a .npy file or a folder")
