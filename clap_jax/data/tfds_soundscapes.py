"""A TFDS builder for the soundscapes corpus, stored as ArrayRecord, readable without TensorFlow.

    from clap_jax.data import tfds_soundscapes, readers
    tfds_soundscapes.build(data_dir, n_clips=1000, seed=0)
    train = readers.TfdsSource("soundscapes", "train", data_dir, classes=list(soundscapes.CLASS_IDS))

Features are plain ``tfds.features.Tensor`` s (``tfds.features.Audio`` needs TensorFlow);
captions are one newline-separated text. Splits follow :func:`soundscapes.split_for`:
``train`` (development folds 1-3), ``validation`` (fold 4), ``test`` (fold 5).
"""
from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from clap_jax.data import soundscapes

_SPLITS = {"train": "development", "validation": "validation", "test": "evaluation"}


class Soundscapes(tfds.core.GeneratorBasedBuilder):
    """Synthetic labelled, captioned clips (see :mod:`clap_jax.data.soundscapes`)."""

    VERSION = tfds.core.Version("1.0.0")

    def __init__(self, *, n_clips: int = 1000, seed: int = 0, sample_rate: int = 16000, duration: float = 5.0,
                 **kwargs):
        self.n_clips, self.seed, self.sample_rate, self.duration = n_clips, seed, sample_rate, duration
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Synthetic soundscapes with labels, captions and event times (clap_jax).",
            features=tfds.features.FeaturesDict({
                "audio": tfds.features.Tensor(shape=(None,), dtype=np.float32),
                "sample_rate": tfds.features.Tensor(shape=(), dtype=np.int64),
                "labels": tfds.features.Tensor(shape=(None,), dtype=np.int64),
                "label": tfds.features.Tensor(shape=(), dtype=np.int64),
                "onsets": tfds.features.Tensor(shape=(None,), dtype=np.float32),
                "offsets": tfds.features.Tensor(shape=(None,), dtype=np.float32),
                "captions": tfds.features.Text(),
                "clip_id": tfds.features.Text(),
                "fold": tfds.features.Tensor(shape=(), dtype=np.int64),
            }))

    def _split_generators(self, dl_manager):
        del dl_manager
        return {name: self._generate_examples(split) for name, split in _SPLITS.items()}

    def _generate_examples(self, split: str):
        for clip in soundscapes.iter_clips(self.seed, self.n_clips, sample_rate=self.sample_rate,
                                           duration=self.duration, stft=None):
            if clip.split != split:
                continue
            labels = [soundscapes.class_index(c) for c in clip.labels]
            yield clip.clip_id, {
                "audio": clip.audio.astype(np.float32), "sample_rate": clip.sample_rate,
                "labels": np.asarray(labels, np.int64), "label": labels[0],
                "onsets": np.asarray([e.onset for e in clip.events], np.float32),
                "offsets": np.asarray([e.offset for e in clip.events], np.float32),
                "captions": "\n".join(clip.captions), "clip_id": clip.clip_id, "fold": clip.fold}


def build(data_dir: str, n_clips: int = 1000, seed: int = 0, sample_rate: int = 16000,
          duration: float = 5.0) -> Soundscapes:
    """Generates and writes the dataset (ArrayRecord) under ``data_dir``; offline."""
    b = Soundscapes(n_clips=n_clips, seed=seed, sample_rate=sample_rate, duration=duration, data_dir=data_dir,
                    file_format="array_record")
    b.download_and_prepare()
    return b
