"""Batch shapes that compile once: bucketed batch sizes and padding with a validity mask.

A jitted function compiles once per input shape. Streaming a dataset in batches of
``batch_size`` gives one full shape and one ragged last batch per call, and every new call size
gives another; padding each batch up to a **bucket** (a power of two, at most ``batch_size``,
rounded up to a multiple of the device count so the batch axis shards evenly) bounds the
programs to ``log2(batch_size) + 1`` per model, whatever the number of clips.

Padding rows repeat the batch's last row (real audio, so no NaN or silence warnings from
padding) and are dropped by ``valid`` afterwards.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

DEFAULT_BATCH = 32


def bucket(n: int, batch_size: int = DEFAULT_BATCH, multiple: int = 1) -> int:
    """The padded size of a batch of ``n`` rows (1 <= n <= batch_size): the next power of two,
    capped at ``batch_size``, then rounded up to a multiple of ``multiple`` (devices)."""
    if not 1 <= n <= batch_size:
        raise ValueError(f"a batch of {n} rows with batch_size {batch_size}")
    size = min(1 << (n - 1).bit_length(), batch_size)
    return -(-size // multiple) * multiple


def buckets(batch_size: int = DEFAULT_BATCH, multiple: int = 1) -> list[int]:
    """Every size :func:`bucket` can return for this ``batch_size`` (one compiled program each)."""
    return sorted({bucket(n, batch_size, multiple) for n in range(1, batch_size + 1)})


def spans(n: int, batch_size: int = DEFAULT_BATCH) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of consecutive batches covering ``range(n)``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    for start in range(0, n, batch_size):
        yield start, min(n, start + batch_size)


def pad_rows(arrays: dict[str, np.ndarray], size: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Pads every array's first axis to ``size`` by repeating its last row; returns the padded
    arrays and ``valid`` (size,) bool (True for the real rows)."""
    n = len(next(iter(arrays.values())))
    if n > size:
        raise ValueError(f"{n} rows do not fit a bucket of {size}")
    valid = np.arange(size) < n
    if n == size:
        return arrays, valid
    take = np.minimum(np.arange(size), n - 1)
    return {k: v[take] for k, v in arrays.items()}, valid
