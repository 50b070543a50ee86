"""Captions: everyday-language descriptions that follow the events' order and overlap.

    events (onset order) -> _groups (transitively overlapping events)
        -> _describe per group (a noun phrase, and a clause for a lone event)
        -> _caption: a template for 1, 2 or 3+ groups, maybe a background suffix
        -> _captions: ``n`` distinct ones for a clip; caption_for / tag_caption for any events

Every choice is drawn with ``random.Random.random()`` only (:func:`_pick`), whose sequence is
stable across Python versions, from the clip's own ``Random`` (seeded from its generator).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from clap_jax.data.soundscapes.classes import BACKGROUNDS, Background, get_class

if TYPE_CHECKING:
    from clap_jax.data.soundscapes.corpus import Event


_SINGLE = ("{n}", "the sound of {n}", "{n} can be heard", "{c}", "a recording of {n}",
           "you can hear {n}")
_SEQ_NOUN = ("{a}, then {b}", "{a} followed by {b}", "{a} and then {b}", "first {a}, then {b}",
             "{b} after {a}")
_SEQ_CLAUSE = ("{a}, then {b}", "{a} and then {b}", "{a} before {b}", "after {a}, {b}",
               "first {a}, and then {b}")
_OVERLAP = ("{a} and {b} at the same time", "{a} together with {b}", "{a} with {b}",
            "{a} mixed with {b}", "{a} as {bc}")
_INSIDE = ("{s} over {l}", "{l} while {sc}", "{sc} while {lc}", "{sc} over {l}",
           "{l}, interrupted by {s}")
_MANY = ("{x} and {y} at the same time", "{x} together with {y}", "a mix of {x} and {y}",
         "{x} and {y} all at once")
_CHAIN = ("{0}, then {1}, then {2}", "first {0}, then {1}, and finally {2}",
          "{0}, followed by {1} and then {2}")

_OVERLAP_TOL = 0.1  # s: events overlapping less than this count as consecutive


def _pick(r: random.Random, seq):
    """Choose with ``Random.random()`` only (its sequence is stable across Python versions)."""
    return seq[int(r.random() * len(seq))]


def _groups(events: list[Event]) -> list[list[Event]]:
    """Split onset-sorted events into groups of (transitively) overlapping events."""
    groups: list[list[Event]] = []
    end = -1.0
    for ev in events:
        if groups and ev.onset < end - _OVERLAP_TOL:
            groups[-1].append(ev)
            end = max(end, ev.offset)
        else:
            groups.append([ev])
            end = ev.offset
    return groups


def _describe(r: random.Random, group: list[Event]) -> tuple[str, str | None]:
    """(noun phrase, clause or None) describing one group of simultaneous events."""
    cls = [get_class(e.class_id) for e in group]
    if len(group) == 1:
        return _pick(r, cls[0].nouns), _pick(r, cls[0].clauses)
    if len(group) == 2:
        a, b = group
        long_, short = (a, b) if (a.offset - a.onset) >= (b.offset - b.onset) else (b, a)
        inside = short.onset >= long_.onset - 0.05 and short.offset <= long_.offset + 0.05
        ca, cb = cls
        cl, cs = get_class(long_.class_id), get_class(short.class_id)
        words = dict(a=_pick(r, ca.nouns), b=_pick(r, cb.nouns), bc=_pick(r, cb.clauses),
                     l=_pick(r, cl.nouns), s=_pick(r, cs.nouns), lc=_pick(r, cl.clauses),
                     sc=_pick(r, cs.clauses))
        tpl = _pick(r, _INSIDE) if inside and r.random() < 0.6 else _pick(r, _OVERLAP)
        return tpl.format(**words), None
    nouns = [_pick(r, c.nouns) for c in cls]
    return _pick(r, _MANY).format(x=", ".join(nouns[:-1]), y=nouns[-1]), None


def _caption(r: random.Random, groups, background: Background | None, bg_prob: float) -> str:
    descs = [_describe(r, g) for g in groups]
    if len(descs) == 1:
        noun, clause = descs[0]
        if clause is None:
            text = noun if r.random() < 0.7 else "the sound of " + noun
        else:
            text = _pick(r, _SINGLE).format(n=noun, c=clause)
    elif len(descs) == 2:
        (na, ca), (nb, cb) = descs
        if ca is not None and cb is not None and r.random() < 0.4:
            text = _pick(r, _SEQ_CLAUSE).format(a=ca, b=cb)
        else:
            text = _pick(r, _SEQ_NOUN).format(a=na, b=nb)
    else:
        nouns = [d[0] for d in descs]
        if len(nouns) == 3:
            text = _pick(r, _CHAIN).format(*nouns)
        else:
            text = ", then ".join(nouns)
    if background is not None and r.random() < bg_prob:
        text += _pick(r, background.suffixes)
    text = text[0].upper() + text[1:]
    return text + "." if r.random() < 0.5 else text


def caption_for(r: random.Random, events: Sequence[Event], background: str | None = None,
                bg_prob: float = 0.0) -> str:
    """One everyday-language caption of ``events`` (any events, e.g. a subset of a clip's),
    drawn with ``r`` like a clip's own captions; ``background`` (an id of
    :data:`BACKGROUNDS`) is mentioned with probability ``bg_prob``."""
    known = {b.id: b for b in BACKGROUNDS}
    if background is not None and background not in known:
        raise ValueError(f"unknown background {background!r}; expected one of {sorted(known)}")
    bg = None if background is None else known[background]
    return _caption(r, _groups(sorted(events, key=lambda e: (e.onset, e.offset))), bg, bg_prob)


def tag_caption(r: random.Random, class_ids: Sequence[str]) -> str:
    """A tag-list text for ``class_ids``: one of each class's :attr:`SoundClass.tags`,
    shuffled, comma-separated ("rain, short electronic beep")."""
    tags = [_pick(r, get_class(c).tags) for c in class_ids]
    r.shuffle(tags)
    return ", ".join(tags)


def _captions(r: random.Random, events: list[Event], background: Background | None,
              n: int, bg_prob: float) -> list[str]:
    """``n`` captions, distinct where possible (repeats only if the templates run out)."""
    groups = _groups(events)
    out: list[str] = []
    seen: set[str] = set()
    for _ in range(12 * n):
        c = _caption(r, groups, background, bg_prob)
        key = c.lower().rstrip(".")  # "A beep." and "a beep" are the same caption
        if key not in seen:
            seen.add(key)
            out.append(c)
            if len(out) == n:
                break
    while len(out) < n:
        out.append(out[len(out) % max(1, len(out))])
    return out

