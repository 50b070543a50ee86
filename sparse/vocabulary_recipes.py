r"""The vocabulary recipes: the paper's three on tag counts (arXiv 2504.14076) and the shipped files.

    {raw tag: count} --baseline | pruned | clustered--> Vocabulary (concepts with summed counts)
    ontology.json --audioset_vocabulary--> Vocabulary;  soundscapes.CLASSES --soundscapes_vocabulary--> Vocabulary

Tags are read and cleaned by :mod:`sparse.vocabulary_tags` (formats, cleaning, roots).

Baseline: the ``size`` most frequent cleaned tags.

Pruned recipe, in the paper's order, on the ``--candidates`` most frequent cleaned tags:

* numeric: a tag containing a digit ("808", "44100hz", "mp3") is dropped;
* one-letter: a tag with fewer than two letters is dropped;
* misspelled: a tag is kept only if every word of it (split on space and ``-``) is a known
  word or has the root of one (below). Known words come from ``--words``: a word-list file
  (one word a line, e.g. ``/usr/share/dict/words`` or a hunspell ``.dic``), or by default the
  whole-word tokens of the model's tokenizer (byte-level BPE tokens ``Ġword``, WordPiece tokens
  without ``##``). A byte-level BPE learns a word as one token only when the word is frequent
  in its training text, so for RoBERTa/GPT-2's 50k-token vocabulary (English web text) a kept
  word is a common, correctly spelled one, while rare but correct words that the BPE splits
  into pieces are dropped too (conservative; pass a real word list to keep them). The bundled
  model's tokenizer has only 2k tokens (learned from the soundscapes captions): pass ``--words``
  with it;
* shared roots: tags are grouped by the roots of their words (:func:`sparse.vocabulary_tags.root`),
  so cough / coughs / coughing / coughed are one group and bike / bikes / biking another;
  ``--synonyms`` (lines ``canonical: synonym, synonym``) merges listed synonyms first (the paper
  also merges synonyms; we have no thesaurus, so only listed ones are merged). A group is named
  by its most frequent member and counts the sum of its members.

Clustered recipe: the ``--candidates`` most frequent cleaned tags are embedded with the model's
text encoder (the concept dictionary code, cached), L2-normalised, clustered by k-means
(k = ``--size``, k-means++ start, Lloyd iterations in JAX; seeded), and each non-empty cluster is
represented by its member nearest to the centroid, with the summed count of its members.
"""
from __future__ import annotations

import collections
import json
import logging
import os

import numpy as np

from clap_jax.linalg import l2_normalize
from sparse.vocabulary import VOCABULARY_DIR, Vocabulary
from sparse.vocabulary_tags import cleaned_counts, root, tag_key, words_of

log = logging.getLogger(__name__)

# Descriptive attributes of sounds, shipped in the soundscapes vocabulary next to its classes.
SOUND_ATTRIBUTES = (
    "high-pitched", "low-pitched", "loud", "quiet", "soft", "short", "long", "repetitive", "continuous",
    "rhythmic", "tonal", "noisy", "electronic", "metallic", "mechanical", "wooden", "natural", "musical",
    "percussive", "harmonic", "rising", "falling", "steady", "intermittent", "distant", "reverberant",
    "buzzing", "ringing", "hissing", "rumbling", "chirping", "crackling", "whistling", "beeping",
    "tapping", "rattling", "sweeping", "pulsing", "humming", "dripping", "splashing", "silence",
)


def _vocabulary(items: list[tuple[str, int]], size: int, name: str) -> Vocabulary:
    if not items:
        raise ValueError(f"{name}: no tags left after cleaning")
    items = items[:size]
    return Vocabulary(tuple(t for t, _ in items), tuple(n for _, n in items), name)


def baseline(raw: dict[str, int], size: int = 2000, exclude: frozenset[str] = frozenset()) -> Vocabulary:
    """The ``size`` most frequent cleaned tags."""
    return _vocabulary(cleaned_counts(raw, exclude), size, "baseline")


def pruned(raw: dict[str, int], known_words, size: int = 2000, candidates: int = 10000,
           synonyms: dict[str, str] | None = None, exclude: frozenset[str] = frozenset()) -> Vocabulary:
    """Pruned recipe (module docstring). ``known_words``: an iterable of correctly spelled words;
    ``synonyms``: cleaned tag -> canonical cleaned tag."""
    known = {w.lower() for w in known_words}
    known_roots = known | {root(w) for w in known}
    if not known:
        raise ValueError("pruned: the list of known words is empty")
    synonyms = synonyms or {}
    groups: dict[str, list[tuple[str, int]]] = collections.defaultdict(list)
    dropped = collections.Counter()
    for tag, n in cleaned_counts(raw, exclude)[:candidates]:
        if any(ch.isdigit() for ch in tag):
            dropped["numeric"] += 1
            continue
        if sum(ch.isalpha() for ch in tag) < 2:
            dropped["one-letter"] += 1
            continue
        if not all(w in known or root(w) in known_roots for w in words_of(tag)):
            dropped["misspelled/unknown"] += 1
            continue
        groups[tag_key(synonyms.get(tag, tag))].append((tag, n))
    log.info("pruned: dropped %s; %d groups", dict(dropped), len(groups))
    merged = []
    for members in groups.values():
        best = min(members, key=lambda tn: (-tn[1], tn[0]))[0]
        merged.append((best, sum(n for _, n in members)))
    merged.sort(key=lambda kv: (-kv[1], kv[0]))
    return _vocabulary(merged, size, "pruned")


def kmeans(x: np.ndarray, k: int, seed: int = 0, iterations: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """k-means on the rows of ``x`` (m, d): k-means++ start, then Lloyd iterations until the
    assignment stops changing (at most ``iterations``). An empty cluster keeps its centroid.

    Returns (centroids (k, d), assignment (m,) int). One jit per (m, d, k).
    """
    import jax
    import jax.numpy as jnp

    m = x.shape[0]
    if not 1 <= k <= m:
        raise ValueError(f"kmeans: k = {k} must be between 1 and the number of points {m}")

    @jax.jit
    def run(x, key):
        sq = jnp.sum(x * x, axis=1)

        def dist(c):             # (m, k') squared distances
            return jnp.maximum(sq[:, None] - 2 * x @ c.T + jnp.sum(c * c, axis=1)[None], 0)

        key, sub = jax.random.split(key)
        first = jax.random.randint(sub, (), 0, m)
        cents = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(x[first])
        best = dist(x[first][None])[:, 0]

        def plus(i, s):          # k-means++: next centre with probability ~ squared distance
            cents, best, key = s
            key, sub = jax.random.split(key)
            p = best / jnp.maximum(best.sum(), 1e-30)
            j = jax.random.choice(sub, m, p=p)
            cents = cents.at[i].set(x[j])
            return cents, jnp.minimum(best, dist(x[j][None])[:, 0]), key

        cents, _, _ = jax.lax.fori_loop(1, k, plus, (cents, best, key))

        def lloyd(s):
            it, cents, assign, _ = s
            new = jnp.argmin(dist(cents), axis=1)
            sums = jax.ops.segment_sum(x, new, num_segments=k)
            count = jax.ops.segment_sum(jnp.ones((m,), x.dtype), new, num_segments=k)
            cents = jnp.where(count[:, None] > 0, sums / jnp.maximum(count, 1)[:, None], cents)
            return it + 1, cents, new, jnp.any(new != assign)

        init = (0, cents, jnp.full((m,), -1, jnp.int32), True)
        _, cents, assign, _ = jax.lax.while_loop(lambda s: (s[0] < iterations) & s[3], lloyd, init)
        return cents, jnp.argmin(dist(cents), axis=1)

    cents, assign = run(jnp.asarray(x, jnp.float32), jax.random.key(seed))
    return np.asarray(cents), np.asarray(assign)


def clustered(raw: dict[str, int], embed, size: int = 2000, candidates: int = 10000, seed: int = 0,
              exclude: frozenset[str] = frozenset()) -> Vocabulary:
    """Clustered recipe. ``embed(list of tags) -> (m, d)`` text embeddings."""
    items = cleaned_counts(raw, exclude)[:candidates]
    if len(items) < size:
        raise ValueError(f"clustered: {len(items)} cleaned tags, fewer than size = {size} clusters")
    tags = [t for t, _ in items]
    counts = np.array([n for _, n in items], np.int64)
    x = l2_normalize(np.asarray(embed(tags), np.float32), axis=1)
    cents, assign = kmeans(x, size, seed)
    d2 = np.sum((x - cents[assign]) ** 2, axis=1)
    # Per cluster: the member nearest to its centroid (ties: the more frequent, earlier tag).
    order = np.lexsort((np.arange(len(tags)), d2, assign))
    first = order[np.r_[True, assign[order][1:] != assign[order][:-1]]]
    totals = np.bincount(assign, weights=counts, minlength=size)
    merged = sorted(((tags[i], int(totals[assign[i]])) for i in first), key=lambda kv: (-kv[1], kv[0]))
    if len(merged) < size:
        log.warning("clustered: %d of %d clusters are empty", size - len(merged), size)
    return _vocabulary(merged, size, "clustered")


# The shipped vocabularies (sparse/vocabularies/): how each file is made and the header it carries.

# The AudioSet ontology v1, shipped unchanged beside the file derived from it (CC BY-SA 4.0,
# see sparse/vocabularies/LICENSE-audioset.md).
AUDIOSET_ONTOLOGY = os.path.join(VOCABULARY_DIR, "audioset_ontology.json")

AUDIOSET_HEADER = (
    "Derived from the AudioSet ontology v1 (2017-03-06) by Google Inc. (Dan Ellis et al.),",
    "https://research.google.com/audioset/ , https://github.com/audioset/ontology",
    "Licensed under CC BY-SA 4.0: https://creativecommons.org/licenses/by-sa/4.0/",
    "Changes: only the class display names are kept; names with synonyms (\"Male speech, man speaking\")",
    "are split on \", \" into one concept each; the first letter of each is lower-cased (not in acronyms);",
    "duplicates removed.",
    "This derived file is distributed under the same licence (CC BY-SA 4.0); see LICENSE-audioset.md.",
)


def _lower_first(name: str) -> str:
    """``Dog`` -> ``dog``, ``Music of Africa`` -> ``music of Africa``; a first word that is an
    acronym (``UK garage``, ``MP3``) is kept."""
    first = name.split()[0]
    return name if len(first) > 1 and first.isupper() else name[0].lower() + name[1:]


def audioset_vocabulary(ontology_path: str = AUDIOSET_ONTOLOGY) -> Vocabulary:
    """Every AudioSet class display name, synonyms split on ", ", in ontology order."""
    with open(ontology_path, encoding="utf-8") as f:
        classes = json.load(f)
    names = []
    for c in classes:
        if "name" not in c:
            raise ValueError(f"{ontology_path}: class {c.get('id', '?')} has no 'name'")
        names += [_lower_first(s.strip()) for s in c["name"].split(", ") if s.strip()]
    return Vocabulary(tuple(dict.fromkeys(names)), None, "audioset")


def soundscapes_vocabulary() -> Vocabulary:
    """The soundscapes corpus's words: per class its label and caption nouns (articles
    dropped), then the families, the backgrounds and :data:`SOUND_ATTRIBUTES`."""
    from clap_jax.data import soundscapes
    names = [t for c in soundscapes.CLASSES for t in c.tags]
    names += list(soundscapes.FAMILIES) + [b.id for b in soundscapes.BACKGROUNDS] + list(SOUND_ATTRIBUTES)
    return Vocabulary(tuple(dict.fromkeys(names)), None, "soundscapes")


SOUNDSCAPES_HEADER = (
    "Concepts of the synthetic soundscapes corpus (clap_jax.data.soundscapes): class labels, caption",
    "nouns without articles, families, backgrounds and sound attributes. Generated by",
    "python -m sparse.build_vocabulary --recipe=soundscapes --out=sparse/vocabularies/soundscapes.txt",
)

