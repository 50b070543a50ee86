"""Deterministic, resumable batches from any random-access source, decoded in the background.

The batch of step ``s`` is a pure function of ``(seed, s)``: the stream of example positions is
the concatenation of per-epoch permutations, and global batch ``s`` covers stream positions
``[s * B, (s + 1) * B)``. Process ``p`` of ``P`` decodes the contiguous block
``[s * B + p * B/P, s * B + (p + 1) * B/P)``, so the global batch is the same however many
processes feed it, and a resumed run needs only the step number to continue the same order.

An example that fails to decode is replaced by a deterministic stand-in (drawn from
``(seed, position, attempt)``), named with its reason in one warning line, listed once in the
run's manifest (``skipped.jsonl`` in the workdir: index, file, reason; one line per bad example,
appended as it is found, so a killed run keeps its list) and counted; it never silently
disappears and never changes the batch shape. With ``strict`` the first bad example stops the
run instead (:class:`BadExample`, naming it).
"""
from __future__ import annotations

import collections
import concurrent.futures
import functools
import json
import logging
import os
import threading
from typing import Any, Callable, Iterator, Sequence

import grain
import numpy as np

log = logging.getLogger(__name__)

Decode = Callable[[Any, np.random.Generator], dict[str, np.ndarray]]


class BadExample(RuntimeError):
    """A training example failed to decode under ``strict``."""


def _name(record) -> str | None:
    """The file a record came from, where it says (reader records carry ``path``)."""
    path = getattr(record, "path", None) or (record.get("path") if isinstance(record, dict) else None)
    return str(path) if path else None


class SkippedExamples:
    """Thread-safe count, reasons and manifest of examples that failed to decode.

    ``manifest``: a JSONL file each bad example is appended to the first time it is met (a file
    met again in a later epoch is counted again, listed once; examples listed by an earlier,
    killed run of the same workdir are not listed twice). ``strict``: raise instead.
    """

    def __init__(self, manifest: str | None = None, strict: bool = False):
        self._lock = threading.Lock()
        self.count = 0
        self.reasons: collections.Counter[str] = collections.Counter()
        self.manifest, self.strict = manifest, strict
        self._listed: set[int] = set()
        if manifest and os.path.exists(manifest):
            with open(manifest) as f:
                self._listed = {json.loads(line)["index"] for line in f if line.strip()}

    def add(self, index: int, err: Exception, name: str | None = None) -> None:
        from clap_jax import cli_errors
        what = f"example {index}" + (f" ({name})" if name else "")
        reason = cli_errors.one_line(err)
        if self.strict:
            raise BadExample(f"{what}: {reason} (strict: stopping)") from err
        with self._lock:
            self.count += 1
            self.reasons[type(err).__name__] += 1
            if self.manifest and index not in self._listed:
                self._listed.add(index)
                with open(self.manifest, "a") as f:
                    f.write(json.dumps({"index": index, "file": name, "reason": reason}) + "\n")
        log.warning("skipped %s: %s", what, reason)


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
            record = None
            try:
                rng = np.random.default_rng([self.seed, position, attempt])
                record = self.dataset[index]
                return self.decode(record, rng)
            except Exception as err:  # a bad file must not stop a long run: list, count, replace
                self.skipped.add(index, err, _name(record))
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
