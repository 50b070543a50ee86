"""Dataclasses from config sections: the one place where the keys of a config (a section of an
ml_collections file under ``configs/``, or a ``spec.json`` dict) become the fields of a dataclass.

    section {key: value}  --from_config(cls, section, where, **derived)-->  cls(key=value, ..., **derived)

Keys are field names. An unknown key, or a required field that neither the section nor
``derived`` gives, is a one-line ``ValueError`` that names it, where it is and what ``cls`` has.
Values become what the field's type asks for: lists become tuples where the field is a tuple,
sections become nested dataclasses (recursively; a union of dataclasses picks its member by the
section's ``kind``, the first member when it has none). So a new dataclass field needs its
dataclass edit and its value in the config files, and no code in between.

``derived`` are the fields the code computes (from other sections, the model, the tokenizer);
the section must not set them too. For a nested dataclass field, ``derived`` may give a dict:
its keys are derived fields of the nested section (``audio={"n_mels": 64}``).
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Mapping


def _is_section(value) -> bool:
    """A dict or an ml_collections ConfigDict (which is no ``Mapping``)."""
    return isinstance(value, Mapping) or (callable(getattr(value, "items", None)) and hasattr(value, "keys")
                                          and not isinstance(value, (str, bytes)))


def _members(hint) -> list[type]:
    """The dataclasses a field's type hint allows: itself, or the dataclass members of ``A | B | None``."""
    if dataclasses.is_dataclass(hint):
        return [hint]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)]
    return []


def _is_tuple(hint) -> bool:
    """Whether a hint is ``tuple[...]`` (or ``tuple[...] | None``)."""
    if hint is tuple or typing.get_origin(hint) is tuple:
        return True
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    return union and any(_is_tuple(a) for a in typing.get_args(hint))


def _kind(cls) -> Any:
    return {f.name: f.default for f in dataclasses.fields(cls)}.get("kind")


def _pick(members: list[type], values: Mapping, where: str) -> type:
    kind = values.get("kind")
    if kind is None or len(members) == 1:
        return members[0]
    for m in members:
        if _kind(m) == kind:
            return m
    raise ValueError(f"{where}: unknown kind {kind!r} (one of {[_kind(m) for m in members]})")


def from_config(cls, section, where: str | None = None, **derived):
    """``cls`` (a dataclass, possibly nested) built from ``section`` (dict or ConfigDict) and ``derived``.

    ``where`` names the section in messages (``"config.model.audio"``; default the class name).
    Raises ``ValueError`` for unknown keys, required fields missing and keys both in ``section``
    and ``derived``.
    """
    where = where or cls.__name__
    values = dict(section.items())
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    has = f"{cls.__name__} has: {', '.join(fields)}"
    if unknown := sorted(set(values) - set(fields)):
        raise ValueError(f"{where}: unknown fields {unknown} ({has})")
    if unknown := sorted(set(derived) - set(fields)):
        raise ValueError(f"{where}: derived fields {unknown} are not fields of {cls.__name__} ({has})")
    nested = {k for k in set(values) & set(derived) if _is_section(values[k]) and isinstance(derived[k], Mapping)}
    if twice := sorted(set(values) & set(derived) - nested):
        raise ValueError(f"{where}: {twice} are set by the code ({cls.__name__}); remove them from the config")
    required = [n for n, f in fields.items()
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing := [n for n in required if n not in values and n not in derived]:
        raise ValueError(f"{where}: missing required fields {missing} ({has})")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key in fields:
        if key not in values and key not in derived:
            continue
        hint, inner, given = hints[key], f"{where}.{key}", derived.get(key)
        members = _members(hint)
        value = values.get(key, given)
        if members and (_is_section(value) or key in nested):
            sub = dict(value.items()) if key in values else {}
            extra = given if isinstance(given, Mapping) else {}
            value = from_config(_pick(members, sub, inner), sub, inner, **extra)
        elif key in values and _is_tuple(hint) and isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)
