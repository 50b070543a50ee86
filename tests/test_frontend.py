"""Front-end functions and the reference quirks they reproduce (clap_models.md §7.5). Torch-free: the
comparisons with PyTorch, LAION-CLAP and transformers are in ``test_frontend_parity.py``."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clap_jax import audio, frontend, resize
from clap_jax.frontend import SpectrogramConfig
from clap_jax.models import htsat

CFG = SpectrogramConfig()


def _noise(n, seed=0):
    return (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def test_frame_count_and_shapes():
    x = jnp.asarray(_noise(480000))[None]
    assert frontend.stft(x, CFG).shape == (1, 1001, 513)
    assert frontend.log_mel(x, CFG).shape == (1, 1001, 64)
    assert CFG.num_frames(480000) == 1001


def test_istft_inverts_stft_and_keeps_phase():
    x = jnp.asarray(np.stack([_noise(48000, 1), _noise(48000, 2)]))
    spec = frontend.stft(x, CFG)
    np.testing.assert_allclose(frontend.istft(spec, CFG, 48000), x, atol=1e-5)
    mag, ph = frontend.magnitude(spec), frontend.phase(spec)
    np.testing.assert_allclose(frontend.istft(mag * ph, CFG, 48000), x, atol=1e-5)
    # A mask on the magnitude with the original phase: zeroing everything gives silence.
    assert np.abs(frontend.istft(0 * mag * ph, CFG, 48000)).max() == 0


def test_gradient_flows_from_masked_magnitude_through_mel_and_log():
    mag = frontend.magnitude(frontend.stft(jnp.asarray(_noise(48000))[None], CFG))
    grad = jax.grad(lambda m: frontend.log_mel_from_magnitude(mag * m, CFG).sum())(jnp.ones_like(mag))
    assert grad.shape == mag.shape and bool(jnp.all(jnp.isfinite(grad)))
    assert float(jnp.abs(grad[:, :, 2:298]).min()) > 0      # every bin inside 50 Hz-14 kHz gets gradient
    assert float(jnp.abs(grad[:, :, 300:]).max()) == 0      # above fmax the mel bank has no weight


def test_power_to_db_floor_and_top_db():
    p = jnp.asarray([[[0.0, 1e-12, 1.0, 100.0]]])
    np.testing.assert_allclose(frontend.power_to_db(p, CFG), [[[-100, -100, 0, 20]]], atol=1e-5)
    capped = SpectrogramConfig(top_db=50.0)
    np.testing.assert_allclose(frontend.power_to_db(p, capped), [[[-30, -30, 0, 20]]], atol=1e-5)


def test_mel_bank_scales_differ_and_32k_bank():
    """The banks' values are checked against the references' own: Slaney against torchlibrosa's
    ``melW`` (LAION conversion refuses a differing bank; ``test_msclap_parity`` compares the 32 kHz
    one), HTK against transformers (``test_frontend_parity``). Here: what tells them apart."""
    slaney, htk = frontend.mel_filterbank(CFG), frontend.mel_filterbank(
        SpectrogramConfig(mel_scale="htk", mel_norm=None))
    assert slaney.shape == htk.shape == (513, 64)
    assert np.abs(slaney - htk).max() > 1e-2                     # HTK/unnormalised is not Slaney
    assert htk.max() > 0.99 and slaney.max() < 0.1                # peak ~1 vs area-normalised
    top = lambda bank: int(np.flatnonzero(bank.any(axis=1))[-1])  # last bin with weight
    ms2023 = frontend.mel_filterbank(SpectrogramConfig(sample_rate=44100, hop_length=320, mel_sample_rate=32000))
    ms2022 = frontend.mel_filterbank(SpectrogramConfig(sample_rate=44100, hop_length=320))
    # fmax = 14 kHz sits at bin 14000 / (sr / 1024): 448.0 (weight 0 there) for a bank built for
    # 32 kHz, 325.04 for 44.1 kHz.
    assert top(ms2023) == 447 and top(ms2022) == 325


def test_int16_round_trip_truncates_toward_zero():
    x = np.array([0.99999, -0.99999, 1.5, -2.0, 0.5 / 32767 * 1.9, -0.5 / 32767 * 1.9], np.float32)
    q = audio.quantize_int16(x)
    np.testing.assert_array_equal(q * 32767, [32766, -32766, 32767, -32767, 0, 0])


def test_pad_and_crop_policies():
    x = np.arange(1, 4, dtype=np.float32)
    np.testing.assert_array_equal(audio.pad(x, 8, "repeatpad"), [1, 2, 3, 1, 2, 3, 0, 0])
    np.testing.assert_array_equal(audio.pad(x, 8, "repeat"), [1, 2, 3, 1, 2, 3, 1, 2])
    np.testing.assert_array_equal(audio.pad(x, 5, "zeros"), [1, 2, 3, 0, 0])
    y = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(audio.fit_length(y, 4, crop="center"), [3, 4, 5, 6])
    np.testing.assert_array_equal(audio.fit_length(y, 4, crop="start"), [0, 1, 2, 3])
    a = audio.fit_length(y, 4, crop="random", rng=np.random.default_rng(5))
    b = audio.fit_length(y, 4, crop="random", rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="seeded"):
        audio.fit_length(y, 4, crop="random")


def test_random_crop_is_uniform_over_every_start():
    """``crop='random'``: the window is the one at the drawn start, seeds differ, and the starts cover
    [0, n - length] with both ends (the references' ``randint(0, overflow + 1)``) and nothing outside."""
    y = np.arange(10, dtype=np.float32)
    starts = [audio.crop_start(10, 4, "random", np.random.default_rng(seed)) for seed in range(200)]
    assert set(starts) == set(range(7))                           # 0..6 inclusive, every one drawn
    assert np.bincount(starts).min() > 10                         # roughly uniform (200 / 7 each)
    for seed in (0, 1, 2):
        s = audio.crop_start(10, 4, "random", np.random.default_rng(seed))
        np.testing.assert_array_equal(audio.fit_length(y, 4, crop="random", rng=np.random.default_rng(seed)),
                                      y[s:s + 4])
    off_centre = [s for s in starts if s != audio.crop_start(10, 4, "center")]
    assert len(off_centre) > 150                                   # a random crop is not the centre one
    assert audio.crop_start(4, 4, "random", np.random.default_rng(0)) == 0      # nothing to crop


def test_bicubic_is_not_jax_image_resize():
    """HTSAT's 1001 -> 1024 stretch is PyTorch's bicubic (A=-0.75, corners aligned); jax.image.resize
    (Keys A=-0.5, half-pixel centres) gives a different image."""
    x = np.random.default_rng(0).standard_normal((1001, 4)).astype(np.float32)
    ours = resize.bicubic_align_corners(1001, 1024) @ x
    theirs = np.asarray(jax.image.resize(jnp.asarray(x), (1024, 4), "bicubic"))
    assert np.abs(ours - theirs).max() > 1e-2
    np.testing.assert_allclose(ours[0], x[0], atol=1e-6)           # corners aligned
    np.testing.assert_allclose(ours[-1], x[-1], atol=1e-6)


def test_shift_mask_uses_minus_100():
    mask = htsat._shift_mask(64, 8, 4)
    assert mask.shape == (64, 64, 64)
    assert set(np.unique(mask)) == {-100.0, 0.0}


def test_speechbrain_chain_pieces():
    """SpeechBrain's front end as data: Hamming window, zero padding, its own triangular bank on the
    magnitude, log1p, and the 1e-14 inside the magnitude's square root (finite gradient at 0)."""
    sb = SpectrogramConfig(sample_rate=16000, n_fft=1024, win_length=372, hop_length=186, n_mels=80, fmin=0,
                           fmax=8000, mel_scale="speechbrain", mel_norm=None, pad_mode="constant",
                           window="hamming", mel_exponent=1.0, compression="log1p", magnitude_eps=1e-14)
    bank = frontend.mel_filterbank(sb)
    assert bank.shape == (513, 80) and np.all(bank >= 0) and bank.max() <= 1
    assert bank.max(axis=0).min() > 0.5           # every triangle is sampled by a bin near its centre (peak 1)
    peaks = bank.argmax(axis=0)
    assert np.all(np.diff(peaks) >= 0) and bank[511, -1] > 0 and bank[512].max() == 0   # fmax is the last edge
    win = frontend.window(1024, 372, "hamming")
    assert win[:326].max() == 0 and win[326 + 372:].max() == 0 and abs(win.max() - 1) < 1e-6
    x = jnp.asarray(_noise(80000))[None]
    assert frontend.log_mel(x, sb).shape == (1, 431, 80)
    mag = frontend.magnitude(frontend.stft(x, sb), sb.magnitude_eps)
    np.testing.assert_allclose(frontend.log_mel(x, sb), jnp.log1p(mag @ bank), atol=1e-5)
    assert bool(jnp.isfinite(jax.grad(lambda r: frontend.magnitude(r + 0j, 1e-14).sum())(jnp.zeros(3))).all())
    with pytest.raises(ValueError, match="window"):
        frontend.window(1024, 372, "kaiser")


def test_normalize_by_max_sample():
    x = np.array([0.1, -0.8, 0.4], np.float32)
    np.testing.assert_allclose(audio.normalize(x, "max"), x / 0.4)           # the maximum, not max |x|
    np.testing.assert_array_equal(audio.normalize(-np.abs(x), "max"), -np.abs(x))
    assert audio.normalize(x, None) is x
