"""Evaluation clips for ``lmac.evaluate`` and their out-of-domain contaminations (methods.md B.3)::

    dataset (soundscapes | esc50 | urbansound8k | folder) ──load_eval_set──> EvalSet
        waves (N, clip_samples) prepared as the classifier prepares input (rate, peak, length)
        truth per clip: [(classifier class index | -1, bool (frames, n_freq))] per event, or None
    waves ──contaminate(protocol)──> (N, clip_samples), every contaminated clip peak-normalised

Protocols (the recipe's ``ESCContaminated``; a registry, ``--protocols=`` resolves through it):

* ``in_domain``: the clips as they are (soundscapes: clean mixtures of 2-3 events);
* ``mixtures``: 0.8·s/||s|| + 0.2·n/||n||, n another clip of the same set (a derangement drawn
  from the seed, so never the clip itself);
* ``white_noise``: s/||s|| + 0.5·ε/||ε||, ε Gaussian (drawn from the seed);
* ``speech``: 0.8/0.2 with speech: a folder of audio (``speech_dir``, e.g. LJSpeech, cropped or
  zero-padded to the clip) or by default the corpus' own voice-like source (the soundscapes class
  whose synthesiser is ``speech``, one event per clip, no background).

After mixing, a clip is divided by its signed maximum (``torch.max`` as the recipe does, see
``lmac.losses.mix_at_0db``; if that maximum is not positive, by max |x|). The ground truth of an
event is the event's own mask in the clean mixture and is not changed by contamination.

Seeds: clip ``i`` of the soundscapes evaluation set is ``generate_clip(seed, i)``; training uses
seeds 0 (classifier, L-MAC), 10000, 20000 and 30000 (held-out and model selection), so the
evaluation default is 50000. The partner permutation, white noise and speech choice are drawn
from ``np.random.default_rng([seed, k])`` with k = 1, 2, 3; the corpus speech from seed + 1.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from clap_jax import audio, cli_errors
from clap_jax.data import readers, soundscapes
from clap_jax.linalg import l2_normalize

Truth = list  # per clip: list of (class index of the classifier or -1, bool (frames, n_freq))


@dataclasses.dataclass
class EvalSet:
    """``waves`` (N, clip_samples) float32 at the classifier's rate; ``truth`` one list of
    (classifier class index, mask) per clip (None: no ground truth); ``keys`` clip names."""
    waves: np.ndarray
    truth: list[Truth] | None
    keys: list[str]
    skipped: list[dict] = dataclasses.field(default_factory=list)   # {"id", "reason"} of bad records


# ------------------------------------------------------------------ ground truth

def soundscape_classes_of(labels) -> dict[int, int]:
    """Corpus class index -> classifier class index, matching classifier labels to the corpus'
    labels or ids (``soundscapes-cnn14`` uses the labels, in corpus order)."""
    out = {}
    for j, name in enumerate(labels):
        for i, c in enumerate(soundscapes.CLASSES):
            if name in (c.label, c.id):
                out.setdefault(i, j)
    return out


def _clip_with_masks(seed: int, index: int, config: soundscapes.SoundscapeConfig):
    """Clip ``index`` of ``seed`` and its events' masks bool (events, frames, n_freq), the config's
    ``stft`` being the classifier's SpectrogramConfig: the corpus computes them with
    ``frontend.stft`` on exactly the classifier's grid (window, hop, padding, n_fft)."""
    clip = soundscapes.generate_clip(seed, index, config)
    return clip, soundscapes.ground_truth(clip)


def soundscapes_set(classifier, n: int, seed: int, *, min_events: int = 2, max_events: int = 3) -> EvalSet:
    """Clips 0..n-1 of ``seed`` (2-3 events over a background, restricted to the classes the
    classifier knows), prepared as the classifier prepares input, with every event's mask."""
    sg = classifier.spec.audio.spectrogram
    samples = classifier.spec.audio.clip_samples
    known = soundscape_classes_of(classifier.spec.labels)
    classes = tuple(soundscapes.CLASSES[i].id for i in sorted(known)) or None
    if classes is not None and len(classes) < max_events:
        max_events = len(classes)
        min_events = min(min_events, max_events)
    cfg = soundscapes.SoundscapeConfig(sample_rate=sg.sample_rate, duration=samples / sg.sample_rate,
                                       min_events=min_events, max_events=max_events, classes=classes, stft=sg)
    audios, truth, keys = [], [], []
    for i in range(n):
        clip, masks = _clip_with_masks(seed, i, cfg)
        audios.append(clip.audio)
        truth.append([(known.get(e.target, -1), m) for e, m in zip(clip.events, masks)])
        keys.append(clip.clip_id)
    waves = classifier.prepare_audio(audios, sg.sample_rate).astype(np.float32)
    if waves.shape[1] != len(audios[0]):
        raise ValueError(f"clip length {len(audios[0])} != classifier's {waves.shape[1]}")
    return EvalSet(waves, truth, keys)


def reader_set(classifier, records, n: int, seed: int, skip=None) -> EvalSet:
    """``n`` records drawn without replacement by ``seed`` (all if n <= 0 or more than there are),
    in the reader's order, prepared as the classifier prepares input; no ground truth. A record
    that does not decode or is refused (``clap_jax.audio.AudioError``) goes to ``skip(name,
    error)`` and is left out (``skip=None``: raised)."""
    order = np.sort(np.random.default_rng([seed, 0]).permutation(len(records))[:n if n > 0 else None])
    if not len(order):
        raise ValueError("the dataset has no clips")
    clips, keys, skipped = [], [], []
    for i in order:
        record = records[int(i)]
        try:
            clips.append(readers.load_audio(record))
            keys.append(record.key)
        except (audio.AudioError, OSError) as err:
            if skip is None:
                raise
            name = record.path or record.key
            skip(name, err)
            skipped.append({"id": record.key, "path": record.path, "reason": cli_errors.reason(name, err)})
    if not clips:
        raise ValueError(f"none of the {len(order)} clips could be read (each named above)")
    waves = classifier.prepare_audio([x for x, _ in clips], [r for _, r in clips]).astype(np.float32)
    return EvalSet(waves, None, keys, skipped)


DATASETS = ("soundscapes", "esc50", "urbansound8k", "folder")


def load_eval_set(classifier, dataset: str, n: int, seed: int, root: str | None = None,
                  folds: tuple[int, ...] | None = None, skip=None) -> EvalSet:
    """The evaluation clips of ``dataset`` (one of :data:`DATASETS`; ``root`` for all but
    soundscapes); bad files go to ``skip`` (:func:`reader_set`)."""
    if dataset == "soundscapes":
        return soundscapes_set(classifier, n, seed)
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    if not root:
        raise ValueError(f"--dataset={dataset} needs --root")
    records = {"esc50": lambda: readers.Esc50(root, folds), "urbansound8k": lambda: readers.UrbanSound8K(root, folds),
               "folder": lambda: readers.AudioFolder(root)}[dataset]()
    return reader_set(classifier, records, n, seed, skip)


# ------------------------------------------------------------------ contamination

def peak_normalise(x: np.ndarray) -> np.ndarray:
    """(N, T) divided by each row's signed maximum (the recipe's ``torch.max``), or by max |x|
    where that maximum is not positive; all-zero rows stay zero."""
    peak = x.max(axis=-1, keepdims=True)
    peak = np.where(peak > 0, peak, np.abs(x).max(axis=-1, keepdims=True))
    return (x / np.where(peak > 0, peak, 1.0)).astype(np.float32)


def mix(s: np.ndarray, n: np.ndarray, a: float, b: float) -> np.ndarray:
    """a·s/||s|| + b·n/||n|| per row (a zero-norm row is left unscaled), then :func:`peak_normalise`."""
    return peak_normalise(a * l2_normalize(s.astype(np.float64)) + b * l2_normalize(n.astype(np.float64)))


def partners(n: int, seed: int) -> np.ndarray:
    """A random derangement of 0..n-1 (clip i is mixed with clip partners[i] != i), from ``seed``."""
    if n < 2:
        raise ValueError("the mixtures protocol needs at least 2 clips")
    perm = np.random.default_rng([seed, 1]).permutation(n)
    out = np.empty(n, np.int64)
    out[perm] = np.roll(perm, -1)
    return out


def corpus_speech(n: int, seed: int, sample_rate: int, samples: int) -> np.ndarray:
    """(n, samples) voice-like clips of the corpus (its ``speech`` synthesiser, one event per clip
    at a random time, no background), clip i from seed + 1."""
    speech = [c.id for c in soundscapes.CLASSES if c.synth == "speech"]
    cfg = soundscapes.SoundscapeConfig(sample_rate=sample_rate, duration=samples / sample_rate, single_event=True,
                                       background=False, classes=tuple(speech), stft=None)
    return np.stack([soundscapes.generate_clip(seed + 1, i, cfg).audio[:samples] for i in range(n)])


def folder_speech(directory: str, n: int, seed: int, sample_rate: int, samples: int) -> np.ndarray:
    """(n, samples) speech from any folder of audio: file i drawn by ``seed``, resampled, cropped
    (from its start) or zero-padded to the clip length."""
    records = readers.AudioFolder(directory)
    if not len(records):
        raise ValueError(f"{directory}: no audio files")
    pick = np.random.default_rng([seed, 3]).integers(0, len(records), n)
    return np.stack([audio.fit_length(readers.load_audio(records[int(i)], sample_rate)[0], samples, "zeros", "start")
                     for i in pick]).astype(np.float32)


PROTOCOLS: dict[str, Callable] = {}   # name -> fn(waves (N, T), seed, speech (N, T) | None) -> (N, T)


def register(name: str):
    def wrap(fn):
        PROTOCOLS[name] = fn
        return fn
    return wrap


@register("in_domain")
def in_domain(waves, seed, speech=None):
    return waves


@register("mixtures")
def mixtures(waves, seed, speech=None):
    return mix(waves, waves[partners(len(waves), seed)], 0.8, 0.2)


@register("white_noise")
def white_noise(waves, seed, speech=None):
    return mix(waves, np.random.default_rng([seed, 2]).standard_normal(waves.shape), 1.0, 0.5)


@register("speech")
def speech_overlay(waves, seed, speech=None):
    if speech is None:
        raise ValueError("the speech protocol needs speech clips (corpus_speech or folder_speech)")
    return mix(waves, speech, 0.8, 0.2)


def contaminate(protocol: str, waves: np.ndarray, seed: int, speech: np.ndarray | None = None) -> np.ndarray:
    """``waves`` (N, T) under ``protocol`` (a name of :data:`PROTOCOLS`), float32."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    return np.asarray(PROTOCOLS[protocol](waves, seed, speech), np.float32)


# LMAC-ZS's OOD protocols (methods.md C.4): contamination at 3 dB SNR, a·ŝ + b·n̂ with a/b = 10^(3/20).
SNR_3DB = 10 ** (-3 / 20)


@register("mixtures_3db")
def mixtures_3db(waves, seed, speech=None):
    return mix(waves, waves[partners(len(waves), seed)], 1.0, SNR_3DB)


@register("white_noise_3db")
def white_noise_3db(waves, seed, speech=None):
    return mix(waves, np.random.default_rng([seed, 2]).standard_normal(waves.shape), 1.0, SNR_3DB)


@register("speech_3db")
def speech_3db(waves, seed, speech=None):
    if speech is None:
        raise ValueError("the speech protocol needs speech clips (corpus_speech or folder_speech)")
    return mix(waves, speech, 1.0, SNR_3DB)
