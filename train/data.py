"""Deterministic, resumable batches from any random-access source, decoded in the background.

The batch of step ``s`` is a pure function of ``(seed, s)``: the stream of example positions is
the concatenation of per-epoch permutations, and global batch ``s`` covers stream positions
``[s * B, (s + 1) * B)``. Process ``p`` of ``P`` decodes the contiguous block
``[s * B + p * B/P, s * B + (p + 1) * B/P)``, so the global batch is the same however many
processes feed it, and a resumed run needs only the step number to continue the same order.

An example that fails to decode is replaced by a deterministic stand-in (drawn from
``(seed, position, attempt)``), logged with its reason, and counted; it never silently
disappears and never changes the batch shape.
"""
from __future__ import annotations

import collections
import concurrent.futures
import functools
import logging
import threading
from typing import Any, Callable, Iterator, Sequence

import grain
import numpy as np

log = logging.getLogger(__name__)

Decode = Callable[[Any, np.random.Generator], dict[str, np.ndarray]]


class SkippedExamples:
    """Thread-safe count and reasons of examples that failed to decode."""

    def __init__(self):
        self._lock = threading.Lock()
        self.count = 0
        self.reasons: collections.Counter[str] = collections.Counter()

    def add(self, index: int, err: Exception) -> None:
        with self._lock:
            self.count += 1
            self.reasons[type(err).__name__] += 1
        log.warning("skipped example %d: %s", index, err)


class Loader:
    """Batches of decoded examples for training steps.

    ``source``: random access (``len`` and ``[]``), e.g. a dataset reader or a TFDS data source;
    read through ``grain.MapDataset``. ``decode(record, rng)`` turns one record into a dict of
    fixed-shape numpy arrays (augmentation may use ``rng``, seeded by the stream position) or
    raises for a bad record.
    """

    def __init__(self, source: Sequence, decode: Decode, global_batch: int, seed: int = 0,
                 process_index: int = 0, process_count: int = 1, workers: int = 2, prefetch: int = 2,
                 max_attempts: int = 10):
        if global_batch % process_count:
            raise ValueError(f"global batch {global_batch} is not divisible by {process_count} processes")
        if len(source) == 0:
            raise ValueError("empty dataset")
        self.dataset = grain.MapDataset.source(source)
        self.decode, self.seed = decode, seed
        self.global_batch, self.local_batch = global_batch, global_batch // process_count
        self.process_index = process_index
        self.max_attempts, self.prefetch = max_attempts, prefetch
        self.skipped = SkippedExamples()
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="loader")

    @functools.lru_cache(maxsize=4)
    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.dataset))

    def _index(self, position: int) -> int:
        n = len(self.dataset)
        return int(self._permutation(position // n)[position % n])

    def example(self, position: int) -> dict[str, np.ndarray]:
        """The decoded example at a stream position (or its deterministic stand-in)."""
        index = self._index(position)
        for attempt in range(self.max_attempts):
            try:
                rng = np.random.default_rng([self.seed, position, attempt])
                return self.decode(self.dataset[index], rng)
            except Exception as err:  # a bad file must not stop a long run: log, count, replace
                self.skipped.add(index, err)
                index = int(np.random.default_rng([self.seed, position, attempt, 1]).integers(len(self.dataset)))
        raise RuntimeError(f"{self.max_attempts} consecutive examples failed to decode near position {position}")

    def batch(self, step: int) -> dict[str, np.ndarray]:
        """This process's part (local_batch examples) of global batch ``step``, stacked."""
        start = step * self.global_batch + self.process_index * self.local_batch
        examples = list(self._pool.map(self.example, range(start, start + self.local_batch)))
        return {k: np.stack([e[k] for e in examples]) for k in examples[0]}

    def iterate(self, start_step: int, end_step: int) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """Yields ``(step, batch)`` for steps in [start_step, end_step), ``prefetch`` batches ahead."""
        pending: collections.deque = collections.deque()
        feeder = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="prefetch")
        try:
            for step in range(start_step, end_step):
                while len(pending) <= self.prefetch and step + len(pending) < end_step:
                    s = step + len(pending)
                    pending.append((s, feeder.submit(self.batch, s)))
                s, future = pending.popleft()
                yield s, future.result()
        finally:
            for _, f in pending:
                f.cancel()
            feeder.shutdown(wait=False, cancel_futures=True)
