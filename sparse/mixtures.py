r"""Do the top concepts of a mixture name each of its events?

    python -m sparse.mixtures --pairs=low_beep+rain,mid_beep+rain,high_beep+rain,alarm_beeping+rain

For each pair of soundscapes classes, ``--clips`` corpus clips holding exactly those two events
(levels, onsets and backgrounds drawn as in training) are embedded and decomposed on the
``soundscapes`` vocabulary, centred with the audio mean of corpus clips of 1-3 events
(:func:`sparse.embed.soundscapes_audio_mean`: for the bundled model, the mean it ships and
``sparse.decompose`` uses by default; for any model, audio like the clips studied). The Markdown
table gives, per pair and λ, the fraction of clips whose top-k concepts name the first event,
the second, and both, next to the same fractions for the dense embedding's top-k zero-shot
classes ("This is a sound of {label}."). A second table does the same over held-out corpus clips
of 1-3 events (``--corpus_clips``, seed 10001): the fraction of all their events that the top-k
names.

A text *names* an event of class c when it is a tag (``SoundClass.tags``: label and caption
nouns) of c or of a class whose label ends in the same word: "heavy rain" and "raindrops" name
rain; "high beep", "low tone" and "beep tone" name a (mid) beep.
"""
from __future__ import annotations

import dataclasses
import functools
import sys

import numpy as np
from absl import flags

from clap_jax import streaming
from clap_jax.data import datasets, soundscapes
from clap_jax.linalg import l2_normalize
from sparse import dictionary, embed
from sparse.decompose import decompose
from sparse.evaluate import PROMPT

PAIRS = ("low_beep+rain", "mid_beep+rain", "high_beep+rain", "alarm_beeping+rain")


@functools.lru_cache(maxsize=None)
def related_tags(class_id: str) -> frozenset[str]:
    """The tags of ``class_id`` and of the classes whose label ends in the same word."""
    head = soundscapes.get_class(class_id).label.split()[-1]
    return frozenset(t for c in soundscapes.CLASSES if c.label.split()[-1] == head for t in c.tags)


def names(text: str, class_id: str) -> bool:
    """Whether ``text`` (a concept or a class label) names an event of ``class_id``."""
    return text in related_tags(class_id)


@dataclasses.dataclass
class PairResult:
    """Per pair and λ: fractions of clips whose top-k names event a, event b, both."""
    pair: tuple[str, str]
    lam: float
    concepts: tuple[float, float, float]
    dense: tuple[float, float, float]
    mean_l0: float


def _fractions(top_names: list[list[str]], pair: tuple[str, str]) -> tuple[float, float, float]:
    a = np.array([any(names(n, pair[0]) for n in t) for t in top_names])
    b = np.array([any(names(n, pair[1]) for n in t) for t in top_names])
    return float(a.mean()), float(b.mean()), float((a & b).mean())


def pair_clips(pair: tuple[str, str], clips: int, seed: int = 40000, sample_rate: int = 16000,
               duration: float = 5.0) -> list[soundscapes.Clip]:
    """``clips`` clips of exactly the two events of ``pair`` (clip i: seed ``seed + i``)."""
    return [soundscapes.generate(seed + i, 1, classes=pair, min_events=2, max_events=2, stft=None,
                                 sample_rate=sample_rate, duration=duration)[0] for i in range(clips)]


def dense_top_labels(model, z: np.ndarray, k: int = 5) -> list[list[str]]:
    """The labels of the k soundscapes classes nearest each embedding of ``z`` (n, d) by
    zero-shot similarity ("This is a sound of {label}.")."""
    labels = [c.label for c in soundscapes.CLASSES]
    prompts = l2_normalize(model.embed_text([PROMPT.format(label) for label in labels]))
    order = np.argsort(-(l2_normalize(z) @ prompts.T), axis=1)[:, :k]
    return [[labels[j] for j in row] for row in order]


def evaluate_pairs(model, concepts: dictionary.ConceptDictionary, pairs, lams, clips: int = 20, k: int = 5,
                   seed: int = 40000) -> list[PairResult]:
    """The table's rows (see the module docstring) for ``model`` and its ``concepts``."""
    sr = model.spec.audio.spectrogram.sample_rate
    rows = []
    for pair in pairs:
        cs = pair_clips(pair, clips, seed, sr, model.spec.audio.clip_samples / sr)
        z = model.embed_audio([c.audio for c in cs], sr)
        dense = _fractions(dense_top_labels(model, z, k), pair)
        for lam in lams:
            dec = decompose(concepts, z, lam)
            top = [[n for n, _ in t] for t in dec.top(k)]
            rows.append(PairResult(pair, lam, _fractions(top, pair), dense, float(np.mean(dec.l0))))
    return rows


def event_recall(model, concepts: dictionary.ConceptDictionary, lams, clips: int = 300, k: int = 5,
                 seed: int = 10001) -> tuple[dict[float, float], float]:
    """Fraction of the events of ``clips`` corpus clips (1-3 events, seed ``seed``) that their
    top-k concepts name, per λ, and that the dense top-k zero-shot classes name."""
    sr = model.spec.audio.spectrogram.sample_rate
    data = datasets.soundscapes_records(seed, clips, sr, model.spec.audio.clip_samples / sr, single_event=False)
    z = streaming.embed_records(model, data.records, batch_size=50)

    def recall(top_names):
        return float(np.mean([any(names(n, e) for n in t) for t, r in zip(top_names, data.records) for e in r.labels]))
    by_lam = {lam: recall([[n for n, _ in t] for t in decompose(concepts, z, lam).top(k)]) for lam in lams}
    return by_lam, recall(dense_top_labels(model, z, k))


def table(rows: list[PairResult], k: int = 5) -> str:
    head = (f"| clips | λ | mean L0 | top-{k} concepts: a / b / both | dense top-{k} classes: a / b / both |\n"
            "|---|---|---|---|---|")
    fmt = lambda f: " / ".join(f"{x:.2f}" for x in f)
    return "\n".join([head] + [f"| {r.pair[0]} + {r.pair[1]} | {r.lam:g} | {r.mean_l0:.1f} | {fmt(r.concepts)} | "
                               f"{fmt(r.dense)} |" for r in rows])


def _define_flags():
    flags.DEFINE_string("model", "soundscapes-small", "Converted model directory or bundled name.")
    flags.DEFINE_list("pairs", list(PAIRS), "Pairs of soundscapes class ids, a+b.")
    flags.DEFINE_list("lams", ["0.05", "0.1", "0.15"], "λ values.")
    flags.DEFINE_integer("clips", 20, "Clips per pair.")
    flags.DEFINE_integer("seed", 40000, "Clip i of a pair is clip 0 of seed + i.")
    flags.DEFINE_integer("top_k", 5, "Concepts / classes per clip.")
    flags.DEFINE_integer("corpus_seed", 10001, "Seed of the corpus clips (10001 validation, 90001 test; "
                         "clap_jax.data.splits).")
    flags.DEFINE_integer("corpus_clips", 300, "Held-out corpus clips (1-3 events) for the event recall; 0: skip.")


def main(argv):
    del argv
    import clap_jax
    f = flags.FLAGS
    pairs = [tuple(p.split("+")) for p in f.pairs]
    for p in pairs:
        if len(p) != 2 or any(c not in soundscapes.CLASS_IDS for c in p):
            sys.exit(f"--pairs: {'+'.join(p)!r} is not two soundscapes class ids joined by '+'")
    model = clap_jax.load(f.model)
    concepts = dictionary.build(model, "soundscapes", audio_mean=embed.soundscapes_audio_mean(model))
    lams = [float(x) for x in f.lams]
    print(table(evaluate_pairs(model, concepts, pairs, lams, f.clips, f.top_k, f.seed), f.top_k))
    if f.corpus_clips:
        by_lam, dense = event_recall(model, concepts, lams, f.corpus_clips, f.top_k, f.corpus_seed)
        head = "| dense classes | " + " | ".join(f"concepts λ={lam:g}" for lam in lams) + " |"
        print(f"\nEvents of {f.corpus_clips} corpus clips (1-3 events) named by the top {f.top_k}:\n")
        print("\n".join([head, "|---" * (len(lams) + 1) + "|",
                         f"| {dense:.2f} | " + " | ".join(f"{by_lam[lam]:.2f}" for lam in lams) + " |"]))


if __name__ == "__main__":
    from clap_jax import runtime
    _define_flags()
    runtime.run(main)
