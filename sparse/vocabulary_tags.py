r"""Tag-frequency files and tag cleaning, for the vocabulary recipes (:mod:`sparse.vocabulary_recipes`).

    --tags file --read_tag_counts--> {raw tag: count} --cleaned_counts--> [(tag, count)] by (-count, tag)
    --words file / tokenizer --read_words / tokenizer_words--> known words (pruned's spelling filter)
    --synonyms file --read_synonyms--> {synonym: canonical}

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

Roots (:func:`root`, the pruned recipe's grouping key): a small suffix stripper, not a full
stemmer: plural -ies -> y, -sses -> ss, -s (not after s or u); then -ied -> y, -ing or -ed; then
one doubled final consonant other than l/s/z after -ing/-ed, and a final e; a root keeps at
least 3 letters. So cough / coughs / coughing / coughed share one root and bike / bikes /
biking another.
"""
from __future__ import annotations

import collections
import json
import os
import re
import unicodedata

# The paper removes "expletives" without a list; this one is short on purpose. Matched on word
# roots, so inflected forms go too. Extend with --exclude=FILE.
EXPLETIVES = frozenset({"fuck", "fucker", "shit", "bitch", "bastard", "asshole", "cunt", "dick", "piss",
                        "wank", "wanker", "bollock", "crap", "damn", "motherfucker", "slut", "whore"})

_ENGLISH = re.compile(r"^[a-z0-9' -]+$")
_WORD_SPLIT = re.compile(r"[ -]+")


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
    """A crude English root for grouping inflections (module docstring, "Roots"): ``coughing`` ->
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

