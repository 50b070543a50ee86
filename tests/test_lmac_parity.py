"""L-MAC against SpeechBrain's recipe, random weights, offline:

* the whole explain path: SpeechBrain ``STFT`` -> ``spectral_magnitude`` -> ``Filterbank`` -> log1p ->
  ``Cnn14`` + ``Linear`` -> ``CNN14PSI_stft`` (dim 2048) -> sigmoid mask -> masked-in / masked-out
  probabilities and the recipe's listenable ``ISTFT`` output, against ours built by ``lmac.convert``
  from the decoder's state dict;
* the loss and its fine-tuning variant against the recipe's ``compute_objectives`` arithmetic
  written in PyTorch (``train_lmac.py``: nll_loss of log_softmax, the batch-summed L1, ``tv_loss``,
  the "dotp" cross-correlation, ``binary_cross_entropy`` against the 0.35 × max oracle).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="parity tests need the pinned torch==2.13.0 (pip install -e '.[test]')")
pytestmark = pytest.mark.parity

import lmac  # noqa: E402
from clap_jax import convert  # noqa: E402
from lmac import convert as lmac_convert, losses  # noqa: E402
from lmac.losses import LossWeights  # noqa: E402

F = torch.nn.functional


def _waves(n, seconds, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    x = np.stack([0.2 * rng.standard_normal(len(t)) * (1.2 + np.sin(2 * np.pi * (k + 1) * t))
                  + 0.3 * np.sin(2 * np.pi * 330 * (k + 1) * t) for k in range(n)]).astype(np.float32)
    return x / x.max(axis=1, keepdims=True)                  # the recipe's sig / sig.max()


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    """SpeechBrain's classifier and decoder with random weights, saved as the recipe saves them,
    converted with clap_jax.convert and lmac.convert."""
    import reference_models
    from speechbrain.lobes.models.Cnn14 import CNN14PSI_stft
    emb, clf = reference_models.speechbrain_cnn14()
    torch.manual_seed(3)
    psi = CNN14PSI_stft(dim=2048).eval()
    d = tmp_path_factory.mktemp("recipe")
    torch.save(emb.state_dict(), d / "embedding_model.ckpt")
    torch.save(clf.state_dict(), d / "classifier.ckpt")
    torch.save(psi.state_dict(), d / "psi_model.ckpt")
    convert.convert("speechbrain", str(d), str(d / "classifier"))
    lmac_convert.convert(str(d / "psi_model.ckpt"), str(d / "classifier"), str(d / "explainer"))
    return (emb, clf, psi), lmac.load(str(d / "explainer")), d


def _recipe_chain(models, waves):
    """The recipe's interpret_computation_steps + compute_objectives forward, in PyTorch."""
    import reference_models  # noqa: F401  (torchaudio stand-in before speechbrain)
    from speechbrain.processing.NMF import spectral_phase
    from speechbrain.processing.features import ISTFT, STFT, Filterbank, spectral_magnitude
    emb, clf, psi = models
    stft = STFT(sample_rate=16000, n_fft=1024, win_length=23.2199, hop_length=11.6099)
    istft = ISTFT(sample_rate=16000, win_length=23.2199, hop_length=11.6099)
    fbank = Filterbank(n_mels=80, n_fft=1024, sample_rate=16000, log_mel=False)
    classify = lambda mel: clf(emb(mel)[0]).squeeze(1)
    with torch.no_grad():
        X = stft(torch.from_numpy(waves))
        X_log = torch.log1p(spectral_magnitude(X, power=0.5))
        _, hs = emb(torch.log1p(fbank(spectral_magnitude(X, power=0.5))))
        logits = classify(torch.log1p(fbank(spectral_magnitude(X, power=0.5))))
        xhat = torch.sigmoid(psi(hs).squeeze(1))
        T = xhat.shape[1]
        mask_in, mask_out = xhat * X_log[:, :T], (1 - xhat) * X_log[:, :T]
        p_in = classify(torch.log1p(fbank(torch.expm1(mask_in)))).softmax(1)
        p_out = classify(torch.log1p(fbank(torch.expm1(mask_out)))).softmax(1)
        phase = spectral_phase(X)[:, :T]
        spec = torch.expm1(mask_in)[..., None] * torch.stack([torch.cos(phase), torch.sin(phase)], -1)
        listen = istft(spec)
    return {"mask": xhat.numpy(), "probabilities": logits.softmax(1).numpy(), "probabilities_in": p_in.numpy(),
            "probabilities_out": p_out.numpy(), "listen": listen.numpy()}


def test_explain_path_matches_the_recipe(recipe):
    models, explainer, _ = recipe
    waves = _waves(2, 5)
    expected = _recipe_chain(models, waves)
    got = explainer.explain_prepared(waves)
    frames = expected["mask"].shape[1]
    assert frames == 425 and got["mask"].shape == (2, 431, 513)        # 5 s: the decoder reaches 425 of 431
    np.testing.assert_allclose(got["mask"][:, :frames], expected["mask"], atol=1e-5, rtol=0)
    assert np.all(got["mask"][:, frames:] == 0)
    for key in ("probabilities", "probabilities_in", "probabilities_out"):
        np.testing.assert_allclose(got[key], expected[key], atol=1e-5, rtol=0, err_msg=key)
    # Listenable output: the recipe's ISTFT of expm1(M log1p|X|) with the original phase, over the
    # samples only its T' frames cover (ours continues to the clip's end with the mask at 0).
    covered = (frames - 1) * explainer.classifier.spec.audio.spectrogram.hop_length
    np.testing.assert_allclose(got["masked_in"][:, :covered], expected["listen"][:, :covered], atol=1e-5, rtol=0)
    # The API around it: any length, normalised like the recipe's data pipeline.
    [e] = explainer.explain([waves[0][:60000] * 0.3], 16000)
    assert e.mask.shape == (431, 513) and e.masked_in.shape == (80000,)


def test_recipe_decoder_mismatch_is_refused(recipe, tmp_path):
    (_, _, psi), _, d = recipe
    state = dict(psi.state_dict())
    del state["convt9.bias"]
    state["convt10.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "psi.ckpt")
    with pytest.raises(ValueError) as err:
        lmac_convert.convert(str(tmp_path / "psi.ckpt"), str(d / "classifier"), str(tmp_path / "out"))
    assert "convt9.bias" in str(err.value) and "convt10.weight" in str(err.value)
    assert not (tmp_path / "out").exists()


def _recipe_loss(logits, logits_in, logits_out, xhat, w: LossWeights, clean_log=None, noisy_log=None):
    """train_lmac.py's compute_objectives arithmetic, in PyTorch."""
    t = lambda a: torch.from_numpy(np.asarray(a))
    logits, logits_in, logits_out, xhat = map(t, (logits, logits_in, logits_out, xhat))
    B = xhat.shape[0]
    if clean_log is not None:
        clean, noisy = t(clean_log), t(noisy_log)
        mask_in = xhat * noisy
        dotp = (clean * mask_in).mean((-1, -2))
        cc = dotp / (clean.pow(2).mean((-1, -2)).sqrt() * mask_in.pow(2).mean((-1, -2)).sqrt())
        cc_mask = (cc >= w.crosscor_threshold).float()
        peak = clean.view(B, -1).max(1).values.view(-1, 1, 1)
        oracle = (clean >= w.oracle_threshold * peak).float()
        rec = (F.binary_cross_entropy(xhat, oracle, reduction="none").mean((-1, -2)) * w.guide * cc_mask).mean()
    else:
        cc_mask, rec = torch.zeros(B), 0
    pred = logits.argmax(1)
    ao = w.l_in * F.nll_loss(logits_in.log_softmax(1), pred) + w.l_out * -F.nll_loss(logits_out.log_softmax(1), pred)
    r_m = (xhat.abs().mean((-1, -2, -3)) * w.l1 * torch.logical_not(cc_mask)).sum()
    tv = (torch.sum((xhat[:, :, :-1] - xhat[:, :, 1:]) ** 2) + torch.sum((xhat[:, :-1, :] - xhat[:, 1:, :]) ** 2)) / (2 * B)
    r_m = r_m + (tv * w.tv * torch.logical_not(cc_mask)).sum()
    return float(ao + r_m + rec), cc_mask.numpy()


@pytest.mark.parametrize("finetune", [False, True], ids=["lmac", "lmac-ft"])
@pytest.mark.parametrize("tv", [0.0, 0.3])
def test_loss_matches_the_recipe(finetune, tv):
    rng = np.random.default_rng(0)
    B, T, Fq, K = 6, 12, 20, 7
    logits, logits_in, logits_out = (rng.standard_normal((B, K)).astype(np.float32) * 2 for _ in range(3))
    xhat = rng.uniform(0.01, 0.99, (B, T, Fq)).astype(np.float32)
    clean_log = rng.uniform(0, 2, (B, T, Fq)).astype(np.float32)
    noisy_log = (clean_log + rng.uniform(0, 0.5, (B, T, Fq))).astype(np.float32)
    xhat[:3] = np.where(rng.uniform(size=(3, T, Fq)) < 0.05, 0.95, 0.02)     # sparse masks: low correlation
    w = LossWeights(tv=tv)
    kw = dict(clean_log=clean_log, noisy_log=noisy_log) if finetune else {}
    expected, passed = _recipe_loss(logits, logits_in, logits_out, xhat, w, **kw)
    if finetune:
        assert 0 < passed.sum() < B                  # both branches of the threshold are exercised
    got, parts = losses.lmac_loss(jnp.asarray(logits), jnp.asarray(logits_in), jnp.asarray(logits_out),
                                  jnp.asarray(xhat), w, **{k: jnp.asarray(v) for k, v in kw.items()})
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)
    np.testing.assert_allclose(float(parts["guided_fraction"]), passed.mean(), rtol=1e-6)


def test_convert_cli(tmp_path):
    """The CLI on a small recipe decoder (CNN14PSI_stft(dim=32)) beside a small classifier whose
    blocks 3-6 have 4, 8, 16, 32 channels; a second run refuses the existing output in one line."""
    import subprocess
    import sys
    import reference_models  # noqa: F401
    import tiny_lmac
    from speechbrain.lobes.models.Cnn14 import CNN14PSI_stft
    torch.manual_seed(0)
    psi = CNN14PSI_stft(dim=32)
    torch.save(psi.state_dict(), tmp_path / "psi_model.ckpt")
    clf_dir = tiny_lmac.save_classifier(str(tmp_path / "classifier"), tiny_lmac.classifier())
    cmd = [sys.executable, "-m", "lmac.convert", f"--checkpoint={tmp_path / 'psi_model.ckpt'}",
           f"--classifier={clf_dir}", f"--out={tmp_path / 'out'}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "L-MAC decoder cnn14_psi dim=32" in proc.stdout
    loaded = lmac.load(str(tmp_path / "out"))
    assert loaded.spec.source == "speechbrain" and loaded.spec.decoder.dim == 32
    np.testing.assert_array_equal(np.asarray(loaded.decoder().convt3.kernel[...]),
                                  psi.convt3.weight.detach().numpy().transpose(2, 3, 0, 1))
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode != 0 and "already exists" in again.stderr and "Traceback" not in again.stderr


def test_plateau_schedule_matches_speechbrain():
    """train.loop.plateau_update against SpeechBrain's ReduceLROnPlateau (the recipe's: factor 0.5,
    patience 3, dont_halve_until_epoch) on a sequence of validation −Fid-In values."""
    import ml_collections
    import reference_models  # noqa: F401  (torchaudio stand-in before speechbrain)
    from speechbrain.nnet.schedulers import ReduceLROnPlateau
    from train import loop
    o = ml_collections.ConfigDict(dict(metric="fid_in", mode="max", factor=0.5, patience=3, start=4, min_scale=0.0))
    ref = ReduceLROnPlateau(lr_min=0.0, factor=0.5, patience=3, dont_halve_until_epoch=4)
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1.0)
    fid = [0.1, 0.3, 0.2, 0.25, 0.4, 0.35, 0.3, 0.38, 0.39, 0.2, 0.45, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.5]
    state = jax.device_get(loop.plateau_init())
    for epoch, f in enumerate(fid, start=1):
        _, lr = ref([opt], epoch, -f)
        opt.param_groups[0]["lr"] = lr
        state = loop.plateau_update(state, {"fid_in": f}, epoch, o)
        assert float(state["scale"]) == pytest.approx(lr), epoch
    assert float(state["scale"]) < 1            # the sequence does halve
