"""The synthesiser registry: ``SoundClass.synth`` / ``Background.synth`` name -> function.

    @synth("beep")
    def _s_beep(rng, n, sr, params) -> (signal float32 (<= n,), pitch Hz or None)   # events
    @synth("bg_room")
    def _s_bg_room(rng, n, sr) -> signal float32 (n,)                                 # backgrounds

``tonal`` and ``noisy`` register theirs on import; ``corpus`` imports both and checks every
class and background of the table has one.  An event synthesiser may return fewer than ``n``
samples (a call that ends early); ``rng`` is the clip's generator, so a synthesiser's draws
are part of the corpus.
"""

from __future__ import annotations

from collections.abc import Callable

SYNTHS: dict[str, Callable] = {}


def synth(name: str) -> Callable[[Callable], Callable]:
    """Decorator registering a synthesiser under ``name`` in :data:`SYNTHS` (names are unique)."""

    def register(fn: Callable) -> Callable:
        if name in SYNTHS:
            raise ValueError(f"synthesiser {name!r} registered twice ({SYNTHS[name].__qualname__}, "
                             f"{fn.__qualname__})")
        SYNTHS[name] = fn
        return fn

    return register
