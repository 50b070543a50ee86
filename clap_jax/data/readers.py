"""Dataset readers shared by every job: random-access sequences of :class:`Record`.

* :class:`Esc50` — ESC-50 folder + ``meta/esc50.csv`` (folds, single label);
* :class:`UrbanSound8K` — ``metadata/UrbanSound8K.csv`` + ``audio/fold{n}/``;
* :class:`CaptionCsv` — Clotho (``file_name,caption_1..5``) or AudioCaps (one caption a row);
* :class:`AudioFolder` — every audio file under a folder (label = sub-folder name, if any);
* :class:`TfdsSource` — a TFDS dataset read with ``tfds.data_source`` (no TensorFlow), e.g. the
  soundscapes builder in :mod:`clap_jax.data.tfds_soundscapes`.

A record carries where its audio is (a path, or the samples themselves) and its annotations;
:func:`load_audio` reads it. Readers are cheap to index, so they plug into ``grain`` and the
training loader directly; decoding happens in the loader's background threads.
"""
from __future__ import annotations

import collections
import csv
import dataclasses
import os

import numpy as np

from clap_jax import audio

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


@dataclasses.dataclass(frozen=True)
class Record:
    """One example. ``path`` or ``samples`` (+ ``sample_rate``) locate the audio; ``label`` is a
    class index into the reader's ``classes``; ``labels`` all class names (multi-label sets)."""
    key: str
    path: str | None = None
    samples: np.ndarray | None = None
    sample_rate: int | None = None
    label: int | None = None
    labels: tuple[str, ...] = ()
    captions: tuple[str, ...] = ()
    fold: int | None = None


def load_audio(record: Record, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Mono float32 samples of a record (resampled to ``sample_rate`` if given)."""
    if record.samples is not None:
        x = audio.check_waveform(record.samples, record.key)
        rate = record.sample_rate
        if sample_rate is not None and rate != sample_rate:
            x, rate = audio.resample(x, rate, sample_rate), sample_rate
        return x, rate
    return audio.read_audio(record.path, sample_rate)


def _read_csv(path: str) -> list[dict[str, str]]:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such metadata file")
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class _Records:
    """A list of records with class names; sequence protocol for loaders."""

    def __init__(self, records: list[Record], classes: list[str] | None = None):
        self.records, self.classes = records, classes or []

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> Record:
        return self.records[i]

    def __iter__(self):
        return (self[i] for i in range(len(self)))


class Esc50(_Records):
    """ESC-50 layout: ``root/audio/<filename>``, ``root/meta/esc50.csv`` (filename, fold, target,
    category, ...). ``folds`` keeps only those folds."""

    def __init__(self, root: str, folds: tuple[int, ...] | None = None):
        rows = _read_csv(os.path.join(root, "meta", "esc50.csv"))
        names = {int(r["target"]): r["category"] for r in rows}
        classes = [names.get(i, f"class_{i}") for i in range(max(names) + 1)] if names else []
        records = [Record(key=r["filename"], path=os.path.join(root, "audio", r["filename"]), label=int(r["target"]),
                          labels=(r["category"],), fold=int(r["fold"]))
                   for r in rows if folds is None or int(r["fold"]) in folds]
        super().__init__(records, classes)


class UrbanSound8K(_Records):
    """UrbanSound8K layout: ``root/metadata/UrbanSound8K.csv``, ``root/audio/fold{n}/<file>``."""

    def __init__(self, root: str, folds: tuple[int, ...] | None = None):
        rows = _read_csv(os.path.join(root, "metadata", "UrbanSound8K.csv"))
        names = {int(r["classID"]): r["class"] for r in rows}
        classes = [names.get(i, f"class_{i}") for i in range(max(names) + 1)] if names else []
        records = [Record(key=r["slice_file_name"],
                          path=os.path.join(root, "audio", f"fold{r['fold']}", r["slice_file_name"]),
                          label=int(r["classID"]), labels=(r["class"],), fold=int(r["fold"]))
                   for r in rows if folds is None or int(r["fold"]) in folds]
        super().__init__(records, classes)


class CaptionCsv(_Records):
    """Caption CSVs. Clotho: ``file_name, caption_1..caption_5`` with audio in ``audio_dir``.
    AudioCaps: ``audiocap_id, youtube_id, start_time, caption``, several rows per clip, audio at
    ``audio_dir/<youtube_id>.<ext>`` (``ext`` the first extension that exists)."""

    def __init__(self, csv_path: str, audio_dir: str):
        rows = _read_csv(csv_path)
        records = []
        if rows and "file_name" in rows[0]:
            for r in rows:
                caps = tuple(r[k] for k in sorted(r) if k.startswith("caption_") and r[k])
                records.append(Record(key=r["file_name"], path=os.path.join(audio_dir, r["file_name"]),
                                      captions=caps))
        elif rows and "youtube_id" in rows[0]:
            grouped = collections.OrderedDict()
            for r in rows:
                grouped.setdefault(r["youtube_id"], []).append(r["caption"])
            for yid, caps in grouped.items():
                path = next((os.path.join(audio_dir, yid + e) for e in AUDIO_EXTENSIONS
                             if os.path.exists(os.path.join(audio_dir, yid + e))), os.path.join(audio_dir, yid + ".wav"))
                records.append(Record(key=yid, path=path, captions=tuple(caps)))
        elif rows:
            raise ValueError(f"{csv_path}: neither Clotho (file_name, caption_N) nor AudioCaps (youtube_id, caption)")
        super().__init__(records)


class AudioFolder(_Records):
    """Every audio file below ``root`` (sorted); files in sub-folders get the folder name as label."""

    def __init__(self, root: str):
        if not os.path.isdir(root):
            raise NotADirectoryError(f"{root}: not a folder")
        paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs
                       if f.lower().endswith(AUDIO_EXTENSIONS))
        dirs = sorted({os.path.relpath(os.path.dirname(p), root) for p in paths} - {"."})
        index = {d: i for i, d in enumerate(dirs)}
        records = []
        for p in paths:
            d = os.path.relpath(os.path.dirname(p), root)
            records.append(Record(key=os.path.relpath(p, root), path=p, label=index.get(d),
                                  labels=(d,) if d in index else ()))
        super().__init__(records, dirs)


class TfdsSource(_Records):
    """A TFDS dataset split through ``tfds.data_source`` (random access over ArrayRecord).

    Features used: ``audio`` (float samples), ``sample_rate``; optional ``label``, ``labels``,
    ``captions`` (newline-separated text), ``clip_id``, ``fold``."""

    def __init__(self, name: str, split: str, data_dir: str | None = None, classes: list[str] | None = None):
        import tensorflow_datasets as tfds
        self.source = tfds.data_source(name, split=split, data_dir=data_dir)
        self.classes = classes or []

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> Record:
        ex = self.source[int(i)]
        text = lambda v: v.decode() if isinstance(v, bytes) else str(v)
        labels = tuple(self.classes[j] for j in ex["labels"]) if "labels" in ex and self.classes else ()
        captions = tuple(c for c in text(ex["captions"]).split("\n") if c) if "captions" in ex else ()
        return Record(key=text(ex.get("clip_id", i)), samples=np.asarray(ex["audio"], np.float32),
                      sample_rate=int(ex["sample_rate"]), label=int(ex["label"]) if "label" in ex else None,
                      labels=labels, captions=captions, fold=int(ex["fold"]) if "fold" in ex else None)
