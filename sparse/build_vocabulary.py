r"""Builds concept vocabularies: the paper's three recipes on a tag-frequency file, and the
shipped vocabularies.

    # baseline: top-N cleaned tags by frequency (arXiv 2504.14076, "baseline vocabulary")
    python -m sparse.build_vocabulary --recipe=baseline --tags=dev_clips_info_FSD50K.json \
        --size=2000 --out=vocab/fsd50k_baseline.txt
    # pruned: no misspelled / numeric / one-letter tags, shared roots merged, counts summed
    python -m sparse.build_vocabulary --recipe=pruned --tags=tags.tsv --words=/usr/share/dict/words \
        --candidates=10000 --size=2000 --out=vocab/pruned.txt
    # clustered: k-means (k = size) on the CLAP text embeddings of the candidates
    python -m sparse.build_vocabulary --recipe=clustered --tags=tags.tsv --model=converted/msclap-2023 \
        --candidates=10000 --size=2000 --out=vocab/clustered.txt
    # the shipped files (sparse/vocabularies/)
    python -m sparse.build_vocabulary --recipe=audioset --tags=../shared/data/audioset_ontology/ontology.json \
        --out=sparse/vocabularies/audioset.txt
    python -m sparse.build_vocabulary --recipe=soundscapes --out=sparse/vocabularies/soundscapes.txt

Tag-frequency files (``--tags``), told apart by content:

* ``tag<TAB>count`` or ``tag,count`` lines (a vocabulary file is one);
* a JSON object ``{tag: count}``;
* FSD50K's ``*_clips_info_FSD50K.json`` (``{clip_id: {"tags": [...], ...}}``): every clip's
  tags are counted once per clip;
* plain lines, one tag occurrence a line (counted).

Cleaning (every recipe): Unicode NFKC, lower case, ``_`` and runs of white space become one
space, surrounding punctuation stripped; tags equal after cleaning are merged (counts summed);
only "English" tags are kept, meaning ASCII letters, digits, spaces, ``-`` and ``'``; tags with
an expletive word (a short built-in list, plus ``--exclude``) are dropped. Ties in count are
broken alphabetically, so the output is deterministic.

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
* shared roots: tags are grouped by the roots of their words (:func:`root`, a small suffix
  stripper, not a full stemmer: plural -ies -> y, -sses -> ss, -s (not after s or u); then
  -ied -> y, -ing or -ed; then one doubled final consonant other than l/s/z after -ing/-ed, and a
  final e; a root keeps at least 3 letters), so cough / coughs / coughing / coughed are one
  group and bike / bikes / biking another; ``--synonyms`` (lines ``canonical: synonym, synonym``)
  merges listed synonyms first (the paper also merges synonyms; we have no thesaurus, so only
  listed ones are merged). A group is named by its most
  frequent member and counts the sum of its members.

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
import re
import unicodedata

import numpy as np

from clap_jax.linalg import l2_normalize
from sparse.vocabulary import Vocabulary, write

log = logging.getLogger(__name__)

RECIPES = ("baseline", "pruned", "clustered", "audioset", "soundscapes")

# The paper removes "expletives" without a list; this one is short on purpose. Matched on word
# roots, so inflected forms go too. Extend with --exclude=FILE.
EXPLETIVES = frozenset({"fuck", "fucker", "shit", "bitch", "bastard", "asshole", "cunt", "dick", "piss",
                        "wank", "wanker", "bollock", "crap", "damn", "motherfucker", "slut", "whore"})

# Descriptive attributes of sounds, shipped in the soundscapes vocabulary next to its classes.
SOUND_ATTRIBUTES = (
    "high-pitched", "low-pitched", "loud", "quiet", "soft", "short", "long", "repetitive", "continuous",
    "rhythmic", "tonal", "noisy", "electronic", "metallic", "mechanical", "wooden", "natural", "musical",
    "percussive", "harmonic", "rising", "falling", "steady", "intermittent", "distant", "reverberant",
    "buzzing", "ringing", "hissing", "rumbling", "chirping", "crackling", "whistling", "beeping",
    "tapping", "rattling", "sweeping", "pulsing", "humming", "dripping", "splashing", "silence",
)

_ENGLISH = re.compile(r"^[a-z0-9' -]+$")
_WORD_SPLIT = re.compile(r"[ -]+")


# ----------------------------------------------------------------------------------------
# Reading and cleaning tags
# ----------------------------------------------------------------------------------------


def read_tag_counts(path: str) -> dict[str, int]:
    """Raw tag -> count from a tag-frequency file (formats in the module docstring)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such tag-frequency file")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    counts: collections.Counter[str] = collections.Counter()
    if text.lstrip().startswith(("{", "[")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
        if isinstance(data, dict) and all(isinstance(v, (int, float)) for v in data.values()):
            for tag, n in data.items():
                counts[tag] += int(n)
        elif isinstance(data, dict) and all(isinstance(v, dict) for v in data.values()):
            for clip, info in data.items():
                tags = info.get("tags")
                if tags is None:
                    raise ValueError(f"{path}: clip {clip!r} has no 'tags' field (expected FSD50K clips_info)")
                counts.update(set(tags))
        else:
            raise ValueError(f"{path}: JSON must be {{tag: count}} or FSD50K's {{clip: {{'tags': [...]}}}}")
    else:
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        counted = re.compile(r"^(.*)(\t|,)\s*(\d+)\s*$")
        body = lines[1:] if lines and not counted.match(lines[0]) else lines    # a "tag,count" header
        if body and all(counted.match(ln) for ln in body):
            for ln in body:
                m = counted.match(ln)
                counts[m.group(1).strip()] += int(m.group(3))
        else:                                                                    # one occurrence a line
            for ln in lines:
                if "\t" in ln:
                    raise ValueError(f"{path}: mixes 'tag<TAB>count' lines with other lines: {ln!r}")
                counts[ln.strip()] += 1
    counts.pop("", None)
    if not counts:
        raise ValueError(f"{path}: no tags")
    return dict(counts)


def clean_tag(tag: str) -> str:
    """NFKC, lower case, ``_``/white space -> one space, surrounding punctuation stripped."""
    t = unicodedata.normalize("NFKC", tag).lower().replace("_", " ")
    t = re.sub(r"\s+", " ", t)
    return t.strip(" \t.,;:!?\"()[]{}<>*#/\\|`~^+=&%$@'-")


def words_of(tag: str) -> list[str]:
    return [w for w in _WORD_SPLIT.split(tag) if w]


def root(word: str) -> str:
    """A crude English root for grouping inflections (module docstring): ``coughing`` ->
    ``cough``, ``bikes``/``biking`` -> ``bik``, ``glasses`` -> ``glass``, ``cries`` -> ``cry``.
    Only used as a grouping key, never shown."""
    w = word.lower().strip("'")
    if w.endswith("'s"):
        w = w[:-2]
    if w.endswith("ies") and len(w) >= 5:                      # plural first ...
        w = w[:-3] + "y"
    elif w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us")) and len(w) >= 4:
        w = w[:-1]
    stripped = False                                          # ... then the verb endings
    if w.endswith("ied") and len(w) >= 5:
        w = w[:-3] + "y"
    else:
        for suffix in ("ing", "ed"):
            if w.endswith(suffix) and len(w) - len(suffix) >= 3:
                w, stripped = w[: -len(suffix)], True
                break
    if stripped and len(w) >= 4 and w[-1] == w[-2] and w[-1] not in "aeiouylsz":
        w = w[:-1]                                            # running -> runn -> run
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]                                            # bike / biking -> bik
    return w


def tag_key(tag: str) -> str:
    """The shared-root key of a tag: the roots of its words, space-joined."""
    return " ".join(root(w) for w in words_of(tag))


def _is_expletive(tag: str, excluded: frozenset[str]) -> bool:
    return any(w in excluded or root(w) in excluded for w in words_of(tag))


def cleaned_counts(raw: dict[str, int], exclude: frozenset[str] = frozenset()) -> list[tuple[str, int]]:
    """Cleaned English tags without expletives, counts merged, sorted by (-count, tag)."""
    excluded = frozenset(EXPLETIVES | {root(w) for w in exclude} | set(exclude))
    merged: collections.Counter[str] = collections.Counter()
    for tag, n in raw.items():
        t = clean_tag(tag)
        if t and _ENGLISH.match(t) and not _is_expletive(t, excluded):
            merged[t] += int(n)
    return sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))


# ----------------------------------------------------------------------------------------
# The three recipes
# ----------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------
# Known words and synonyms
# ----------------------------------------------------------------------------------------


def read_words(path: str) -> set[str]:
    """A word list: the first field of each line (hunspell ``word/FLAGS`` allowed), lower case."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such word list")
    words = set()
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            w = line.split("/")[0].strip().lower()
            if w.isalpha():
                words.add(w)
    if not words:
        raise ValueError(f"{path}: no words")
    return words


def tokenizer_words(tokenizer) -> set[str]:
    """Whole-word tokens of a ``clap_jax.tokenizer.Tokenizer`` (byte-level BPE ``Ġword``;
    WordPiece tokens without ``##``), lower-cased, letters only, at least 2 letters."""
    vocab = tokenizer.tok.get_vocab()
    bpe = any(t.startswith("Ġ") for t in vocab)
    words = set()
    for t in vocab:
        if bpe:
            if not t.startswith("Ġ"):
                continue
            t = t[1:]
        elif t.startswith("##") or t.startswith("["):
            continue
        if len(t) >= 2 and t.isascii() and t.isalpha():
            words.add(t.lower())
    return words


def read_synonyms(path: str) -> dict[str, str]:
    """Lines ``canonical: synonym, synonym`` -> {cleaned synonym: cleaned canonical}."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            canon, sep, rest = line.partition(":")
            if not sep:
                raise ValueError(f"{path}:{lineno}: expected 'canonical: synonym, synonym'")
            for s in rest.split(","):
                if s.strip():
                    out[clean_tag(s)] = clean_tag(canon)
    return out


# ----------------------------------------------------------------------------------------
# Shipped vocabularies
# ----------------------------------------------------------------------------------------

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


def audioset_vocabulary(ontology_path: str) -> Vocabulary:
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


# ----------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------


def _define_flags():
    from absl import flags
    flags.DEFINE_enum("recipe", None, list(RECIPES), "What to build.")
    flags.DEFINE_string("tags", None, "Tag-frequency file (baseline/pruned/clustered) or the AudioSet "
                        "ontology.json (audioset).")
    flags.DEFINE_string("out", None, "Vocabulary file to write.")
    flags.DEFINE_integer("size", 2000, "Concepts to keep (k of k-means for clustered).")
    flags.DEFINE_integer("candidates", 10000, "Most frequent cleaned tags considered by pruned/clustered.")
    flags.DEFINE_string("words", None, "Word list for the misspelling filter of pruned; default: the "
                        "whole-word tokens of --model's tokenizer.")
    flags.DEFINE_string("synonyms", None, "Optional 'canonical: synonym, ...' file for pruned.")
    flags.DEFINE_string("exclude", None, "Optional file of more words to drop (one a line).")
    flags.DEFINE_string("model", "soundscapes-small", "Model (clustered: its text encoder; pruned: its "
                        "tokenizer's words when --words is not given).")
    flags.DEFINE_string("cache_dir", None, "Concept-embedding cache (default: see sparse.dictionary).")
    flags.DEFINE_integer("seed", 0, "k-means seed.")
    flags.DEFINE_integer("batch_size", 256, "Texts per text-encoder batch.")


def main(argv):
    del argv
    from absl import flags
    FLAGS = flags.FLAGS
    logging.getLogger().setLevel(logging.INFO)
    recipe = FLAGS.recipe
    exclude = frozenset()
    if FLAGS.exclude:
        exclude = frozenset(read_words(FLAGS.exclude))
    if recipe == "soundscapes":
        vocab, header = soundscapes_vocabulary(), SOUNDSCAPES_HEADER
    elif recipe == "audioset":
        if not FLAGS.tags:
            raise app_error("--recipe=audioset needs --tags=PATH/ontology.json")
        vocab, header = audioset_vocabulary(FLAGS.tags), AUDIOSET_HEADER
    else:
        if not FLAGS.tags:
            raise app_error(f"--recipe={recipe} needs --tags=FILE (a tag-frequency file)")
        raw = read_tag_counts(FLAGS.tags)
        header = (f"{recipe} vocabulary from {os.path.basename(FLAGS.tags)} ({len(raw)} raw tags): "
                  f"python -m sparse.build_vocabulary --recipe={recipe} --size={FLAGS.size}"
                  + (f" --candidates={FLAGS.candidates}" if recipe != "baseline" else ""),)
        if recipe == "baseline":
            vocab = baseline(raw, FLAGS.size, exclude)
        elif recipe == "pruned":
            if FLAGS.words:
                words = read_words(FLAGS.words)
            else:
                import clap_jax
                words = tokenizer_words(clap_jax.load(FLAGS.model).tokenizer)
                log.info("known words: %d whole-word tokens of %s's tokenizer", len(words), FLAGS.model)
            synonyms = read_synonyms(FLAGS.synonyms) if FLAGS.synonyms else None
            vocab = pruned(raw, words, FLAGS.size, FLAGS.candidates, synonyms, exclude)
        else:
            import clap_jax
            from sparse import dictionary
            model = clap_jax.load(FLAGS.model)
            embed = lambda tags: dictionary.encode_texts(model, tags, FLAGS.batch_size, FLAGS.cache_dir,
                                                         progress=True)
            vocab = clustered(raw, embed, FLAGS.size, FLAGS.candidates, FLAGS.seed, exclude)
            header += (f"k-means seed {FLAGS.seed}, text encoder of {FLAGS.model}",)
    write(vocab, FLAGS.out, header)
    print(f"{FLAGS.out}: {len(vocab)} concepts" + (f", top: {', '.join(vocab.concepts[:8])}"))


def app_error(message: str):
    from absl import app
    return app.UsageError(message)


if __name__ == "__main__":
    from absl import flags
    from clap_jax import runtime
    _define_flags()
    flags.mark_flags_as_required(["recipe", "out"])
    runtime.run(main)
