"""Every reader returns the examples the soundscapes generator wrote."""
from __future__ import annotations

import numpy as np
import pytest

from clap_jax.data import export, readers, soundscapes


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    clips = soundscapes.generate(7, 12, sample_rate=16000, duration=1.0, stft=(512, 160))
    root = tmp_path_factory.mktemp("corpus")
    export.export_esc50(clips, root / "esc50")
    export.export_clotho(clips, root / "clotho")
    return clips, root


def _close(a, b):
    np.testing.assert_allclose(a, b, atol=1.5 / 32767)       # 16-bit PCM on disk


def test_esc50_reader(corpus):
    clips, root = corpus
    ds = readers.Esc50(str(root / "esc50"))
    assert len(ds) == len(clips)
    by_id = {c.clip_id: c for c in clips}
    for rec in ds:
        clip = next(c for k, c in by_id.items() if k in rec.key)
        assert rec.fold == clip.fold and ds.classes[rec.label] == clip.labels[0] == rec.labels[0]
        _close(readers.load_audio(rec)[0], clip.audio)
    assert {r.fold for r in readers.Esc50(str(root / "esc50"), folds=(1,))} <= {1}


def test_clotho_reader(corpus):
    clips, root = corpus
    seen = 0
    for split in ("development", "validation", "evaluation"):
        ds = readers.CaptionCsv(str(root / "clotho" / f"clotho_captions_{split}.csv"),
                                str(root / "clotho" / f"clotho_audio_{split}"))
        for rec in ds:
            clip = next(c for c in clips if rec.key.startswith(c.clip_id))
            assert list(rec.captions) == clip.captions[:5]
            _close(readers.load_audio(rec)[0], clip.audio)
            seen += 1
    assert seen == len(clips)


def test_folder_reader(corpus):
    clips, root = corpus
    ds = readers.AudioFolder(str(root / "esc50" / "audio"))
    assert len(ds) == len(clips) and all(r.label is None for r in ds)
    x, rate = readers.load_audio(ds[0], sample_rate=8000)
    assert rate == 8000 and len(x) == 8000


def test_tfds_reader_without_tensorflow(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    from clap_jax.data import tfds_soundscapes
    tfds_soundscapes.build(str(tmp_path), n_clips=15, seed=3, duration=1.0)
    clips = {c.clip_id: c for c in soundscapes.generate(3, 15, duration=1.0, stft=None)}
    total = 0
    for split in ("train", "validation", "test"):
        ds = readers.TfdsSource("soundscapes", split, str(tmp_path), classes=list(soundscapes.CLASS_IDS))
        for rec in ds:
            clip = clips[rec.key]
            np.testing.assert_array_equal(readers.load_audio(rec)[0], clip.audio)
            assert list(rec.labels) == clip.labels and list(rec.captions) == clip.captions
            total += 1
    assert total == 15
    import sys
    assert "tensorflow" not in sys.modules
