"""Parity with ``laion_clap`` 1.1.7 (its own HTSAT, RoBERTa and torchlibrosa front end), random
weights, through a self-made LAION-format ``.pt`` and our converter (clap_models.md §7)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="parity tests need the pinned torch==2.13.0 (pip install -e '.[test]')")
pytestmark = pytest.mark.parity

import clap_jax  # noqa: E402
from clap_jax import convert, frontend  # noqa: E402


def _save_laion_pt(module, path, extra=None):
    """Writes the state dict as LAION's training code does: DDP ``module.`` prefix, under ``state_dict``."""
    sd = {"module." + k: v for k, v in module.model.state_dict().items()}
    torch.save({"state_dict": sd, "epoch": 3, **(extra or {})}, path)


def _build(tmp_path_factory, tok_dir, amodel, fusion, text_layers):
    import reference_models
    ref = reference_models.laion_module(amodel, fusion=fusion, text_layers=text_layers)
    d = tmp_path_factory.mktemp(f"laion_{amodel}_{fusion}")
    _save_laion_pt(ref, d / "model.pt")
    convert.convert("laion", str(d / "model.pt"), str(d / "converted"), tokenizer=tok_dir)
    return ref, clap_jax.load(str(d / "converted"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, roberta_tokenizer_dir):
    return _build(tmp_path_factory, roberta_tokenizer_dir, "HTSAT-tiny", False, 12)


@pytest.fixture(scope="module")
def base(tmp_path_factory, roberta_tokenizer_dir):
    return _build(tmp_path_factory, roberta_tokenizer_dir, "HTSAT-base", False, 2)


@pytest.fixture(scope="module")
def fused(tmp_path_factory, roberta_tokenizer_dir):
    return _build(tmp_path_factory, roberta_tokenizer_dir, "HTSAT-tiny", True, 2)


def _ref_logmel(ref, wave):
    from laion_clap.training.data import float32_to_int16, int16_to_float32
    x = torch.from_numpy(int16_to_float32(float32_to_int16(wave)))[None]
    with torch.no_grad():
        branch = ref.model.audio_branch
        return branch.logmel_extractor(branch.spectrogram_extractor(x))[0, 0].numpy()


def test_logmel_matches_torchlibrosa(tiny, clips):
    ref, ours = tiny
    wave = clips[1]
    expected = _ref_logmel(ref, wave)
    spec = ours.spec.audio.spectrogram
    got = np.asarray(frontend.log_mel(clap_jax.audio.quantize_int16(wave)[None], spec))[0]
    assert got.shape == expected.shape == (1001, 64)
    np.testing.assert_allclose(got, expected, atol=1e-3, rtol=0)


@pytest.mark.parametrize("name", ["tiny", "base"])
def test_audio_text_embeddings_and_logits(name, request, clips, roberta_tokenizer_dir):
    ref, ours = request.getfixturevalue(name)
    short, exact, _ = clips
    ref_a = ref.get_audio_embedding_from_data([short, exact])
    got_a = ours.embed_audio([short, exact], 48000)
    np.testing.assert_allclose(got_a, ref_a, atol=1e-5, rtol=0)

    texts = ["a dog barks", "a high beep, then rain falling on a tin roof", "the bell rings three times"]
    import reference_models
    with torch.no_grad():
        ref_t = ref.get_text_embedding(texts, tokenizer=reference_models.roberta_tokenizer(roberta_tokenizer_dir))
    got_t = ours.embed_text(texts)
    np.testing.assert_allclose(got_t, ref_t, atol=1e-5, rtol=0)

    scale = float(ref.model.logit_scale_a.exp())
    np.testing.assert_allclose(ours.similarity(got_a, got_t), scale * ref_a @ ref_t.T, atol=1e-4, rtol=0)


def test_long_clip_center_crop_is_deterministic(tiny, clips):
    """Clips over 10 s: we crop the centre (same embedding every call); LAION crops at random, which
    ``crop='random'`` reproduces (a seeded start in range, LAION's embedding of that window)."""
    ref, ours = tiny
    rng = np.random.default_rng(1)
    long = (0.1 * rng.standard_normal(530000)).astype(np.float32)
    start = (530000 - 480000) // 2
    expected = ref.get_audio_embedding_from_data([long[start:start + 480000]])
    first = ours.embed_audio([long], 48000)
    np.testing.assert_allclose(first, expected, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(first, ours.embed_audio([long], 48000))
    seeded = ours.embed_audio([long], 48000, crop="random", seed=3)
    np.testing.assert_array_equal(seeded, ours.embed_audio([long], 48000, crop="random", seed=3))
    # crop="random" embeds the window at the drawn start, in [0, 50000], as LAION embeds that window.
    s = int(ours.prepare_audio([long], 48000, crop="random", seed=3).crops[0])
    assert 0 <= s <= 530000 - 480000 and abs(s - start) > 1000
    np.testing.assert_allclose(seeded, ref.get_audio_embedding_from_data([long[s:s + 480000]]), atol=1e-5, rtol=0)
    assert np.abs(seeded - first).max() > 1e-3                           # not the centre crop
    assert np.abs(ours.embed_audio([long], 48000, crop="random", seed=4) - seeded).max() > 1e-3


def test_fusion_mixed_batch(fused, clips):
    """Fusion model on a batch mixing clips shorter and longer than 10 s: the 4-channel mel comes
    from transformers' ClapFeatureExtractor (fusion truncation), the model outputs from LAION."""
    import transformers
    ref, ours = fused
    rng = np.random.default_rng(2)
    long1 = (0.1 * rng.standard_normal(700000)).astype(np.float32)
    # A chirp over a noise floor 40 dB down. Without one, a synthetic tone leaves mel bins 80-130 dB
    # below its peak, where any float32 STFT (ours, torchlibrosa) and HF's float64 numpy one differ
    # by 0.005-0.1 dB: float32 round-off, not a pipeline difference.
    long2 = np.tile(clips[2], 7)[:1000000] + 1e-2 * rng.standard_normal(1000000).astype(np.float32)
    batch = [clap_jax.audio.quantize_int16(x) for x in (clips[0], long1, clips[1], long2)]
    fe = transformers.ClapFeatureExtractor(frequency_min=50, frequency_max=14000)
    # HF draws crop starts with np.random.choice; pick the middle of each range, our default rule.
    orig = np.random.choice
    np.random.choice = lambda r, *a, **k: np.asarray(r)[len(r) // 2]
    try:
        feats = fe(batch, sampling_rate=48000, truncation="fusion", padding="repeatpad", return_tensors="np")
    finally:
        np.random.choice = orig
    longer = feats["is_longer"][:, 0]
    assert list(longer) == [False, True, False, True]
    # Our fusion pipeline with HF's shrink kernel reproduces the reference 4-channel mel.
    import dataclasses, jax.numpy as jnp
    from clap_jax import pipeline
    cfg = dataclasses.replace(ours.spec.audio, fusion_shrink="bilinear", quantize_int16=False)
    prepared = pipeline.prepare([(x, 48000) for x in batch], cfg)
    mel, got_longer = pipeline.features({k: jnp.asarray(v) for k, v in vars(prepared).items()}, cfg, 1001)
    np.testing.assert_array_equal(np.asarray(got_longer), longer)
    np.testing.assert_allclose(np.asarray(mel), feats["input_features"], atol=1e-3, rtol=0)
    # The encoder on that mel matches LAION's model on the same mel.
    data = [{"mel_fusion": torch.from_numpy(f), "longer": torch.tensor([bool(l)])}
            for f, l in zip(feats["input_features"], longer)]
    with torch.no_grad():
        expected = ref.model.get_audio_embedding(data).numpy()
    model = clap_jax.api.nnx.merge(ours.graphdef, ours.state)
    got = model.encode_audio(jnp.asarray(feats["input_features"]), jnp.asarray(longer))["embedding"]
    got = np.asarray(got / jnp.linalg.norm(got, axis=-1, keepdims=True))
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


class _TorchMelSpectrogram:
    """``torchaudio.transforms.MelSpectrogram`` as LAION's ``get_mel`` configures it (power 2, centred,
    reflect, periodic Hann, HTK bank without norm), computed with ``torch.stft`` and transformers'
    HTK bank: torchaudio has no wheel for torch 2.13."""

    def __init__(self, sample_rate, n_fft, win_length, hop_length, center, pad_mode, power, norm, onesided,
                 n_mels, f_min, f_max):
        from transformers.audio_utils import mel_filter_bank
        assert center and onesided and power == 2.0 and norm is None
        self.n_fft, self.win_length, self.hop_length, self.pad_mode = n_fft, win_length, hop_length, pad_mode
        self.bank = torch.from_numpy(mel_filter_bank(
            num_frequency_bins=n_fft // 2 + 1, num_mel_filters=n_mels, min_frequency=f_min, max_frequency=f_max,
            sampling_rate=sample_rate, norm=None, mel_scale="htk")).float()          # (n_freq, n_mels)

    def to(self, device):
        return self

    def __call__(self, x):                                                            # (T,) -> (n_mels, frames)
        spec = torch.stft(x, self.n_fft, self.hop_length, self.win_length, torch.hann_window(self.win_length),
                          center=True, pad_mode=self.pad_mode, return_complex=True).abs() ** 2
        return (spec.T @ self.bank).T


def _amplitude_to_db(top_db=None):
    """``torchaudio.transforms.AmplitudeToDB(stype='power', top_db=None)``: 10 log10(max(P, 1e-10)) (ref 1)."""
    assert top_db is None
    return lambda p: 10.0 * torch.log10(torch.clamp(p, min=1e-10))


def _resize(size):
    """``torchvision.transforms.Resize(size)`` on a (C, H, W) tensor: bilinear, antialiased (torchvision's
    default for tensors since 0.17), half-pixel centres."""
    return lambda img: torch.nn.functional.interpolate(img[None], size=list(size), mode="bilinear",
                                                       align_corners=False, antialias=True)[0]


def test_fusion_input_matches_laions_own_pipeline(fused, clips, monkeypatch):
    """LAION's own fusion path end to end (``get_audio_embedding_from_data``: int16 round trip,
    ``get_audio_features(data_truncating='fusion')``: HTK log-mel, three crops and the torchvision
    ``Resize`` shrink, then the model) against ours with the shipped ``bilinear_antialias`` shrink,
    on clips of 14.6 s and 20.8 s and a short one. LAION's ``np.random.choice`` crop draws are pinned
    to the middle of each range, our default rule."""
    import types
    import jax.numpy as jnp
    from laion_clap.training import data
    from clap_jax import pipeline
    ref, ours = fused
    assert ours.spec.audio.fusion_shrink == "bilinear_antialias" and ours.spec.audio.quantize_int16
    monkeypatch.setattr(data, "torchaudio", types.SimpleNamespace(transforms=types.SimpleNamespace(
        MelSpectrogram=_TorchMelSpectrogram, AmplitudeToDB=_amplitude_to_db)))
    monkeypatch.setattr(data, "torchvision", types.SimpleNamespace(transforms=types.SimpleNamespace(Resize=_resize)))
    monkeypatch.setattr(np.random, "choice", lambda r, *a, **k: np.asarray(r)[len(r) // 2])
    rng = np.random.default_rng(5)
    t = np.arange(1000000) / 48000.0
    long1 = (0.1 * rng.standard_normal(700000)).astype(np.float32)
    # Noise whose level swings by 19 dB over time (what the shrink averages), with a flat spectrum: tonal
    # clips leave mel bins 40-60 dB below the peak, where two float32 STFTs (ours, torch's) differ by
    # round-off of 4e-4-7e-3 dB, not by a pipeline difference.
    long2 = (0.1 * (1 + 0.8 * np.sin(2 * np.pi * 0.3 * t)) * rng.standard_normal(len(t))).astype(np.float32)
    batch = [long1, clips[0], long2]

    cfg = ours.spec.audio
    prepared = pipeline.prepare([(x, 48000) for x in batch], cfg)
    mel, longer = pipeline.features({k: jnp.asarray(v) for k, v in prepared.arrays().items()}, cfg, 1001)
    assert np.asarray(longer).tolist() == [True, False, True]
    for i, x in enumerate(batch):
        q = torch.from_numpy(data.int16_to_float32(data.float32_to_int16(x)))
        sample = data.get_audio_features({}, q, 480000, "fusion", "repeatpad", ref.model_cfg["audio_cfg"])
        expected = sample["mel_fusion"].numpy()
        assert sample["longer"].item() == bool(longer[i]) and expected.shape == (4, 1001, 64)
        err = np.abs(np.asarray(mel[i]) - expected).max(axis=(1, 2))             # per channel, dB
        assert err.max() < 1e-4, (i, err)
        if longer[i]:   # the shrink kernel matters: HF's plain bilinear is off by far more than that
            plain = dataclasses.replace(cfg, fusion_shrink="bilinear")
            p = pipeline.prepare([(x, 48000)], plain)
            other, _ = pipeline.features({k: jnp.asarray(v) for k, v in p.arrays().items()}, plain, 1001)
            assert np.abs(np.asarray(other[0, 0]) - expected[0]).max() > 0.1, i

    np.testing.assert_allclose(ours.embed_audio(batch, 48000), ref.get_audio_embedding_from_data(batch),
                               atol=1e-5, rtol=0)
