"""Tests of the synthetic soundscapes corpus and its ESC-50 / Clotho export (quick)."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
import soundfile as sf

from clap_jax import frontend
from clap_jax.data import export as ex
from clap_jax.data import soundscapes as S

SR = 16000
N_FFT, HOP = 1024, 320


@pytest.fixture(scope="module")
def clips():
    """A small mixed batch (2 s clips, 1-3 events, backgrounds, masks)."""
    return S.generate(123, 40, duration=2.0)


@pytest.fixture(scope="module")
def per_class():
    """One single-event clip per class, no background (1.5 s)."""
    return {c.id: S.generate_clip(9, i, classes=(c.id,), single_event=True, background=False,
                                  duration=1.5)
            for i, c in enumerate(S.CLASSES)}


def _samples(e: S.Event) -> tuple[int, int]:
    return round(e.onset * SR), round(e.offset * SR)


def _mentions(caption: str, class_id: str) -> bool:
    text = caption.lower()
    return any(p in text for p in S.get_class(class_id).phrases)


# ----------------------------------------------------------------------------------------
# Class table


def test_class_table():
    assert len(S.CLASSES) >= 30
    assert len(S.FAMILIES) >= 6
    assert len(set(S.CLASS_IDS)) == len(S.CLASSES)
    for i, c in enumerate(S.CLASSES):
        assert re.fullmatch(r"[a-z][a-z0-9_]*", c.id), c.id
        assert c.family in S.FAMILIES and c.label and c.nouns and c.clauses
        assert all(p == p.lower() and p.strip() == p for p in c.phrases), c.id
        assert 0 < c.duration[0] <= c.duration[1]
        assert c.synth in S._SYNTHS
        assert S.class_index(c.id) == i == c.index
    for fam in S.FAMILIES:
        assert sum(c.family == fam for c in S.CLASSES) >= 2, fam


# ----------------------------------------------------------------------------------------
# Determinism and independence


def _same(a: S.Clip, b: S.Clip) -> bool:
    return (np.array_equal(a.audio, b.audio) and a.captions == b.captions and a.labels == b.labels
            and a.background == b.background
            and all(ea.onset == eb.onset and ea.offset == eb.offset and ea.level_db == eb.level_db
                    and np.array_equal(ea.mask, eb.mask) for ea, eb in zip(a.events, b.events)))


def test_deterministic_by_seed():
    a = S.generate(3, 4, duration=2.0)
    b = S.generate(3, 4, duration=2.0)
    assert all(_same(x, y) for x, y in zip(a, b))
    c = S.generate(4, 4, duration=2.0)
    assert all(not np.array_equal(x.audio, y.audio) for x, y in zip(a, c))
    assert [x.clip_id for x in a] != [x.clip_id for x in c]


def test_clip_depends_only_on_seed_and_index():
    many = S.generate(5, 6, duration=1.0)
    resumed = S.generate(5, 2, duration=1.0, start=4)
    alone = S.generate_clip(5, 4, S.SoundscapeConfig(duration=1.0))
    assert _same(many[4], resumed[0]) and _same(many[4], alone)
    assert many[4].clip_id == alone.clip_id == "s5_000004"


# ----------------------------------------------------------------------------------------
# Audio and events


def test_audio_and_events_are_sane(clips):
    n = int(2.0 * SR)
    for clip in clips:
        assert clip.audio.dtype == np.float32 and clip.audio.shape == (n,)
        assert np.isfinite(clip.audio).all()
        assert np.abs(clip.audio).max() <= S.PEAK_MAX <= 1.0
        assert clip.sample_rate == SR
        assert 1 <= len(clip.events) <= 3
        assert clip.labels == [e.class_id for e in clip.events]
        assert len(set(clip.labels)) == len(clip.labels)
        assert [e.onset for e in clip.events] == sorted(e.onset for e in clip.events)
        for e in clip.events:
            assert 0.0 <= e.onset < e.offset <= clip.duration + 1e-9
            a, b = _samples(e)
            assert np.abs(clip.audio[a:b]).max() > 0
            assert e.level_db <= -14.0 + 1e-6  # only ever scaled down
        assert clip.background in {b.id for b in S.BACKGROUNDS}


def test_every_class_synthesises(per_class):
    for cid, clip in per_class.items():
        (e,) = clip.events
        a, b = _samples(e)
        assert np.isfinite(clip.audio).all(), cid
        assert not clip.audio[:a].any() and not clip.audio[b:].any(), cid  # no background
        # level_db is the RMS of the event's span
        rms = np.sqrt(np.mean(clip.audio[a:b].astype(np.float64) ** 2))
        assert e.level_db == pytest.approx(20 * np.log10(rms), abs=0.01), cid
        if S.get_class(cid).tonal:
            assert e.pitch_hz is not None and 20 < e.pitch_hz < SR / 2


def test_single_event_mode():
    for clip in S.generate(8, 12, duration=1.0, single_event=True):
        assert len(clip.labels) == 1 and len(clip.events) == 1


def test_class_subset_and_no_background():
    subset = ("rain", "high_beep", "dog_bark")
    for clip in S.generate(2, 10, duration=1.0, classes=subset, background=False):
        assert set(clip.labels) <= set(subset)
        assert clip.background is None and clip.background_level_db is None
    with pytest.raises(ValueError):
        S.SoundscapeConfig(classes=("no_such_class",))


# ----------------------------------------------------------------------------------------
# STFT convention and ground-truth masks


def test_stft_matches_librosa():
    librosa = pytest.importorskip("librosa")
    x = np.random.default_rng(0).standard_normal(SR + 123).astype(np.float32)
    ours = S.stft(x, N_FFT, HOP)
    ref = librosa.stft(x, n_fft=N_FFT, hop_length=HOP, center=True, pad_mode="reflect",
                       window="hann").T
    assert ours.shape == ref.shape == (1 + len(x) // HOP, N_FFT // 2 + 1)
    np.testing.assert_allclose(ours, ref, atol=1e-3 * np.abs(ref).max())


def test_event_masks_match_full_stft_reference():
    """The mask computation equals a plain per-component full STFT (the corpus grid)."""
    rng = np.random.default_rng(1)
    n = 2 * SR
    spans = [(0, 9000), (5000, 20000), (25000, n)]  # touches both clip edges
    comps = np.zeros((4, n), np.float32)
    for i, (a, b) in enumerate(spans):
        comps[i, a:b] = rng.standard_normal(b - a) * np.hanning(b - a) * (i + 1)
    comps[3] = 0.3 * rng.standard_normal(n)  # background
    got = S._event_masks(comps, spans, 3, S.mask_grid((N_FFT, HOP), SR), -30.0)
    mags = np.abs(S.stft(comps, N_FFT, HOP))
    for i, (start, stop, crop) in enumerate(got):
        others = mags.sum(0) - mags[i]
        ref = (mags[i] > others) & (mags[i] >= 10 ** (-30 / 20) * mags[i].max())
        full = np.zeros_like(ref)
        full[start:stop] = crop
        assert (full != ref).mean() < 1e-4  # float32 rounding at the threshold only
        assert not ref[:start].any() and not ref[stop:].any()


# The SpeechBrain L-MAC recipe's grid (clap_jax.convert.speechbrain_spec): Hamming of 372
# samples in n_fft 1024, hop 186, zero padding.
SB_GRID = frontend.SpectrogramConfig(sample_rate=SR, n_fft=1024, win_length=372, hop_length=186, n_mels=80,
                                     fmin=0.0, fmax=8000.0, mel_scale="speechbrain", mel_norm=None,
                                     pad_mode="constant", window="hamming", mel_exponent=1.0,
                                     compression="log1p", magnitude_eps=1e-14)


def _numpy_stft(x, n_fft, win_length, hop, window, pad_mode):
    """An independent reference STFT (numpy/scipy): centred frames, window centred in n_fft."""
    from scipy.signal import get_window
    win = np.zeros(n_fft)
    off = (n_fft - win_length) // 2
    win[off:off + win_length] = get_window(window, win_length, fftbins=True)
    padded = np.pad(x.astype(np.float64), ((0, 0), (n_fft // 2, n_fft // 2)), mode=pad_mode)
    idx = hop * np.arange(1 + x.shape[-1] // hop)[:, None] + np.arange(n_fft)
    return np.fft.rfft(padded[:, idx] * win, axis=-1)


def test_event_masks_on_a_classifier_grid_match_reference():
    """Masks on SpeechBrain's grid are the dominance rule on that grid's own STFT (window,
    win_length, hop, zero padding), not on the corpus' Hann/reflect one."""
    rng = np.random.default_rng(2)
    n = 2 * SR
    spans = [(0, 7000), (9000, 21000)]
    comps = np.zeros((3, n), np.float32)
    for i, (a, b) in enumerate(spans):
        comps[i, a:b] = rng.standard_normal(b - a) * np.hanning(b - a) * (i + 1)
    comps[2] = 0.2 * rng.standard_normal(n)
    got = S._event_masks(comps, spans, 2, SB_GRID, -30.0)
    mags = np.abs(_numpy_stft(comps, 1024, 372, 186, "hamming", "constant"))
    assert mags.shape[1:] == (SB_GRID.num_frames(n), SB_GRID.n_freq)
    for i, (start, stop, crop) in enumerate(got):
        ref = (mags[i] > mags.sum(0) - mags[i]) & (mags[i] >= 10 ** (-30 / 20) * mags[i].max())
        full = np.zeros_like(ref)
        full[start:stop] = crop
        assert ref.any() and (full != ref).mean() < 1e-4
    hann = S._event_masks(comps, spans, 2, S.mask_grid((1024, 186), SR), -30.0)
    assert any(not np.array_equal(a[2], b[2]) for a, b in zip(got, hann))   # the grid matters


@pytest.mark.parametrize("index", [0, 1, 2])
def test_audio_does_not_depend_on_the_mask_grid(index):
    """The same (seed, index) with masks on two grids (and none): bit-identical audio, same
    events and captions; masks of each grid's shape."""
    grids = [(N_FFT, HOP), SB_GRID, None]
    clips = [S.generate_clip(31, index, duration=3.0, stft=g) for g in grids]
    for c in clips[1:]:
        assert np.array_equal(c.audio, clips[0].audio) and c.audio.dtype == clips[0].audio.dtype
        assert c.captions == clips[0].captions and c.labels == clips[0].labels
        assert [(e.onset, e.offset, e.level_db) for e in c.events] == \
            [(e.onset, e.offset, e.level_db) for e in clips[0].events]
    n = len(clips[0].audio)
    assert clips[0].event_masks().shape == (len(clips[0].events), 1 + n // HOP, N_FFT // 2 + 1)
    assert clips[1].event_masks().shape == (len(clips[1].events), SB_GRID.num_frames(n), SB_GRID.n_freq)
    assert clips[1].stft == (1024, 186) and clips[1].grid == SB_GRID


def test_ground_truth_on_another_grid():
    """ground_truth(clip, cfg) regenerates the masks on cfg's grid: equal to generating with
    stft=cfg; True where the event sounds, False before its onset."""
    clip = S.generate_clip(32, 4, duration=3.0, single_event=True)            # default grid
    direct = S.generate_clip(32, 4, duration=3.0, single_event=True, stft=SB_GRID)
    masks = S.ground_truth(clip, SB_GRID)
    n = len(clip.audio)
    assert masks.dtype == bool and masks.shape == (1, SB_GRID.num_frames(n), SB_GRID.n_freq)
    assert np.array_equal(masks, direct.event_masks()) and np.array_equal(masks, clip.event_masks(SB_GRID))
    assert np.array_equal(S.ground_truth(clip), clip.event_masks()) and clip.event_masks().shape[1] == 1 + n // HOP
    with pytest.raises(ValueError, match="stft=None"):
        S.ground_truth(S.generate_clip(32, 4, duration=3.0, stft=None))
    steady = ("white_noise", "organ_chord", "siren_wail", "rain", "engine_idling")   # no silent gaps
    for c in [S.generate_clip(33, i, duration=3.0, single_event=True, background=bg, classes=steady, stft=SB_GRID)
              for i, bg in [(0, True), (1, False), (2, True), (3, False), (4, True), (5, True)]]:
        (e,) = c.events
        m = c.event_masks()[0]
        a, b = _samples(e)
        before = (a - 1024 // 2) // 186            # frames ending at or before the onset
        after = -(-(b + 1024 // 2) // 186)         # frames starting at or after the offset
        assert not m[:max(0, before)].any() and not m[after:].any(), c.clip_id
        inside = m[-(-a // 186):b // 186 + 1]      # frames centred inside the event
        assert inside.any(axis=1).mean() > 0.9, (c.clip_id, e.class_id)


def test_mask_grid_must_match_the_clip_rate():
    with pytest.raises(ValueError, match="Hz"):
        S.SoundscapeConfig(sample_rate=32000, stft=SB_GRID)


def test_masks_cover_events(clips, per_class):
    for clip in [*clips, *per_class.values()]:
        n = len(clip.audio)
        for e in clip.events:
            m = e.mask
            assert m.dtype == bool and m.shape == (1 + n // HOP, N_FFT // 2 + 1)
            assert m.any(), (clip.clip_id, e.class_id)
            frames = np.flatnonzero(m.any(axis=1))
            start, stop = S.Event.frame_span(*_samples(e), n, N_FFT, HOP)
            # inside the frames whose window overlaps the event: onset/offset frame
            # -/+ n_fft / (2 hop) frames (1.6 here)
            assert start <= frames.min() and frames.max() < stop
            assert frames.min() >= int(np.floor((e.onset * SR - N_FFT / 2) / HOP))
            assert frames.max() <= int(np.ceil((e.offset * SR + N_FFT / 2) / HOP))


def test_tonal_masks_concentrate_at_pitch(per_class):
    clips = [per_class[c] for c in ("low_beep", "mid_beep", "high_beep")]
    clips += S.generate(4, 12, duration=1.0, classes=("low_beep", "mid_beep", "high_beep"),
                        single_event=True)
    for clip in clips:
        (e,) = clip.events
        bins = np.nonzero(e.mask)[1]
        centre = e.pitch_hz * N_FFT / SR
        assert np.mean(np.abs(bins - centre) <= 4) >= 0.8, (clip.clip_id, e.pitch_hz)


# ----------------------------------------------------------------------------------------
# Captions


def test_captions_mention_every_event(clips, per_class):
    for clip in [*clips, *per_class.values()]:
        assert len(clip.captions) == 5
        assert len({c.lower().rstrip(".") for c in clip.captions}) == 5
        for cap in clip.captions:
            assert cap[0].isupper() and "  " not in cap and "{" not in cap
            for e in clip.events:
                assert _mentions(cap, e.class_id), (cap, e.class_id)


def test_captions_follow_time_order():
    """Sequential (non-overlapping) events are described in onset order when 'then' is used."""
    seen = 0
    for clip in S.generate(6, 60, duration=5.0, background=False, stft=None):
        if len(clip.events) != 2 or clip.events[1].onset < clip.events[0].offset:
            continue
        first, second = clip.events
        for cap in clip.captions:
            if ", then " in cap and " after " not in cap:
                head, tail = cap.split(", then ", 1)
                assert _mentions(head, first.class_id) and _mentions(tail, second.class_id), cap
                seen += 1
    assert seen > 0


# ----------------------------------------------------------------------------------------
# Folds, splits and export


def test_folds_and_splits():
    ids = [S.clip_id_for(0, i) for i in range(300)]
    folds = [S.fold_for(i) for i in ids]
    assert set(folds) == set(range(1, S.N_FOLDS + 1))
    assert folds == [S.fold_for(i) for i in ids]
    assert {S.split_for(i) for i in ids} == set(S.SPLITS)
    for i, f in zip(ids, folds):
        assert S.split_for(i) == ("development" if f <= 3 else S.SPLITS[f - 3])


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def _assert_wav_equals(path, clip):
    audio, sr = sf.read(path, dtype="float32")
    assert sr == clip.sample_rate and audio.shape == clip.audio.shape
    assert sf.info(path).subtype == "PCM_16"
    np.testing.assert_allclose(audio, clip.audio, atol=2.0 / 32768)


def test_export_esc50_round_trip(tmp_path):
    clips = S.generate(21, 6, duration=1.0)
    csv_path = ex.export_esc50(iter(clips), tmp_path)
    header, rows = _read_csv(csv_path)
    assert header == ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    assert len(rows) == len(clips)
    for clip, row in zip(clips, rows):
        r = dict(zip(header, row))
        assert r["filename"] == f"{clip.fold}-{clip.clip_id}-A-{clip.events[0].target}.wav"
        assert int(r["fold"]) == clip.fold and r["src_file"] == clip.clip_id and r["take"] == "A"
        assert int(r["target"]) == S.class_index(r["category"]) and r["category"] == clip.labels[0]
        _assert_wav_equals(tmp_path / "audio" / r["filename"], clip)
        gt = ex.load_masks(tmp_path / "masks" / f"{clip.clip_id}.npz")
        assert list(gt["class_ids"]) == clip.labels and int(gt["hop"]) == HOP
        for m, e in zip(gt["masks"], clip.events):
            assert np.array_equal(m, e.mask)
    header, rows = _read_csv(tmp_path / "meta" / "soundscapes_labels.csv")
    assert header == list(ex.LABEL_COLUMNS)
    events = [(c, e) for c in clips for e in c.events]
    assert len(rows) == len(events)
    for (clip, e), row in zip(events, rows):
        r = dict(zip(header, row))
        assert r["clip_id"] == clip.clip_id and r["class_id"] == e.class_id
        assert float(r["onset"]) == pytest.approx(e.onset, abs=1e-6)
        assert float(r["offset"]) == pytest.approx(e.offset, abs=1e-6)
    assert not list(tmp_path.rglob("*.tmp"))


def test_export_clotho_round_trip(tmp_path):
    clips = S.generate(22, 8, duration=1.0, n_captions=3)
    paths = ex.export_clotho(clips, tmp_path)
    assert set(paths) == set(S.SPLITS)
    by_id = {c.clip_id: c for c in clips}
    seen = 0
    for split, path in paths.items():
        header, rows = _read_csv(path)
        assert header == ["file_name", "caption_1", "caption_2", "caption_3", "caption_4",
                          "caption_5"]
        for row in rows:
            clip = by_id[row[0][: -len(".wav")]]
            assert clip.split == split
            assert row[1:4] == clip.captions and row[4:] == clip.captions[:2]  # cycled to 5
            _assert_wav_equals(tmp_path / f"clotho_audio_{split}" / row[0], clip)
            seen += 1
    assert seen == len(clips)


def test_interrupted_export_leaves_no_csv(tmp_path):
    def clips_then_crash():
        yield from S.generate(23, 2, duration=1.0, stft=None)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ex.export_esc50(clips_then_crash(), tmp_path)
    assert not (tmp_path / "meta").exists()
    assert len(list((tmp_path / "audio").glob("*.wav"))) == 2
    assert not list(tmp_path.rglob("*.tmp"))
