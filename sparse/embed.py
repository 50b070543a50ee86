"""Audio embeddings for decomposition: batched extraction and the SpLiCE audio mean.

* :func:`embed_records` / :func:`embed_files`: (n, d) audio embeddings, ``batch_size`` clips per
  call, clips decoded one batch ahead in a background thread.
* :func:`iter_batches` / :func:`iter_files`: the same, batch by batch, with bad inputs skipped
  (named through a ``skip`` callback) instead of stopping everything.
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

import concurrent.futures
import os
import warnings
from typing import Sequence

import numpy as np

from clap_jax import audio, shards
from clap_jax.data import readers
from sparse import dictionary

REFERENCE_SEED, REFERENCE_CLIPS = 20000, 256


def _embed(model, clips, names, skip, batch_size):
    """Embeddings (m, d) of checked clips, None rows where ``skip`` took a clip. The API's
    near-silent warnings (which name clips by batch position) are replaced by the callers'."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", audio.NearSilentWarning)
        try:
            return list(model.embed_audio([x for x, _ in clips], [r for _, r in clips], batch_size=batch_size))
        except audio.AudioError:
            if skip is None:
                raise
    out = []                                   # isolate the clip that failed, embed the others
    for clip, name in zip(clips, names):       # names: the real clips only (not the padding)
        try:
            out.append(_embed(model, [clip], [name], None, batch_size)[0])
        except audio.AudioError as err:
            skip(name, err)
            out.append(None)
    return out


def iter_batches(model, load, names: Sequence[str], batch_size: int = 32, skip=None, progress: bool = False,
                 desc: str = "audio embeddings"):
    """Embeds items 0..n-1 where ``load(i) -> (samples, rate)``, a batch at a time (decoded one
    batch ahead in a thread); yields ``(indices (m,), embeddings (m, d) float32, near_silent (m,))``.

    An item that fails to load or embed calls ``skip(names[i], error)`` and is left out
    (``skip=None``: the error is raised). A near-silent clip (``audio.silence_reason``) warns,
    naming it. The model pads each batch to its bucket (``clap_jax.batching``), so the encoder
    compiles once per bucket.
    """
    n = len(names)
    if n == 0:
        raise ValueError(f"{desc}: nothing to embed")
    starts = list(range(0, n, batch_size))
    bar = None
    if progress:
        import tqdm
        bar = tqdm.tqdm(total=n, desc=desc, unit="clip")

    def read(start):
        got = []
        for i in range(start, min(n, start + batch_size)):
            try:
                got.append((i, load(i), None))
            except Exception as err:           # noqa: BLE001: decoders raise many types; named below
                got.append((i, None, err))
        return got

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(read, starts[0])
        for k in range(len(starts)):
            got = pending.result()
            if k + 1 < len(starts):
                pending = pool.submit(read, starts[k + 1])
            clips, idx = [], []
            for i, clip, err in got:
                if err is not None:
                    if skip is None or isinstance(err, (KeyboardInterrupt, MemoryError)):
                        raise err
                    skip(names[i], err)
                else:
                    clips.append(clip)
                    idx.append(i)
            if bar:
                bar.update(len(got))
            if not clips:
                continue
            m = len(clips)
            emb = _embed(model, clips, [names[i] for i in idx], skip, batch_size)
            keep = [j for j in range(m) if emb[j] is not None]
            silent = np.array([audio.warn_if_near_silent(clips[j][0], names[idx[j]]) for j in keep], bool)
            if keep:
                yield np.asarray([idx[j] for j in keep]), np.stack([emb[j] for j in keep]), silent
    if bar:
        bar.close()


def _batched(model, load, names, batch_size: int, progress: bool, desc: str) -> np.ndarray:
    """(n, d) float32 embeddings of every item; the first bad one raises."""
    return np.concatenate([e for _, e, _ in iter_batches(model, load, names, batch_size, None, progress, desc)])


def embed_records(model, records: Sequence[readers.Record], batch_size: int = 32, progress: bool = False,
                  desc: str = "audio embeddings") -> np.ndarray:
    """(n, d) audio embeddings of reader records (``readers.load_audio``)."""
    return _batched(model, lambda i: readers.load_audio(records[i]), [r.key for r in records], batch_size,
                    progress, desc)


def embed_files(model, paths: Sequence[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
    """(n, d) audio embeddings of audio files (any format soundfile reads); a bad file raises."""
    return _batched(model, lambda i: audio.read_audio(paths[i]), list(paths), batch_size, progress,
                    "audio embeddings")


def iter_files(model, paths: Sequence[str], batch_size: int = 32, skip=None, progress: bool = False):
    """:func:`iter_batches` over audio files: bad files go to ``skip(path, error)``."""
    return iter_batches(model, lambda i: audio.read_audio(paths[i]), list(paths), batch_size, skip, progress)


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
    mean = dictionary.audio_mean(embed_records(model, data.records, progress=progress, desc="reference mean"))
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
        mean = dictionary.audio_mean(embed_files(model, paths, batch_size, progress))
        if path:
            dictionary.save_npz(path, mean=mean)
        return mean
    raise ValueError(f"--audio_mean={spec!r}: expected auto, reference, inputs, none, a .npy file or a folder")
