"""The labelled or captioned datasets that extraction and the concept evaluations run on, through
the shared readers; :func:`define_flags` / :func:`from_flags` are their command-line flags.

``open_dataset(kind, ...)`` -> :class:`Dataset` (records + class names) for

* ``esc50`` (``root``, optional ``folds``), ``urbansound8k`` (``root``, ``folds``): single label;
* ``captions`` (``csv`` + ``audio_dir``): Clotho or AudioCaps captions (retrieval);
* ``folder`` (``root``): every audio file, labelled by its sub-folder if it has one;
* ``tfds`` (``name``, ``split``, ``data_dir``, ``classes``): a TFDS dataset (``TfdsSource``);
* ``soundscapes``: synthetic clips generated in memory (``seed``, ``clips``, ``sample_rate``,
  ``duration``). ``single_event=True`` (default): one event per clip, labelled with its class
  (zero-shot classification; the classes' display labels, "high beep", are the class names; no
  captions: single-event captions repeat across the clips of a class, so retrieval on them
  says little).
  ``single_event=False``: 1-3 events per clip with captions (retrieval) and all event labels
  in ``Record.labels``, no single ``label``.

:func:`extracted_dataset` reads a ``clap_jax.extract`` folder back as a :class:`Dataset` (labels
and captions from its index) with its audio embeddings.

The held-out soundscapes seed of the bundled model is 10000 (``configs/clap_soundscapes.py``:
``data.eval_seed``); training used seed 0.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import numpy as np

from clap_jax.data import readers

KINDS = ("esc50", "urbansound8k", "captions", "folder", "tfds", "soundscapes")


@dataclasses.dataclass
class Dataset:
    """``records``: a sequence of ``clap_jax.data.readers.Record``; ``classes``: class names
    indexed by ``Record.label`` (may be empty); ``name`` for reports."""
    records: Sequence[readers.Record]
    classes: list[str]
    name: str

    def __len__(self) -> int:
        return len(self.records)

    def labels(self) -> np.ndarray | None:
        """(n,) int class indices, or None when any record has no single label."""
        labels = [r.label for r in self.records]
        if not labels or any(x is None for x in labels):
            return None
        return np.asarray(labels, np.int64)

    def captions(self) -> tuple[list[str], np.ndarray] | None:
        """All captions and, per caption, the index of its record; None without captions."""
        texts, owner = [], []
        for i, r in enumerate(self.records):
            texts += list(r.captions)
            owner += [i] * len(r.captions)
        return (texts, np.asarray(owner, np.int64)) if texts else None


def soundscapes_records(seed: int, clips: int, sample_rate: int = 16000, duration: float = 5.0,
                        single_event: bool = True) -> Dataset:
    """In-memory soundscapes clips as records (see the module docstring)."""
    from clap_jax.data import soundscapes
    generated = soundscapes.generate(seed, clips, sample_rate=sample_rate, duration=duration,
                                     single_event=single_event, stft=None)
    records = [readers.Record(key=c.clip_id, samples=c.audio, sample_rate=c.sample_rate,
                              label=soundscapes.class_index(c.labels[0]) if single_event else None,
                              labels=tuple(c.labels), captions=() if single_event else tuple(c.captions))
               for c in generated]
    name = f"soundscapes(seed={seed}, {'single' if single_event else 'multi'}-event, {clips} clips)"
    return Dataset(records, [c.label for c in soundscapes.CLASSES], name)


def open_dataset(kind: str, *, root: str | None = None, folds: Sequence[int] | None = None,
                 csv: str | None = None, audio_dir: str | None = None, name: str | None = None,
                 split: str | None = None, data_dir: str | None = None, classes: Sequence[str] | None = None,
                 seed: int = 10000, clips: int = 300, sample_rate: int = 16000, duration: float = 5.0,
                 single_event: bool = True) -> Dataset:
    """Opens one of :data:`KINDS` (arguments in the module docstring)."""
    def need(**kw):
        missing = [k for k, v in kw.items() if not v]
        if missing:
            raise ValueError(f"dataset {kind!r} needs {', '.join(missing)}")

    folds = tuple(folds) if folds else None
    if kind == "esc50":
        need(root=root)
        r = readers.Esc50(root, folds)
        return Dataset(r, r.classes, f"ESC-50 {root}" + (f" folds {folds}" if folds else ""))
    if kind == "urbansound8k":
        need(root=root)
        r = readers.UrbanSound8K(root, folds)
        return Dataset(r, r.classes, f"UrbanSound8K {root}" + (f" folds {folds}" if folds else ""))
    if kind == "captions":
        need(csv=csv, audio_dir=audio_dir)
        r = readers.CaptionCsv(csv, audio_dir)
        return Dataset(r, [], f"captions {csv}")
    if kind == "folder":
        need(root=root)
        r = readers.AudioFolder(root)
        return Dataset(r, r.classes, f"folder {root}")
    if kind == "tfds":
        need(name=name, split=split)
        r = readers.TfdsSource(name, split, data_dir, list(classes) if classes else None)
        return Dataset(r, r.classes, f"tfds {name}[{split}]")
    if kind == "soundscapes":
        return soundscapes_records(seed, clips, sample_rate, duration, single_event)
    raise ValueError(f"unknown dataset kind {kind!r}; expected one of {KINDS}")


def extracted_dataset(directory: str, model) -> tuple[Dataset, np.ndarray]:
    """A ``clap_jax.extract`` folder -> its dataset (records with labels and captions from the
    index) and audio embeddings (n, d); refused if a model other than ``model`` (anything with a
    ``fingerprint``, e.g. ``clap_jax.Clap``) extracted it."""
    from clap_jax import shards
    _, emb, rows = shards.read(directory)
    job = shards.read_json(os.path.join(directory, "job.json"))
    if job["model_fingerprint"] != model.fingerprint:
        raise ValueError(f"--embeddings={directory}: extracted with model {job['model']!r}, not the model given")
    classes = job.get("classes", [])
    index = {c: i for i, c in enumerate(classes)}
    records = [readers.Record(key=r["id"], path=r["path"], label=index.get(r["label"]), labels=tuple(r["labels"]),
                              captions=tuple(r["captions"])) for r in rows]
    return Dataset(records, classes, f"{job['dataset']} (extracted to {directory})"), np.asarray(emb)


def label_text(class_name: str) -> str:
    """A class name as prompt text: ``sea_waves`` -> ``sea waves``."""
    return class_name.replace("_", " ").strip()


def define_flags(default: str = "soundscapes") -> None:
    """The dataset flags of every command that reads a dataset (``--dataset`` and its arguments)."""
    from absl import flags
    flags.DEFINE_enum("dataset", default, list(KINDS), "Dataset kind (clap_jax.data.datasets).")
    flags.DEFINE_string("root", None, "esc50 / urbansound8k / folder: the dataset folder.")
    flags.DEFINE_list("folds", [], "esc50 / urbansound8k: folds to use (default all).")
    flags.DEFINE_string("csv", None, "captions: Clotho or AudioCaps CSV.")
    flags.DEFINE_string("audio_dir", None, "captions: audio folder.")
    flags.DEFINE_string("tfds_name", None, "tfds: dataset name.")
    flags.DEFINE_string("split", None, "tfds: split.")
    flags.DEFINE_string("data_dir", None, "tfds: data_dir.")
    flags.DEFINE_list("classes", [], "tfds: class names by label index.")
    flags.DEFINE_integer("seed", 10000, "soundscapes: seed (10000: the bundled model's held-out seed).")
    flags.DEFINE_integer("clips", 300, "soundscapes: number of clips.")
    flags.DEFINE_boolean("single_event", True, "soundscapes: single-event labelled clips (classification) or "
                         "1-3 events with captions (retrieval).")
    flags.DEFINE_float("duration", 5.0, "soundscapes: clip length in seconds.")


def from_flags(sample_rate: int = 16000) -> Dataset:
    """The dataset :func:`define_flags`' flags name (soundscapes clips at ``sample_rate``)."""
    from absl import flags
    F = flags.FLAGS
    try:
        folds = [int(x) for x in F.folds]
    except ValueError:
        raise ValueError(f"--folds must be integers, got {','.join(F.folds)}") from None
    return open_dataset(F.dataset, root=F.root, folds=folds, csv=F.csv, audio_dir=F.audio_dir,
                        name=F.tfds_name, split=F.split, data_dir=F.data_dir, classes=F.classes, seed=F.seed,
                        clips=F.clips, sample_rate=sample_rate, duration=F.duration,
                        single_event=F.single_event)
