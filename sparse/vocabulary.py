"""Concept vocabularies: the words a CLAP embedding is decomposed into.

File format (``*.txt``, UTF-8), one concept per line::

    # comment lines and blank lines are ignored
    dog barking<TAB>1520
    rain<TAB>1203
    siren

A line is a concept, optionally followed by a TAB and a non-negative integer count (how often
the tag occurred in the corpus it came from). Either every line has a count or none does.
Concepts are kept as written (case included), must be unique and may contain spaces but no
TAB. Files written by :func:`write` list concepts by decreasing count when there are counts,
so ``load(name, size=N)`` keeps the N most frequent.

Shipped vocabularies (``sparse/vocabularies/``; :func:`shipped` lists them):

* ``audioset``: the display names of the 632 AudioSet ontology classes, synonyms split on
  ", " (CC BY-SA 4.0, derived from the AudioSet ontology by Google; see
  ``sparse/vocabularies/README.md``);
* ``esc50``, ``urbansound8k``: the label sets of ESC-50 (50 classes) and UrbanSound8K (10);
* ``soundscapes``: the classes of the synthetic soundscapes corpus, their caption nouns,
  families, backgrounds and sound attributes (the vocabulary the bundled model knows).

``python -m sparse.build_vocabulary`` builds vocabularies from a tag-frequency file with the
paper's three recipes (baseline, pruned, clustered) and regenerates the shipped files.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os

from clap_jax import atomic

VOCABULARY_DIR = os.path.join(os.path.dirname(__file__), "vocabularies")


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """An ordered list of unique concepts with optional counts.

    ``concepts``: (c,) strings; ``counts``: (c,) ints or None; ``name``: where it came from
    (a shipped name or a path), for messages only (cache keys hash the concepts themselves).
    """
    concepts: tuple[str, ...]
    counts: tuple[int, ...] | None = None
    name: str = "vocabulary"

    def __post_init__(self):
        object.__setattr__(self, "concepts", tuple(self.concepts))
        if self.counts is not None:
            object.__setattr__(self, "counts", tuple(int(c) for c in self.counts))
        if not self.concepts:
            raise ValueError(f"{self.name}: empty vocabulary (no concepts)")
        if self.counts is not None and len(self.counts) != len(self.concepts):
            raise ValueError(f"{self.name}: {len(self.counts)} counts for {len(self.concepts)} concepts")
        seen: dict[str, int] = {}
        for i, c in enumerate(self.concepts):
            if not isinstance(c, str) or not c.strip() or c != c.strip():
                raise ValueError(f"{self.name}: concept {i} is {c!r}; expected a non-empty string "
                                 "without surrounding spaces")
            if "\t" in c or "\n" in c:
                raise ValueError(f"{self.name}: concept {i} {c!r} contains a TAB or newline")
            if c in seen:
                raise ValueError(f"{self.name}: duplicate concept {c!r} (entries {seen[c]} and {i})")
            seen[c] = i
        if self.counts is not None and any(n < 0 for n in self.counts):
            raise ValueError(f"{self.name}: counts must be >= 0")

    def __len__(self) -> int:
        return len(self.concepts)

    def __iter__(self):
        return iter(self.concepts)

    def index(self, concept: str) -> int:
        return self.concepts.index(concept)

    def top(self, size: int) -> "Vocabulary":
        """The first ``size`` concepts (the most frequent, for files sorted by count)."""
        if size < 1:
            raise ValueError(f"{self.name}: size must be >= 1, got {size}")
        counts = None if self.counts is None else self.counts[:size]
        return Vocabulary(self.concepts[:size], counts, self.name)

    def text(self) -> str:
        """The file body (no header): ``concept[\\tcount]`` lines."""
        if self.counts is None:
            return "".join(c + "\n" for c in self.concepts)
        return "".join(f"{c}\t{n}\n" for c, n in zip(self.concepts, self.counts))

    @property
    def digest(self) -> str:
        """sha256 of the concepts (what the text encoder sees; counts do not matter)."""
        return hashlib.sha256("\n".join(self.concepts).encode("utf-8")).hexdigest()


def parse(text: str, name: str = "vocabulary") -> Vocabulary:
    """Parses the file format above; errors name ``name:line``."""
    concepts, counts = [], []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        concept, sep, count = line.partition("\t")
        concept = concept.strip()
        if not concept:
            raise ValueError(f"{name}:{lineno}: empty concept before the TAB")
        if sep:
            try:
                n = int(count.strip())
            except ValueError:
                raise ValueError(f"{name}:{lineno}: count {count.strip()!r} is not an integer") from None
            if n < 0:
                raise ValueError(f"{name}:{lineno}: count {n} is negative")
            counts.append(n)
        else:
            counts.append(None)
        concepts.append(concept)
    if not concepts:
        raise ValueError(f"{name}: empty vocabulary (no concepts)")
    has = [n is not None for n in counts]
    if any(has) and not all(has):
        line = has.index(False) if has[0] else has.index(True)
        raise ValueError(f"{name}: either every concept has a count or none does "
                         f"(concept {concepts[line]!r} differs from the first)")
    dup = _first_duplicate(concepts)
    if dup:
        raise ValueError(f"{name}: duplicate concept {dup!r}")
    return Vocabulary(tuple(concepts), tuple(counts) if all(has) else None, name)


def _first_duplicate(items):
    seen = set()
    for x in items:
        if x in seen:
            return x
        seen.add(x)
    return None


def read(path: str) -> Vocabulary:
    """Reads a vocabulary file."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such vocabulary file")
    with open(path, encoding="utf-8") as f:
        return parse(f.read(), path)


def write(vocabulary: Vocabulary, path: str, header: tuple[str, ...] | list[str] = ()) -> None:
    """Writes ``vocabulary`` (atomically), after ``# ``-prefixed header lines."""
    atomic.write_text(path, "".join(f"# {h}".rstrip() + "\n" for h in header) + vocabulary.text())


def shipped() -> list[str]:
    """Names of the vocabularies in ``sparse/vocabularies/``."""
    return sorted(f[:-4] for f in os.listdir(VOCABULARY_DIR) if f.endswith(".txt"))


def load(name_or_path: str, size: int | None = None) -> Vocabulary:
    """A shipped vocabulary by name (``audioset``, ``esc50``, ``urbansound8k``,
    ``soundscapes``) or a vocabulary file; ``size`` keeps the first ``size`` concepts."""
    if os.path.exists(name_or_path):
        vocab = read(name_or_path)
    elif os.path.exists(os.path.join(VOCABULARY_DIR, name_or_path + ".txt")):
        vocab = read(os.path.join(VOCABULARY_DIR, name_or_path + ".txt"))
        vocab = Vocabulary(vocab.concepts, vocab.counts, name_or_path)
    else:
        raise FileNotFoundError(f"{name_or_path}: neither a vocabulary file nor a shipped vocabulary "
                                f"({', '.join(shipped())})")
    return vocab if size is None else vocab.top(size)


def as_vocabulary(vocabulary) -> Vocabulary:
    """A Vocabulary from a Vocabulary, a shipped name / path, or a list of concept strings."""
    if isinstance(vocabulary, Vocabulary):
        return vocabulary
    if isinstance(vocabulary, str):
        return load(vocabulary)
    return Vocabulary(tuple(vocabulary), None, "concepts")
