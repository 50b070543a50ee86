"""The front end against PyTorch and the references' own code (clap_models.md §7.5): bicubic and
bilinear (antialiased) resizing against ``torch.nn.functional.interpolate``, int16 quantisation and
repeat-padding against LAION-CLAP's ``training.data``, the HTSAT shift mask and relative position
index against LAION-CLAP's ``SwinTransformerBlock`` buffers, the HTK mel bank against transformers."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from clap_jax import audio, frontend, resize
from clap_jax.frontend import SpectrogramConfig
from clap_jax.models import htsat

torch = pytest.importorskip("torch", reason="parity tests need the pinned torch==2.13.0 (pip install -e '.[test]')")
pytestmark = pytest.mark.parity


def _noise(n, seed=0):
    return (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("n_in,n_out", [(1001, 1024), (965, 1024)])
def test_bicubic_matches_torch(n_in, n_out):
    x = np.random.default_rng(0).standard_normal((2, 3, n_in, 64)).astype(np.float32)
    ref = torch.nn.functional.interpolate(torch.from_numpy(x), (n_out, 64), mode="bicubic",
                                          align_corners=True).numpy()
    got = resize.resize_axis(jnp.asarray(x), resize.bicubic_align_corners(n_in, n_out), axis=2)
    np.testing.assert_allclose(got, ref, atol=1e-5)


@pytest.mark.parametrize("n_in", [1002, 1459, 3000])
@pytest.mark.parametrize("antialias", [False, True])
def test_bilinear_shrinks_match_torch(n_in, antialias):
    x = (10 * np.random.default_rng(1).standard_normal((n_in, 64))).astype(np.float32)
    ref = torch.nn.functional.interpolate(torch.from_numpy(x)[None, None], size=[1001, 64], mode="bilinear",
                                          align_corners=False, antialias=antialias)[0, 0].numpy()
    matrix = (resize.bilinear_antialias if antialias else resize.bilinear)(n_in, 1001)
    np.testing.assert_allclose(matrix @ x, ref, atol=1e-5)


def test_int16_and_repeatpad_match_laion():
    import reference_models  # noqa: F401  (offline import of laion_clap)
    from laion_clap.training import data
    x = _noise(100000, 3) * 12
    np.testing.assert_array_equal(audio.quantize_int16(x), data.int16_to_float32(data.float32_to_int16(x)))
    sample = data.get_audio_features({}, torch.from_numpy(x[:70000]), 480000, "rand_trunc", "repeatpad",
                                     {"sample_rate": 48000})
    np.testing.assert_array_equal(audio.pad(x[:70000], 480000, "repeatpad"), sample["waveform"].numpy())


def test_laion_buffers():
    import reference_models  # noqa: F401
    from laion_clap.clap_module.htsat import SwinTransformerBlock
    blk = SwinTransformerBlock(96, (64, 64), 4, window_size=8, shift_size=4)
    np.testing.assert_array_equal(htsat._shift_mask(64, 8, 4), blk.attn_mask.numpy())
    np.testing.assert_array_equal(htsat._relative_position_index(8), blk.attn.relative_position_index.numpy())


def test_htk_bank_matches_transformers():
    from transformers.audio_utils import mel_filter_bank
    ref = mel_filter_bank(num_frequency_bins=513, num_mel_filters=64, min_frequency=50, max_frequency=14000,
                          sampling_rate=48000, norm=None, mel_scale="htk")
    ours = frontend.mel_filterbank(SpectrogramConfig(mel_scale="htk", mel_norm=None))
    np.testing.assert_allclose(ours, ref, atol=1e-6)
