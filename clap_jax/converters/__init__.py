"""The checkpoint sources ``python -m clap_jax.convert --source=<name>`` reads: ``SOURCES[name]``.

    --checkpoint --SOURCES[name].read--> (state dict, spec)
        --weights.load_state(model, state, rules[spec.source], ignore)--> save_converted(--out)

Each source is one module here and one entry below. A new source goes in
``clap_jax/converters/<name>.py``, which defines

* its rule table(s), ``<NAME>_RULES``: our module paths -> its tensor names, applied in order
  (``base.renames`` writes the rules for names under one prefix; ``base.BERT_RULES`` and
  ``laion.PROJECTION_RULES`` are there to reuse), and ``<NAME>_IGNORE``: regexes of its tensors
  the model does not use. Every other key must match both ways (``weights.load_state``).
* ``<name>_spec(state)``: the architecture from tensor shapes (``base.htsat_config``,
  ``bert_config``, ``cnn14_config`` inside ``with base.shapes_of(name):``) and the front end
  its reference runs, checked against any frozen tensors the checkpoint keeps
  (``base.check_mel_bank``).
* ``read(path, allow_unsafe_pickle) -> (state, spec)`` and ``SOURCE = base.Source(...)``
  naming the reader, the rules per ``spec.source``, the ignore list, whether it is a classifier
  and which tokenizer ``--tokenizer`` must name when the checkpoint carries none;

then its ``SOURCE`` is added to ``SOURCES`` below (the order is the one ``--help`` and the
error messages list). ``clap_jax.convert`` (the command) needs no change.
"""
from __future__ import annotations

from clap_jax.converters import hf, laion, msclap, panns, speechbrain
from clap_jax.converters.base import Source

SOURCES: dict[str, Source] = {s.name: s for s in (
    laion.SOURCE,
    hf.SOURCE,
    msclap.SOURCE,
    panns.SOURCE,
    speechbrain.SOURCE,
)}
