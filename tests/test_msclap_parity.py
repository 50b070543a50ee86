"""Parity with Microsoft CLAP (``msclap`` 1.3.4) 2022 (CNN14 + BERT) and 2023 (HTSAT + GPT-2), random
weights, through self-made ``CLAP_weights_202x.pth`` files (``{'model': state_dict}``) and our
converter. The reference side runs msclap's own ``CLAPWrapper`` methods (audio repeat rule,
tokenisation, embeddings, ``compute_similarity``) on a wrapper built without the hub
(``reference_models.msclap_wrapper``)."""
from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="parity tests need the pinned torch==2.13.0 (pip install -e '.[test]')")
pytestmark = pytest.mark.parity

import clap_jax  # noqa: E402
from clap_jax import convert, frontend, weights  # noqa: E402
from clap_jax.models.gpt2 import last_token_index  # noqa: E402
from conftest import NO_TORCH  # noqa: E402

SR = 44100
TEXTS = ["a dog barks", "an engine hums in the distance!", "rain!! falling on a tin roof", "the bell rings three times"]


def _build(tmp_path_factory, version, tok_dir):
    import reference_models
    model = reference_models.msclap_model(version, text_layers=2)
    tok = reference_models.msclap_tokenizer(version, tok_dir)
    d = tmp_path_factory.mktemp(f"msclap_{version}")
    path = d / f"CLAP_weights_{version}.pth"
    torch.save({"model": model.state_dict(), "epoch": 40}, path)
    convert.convert("msclap", str(path), str(d / "converted"), tokenizer=tok_dir)
    return reference_models.msclap_wrapper(model, tok, version), clap_jax.load(str(d / "converted")), path


@pytest.fixture(scope="module")
def ms2022(tmp_path_factory, bert_tokenizer_dir):
    return _build(tmp_path_factory, "2022", bert_tokenizer_dir)


@pytest.fixture(scope="module")
def ms2023(tmp_path_factory, gpt2_tokenizer_dir):
    return _build(tmp_path_factory, "2023", gpt2_tokenizer_dir)


def _clips(seconds):
    """44.1 kHz clips: shorter than the window (repeated and cut), exactly the window, and 0.3 s."""
    rng = np.random.default_rng(7)
    t = np.arange(int(2.3 * SR)) / SR
    short = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t))
    exact = 0.2 * rng.standard_normal(seconds * SR) * np.sin(2 * np.pi * 0.5 * np.arange(seconds * SR) / SR)
    tiny = 0.1 * rng.standard_normal(int(0.3 * SR))
    return [a.astype(np.float32) for a in (short, exact, tiny)]


def _check(ref, ours, seconds, version):
    clips = _clips(seconds)
    ref.clips = {f"clip{i}": c for i, c in enumerate(clips)}
    with torch.no_grad():
        ref_a = ref.get_audio_embeddings(list(ref.clips), resample=False).numpy()
        ref_t = ref.get_text_embeddings(TEXTS).numpy()
        ref_logits = ref.compute_similarity(torch.from_numpy(ref_a), torch.from_numpy(ref_t)).numpy()
    got_a, got_t = ours.embed_audio(clips, SR), ours.embed_text(TEXTS)
    assert ours.spec.source == f"msclap-{version}" and not ours.spec.normalize_embeddings
    assert np.abs(np.linalg.norm(got_a, axis=1) - 1).max() > 1e-2          # unnormalised, as msclap returns them
    np.testing.assert_allclose(got_a, ref_a, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got_t, ref_t, atol=1e-5, rtol=0)
    np.testing.assert_allclose(ours.similarity(got_a, got_t), ref_logits, atol=1e-4, rtol=0)
    probs = ours.zero_shot(clips, SR, TEXTS)
    np.testing.assert_allclose(probs, torch.softmax(torch.from_numpy(ref_logits), dim=1).numpy(), atol=1e-5)
    return clips


def test_2022_cnn14_bert(ms2022):
    ref, ours, _ = ms2022
    _check(ref, ours, 5, "2022")
    assert ours.spec.audio.clip_samples == 220500 and ours.spec.audio.spectrogram.num_frames(220500) == 690
    # The CNN14 embedding (fc1 + ReLU) before the projection, and the AudioSet head.
    x = torch.from_numpy(_clips(5)[1])[None]
    with torch.no_grad():
        base = ref.clap.audio_encoder.base(x)
    mel = frontend.log_mel(jnp.asarray(x.numpy()), ours.spec.audio.spectrogram)[:, None]
    out = clap_jax.api.nnx.merge(ours.graphdef, ours.state).encode_audio(mel)
    np.testing.assert_allclose(np.asarray(out["features"]), base["embedding"].numpy(), atol=1e-5, rtol=0)
    branch = clap_jax.api.nnx.merge(ours.graphdef, ours.state).audio_branch(mel)
    np.testing.assert_allclose(np.asarray(jax.nn.sigmoid(branch["logits"])), base["clipwise_output"].numpy(),
                               atol=1e-5, rtol=0)


def test_2023_htsat_gpt2(ms2023):
    ref, ours, _ = ms2023
    _check(ref, ours, 7, "2023")
    assert ours.spec.audio.clip_samples == 308700 and ours.spec.audio.spectrogram.num_frames(308700) == 965


def test_2023_mel_bank_built_for_32k(ms2023):
    """HTSAT's torchlibrosa front end in msclap 2023 is built for 32 kHz (msclap/models/config.py)
    and applied to 44.1 kHz audio; our log-mel reproduces it (965 frames, then bicubic to 1024)."""
    ref, ours, _ = ms2023
    spec = ours.spec.audio.spectrogram
    assert spec.sample_rate == 44100 and spec.mel_sample_rate == 32000
    htsat = ref.clap.audio_encoder.base.htsat
    np.testing.assert_allclose(frontend.mel_filterbank(spec), htsat.logmel_extractor.melW.numpy(), atol=1e-7, rtol=0)
    x = _clips(7)[1][None]
    with torch.no_grad():
        expected = htsat.logmel_extractor(htsat.spectrogram_extractor(torch.from_numpy(x)))[:, 0].numpy()
    got = np.asarray(frontend.log_mel(jnp.asarray(x), spec))
    assert got.shape == expected.shape == (1, 965, 64)
    np.testing.assert_allclose(got, expected, atol=1e-3, rtol=0)


def test_tokenizers_match_and_gpt2_pad_rule(ms2022, ms2023):
    """Our token ids equal transformers' (msclap's preprocess_text); for GPT-2 the pooled index is
    msclap's count(ids != 0) - 1, which for a text with '!' (id 0, also the pad) misses the
    <|endoftext|> token by the number of '!' tokens, as the reference does."""
    for ref, ours in (ms2022[:2], ms2023[:2]):
        expected = ref.preprocess_text(TEXTS)
        ids, mask = ours.tokenizer(TEXTS)
        n = ids.shape[1]
        np.testing.assert_array_equal(ids, expected["input_ids"][:, :n].numpy())
        np.testing.assert_array_equal(mask, expected["attention_mask"][:, :n].numpy())
        assert expected["attention_mask"][:, n:].sum() == 0
    ids, mask = ms2023[1].tokenizer(TEXTS)
    eos = mask.sum(1) - 1                                     # position of <|endoftext|>
    pooled = np.asarray(last_token_index(jnp.asarray(ids)))
    assert list(eos - pooled) == [0, 1, 2, 0]                 # "distance!" and "rain!!" fall short
    expected = ms2023[0].preprocess_text(TEXTS)["input_ids"]
    assert list((expected != 0).sum(-1).numpy() - 1) == list(pooled)


def test_long_clip_center_crop(ms2023):
    ref, ours, _ = ms2023
    long = (0.1 * np.random.default_rng(3).standard_normal(9 * SR)).astype(np.float32)
    start = (len(long) - 7 * SR) // 2
    ref.clips = {"long": long[start:start + 7 * SR]}
    with torch.no_grad():
        expected = ref.get_audio_embeddings(["long"], resample=False).numpy()
    np.testing.assert_allclose(ours.embed_audio([long], SR), expected, atol=1e-5, rtol=0)
    a = ours.embed_audio([long], SR, crop="random", seed=5)
    np.testing.assert_array_equal(a, ours.embed_audio([long], SR, crop="random", seed=5))
    # The random crop is the window at the drawn start (in [0, 2 s]), as msclap embeds that window.
    s = int(ours.prepare_audio([long], SR, crop="random", seed=5).crops[0])
    assert 0 <= s <= 2 * SR and abs(s - start) > 1000
    ref.clips = {"random": long[s:s + 7 * SR]}
    with torch.no_grad():
        expected_random = ref.get_audio_embeddings(["random"], resample=False).numpy()
    np.testing.assert_allclose(a, expected_random, atol=1e-5, rtol=0)
    assert np.abs(a - expected).max() > 1e-3                               # not the centre crop
    assert np.abs(ours.embed_audio([long], SR, crop="random", seed=6) - a).max() > 1e-3


def test_missing_keys_are_refused(ms2022, tmp_path, bert_tokenizer_dir):
    """msclap loads with strict=False and ignores missing keys; we list them and write nothing."""
    ref, _, _ = ms2022
    state = dict(ref.clap.state_dict())
    for k in ("audio_encoder.projection.linear2.weight", "caption_encoder.base.encoder.layer.1.output.dense.bias"):
        del state[k]
    state["caption_encoder.extra.weight"] = torch.zeros(2)
    torch.save({"model": state}, tmp_path / "bad.pth")
    with pytest.raises(weights.CheckpointMismatch) as err:
        convert.convert("msclap", str(tmp_path / "bad.pth"), str(tmp_path / "out"), tokenizer=bert_tokenizer_dir)
    msg = str(err.value)
    assert "Missing keys (2)" in msg and "audio_encoder.projection.linear2.weight" in msg
    assert "caption_encoder.base.encoder.layer.1.output.dense.bias" in msg and "caption_encoder.extra.weight" in msg
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="--tokenizer"):
        convert.convert("msclap", str(ms2022[2]), str(tmp_path / "out2"))


def test_converted_2023_loads_and_embeds_without_torch(ms2023, tmp_path):
    """The converted directory is read by a fresh interpreter in which torch cannot be imported."""
    ref, ours, path = ms2023
    out = path.parent / "converted"
    clip = _clips(7)[0]
    np.save(tmp_path / "clip.npy", clip)
    code = (NO_TORCH +
            "import numpy as np, clap_jax\n"
            f"m = clap_jax.load({str(out)!r})\n"
            f"np.save({str(tmp_path / 't.npy')!r}, m.embed_text({TEXTS!r}))\n"
            f"np.save({str(tmp_path / 'a.npy')!r}, m.embed_audio(np.load({str(tmp_path / 'clip.npy')!r}), 44100))\n"
            "assert 'torch' not in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "t.npy"), ours.embed_text(TEXTS))
    np.testing.assert_allclose(np.load(tmp_path / "a.npy"), ours.embed_audio(clip, SR), atol=1e-6, rtol=0)
