"""Timing shared by the benchmark scripts."""
from __future__ import annotations

import statistics
import time


def median_seconds(fn, repeats: int) -> float:
    """One warm-up call (compilation), then the median wall time of ``repeats`` calls of ``fn()``."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)
