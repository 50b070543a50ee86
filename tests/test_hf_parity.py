"""Parity with transformers' ``ClapModel`` and ``ClapFeatureExtractor`` (random weights), through a
self-made Hugging Face directory (safetensors + config.json + preprocessor + tokenizer files)."""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="parity tests need the pinned torch==2.13.0 (pip install -e '.[test]')")
pytestmark = pytest.mark.parity

import clap_jax  # noqa: E402
from clap_jax import convert, pipeline  # noqa: E402

TEXTS = ["a dog barks", "a high beep, then rain falling on a tin roof", "the bell rings three times"]


def _features(out):
    """transformers 4.x returns the tensor, 5.x a ModelOutput holding it in ``pooler_output``."""
    return (out if isinstance(out, torch.Tensor) else out.pooler_output).detach().numpy()


def _hf_dir(tmp_path_factory, tok_dir, audio_config, text_layers=2, truncation="rand_trunc", seed=0, **fe_kw):
    import reference_models
    import transformers
    torch.manual_seed(seed)
    cfg = transformers.ClapConfig(text_config={"num_hidden_layers": text_layers}, audio_config=audio_config)
    model = transformers.ClapModel(cfg).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) * 20 + 5)
    d = tmp_path_factory.mktemp("hf")
    model.save_pretrained(d / "hf")
    fe = transformers.ClapFeatureExtractor(truncation=truncation, **fe_kw)
    fe.save_pretrained(d / "hf")
    tok = reference_models._roberta_tokenizer_from_dir(tok_dir)
    tok.save_pretrained(d / "hf")
    convert.convert("hf", str(d / "hf"), str(d / "converted"))
    return model, fe, tok, clap_jax.load(str(d / "converted"))


@pytest.fixture(scope="module")
def unfused(tmp_path_factory, roberta_tokenizer_dir):
    return _hf_dir(tmp_path_factory, roberta_tokenizer_dir, {}, frequency_min=50, frequency_max=14000)


@pytest.fixture(scope="module")
def fused(tmp_path_factory, roberta_tokenizer_dir):
    return _hf_dir(tmp_path_factory, roberta_tokenizer_dir, {"enable_fusion": True}, truncation="fusion",
                   frequency_min=50, frequency_max=14000)


@pytest.fixture(scope="module")
def custom_sizes(tmp_path_factory, roberta_tokenizer_dir):
    """Sizes no published checkpoint has, and the feature extractor's own frequency_min default (0)."""
    audio = {"patch_embeds_hidden_size": 32, "depths": [1, 1, 2, 1], "num_attention_heads": [2, 2, 4, 4],
             "hidden_size": 256}
    return _hf_dir(tmp_path_factory, roberta_tokenizer_dir, audio, text_layers=1)


def _check_model(ref, fe, tok, ours, clips, truncation="rand_trunc"):
    short, exact, _ = clips
    feats = fe([short, exact], sampling_rate=48000, truncation=truncation, return_tensors="pt")
    prepared = ours.prepare_audio([short, exact], 48000)
    mel, _ = pipeline.features({k: jnp.asarray(v) for k, v in vars(prepared).items() if v is not None},
                               ours.spec.audio, 1001)
    np.testing.assert_allclose(np.asarray(mel), feats["input_features"].numpy(), atol=1e-3, rtol=0)
    with torch.no_grad():
        ref_a = _features(ref.get_audio_features(**feats))
        ref_t = _features(ref.get_text_features(**tok(TEXTS, padding=True, return_tensors="pt")))
        logits = ref(**tok(TEXTS, padding=True, return_tensors="pt"), **feats).logits_per_audio.numpy()
    got_a, got_t = ours.embed_audio([short, exact], 48000), ours.embed_text(TEXTS)
    np.testing.assert_allclose(got_a, ref_a, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got_t, ref_t, atol=1e-5, rtol=0)
    np.testing.assert_allclose(ours.similarity(got_a, got_t), logits, atol=1e-4, rtol=0)


def test_unfused(unfused, clips):
    _check_model(*unfused, clips)
    assert unfused[3].spec.model.text.layer_norm_eps == 1e-12      # HF's ClapTextConfig, not LAION's 1e-5
    assert unfused[3].spec.audio.quantize_int16 is False


def test_custom_sizes_and_frequency_min_default(custom_sizes, clips):
    ours = custom_sizes[3]
    assert ours.spec.audio.spectrogram.fmin == 0.0               # ClapFeatureExtractor's class default
    assert ours.spec.model.audio.depths == (1, 1, 2, 1)
    _check_model(*custom_sizes, clips)


def test_fused_mixed_batch(fused, clips):
    ref, fe, _, ours = fused
    rng = np.random.default_rng(4)
    long1 = (0.1 * rng.standard_normal(600000)).astype(np.float32)
    batch = [clips[0], long1, clips[1]]
    orig = np.random.choice
    np.random.choice = lambda r, *a, **k: np.asarray(r)[len(r) // 2]    # HF's random crop -> our centre rule
    try:
        feats = fe(batch, sampling_rate=48000, return_tensors="pt")
    finally:
        np.random.choice = orig
    assert feats["is_longer"][:, 0].tolist() == [False, True, False]
    with torch.no_grad():
        ref_a = _features(ref.get_audio_features(**feats))
    np.testing.assert_allclose(ours.embed_audio(batch, 48000), ref_a, atol=1e-5, rtol=0)


def test_fused_random_longer_rule(fused, clips):
    """HF marks a random clip as long when none is; off by default here (embeddings would depend on
    the batch and the global numpy seed), reproducible with ``force_longer``."""
    ref, fe, _, ours = fused
    batch = [clips[0], clips[1]]
    np.random.seed(0)
    feats = fe(batch, sampling_rate=48000, return_tensors="pt")
    forced = int(np.argmax(feats["is_longer"][:, 0].numpy()))
    with torch.no_grad():
        ref_a = _features(ref.get_audio_features(**feats))
        feats["is_longer"][:] = False
        ref_plain = _features(ref.get_audio_features(**feats))
    np.testing.assert_allclose(ours.embed_audio(batch, 48000), ref_plain, atol=1e-5, rtol=0)
    assert np.abs(ref_a[forced] - ref_plain[forced]).max() > 1e-3     # the rule changes that clip
    cfg = dataclasses.replace(ours.spec.audio, force_longer=True)
    prepared = pipeline.prepare([(x, 48000) for x in batch], cfg)
    assert prepared.longer.sum() == 1
    prepared.longer = np.arange(2) == forced          # the clip HF drew
    mel, longer = pipeline.features({k: jnp.asarray(v) for k, v in vars(prepared).items()}, cfg, 1001)
    model = clap_jax.api.nnx.merge(ours.graphdef, ours.state)
    got = np.asarray(model.encode_audio(mel, longer)["embedding"])
    got = got / np.linalg.norm(got, axis=-1, keepdims=True)
    np.testing.assert_allclose(got, ref_a, atol=1e-5, rtol=0)
