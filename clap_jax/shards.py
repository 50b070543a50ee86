"""Embedding shards on disk: the layout ``clap_jax.extract`` writes and :func:`read` reads.

    OUT/job.json                 what was asked (model fingerprint, dataset, crop, shard size, ...)
    OUT/shards/00012/            shard 12: records [12 * shard_size, 13 * shard_size)
        embeddings.npy           (m, joint_dim) float32, one row per embedded clip
        index.jsonl              m rows: id, path, label, labels, captions, crop, seconds, near_silent
        skipped.jsonl            the shard's bad records: id, path, reason
        text_embeddings.npy      with --text: (k, joint_dim), one row per caption
        text_index.jsonl         k rows: id (the clip's), caption
    OUT/texts.npy, texts.jsonl   with --text_file: one row per line of the file
    OUT/manifest.json            written when every shard is done: counts, skipped, model, job

A shard is written in a temporary folder and renamed into place, so a shard folder either holds
all of its files or does not exist: a killed run loses at most the shards in flight, and a
restart writes exactly the missing ones.
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Iterator, Sequence

import numpy as np

from clap_jax import atomic

SHARDS = "shards"
FORMAT = "clap-jax-embeddings/1"


def shard_name(k: int) -> str:
    return f"{k:05d}"


def shard_dir(out: str, k: int) -> str:
    return os.path.join(out, SHARDS, shard_name(k))


def done_shards(out: str) -> set[int]:
    """Indices of the complete shards under ``out`` (temporary folders are not shards)."""
    root = os.path.join(out, SHARDS)
    if not os.path.isdir(root):
        return set()
    return {int(d) for d in os.listdir(root) if d.isdigit()}


def clear_partial(out: str, mine) -> None:
    """Removes the temporary folders of shards this process owns (``mine(k)`` is True): what a
    killed run left half-written."""
    root = os.path.join(out, SHARDS)
    for d in os.listdir(root) if os.path.isdir(root) else ():
        if d.startswith(".") and d[1:6].isdigit() and mine(int(d[1:6])):
            shutil.rmtree(os.path.join(root, d), ignore_errors=True)


def _write_jsonl(path: str, rows: Sequence[dict]) -> None:
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True) + "\n")


def read_jsonl(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def write_shard(out: str, k: int, embeddings: np.ndarray, index: Sequence[dict], skipped: Sequence[dict],
                text_embeddings: np.ndarray | None = None, text_index: Sequence[dict] = ()) -> None:
    """Writes shard ``k`` atomically: a temporary folder, fsynced, renamed into place."""
    tmp = os.path.join(out, SHARDS, f".{shard_name(k)}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    np.save(os.path.join(tmp, "embeddings.npy"), np.asarray(embeddings, np.float32))
    _write_jsonl(os.path.join(tmp, "index.jsonl"), index)
    _write_jsonl(os.path.join(tmp, "skipped.jsonl"), skipped)
    if text_embeddings is not None:
        np.save(os.path.join(tmp, "text_embeddings.npy"), np.asarray(text_embeddings, np.float32))
        _write_jsonl(os.path.join(tmp, "text_index.jsonl"), text_index)
    for name in os.listdir(tmp):
        with open(os.path.join(tmp, name), "rb") as f:
            os.fsync(f.fileno())
    os.rename(tmp, shard_dir(out, k))


def read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def write_json(path: str, obj: dict) -> None:
    """Writes JSON atomically (:mod:`clap_jax.atomic`), keys sorted."""
    atomic.write_json(path, obj, sort_keys=True)


class ShardedArray:
    """A read-only (n, d) array over memory-mapped shard files: indexing reads only the rows asked
    for; ``np.asarray(x)`` loads everything; :meth:`chunks` streams shard by shard."""

    def __init__(self, paths: Sequence[str]):
        self._parts = [np.load(p, mmap_mode="r") for p in paths]
        self._parts = [p for p in self._parts if len(p)]
        self._offsets = np.cumsum([0] + [len(p) for p in self._parts])
        dim = self._parts[0].shape[1] if self._parts else 0
        self.shape, self.dtype = (int(self._offsets[-1]), dim), np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def chunks(self) -> Iterator[np.ndarray]:
        """The rows, one shard (memory-mapped) at a time, in order."""
        yield from self._parts

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            key = int(key) + len(self) if key < 0 else int(key)
            if not 0 <= key < len(self):
                raise IndexError(f"row {key} of {len(self)}")
            k = int(np.searchsorted(self._offsets, key, side="right")) - 1
            return np.asarray(self._parts[k][key - self._offsets[k]])
        rows = np.arange(len(self))[key]
        shard = np.searchsorted(self._offsets, rows, side="right") - 1
        out = np.empty((len(rows), self.shape[1]), self.dtype)
        for k in np.unique(shard):
            sel = shard == k
            out[sel] = self._parts[k][rows[sel] - self._offsets[k]]
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.concatenate(self._parts) if self._parts else np.zeros(self.shape, self.dtype)
        return out.astype(dtype) if dtype is not None else out

    def mean(self) -> np.ndarray:
        """Mean row (d,), streamed over the shards in float64."""
        total = sum(np.asarray(p, np.float64).sum(axis=0) for p in self._parts)
        return (total / max(len(self), 1)).astype(np.float32)


def is_extraction(path: str) -> bool:
    """True for a folder ``clap_jax.extract`` wrote (it has ``job.json``)."""
    return os.path.isdir(path) and os.path.exists(os.path.join(path, "job.json"))


def read(out: str, text: bool = False) -> tuple[list[str], ShardedArray, list[dict]]:
    """An extraction folder -> ``(ids, embeddings, rows)``: clip ids in dataset order, a
    memory-mapped :class:`ShardedArray` (n, joint_dim) and the index rows. ``text=True``: the
    caption embeddings of ``--text`` instead (ids repeat, one row per caption)."""
    if not is_extraction(out):
        raise FileNotFoundError(f"{out}: not an extraction folder (no job.json); write one with clap_jax.extract")
    stem = "text_" if text else ""
    paths, rows = [], []
    for k in sorted(done_shards(out)):
        path = os.path.join(shard_dir(out, k), f"{stem}embeddings.npy")
        if text and not os.path.exists(path):
            raise FileNotFoundError(f"{out}: extracted without --text (no caption embeddings in shard {k})")
        part = read_jsonl(os.path.join(shard_dir(out, k), f"{stem}index.jsonl"))
        paths.append(path)
        rows += part
    array = ShardedArray(paths)
    if len(array) != len(rows):
        raise ValueError(f"{out}: {len(array)} embeddings but {len(rows)} index rows")
    return [r["id"] for r in rows], array, rows
