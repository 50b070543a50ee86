"""Shape buckets for the solvers: few distinct array sizes, so each jitted program compiles once.

A jitted function compiles once per input shape. ``sparse.nonneg_lasso`` pads its rows
(examples) to a **row bucket** and keeps its working sets at **slot buckets**, so any number of
rows, any lam and any warm start reuse a handful of programs per dictionary shape::

    rows(n)            8, 16, 32, 64, ...   next power of two >= n, at least ROWS_MIN,
                                            then a multiple of the device count
    slots(k, c)        16, 32, 64, ..., c   next power of two >= k, at least SLOTS_MIN, at most c

Growth factor 2: at most half of a bucket is padding. Padded rows are zero embeddings (whose
solution is w = 0, reached at once) and are cut off on the host before anything is reported.
"""
from __future__ import annotations

ROWS_MIN = 8  # smallest row bucket: 1 to 8 rows share one program
SLOTS_MIN = 16  # smallest working set


def next_pow2(n: int) -> int:
    """The smallest power of two >= n (n >= 1)."""
    return 1 << (max(int(n), 1) - 1).bit_length()


def rows(n: int, multiple: int = 1) -> int:
    """Padded row count for n >= 1 rows: the next power of two, at least ``ROWS_MIN``, rounded
    up to a multiple of ``multiple`` (the device count, so the rows shard evenly)."""
    if n < 1:
        raise ValueError(f"a bucket for {n} rows")
    size = max(next_pow2(n), ROWS_MIN)
    return -(-size // multiple) * multiple


def slots(k: int, c: int) -> int:
    """Working-set size for k wanted atoms of a c-atom dictionary: the next power of two >= k,
    at least ``SLOTS_MIN``, and never more than c (the whole dictionary)."""
    return min(max(next_pow2(k), SLOTS_MIN), c)
