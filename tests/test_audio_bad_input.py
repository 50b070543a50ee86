"""Audio validation in one place (``clap_jax.audio``), through the API of the bundled model:
channels-last arrays, integer PCM, sample rates, huge values, near-silent clips (issue items 2,
3, 4, 7, 9)."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import soundfile as sf

import clap_jax
from clap_jax import audio

BUNDLED = os.path.join(os.path.dirname(clap_jax.__file__), "bundled", "soundscapes-small", "spec.json")
pytestmark = pytest.mark.skipif(not os.path.exists(BUNDLED), reason="bundled soundscapes-small not installed")
SR = 16000


@pytest.fixture(scope="module")
def model():
    return clap_jax.load("soundscapes-small")


def noise(n=SR, seed=0, channels=None, scale=0.1):
    shape = (n,) if channels is None else (n, channels)
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def near_silent_warnings(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn()
    return out, [str(w.message) for w in caught if issubclass(w.category, audio.NearSilentWarning)]


# -- item 2: channels-last arrays ------------------------------------------------------------

def test_bare_samples_by_channels_array_is_one_clip_mixed_to_mono(model):
    stereo = noise(channels=2)                                     # what soundfile.read returns
    emb = model.embed_audio(stereo, SR)
    assert emb.shape == (1, model.embed_audio([stereo[:, 0]], SR).shape[1])
    mono = model.embed_audio([stereo.mean(axis=1)], SR)
    np.testing.assert_allclose(emb, mono, atol=1e-6)
    np.testing.assert_allclose(model.embed_audio([stereo], SR), mono, atol=1e-6)          # in a list
    np.testing.assert_allclose(model.embed_audio([stereo.T], SR), mono, atol=1e-6)        # (channels, samples)
    six = noise(channels=6, seed=1)
    np.testing.assert_allclose(model.embed_audio(six, SR), model.embed_audio([six.mean(1)], SR), atol=1e-6)


def test_readme_stereo_example_works(model, tmp_path):
    sf.write(tmp_path / "dog.wav", noise(channels=2), SR)
    wave, sr = sf.read(tmp_path / "dog.wav")
    assert wave.shape == (SR, 2)
    assert model.embed_audio([wave], sample_rate=sr).shape[0] == 1


@pytest.mark.parametrize("bad", [np.zeros((1000, 20), np.float32), np.zeros((64, 64), np.float32)])
def test_ambiguous_two_dimensional_arrays_are_refused_with_the_fix(model, bad):
    with pytest.raises(audio.AudioError, match=r"waveforms: shape .* is ambiguous.*pass a list of 1-D clips or a "
                                               r"\(channels, samples\) array"):
        model.embed_audio(bad, SR)
    with pytest.raises(audio.AudioError, match=r"waveform 1: shape .*pass a list of 1-D clips"):
        model.embed_audio([noise(), bad], SR)
    with pytest.raises(audio.AudioError, match="waveform 0: expected a 1-D waveform.*pass a list of 1-D clips"):
        model.embed_audio([np.zeros((2, 3, 100), np.float32)], SR)


def test_a_batch_is_still_a_batch(model):
    batch = np.stack([noise(seed=0), noise(seed=1), noise(seed=2)])          # (3, 16000): 3 clips
    assert model.embed_audio(batch, SR).shape[0] == 3


# -- item 9: integer PCM ---------------------------------------------------------------------

def test_integer_pcm_is_scaled_with_the_unsigned_offset_removed(model):
    np.testing.assert_array_equal(audio.check_waveform(np.array([0, 128, 255], np.uint8), "u8"),
                                  np.array([-1.0, 0.0, 127 / 128], np.float32))
    np.testing.assert_array_equal(audio.check_waveform(np.array([-32768, 0, 16384], np.int16), "i16"),
                                  np.array([-1.0, 0.0, 0.5], np.float32))
    np.testing.assert_allclose(audio.check_waveform(np.array([-2 ** 31, 2 ** 30], np.int32), "i32"), [-1.0, 0.5])
    x = noise(scale=0.3)
    u8 = np.clip(np.round(x * 128 + 128), 0, 255).astype(np.uint8)
    as_float = (u8.astype(np.float32) - 128) / 128
    np.testing.assert_allclose(model.embed_audio([u8], SR), model.embed_audio([as_float], SR), atol=1e-6)
    silence = np.full(SR, 128, np.uint8)                          # uint8 silence is 128, not 0
    assert audio.is_near_silent(audio.check_waveform(silence, "u8"))
    with pytest.raises(audio.AudioError, match="waveform 0: unsupported sample type bool"):
        model.embed_audio([np.ones(100, bool)], SR)


# -- item 7: sample rates --------------------------------------------------------------------

@pytest.mark.parametrize("rate,match", [
    (0, "sample_rate must be positive, got 0"),
    (None, "sample_rate must be an integer number of Hz, got None"),
    (-16000, "sample_rate must be positive, got -16000"),
    (16000.5, "sample_rate must be an integer number of Hz, got 16000.5"),
    (float("nan"), "sample_rate must be an integer number of Hz"),
    ("16000", "sample_rate must be an integer number of Hz, got '16000'"),
    (True, "sample_rate must be an integer number of Hz, got True"),
    (1, "sample_rate 1 Hz is below 1000 Hz"),
    (999, "sample_rate 999 Hz is below 1000 Hz"),
])
def test_bad_sample_rates_name_the_clip(model, rate, match):
    with pytest.raises(audio.AudioError, match=f"waveform 1: {match}"):
        model.embed_audio([noise(), noise(seed=1)], [SR, rate])
    with pytest.raises(audio.AudioError, match=f"waveform 0: {match}"):
        model.embed_audio([noise()], rate)


def test_good_sample_rates(model, tmp_path):
    ref = model.embed_audio([noise()], SR)
    for rate in (16000.0, np.int64(SR), np.float32(SR)):
        np.testing.assert_array_equal(model.embed_audio([noise()], rate), ref)
    with pytest.raises(audio.AudioError, match="sample_rate: 1 rates for 2 clips"):
        model.embed_audio([noise(), noise()], [SR])
    sf.write(tmp_path / "slow.wav", noise(200), 1)                # a header that claims 1 Hz
    with pytest.raises(audio.AudioError, match="slow.wav: sample_rate 1 Hz is below 1000 Hz"):
        audio.read_audio(tmp_path / "slow.wav")


# -- item 3: huge finite values --------------------------------------------------------------

@pytest.mark.parametrize("peak", [1e6, 1e18, 3e38])
def test_huge_samples_are_refused_not_turned_into_nan(model, peak):
    x = noise()
    x[100] = peak
    with pytest.raises(audio.AudioError, match=r"waveform 1: samples reach .*\(\|x\| >= 1e\+06\)"):
        model.embed_audio([noise(), x], SR)
    with pytest.raises(audio.AudioError, match="waveform 0: samples reach"):
        model.zero_shot([x], SR, ["a beep", "rain"])
    with pytest.raises(audio.AudioError, match="waveform 0: samples reach"):
        model.embed_audio([np.asarray(x, np.float64) * 1e250], SR)     # float64 beyond float32's range


def test_loud_but_finite_audio_still_embeds(model):
    x = np.random.default_rng(0).uniform(-9e5, 9e5, SR).astype(np.float32)
    assert np.isfinite(model.embed_audio([x], SR)).all()
    p = model.zero_shot([x], SR, ["a beep", "rain"])
    assert np.isfinite(p).all() and abs(p.sum() - 1) < 1e-5


def test_huge_samples_in_a_file_name_it(tmp_path):
    sf.write(tmp_path / "loud.wav", np.full(1000, 1e18, np.float32), SR, subtype="FLOAT")
    with pytest.raises(audio.AudioError, match="loud.wav: samples reach 1e"):
        audio.read_audio(tmp_path / "loud.wav")


# -- item 4: near-silent clips ---------------------------------------------------------------

def test_near_silent_clips_warn_naming_them(model):
    t = np.arange(SR) / SR
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    antiphase = np.stack([tone, -tone + np.float32(5.65e-5) * tone], axis=1)  # mono mix -97 dBFS
    clips = [tone, np.zeros(SR, np.float32), np.array([0.5], np.float32), antiphase, tone * 1e-5]
    emb, msgs = near_silent_warnings(lambda: model.embed_audio(clips, SR))
    assert emb.shape[0] == 5
    assert len(msgs) == 4 and not any(m.startswith("waveform 0:") for m in msgs), msgs
    assert msgs[0].startswith("waveform 1: near-silent, peak -inf dBFS")
    assert msgs[1].startswith("waveform 2: near-silent, only 1 samples")
    assert msgs[2].startswith("waveform 3: near-silent, peak -97") and "after the mono mix" in msgs[2]
    assert msgs[3].startswith("waveform 4: near-silent")
    _, none = near_silent_warnings(lambda: model.embed_audio([tone], SR))
    assert none == []


def test_is_near_silent_helper_and_its_level():
    assert audio.SILENCE_DBFS == -90.0 and audio.MIN_SAMPLES == 32
    assert audio.is_near_silent(np.zeros(1000)) and audio.is_near_silent(np.ones(5) * 0.5)
    assert audio.is_near_silent(np.full(1000, 10 ** (-91 / 20)))
    assert not audio.is_near_silent(np.full(1000, 10 ** (-89 / 20)))
    one_lsb = audio.check_waveform(np.tile(np.array([1, -1, 0], np.int16), 1000), "dither")   # -90.3 dBFS
    assert audio.is_near_silent(one_lsb)
    assert "-90.3 dBFS" in audio.silence_reason(one_lsb)
