"""L-MAC pieces that need no reference package: masks in the front end, the loss's gradients,
listenable output, the explainer directory and the import boundaries."""
from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf

from clap_jax import frontend
from clap_jax.frontend import SpectrogramConfig
from lmac import explainer, losses, masking

from tiny_lmac import SB  # noqa: E402  (the recipe's SpeechBrain front end)
DB = SpectrogramConfig(sample_rate=16000, n_fft=512, win_length=512, hop_length=160, n_mels=32, fmin=0, fmax=8000)


def _waves(n, seconds=1.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    return np.stack([(0.3 * np.sin(2 * np.pi * 440 * (k + 1) * t) + 0.05 * rng.standard_normal(len(t)))
                     .astype(np.float32) for k in range(n)])


@pytest.mark.parametrize("domain", frontend.MASK_DOMAINS)
@pytest.mark.parametrize("cfg", [SB, DB], ids=["log1p-features", "dB-features"])
def test_loss_gradient_wrt_mask_is_finite_and_alive_at_0_and_1(domain, cfg):
    """d loss / d mask at masks of exactly 0 and 1, both mask domains, both feature compressions:
    finite everywhere, and not identically zero (the dB path's amin floor keeps a gradient)."""
    mag = frontend.magnitude(frontend.stft(jnp.asarray(_waves(2)), cfg), cfg.magnitude_eps)
    w = jax.random.normal(jax.random.key(0), (cfg.n_mels, 5)) * 0.1

    def loss(mask):
        logits = lambda m: masking.features(frontend.apply_mask(mag, m, domain), cfg)[:, 0].mean(1) @ w
        value, _ = losses.lmac_loss(logits(jnp.ones_like(mag)), logits(mask), logits(1 - mask), mask)
        return value

    for value in (0.0, 1.0):
        grad = jax.grad(loss)(jnp.full(mag.shape, value))
        assert bool(jnp.isfinite(grad).all()), (domain, value)
        assert float(jnp.abs(grad).max()) > 0, (domain, value)


def test_db_floor_keeps_the_value_and_a_bounded_gradient():
    """power_to_db: the references' hard floor in value; below it, the gradient of
    10 log10(P + amin) instead of 0 (and never more than 10 / (ln10 amin))."""
    power = jnp.array([0.0, 1e-12, 1e-10, 1e-3, 1.0])
    db = frontend.power_to_db(power, DB)
    np.testing.assert_allclose(db, 10 * np.log10(np.maximum(np.asarray(power), 1e-10)), rtol=1e-6)
    grad = jax.vmap(jax.grad(lambda p: frontend.power_to_db(p, DB)))(power)
    np.testing.assert_allclose(grad, 10 / (np.log(10) * (np.asarray(power) + 1e-10)), rtol=1e-5)


def test_apply_mask_domains():
    mag = jnp.asarray(np.random.default_rng(0).uniform(0, 3, (2, 4, 5)).astype(np.float32))
    m = jnp.asarray(np.random.default_rng(1).uniform(size=(2, 4, 5)).astype(np.float32))
    np.testing.assert_allclose(frontend.apply_mask(mag, m, "linear"), m * mag, rtol=1e-6)
    np.testing.assert_allclose(frontend.apply_mask(mag, m, "log1p"), np.expm1(m * np.log1p(mag)), rtol=1e-5)
    for domain in frontend.MASK_DOMAINS:
        np.testing.assert_allclose(frontend.apply_mask(mag, jnp.ones_like(mag), domain), mag, rtol=1e-6)
        assert float(jnp.abs(frontend.apply_mask(mag, jnp.zeros_like(mag), domain)).max()) == 0
    with pytest.raises(ValueError, match="mask domain"):
        frontend.apply_mask(mag, m, "mel")


@pytest.mark.parametrize("domain", frontend.MASK_DOMAINS)
def test_istft_of_the_all_ones_mask_returns_the_input(domain):
    """Resynthesis of the recipe's STFT (Hamming 372/1024, hop 186, zero padding): the all-ones
    mask gives the input back, the all-zeros mask silence; masked-in + masked-out = input in the
    linear domain, where the two masks split |X| exactly."""
    x = jnp.asarray(_waves(2, 2.0))
    spec = frontend.stft(x, SB)
    ones = jnp.ones(spec.shape, jnp.float32)
    inside, outside = masking.resynthesize(spec, ones, SB, x.shape[1], domain)
    np.testing.assert_allclose(inside, x, atol=2e-5)
    assert float(jnp.abs(outside).max()) < 1e-5
    half = jnp.asarray(np.random.default_rng(0).uniform(size=spec.shape).astype(np.float32))
    a, b = masking.resynthesize(spec, half, SB, x.shape[1], "linear")
    np.testing.assert_allclose(a + b, x, atol=2e-5)


def test_mix_at_0db_signed_and_abs_peak():
    clean = np.array([[3.0, -4.0, 0.0]], np.float32)           # norm 5
    noise = np.array([[0.0, 0.0, -2.0]], np.float32)           # norm 2
    mixed = clean / 5 + noise / 2                              # [0.6, -0.8, -1.0]
    np.testing.assert_allclose(losses.mix_at_0db(clean, noise), mixed / 0.6, rtol=1e-6)   # signed max
    np.testing.assert_allclose(losses.mix_at_0db(clean, noise, "abs"), mixed / 1.0, rtol=1e-6)


def test_loss_hand_computed():
    """4 CE_in − 0.2 CE_out + 0.4 · B · mean|M|, targets from the clean logits, on numbers by hand."""
    clean = jnp.array([[2.0, 0.0], [0.0, 1.0]])               # targets 0, 1
    inside = jnp.array([[0.0, 0.0], [0.0, 0.0]])              # CE = log 2 for both
    outside = jnp.array([[0.0, jnp.log(3.0)], [0.0, 0.0]])    # CE: log 4, log 2
    mask = jnp.full((2, 3, 4), 0.25)
    value, parts = losses.lmac_loss(clean, inside, outside, mask)
    expected = 4 * np.log(2) - 0.2 * (np.log(4) + np.log(2)) / 2 + 0.4 * 2 * 0.25
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    np.testing.assert_allclose(parts["l1"], 0.2, rtol=1e-6)


def test_explainer_save_load_and_explain(tmp_path):
    import tiny_lmac
    exp, clf_dir = tiny_lmac.explainer(str(tmp_path))
    loaded = explainer.load(str(tmp_path / "explainer"))
    waves = [_waves(1, 0.7)[0], _waves(1, 1.5, seed=3)[0]]          # any lengths
    a, b = exp.explain(waves, 16000), loaded.explain(waves, 16000)
    assert len(a) == 2
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.mask, y.mask)
        assert x.mask.shape == (201, 513) and 0 <= x.mask.min() and x.mask.max() <= 1
        assert x.masked_in.shape == x.masked_out.shape == (37200,)
        np.testing.assert_allclose(x.probabilities.sum(), 1, rtol=1e-5)
        assert x.prediction == int(np.argmax(x.probabilities))
    paths = explainer.write_wavs(str(tmp_path / "wavs"), "clip", a[0], loaded.sample_rate)
    data, rate = sf.read(paths[1])
    assert rate == 16000 and np.allclose(data, a[0].masked_in, atol=1e-7)
    with pytest.raises(FileExistsError):
        exp.save(str(tmp_path / "explainer"), clf_dir)


def test_import_boundaries():
    """``import lmac`` never imports ``train``; ``clap_jax`` imports none of lmac, sparse, train."""
    code = ("import sys, lmac, lmac.explainer, lmac.metrics, lmac.baselines, lmac.convert; "
            "assert not any(m == 'train' or m.startswith('train.') for m in sys.modules), 'train'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    code = ("import sys, clap_jax, clap_jax.classify, clap_jax.convert, clap_jax.data.soundscapes; "
            "bad = sorted({m.split('.')[0] for m in sys.modules} & {'lmac', 'sparse', 'train'}); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
