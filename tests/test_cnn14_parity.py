"""Parity of the CNN14 classifiers with their own references, random weights, through self-made
checkpoints in each format and our converter:

* PANNs: ``panns_inference.models.Cnn14`` (torchlibrosa front end), saved as ``Cnn14_mAP=0.431.pth``
  (``{'model': state_dict}``);
* SpeechBrain, the L-MAC recipe's classifier: ``speechbrain.lobes.models.Cnn14.Cnn14(mel_bins=80,
  emb_dim=2048, return_reps=True)`` + ``torch.nn.Linear(2048, 50)``, saved as
  ``embedding_model.ckpt`` + ``classifier.ckpt``, with SpeechBrain's ``STFT`` ->
  ``spectral_magnitude(power=0.5)`` -> ``Filterbank(log_mel=False)`` -> ``log1p`` front end.
"""
from __future__ import annotations

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
from conftest import NO_TORCH  # noqa: E402

LABELS = [f"class_{i}" for i in range(50)]


def _nhwc(t) -> np.ndarray:
    return t.detach().numpy().transpose(0, 2, 3, 1)


@pytest.fixture(scope="module")
def panns(tmp_path_factory):
    import reference_models
    ref = reference_models.panns_cnn14()
    d = tmp_path_factory.mktemp("panns")
    torch.save({"model": ref.state_dict(), "iteration": 600000}, d / "Cnn14_mAP=0.431.pth")
    convert.convert("panns", str(d / "Cnn14_mAP=0.431.pth"), str(d / "converted"))
    return ref, clap_jax.load_classifier(str(d / "converted")), d


@pytest.fixture(scope="module")
def speechbrain(tmp_path_factory):
    import reference_models
    emb, clf = reference_models.speechbrain_cnn14()
    d = tmp_path_factory.mktemp("speechbrain")
    torch.save(emb.state_dict(), d / "embedding_model.ckpt")      # speechbrain's torch_save: the state dict
    torch.save(clf.state_dict(), d / "classifier.ckpt")
    (d / "label_encoder.txt").write_text("".join(f"'{n}' => {i}\n" for i, n in enumerate(LABELS))
                                         + "================\n'starting_index' => 0\n")
    convert.convert("speechbrain", str(d), str(d / "converted"))
    return (emb, clf), clap_jax.load_classifier(str(d / "converted")), d


def _sb_frontend(waves: np.ndarray, mask=None):
    """The L-MAC recipe's ``preprocess``: STFT, |X|, Filterbank, log1p (SpeechBrain's own modules).
    With ``mask`` (B, frames, n_freq) it is the masked-in input: expm1(mask * log1p|X|) -> fbank -> log1p."""
    import reference_models  # noqa: F401  (torchaudio stand-in before speechbrain)
    from speechbrain.processing.features import STFT, Filterbank, spectral_magnitude
    stft = STFT(sample_rate=16000, n_fft=1024, win_length=23.2199, hop_length=11.6099)
    fbank = Filterbank(n_mels=80, n_fft=1024, sample_rate=16000, log_mel=False)
    mag = spectral_magnitude(stft(torch.from_numpy(waves)), power=0.5)
    if mask is not None:
        mag = torch.expm1(torch.from_numpy(mask) * torch.log1p(mag))
    return torch.log1p(fbank(mag))


def _waves(n, sr, seconds, seed=0):
    """Tones over amplitude-modulated noise that never falls silent: no mel bin sits 80 dB below the
    peak, where float32 STFTs differ by round-off (see the README)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return np.stack([(0.2 * rng.standard_normal(len(t)) * (1.2 + np.sin(2 * np.pi * (k + 1) * t))
                      + 0.3 * np.sin(2 * np.pi * 330 * (k + 1) * t)).astype(np.float32) for k in range(n)])


def test_panns_logmel_and_outputs(panns):
    """Same waveform: torchlibrosa log-mel within 1e-3 dB; embedding, clipwise output and the
    outputs of blocks 3-6 (read with forward hooks) within 1e-5."""
    ref, ours, _ = panns
    assert ours.spec.audio.spectrogram.sample_rate == 32000 and ours.spec.activation == "sigmoid"
    waves = _waves(2, 32000, 10)
    x = torch.from_numpy(waves)
    with torch.no_grad():
        expected_mel = ref.logmel_extractor(ref.spectrogram_extractor(x))[:, 0].numpy()
    got_mel = np.asarray(frontend.log_mel(jnp.asarray(waves), ours.spec.audio.spectrogram))
    np.testing.assert_allclose(got_mel, expected_mel, atol=1e-3, rtol=0)

    hooked = {}
    for i in (3, 4, 5, 6):
        getattr(ref, f"conv_block{i}").register_forward_hook(lambda m, a, out, i=i: hooked.__setitem__(i, out))
    with torch.no_grad():
        expected = ref(x)
    got = ours(waves, 32000)
    np.testing.assert_allclose(got["embedding"], expected["embedding"].numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(jax.nn.sigmoid(got["logits"]), expected["clipwise_output"].numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(ours.probabilities(waves, 32000), expected["clipwise_output"].numpy(), atol=1e-5)
    for i in (3, 4, 5, 6):
        np.testing.assert_allclose(got["blocks"][i - 1], _nhwc(hooked[i]), atol=1e-5, rtol=0, err_msg=f"block {i}")


def test_speechbrain_frontend_and_masked_chain():
    """SpeechBrain's STFT (Hamming 372 in 1024, hop 186, zero padding) -> |X| -> Filterbank -> log1p,
    and the L-MAC masked-in chain expm1(M * log1p|X|) -> fbank -> log1p, from the same mask."""
    state = {"norm0.weight": np.zeros(80), "conv_block1.conv1.weight": np.zeros((64, 1, 3, 3)),
             "classifier.weight": np.zeros((50, 2048))}
    spec = convert.speechbrain_spec(state).audio.spectrogram
    assert (spec.win_length, spec.hop_length, spec.n_mels) == (372, 186, 80)
    waves = _waves(2, 16000, 5)
    expected = _sb_frontend(waves).numpy()
    got = np.asarray(frontend.log_mel(jnp.asarray(waves), spec))
    assert got.shape == expected.shape == (2, 431, 80)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)

    mag = frontend.magnitude(frontend.stft(jnp.asarray(waves), spec), spec.magnitude_eps)
    mask = np.random.default_rng(1).uniform(size=mag.shape).astype(np.float32)
    masked = lambda m: frontend.log_mel_from_magnitude(jnp.expm1(m * jnp.log1p(mag)), spec)
    np.testing.assert_allclose(np.asarray(masked(jnp.asarray(mask))), _sb_frontend(waves, mask).numpy(),
                               atol=1e-4, rtol=0)
    grad = jax.grad(lambda m: masked(m).sum())(jnp.asarray(mask))
    assert bool(jnp.all(jnp.isfinite(grad))) and float(jnp.abs(grad).max()) > 0


def test_speechbrain_classifier(speechbrain):
    """Same features: logits, the 2048-d embedding and blocks 6, 5, 4, 3 (SpeechBrain's ``hs``, the
    L-MAC decoder's input) within 1e-5; then end to end from waveforms (peak-normalised by the
    maximum sample, as the recipe's data pipeline does)."""
    (emb, clf), ours, _ = speechbrain
    assert ours.spec.labels == tuple(LABELS) and ours.spec.activation == "softmax"
    waves = _waves(2, 16000, 5, seed=2)
    feats = _sb_frontend(waves)
    with torch.no_grad():
        embedding, hs = emb(feats)
        logits = clf(embedding).squeeze(1)
    got = ours.apply(ours.state, jnp.asarray(feats.numpy())[:, None])
    np.testing.assert_allclose(np.asarray(got["embedding"]), embedding[:, 0].numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.asarray(got["logits"]), logits.numpy(), atol=1e-5, rtol=0)
    for ref_block, i in zip(hs, (6, 5, 4, 3)):
        np.testing.assert_allclose(np.asarray(got["blocks"][i - 1]), _nhwc(ref_block), atol=1e-5, rtol=0,
                                   err_msg=f"block {i}")

    peak = waves / waves.max(axis=1, keepdims=True)
    with torch.no_grad():
        expected = clf(emb(_sb_frontend(peak))[0]).squeeze(1)
    np.testing.assert_allclose(ours.logits(waves, 16000), expected.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(ours.probabilities(waves, 16000), torch.softmax(expected, 1).numpy(), atol=1e-6)


def test_missing_and_unexpected_keys_are_refused(speechbrain, panns, tmp_path):
    (emb, clf), _, _ = speechbrain
    state = dict(emb.state_dict())
    del state["conv_block4.norm2.running_var"]
    torch.save(state, tmp_path / "embedding_model.ckpt")
    torch.save(clf.state_dict(), tmp_path / "classifier.ckpt")
    with pytest.raises(weights.CheckpointMismatch, match=r"Missing keys \(1\): conv_block4\.norm2\.running_var"):
        convert.convert("speechbrain", str(tmp_path), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    (tmp_path / "classifier.ckpt").unlink()
    with pytest.raises(FileNotFoundError, match="classifier.ckpt"):
        convert.convert("speechbrain", str(tmp_path), str(tmp_path / "out"))

    ref = panns[0]
    state = dict(ref.state_dict())
    del state["fc1.bias"]
    state["fc2.weight"] = torch.zeros(3)
    torch.save({"model": state}, tmp_path / "Cnn14.pth")
    with pytest.raises(weights.CheckpointMismatch) as err:
        convert.convert("panns", str(tmp_path / "Cnn14.pth"), str(tmp_path / "out"))
    assert "fc1.bias" in str(err.value) and "fc2.weight" in str(err.value)
    state = dict(ref.state_dict())
    state["logmel_extractor.melW"] = state["logmel_extractor.melW"] * 1.01
    torch.save({"model": state}, tmp_path / "Cnn14.pth")
    with pytest.raises(ValueError, match="melW"):
        convert.convert("panns", str(tmp_path / "Cnn14.pth"), str(tmp_path / "out"))


def test_converted_classifier_runs_without_torch(speechbrain, tmp_path):
    _, ours, d = speechbrain
    waves = _waves(1, 16000, 3.2, seed=4)
    np.save(tmp_path / "w.npy", waves)
    code = (NO_TORCH +
            "import numpy as np, clap_jax\n"
            f"clf = clap_jax.load_classifier({str(d / 'converted')!r})\n"
            f"np.save({str(tmp_path / 'p.npy')!r}, clf.probabilities(np.load({str(tmp_path / 'w.npy')!r}), 16000))\n"
            "assert 'torch' not in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), ours.probabilities(waves, 16000), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="load_classifier"):
        clap_jax.load(str(d / "converted"))


def test_cli_converts_a_panns_checkpoint(panns, tmp_path):
    _, ours, d = panns
    proc = subprocess.run([sys.executable, "-m", "clap_jax.convert", "--source=panns",
                           f"--checkpoint={d / 'Cnn14_mAP=0.431.pth'}", f"--out={tmp_path / 'out'}"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "panns classifier, CNN14 mels=64 embedding=2048 classes=527, 32000 Hz" in proc.stdout
    assert clap_jax.load_classifier(str(tmp_path / "out")).spec == ours.spec
