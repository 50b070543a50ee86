"""Files of ``python -m sparse.decompose``: precomputed embeddings in, records out.

:func:`read_embeddings` reads (n, d) embeddings and their keys from ``.npy`` / ``.npz``.

One record per clip (a dict: ``key``, ``l0``, ``l1``, ``cosine``, ``converged``, ``top``, with
audio input ``near_silent``, with interventions ``edited``) as a JSONL line (``.jsonl``,
``.json`` or standard output) or a CSV row (``.csv``). Every record is flushed when written, so
a run that is killed keeps each finished record readable. The file is created (an older one
replaced) at the first record: a run that produces nothing leaves an existing file untouched.
"""
from __future__ import annotations

import csv
import json
import os
import sys

import numpy as np


class RecordWriter:
    """Streams records to ``path`` (None: JSONL on standard output). ``k``: concepts per record
    (CSV columns); ``edited`` / ``near_silent``: whether records carry those fields (CSV)."""

    def __init__(self, path: str | None, k: int, edited: bool = False, near_silent: bool = False):
        self.path, self.k, self.edited, self.near_silent = path, k, edited, near_silent
        self.csv = bool(path) and path.endswith(".csv")
        self.file = None
        self.count = 0

    def _open(self):
        self.file = open(self.path, "w", newline="" if self.csv else None) if self.path else sys.stdout
        if self.csv:
            self.rows = csv.writer(self.file)
            head = ["key", "l0", "l1", "cosine", "converged"] + (["near_silent"] if self.near_silent else [])
            head += [f"{p}_{j}" for j in range(1, self.k + 1) for p in ("concept", "weight")]
            if self.edited:
                head += ["edited_cosine"] + [f"edited_{p}_{j}" for j in range(1, self.k + 1)
                                             for p in ("concept", "weight")]
            self.rows.writerow(head)

    def _flat(self, top):
        cells = [x for pair in top[:self.k] for x in pair]
        return cells + [""] * (2 * self.k - len(cells))

    def write(self, records: list[dict]) -> None:
        for r in records:
            if self.file is None:
                self._open()
            if self.csv:
                row = [r["key"], r["l0"], r["l1"], r["cosine"], r.get("converged", "")]
                row += [r.get("near_silent", "")] if self.near_silent else []
                row += self._flat(r["top"])
                if self.edited:
                    row += [r["edited"]["cosine"]] + self._flat(r["edited"]["top"])
                self.rows.writerow(row)
            else:
                self.file.write(json.dumps(r) + "\n")
            self.file.flush()
            self.count += 1

    def close(self) -> None:
        if self.file is not None and self.file is not sys.stdout:
            self.file.close()
        self.file = None


def write_rows(records: list[dict], path: str | None, k: int) -> None:
    """All ``records`` at once: JSONL (``.jsonl``/``.json`` or standard output) or CSV (``.csv``)."""
    writer = RecordWriter(path, k, edited=bool(records) and "edited" in records[0],
                          near_silent=bool(records) and "near_silent" in records[0])
    try:
        writer.write(records)
    finally:
        writer.close()


def read_embeddings(path: str):
    """(n, d) embeddings and keys from ``.npy`` or ``.npz`` ('embeddings' [+ 'keys']), or from an
    extraction folder of ``clap_jax.extract`` (a memory-mapped ``clap_jax.shards.ShardedArray``
    and the clip ids)."""
    from clap_jax import shards
    if shards.is_extraction(path):
        ids, emb, _ = shards.read(path)
        return emb, ids
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such embeddings file")
    if path.endswith(".npz"):
        with np.load(path) as f:
            if "embeddings" not in f:
                raise ValueError(f"{path}: no 'embeddings' array (has {', '.join(f.files)})")
            emb = f["embeddings"]
            keys = [str(k) for k in f["keys"]] if "keys" in f else None
    else:
        emb, keys = np.load(path), None
    emb = np.asarray(emb)
    if emb.ndim == 1:
        emb = emb[None]
    if emb.ndim != 2:
        raise ValueError(f"{path}: embeddings must have shape (n, d), got {emb.shape}")
    keys = keys or [str(i) for i in range(emb.shape[0])]
    if len(keys) != emb.shape[0]:
        raise ValueError(f"{path}: {len(keys)} keys for {emb.shape[0]} embeddings")
    return emb, keys
