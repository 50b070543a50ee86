"""The model object and its error messages, on a small model of the same code (no torch needed)."""
from __future__ import annotations

import dataclasses
import json

import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf
from flax import nnx

import clap_jax
from clap_jax import api, audio, checkpoint
from clap_jax.frontend import SpectrogramConfig
from clap_jax.models.clap import ClapConfig, ClapModel
from clap_jax.models.cnn14 import Cnn14Config
from clap_jax.models.gpt2 import GPT2Config
from clap_jax.models.htsat import HTSATConfig
from clap_jax.models.text import TextConfig
from clap_jax.spec import AudioConfig, ClapSpec, ClassifierSpec, TokenizerConfig

SMALL = ClapSpec(
    model=ClapConfig(audio=HTSATConfig(embed_dim=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2)),
                     text=TextConfig(vocab_size=400, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                                     max_positions=40),
                     joint_dim=24),
    audio=AudioConfig(clip_samples=96000), tokenizer=TokenizerConfig(max_length=16))


@pytest.fixture(scope="module")
def small(roberta_tokenizer_dir):
    return api.from_model(SMALL, ClapModel(SMALL.model, rngs=nnx.Rngs(0)), roberta_tokenizer_dir)


def test_embeddings_shapes_norms_and_batching(small):
    rng = np.random.default_rng(0)
    a = (0.1 * rng.standard_normal(40000)).astype(np.float32)
    b = (0.1 * rng.standard_normal(30000)).astype(np.float32)
    emb = small.embed_audio([a, b], [48000, 16000])
    assert emb.shape == (2, 24)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    # A list of clips embeds like the clips one by one: batching does not mix examples.
    np.testing.assert_allclose(emb[1], small.embed_audio([b], 16000)[0], atol=1e-6)
    t = small.embed_text(["a beep", "rain falling on a roof"])
    assert t.shape == (2, 24)
    probs = small.zero_shot([a], 48000, ["a beep", "rain"])
    np.testing.assert_allclose(probs.sum(), 1, atol=1e-5)


def test_bfloat16_path_runs_and_stays_close(small):
    model16 = ClapModel(SMALL.model, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    small16 = api.Clap(SMALL, model16, small.tokenizer)
    x = (0.1 * np.random.default_rng(1).standard_normal((2, 96000))).astype(np.float32)
    e32, e16 = small.embed_audio(x, 48000), small16.embed_audio(x, 48000)
    assert e16.dtype == np.float32
    assert np.abs(e32 - e16).max() < 0.1 and np.abs(e32 - e16).max() > 0


def test_long_text_is_truncated_to_the_context(small):
    ids, mask = small.tokenizer(["rain " * 100, "a beep"])
    assert ids.shape == (2, 16) and mask[0].sum() == 16 and ids[0, -1] == 2      # ends with </s>
    assert mask[1].sum() < 16


@pytest.mark.parametrize("bad,match", [
    ([np.zeros(0, np.float32)], "waveform 0: zero-length"),
    ([np.ones(100, np.float32), np.array([0.1, np.nan, 0.2], np.float32)], "waveform 1: 1 NaN/inf"),
    (np.zeros((2, 3, 100), np.float32), r"expected \(batch, samples\)"),
    ([], "empty batch"),
])
def test_bad_audio_is_named(small, bad, match):
    with pytest.raises(audio.AudioError, match=match):
        small.embed_audio(bad, 48000)


def test_bad_text(small):
    with pytest.raises(ValueError, match="empty"):
        small.embed_text([])
    with pytest.raises(ValueError, match=r"texts\[1\]"):
        small.embed_text(["ok", 3])


def test_read_audio_formats_and_errors(tmp_path):
    rng = np.random.default_rng(2)
    stereo = (0.1 * rng.standard_normal((22050, 2))).astype(np.float32)
    sf.write(tmp_path / "a.flac", stereo, 22050)
    x, rate = audio.read_audio(tmp_path / "a.flac", sample_rate=48000)
    assert rate == 48000 and x.ndim == 1 and abs(len(x) - 48000) <= 1
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        audio.read_audio(tmp_path / "missing.wav")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x01garbage" * 10)
    with pytest.raises(audio.AudioError, match="corrupt.wav: cannot decode"):
        audio.read_audio(tmp_path / "corrupt.wav")
    sf.write(tmp_path / "empty.wav", np.zeros((0, 1), np.float32), 16000)
    with pytest.raises(audio.AudioError, match="empty.wav: zero-length"):
        audio.read_audio(tmp_path / "empty.wav")


def test_converted_directory_round_trip_without_torch(small, tmp_path, roberta_tokenizer_dir):
    model = nnx.merge(small.graphdef, small.state)
    checkpoint.save_converted(str(tmp_path / "conv"), SMALL, model, roberta_tokenizer_dir)
    loaded = clap_jax.load(str(tmp_path / "conv"))
    assert loaded.spec == SMALL
    x = (0.1 * np.random.default_rng(3).standard_normal((1, 50000))).astype(np.float32)
    np.testing.assert_array_equal(loaded.embed_audio(x, 48000), small.embed_audio(x, 48000))
    np.testing.assert_array_equal(loaded.embed_text(["a beep"]), small.embed_text(["a beep"]))


def test_spec_json_round_trip_and_refusals():
    assert ClapSpec.from_json(SMALL.to_json()) == SMALL
    with pytest.raises(ValueError, match="format"):
        ClapSpec.from_json('{"format": "other"}')
    with pytest.raises(ValueError, match="unknown fields"):
        ClapSpec.from_json(SMALL.to_json().replace('"joint_dim"', '"joint_size"'))
    with pytest.raises(FileNotFoundError, match="spec.json"):
        clap_jax.load("/nonexistent/model/dir")


def test_fusion_crop_modes_are_deterministic():
    from clap_jax import pipeline
    cfg = dataclasses.replace(AudioConfig(clip_samples=48000, fusion=True))
    x = (0.1 * np.random.default_rng(4).standard_normal(150000)).astype(np.float32)
    a = pipeline.prepare([(x, 48000)], cfg)
    assert a.longer.tolist() == [True]
    np.testing.assert_array_equal(a.starts, pipeline.prepare([(x, 48000)], cfg).starts)
    r1 = pipeline.prepare([(x, 48000)], cfg, crop="random", seed=1).starts
    np.testing.assert_array_equal(r1, pipeline.prepare([(x, 48000)], cfg, crop="random", seed=1).starts)
    # 150000 samples: 313 frames, 101 per crop, so starts 0..212 in thirds [0, 70], [71, 141], [142, 212]
    # (LAION's np.array_split of range(total - chunk + 1)); the centre rule takes each third's middle.
    assert a.starts.tolist() == [[35, 106, 177]]
    drawn = np.array([pipeline.prepare([(x, 48000)], cfg, crop="random", seed=s).starts[0] for s in range(40)])
    for third, (lo, hi) in enumerate([(0, 70), (71, 141), (142, 212)]):
        assert drawn[:, third].min() >= lo and drawn[:, third].max() <= hi, third
        assert len(set(drawn[:, third])) > 20, third                  # different seeds, different starts
    assert (drawn != a.starts[0]).any(axis=1).all()                    # no draw is the centre crop


def test_random_crop_starts_are_in_range_and_not_the_centre():
    """Non-fusion ``crop='random'``: the batch holds the window at the drawn start, which lies in
    [0, n - clip_samples], differs from the centre crop and from seed to seed."""
    from clap_jax import pipeline
    cfg = AudioConfig(clip_samples=48000, quantize_int16=False)
    x = (0.1 * np.random.default_rng(4).standard_normal(60000)).astype(np.float32)
    centre = pipeline.prepare([(x, 48000)], cfg)
    assert centre.crops.tolist() == [6000]
    np.testing.assert_array_equal(centre.waves[0], x[6000:54000])
    starts = []
    for seed in range(30):
        b = pipeline.prepare([(x, 48000)], cfg, crop="random", seed=seed)
        s = int(b.crops[0])
        assert 0 <= s <= 60000 - 48000
        np.testing.assert_array_equal(b.waves[0], x[s:s + 48000])
        starts.append(s)
    assert len(set(starts)) == 30 and 6000 not in starts
    # A sequence of seeds gives each clip its own draw: the same clip twice, two different starts.
    pair = pipeline.prepare([(x, 48000), (x, 48000)], cfg, crop="random", seed=[0, 1]).crops
    assert pair.tolist() == [starts[0], starts[1]]


MSCLAP_SMALL = ClapSpec(
    model=ClapConfig(audio=Cnn14Config(channels=(4, 8, 8, 16), embed_dim=16, num_classes=3),
                     text=GPT2Config(vocab_size=400, max_positions=40, hidden_size=32, num_layers=1, num_heads=2),
                     joint_dim=24, projection="msclap", shared_logit_scale=True),
    audio=AudioConfig(spectrogram=SpectrogramConfig(sample_rate=44100, hop_length=320, mel_sample_rate=32000),
                      clip_samples=44100, pad="repeat", quantize_int16=False),
    tokenizer=TokenizerConfig(max_length=16, family="gpt2", suffix=" <|endoftext|>", pad_token="!"),
    source="msclap-2023", normalize_embeddings=False)


def test_msclap_shaped_model_cnn14_gpt2(gpt2_tokenizer_dir, tmp_path):
    """A Microsoft-CLAP-shaped model (CNN14 audio, GPT-2 text, Projection heads, one logit scale)
    through the same API, and its converted directory."""
    model = ClapModel(MSCLAP_SMALL.model, rngs=nnx.Rngs(1))
    clap = api.from_model(MSCLAP_SMALL, model, gpt2_tokenizer_dir)
    x = (0.1 * np.random.default_rng(5).standard_normal((2, 30000))).astype(np.float32)
    a, t = clap.embed_audio(x, 44100), clap.embed_text(["rain!", "a beep"])
    assert a.shape == t.shape == (2, 24)
    assert np.abs(np.linalg.norm(t, axis=1) - 1).max() > 1e-2            # unnormalised
    scale = float(np.exp(model.logit_scale[...]))
    an, tn = a / np.linalg.norm(a, axis=1, keepdims=True), t / np.linalg.norm(t, axis=1, keepdims=True)
    np.testing.assert_allclose(clap.similarity(a, t), scale * an @ tn.T, rtol=1e-5)
    ids, mask = clap.tokenizer(["rain!"])
    assert ids[0, mask[0].sum() - 1] == clap.tokenizer.tok.token_to_id("<|endoftext|>") and clap.tokenizer.pad_id == 0
    checkpoint.save_converted(str(tmp_path / "conv"), MSCLAP_SMALL, model, gpt2_tokenizer_dir)
    loaded = clap_jax.load(str(tmp_path / "conv"))
    assert loaded.spec == MSCLAP_SMALL
    np.testing.assert_array_equal(loaded.embed_text(["rain!", "a beep"]), t)


def test_spec_kinds_round_trip_and_old_specs():
    assert ClapSpec.from_json(MSCLAP_SMALL.to_json()) == MSCLAP_SMALL
    old = json.loads(SMALL.to_json())             # written before the ``kind`` fields existed
    del old["model"]["audio"]["kind"], old["model"]["text"]["kind"]
    assert ClapSpec.from_json(json.dumps(old)) == SMALL
    bad = json.loads(SMALL.to_json())
    bad["model"]["audio"]["kind"] = "wav2vec"
    with pytest.raises(ValueError, match="unknown kind 'wav2vec'"):
        ClapSpec.from_json(json.dumps(bad))
    clf = ClassifierSpec(model=Cnn14Config(n_mels=80, embed_dim=0, num_classes=50), labels=("dog", "rain"))
    assert ClassifierSpec.from_json(clf.to_json()) == clf
    with pytest.raises(ValueError, match="load_classifier"):
        ClapSpec.from_json(clf.to_json())


def test_classifier_api_and_pure_pieces(tmp_path):
    cfg = ClassifierSpec(model=Cnn14Config(n_mels=64, channels=(4, 8, 8, 16), embed_dim=0, num_classes=5),
                         audio=AudioConfig(spectrogram=SpectrogramConfig(sample_rate=16000, hop_length=160,
                                                                         fmax=8000.0),
                                           clip_samples=16000, pad="zeros", quantize_int16=False, normalize="max"),
                         source="speechbrain", activation="softmax")
    from clap_jax.models.cnn14 import Cnn14
    clf = clap_jax.Classifier(cfg, Cnn14(cfg.model, rngs=nnx.Rngs(2)))
    x = (0.1 * np.random.default_rng(6).standard_normal((2, 12000))).astype(np.float32)
    out = clf(x, 16000)
    assert out["logits"].shape == (2, 5) and out["embedding"].shape == (2, 16)
    assert [b.shape for b in out["blocks"]] == [(2, 50, 32, 4), (2, 25, 16, 8), (2, 12, 8, 8), (2, 12, 8, 16)]
    np.testing.assert_allclose(clf.probabilities(x, 16000).sum(1), 1, atol=1e-6)
    # The same numbers from the pure pieces, on the normalised, padded waveform.
    from clap_jax import frontend
    waves = clf.prepare_audio(x, 16000)
    np.testing.assert_allclose(waves.max(1), 1, atol=1e-6)
    mag = frontend.magnitude(frontend.stft(jnp.asarray(waves), cfg.audio.spectrogram))
    logits = clf.apply(clf.state, clf.log_mel_from_magnitude(mag))["logits"]
    np.testing.assert_allclose(np.asarray(logits), out["logits"], atol=1e-5)
    checkpoint.save_converted(str(tmp_path / "clf"), cfg, nnx.merge(clf.graphdef, clf.state), None)
    np.testing.assert_array_equal(clap_jax.load_classifier(str(tmp_path / "clf"))(x, 16000)["logits"], out["logits"])
