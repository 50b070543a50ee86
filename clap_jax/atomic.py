"""Files that are either whole or absent: write to a temporary name, then rename into place.

    with atomic.path("out/results.json") as tmp:   # tmp: a sibling of the target
        write_something(tmp)                       # the target appears only if this returns
    atomic.write_json("out/explanations.json", obj)

A reader (or a restarted command) never sees a half-written file: a kill before the rename
leaves the previous version (or nothing) and at most a hidden ``.<name>.<pid>.tmp`` file, which
is removed when the block raises.
"""
from __future__ import annotations

import contextlib
import json
import os
from typing import Any, Iterator


@contextlib.contextmanager
def path(target: str | os.PathLike) -> Iterator[str]:
    """A temporary path beside ``target`` (its folder created); renamed onto it if the block succeeds."""
    target = os.fspath(target)
    folder, name = os.path.split(os.path.abspath(target))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(target: str | os.PathLike, text: str) -> None:
    with path(target) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


def write_json(target: str | os.PathLike, obj: Any, **dump_kwargs) -> None:
    """``obj`` as JSON (indent 2 unless given) plus a final newline."""
    write_text(target, json.dumps(obj, **{"indent": 2, **dump_kwargs}) + "\n")
