"""Audio embeddings of many files or records, a batch at a time, bad inputs skipped.

    for idx, z, silent in streaming.iter_files(model, paths, batch_size=32, skip=skips):
        ...   # idx (m,) positions in paths, z (m, d) float32 embeddings, silent (m,) bool

* :func:`iter_batches` / :func:`iter_files` / :func:`iter_records`: batch by batch, decoded one
  batch ahead in a background thread; a bad input (does not decode, empty, NaN/inf, huge
  samples) goes to ``skip(name, error)`` (a ``clap_jax.cli_errors.Skips``) and is left out, the
  rest of its batch embedded; a near-silent clip warns, naming it.
* :func:`embed_files` / :func:`embed_records`: every embedding (n, d) at once; the first bad
  input raises.

Each batch goes through ``Clap.embed_audio`` (padded to a bucket, :mod:`clap_jax.batching`), so
the encoder compiles once per bucket. Used by every command that embeds many inputs
(``clap_jax.classify``, ``sparse.decompose``, ``sparse.evaluate``, the audio means).
"""
from __future__ import annotations

import concurrent.futures
import warnings
from typing import Sequence

import numpy as np

from clap_jax import audio
from clap_jax.data import readers


def embed_checked(model, clips, names, skip, batch_size: int = 32) -> list:
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
            out.append(embed_checked(model, [clip], [name], None, batch_size)[0])
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
            emb = embed_checked(model, clips, [names[i] for i in idx], skip, batch_size)
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


def iter_records(model, records: Sequence[readers.Record], batch_size: int = 32, skip=None, progress: bool = False,
                 desc: str = "audio embeddings"):
    """:func:`iter_batches` over reader records: bad ones go to ``skip(record key, error)``."""
    return iter_batches(model, lambda i: readers.load_audio(records[i]), [r.key for r in records], batch_size,
                        skip, progress, desc)

