"""Parity of the L-MAC decoder with SpeechBrain's ``speechbrain.lobes.models.Cnn14.CNN14PSI_stft``
(random weights, loaded through ``lmac.decoders.decoder_from_recipe_state``), at the recipe's width
(dim 2048) and a small one, on the same random block outputs; and of ``ConvTranspose2d`` with
``torch.nn.ConvTranspose2d`` for the kernel / stride / padding combinations the decoders use.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="parity tests need the pinned torch==2.13.0 (pip install -e '.[test]')")
pytestmark = pytest.mark.parity

from flax import nnx  # noqa: E402

from lmac import decoders  # noqa: E402

TOL = 1e-5


def _reference(dim: int, seed: int = 0):
    import reference_models  # noqa: F401  (torchaudio stand-in before speechbrain)
    from speechbrain.lobes.models.Cnn14 import CNN14PSI_stft
    torch.manual_seed(seed)
    return CNN14PSI_stft(dim, 1).eval()


def _ours(ref, dim: int):
    state = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    return decoders.decoder_from_recipe_state(state, decoders.DecoderConfig(kind="cnn14_psi", dim=dim))


def _hs(batch: int, frames: int, dim: int, seed: int = 0):
    """Random non-negative (post-ReLU-like) block outputs of SpeechBrain's Cnn14 for ``frames`` x 80 mels:
    (block6, block5, block4, block3), NCHW for torch and NHWC for us."""
    rng = np.random.default_rng(seed)
    t3, f3 = frames // 8, 80 // 8
    shapes = [(dim, t3 // 4, f3 // 4), (dim // 2, t3 // 4, f3 // 4), (dim // 4, t3 // 2, f3 // 2), (dim // 8, t3, f3)]
    nchw = [np.abs(rng.standard_normal((batch, *s))).astype(np.float32) for s in shapes]
    return [torch.from_numpy(a) for a in nchw], [jnp.asarray(a.transpose(0, 2, 3, 1)) for a in nchw]


@pytest.fixture(scope="module")
def full_width():
    """The recipe's decoder, dim 2048 (~2.4e8 parameters): built once."""
    ref = _reference(2048)
    return ref, _ours(ref, 2048)


@pytest.fixture(scope="module")
def small_width():
    ref = _reference(64, seed=1)
    return ref, _ours(ref, 64)


def _compare(ref, ours, batch, frames, dim):
    hs_t, hs_j = _hs(batch, frames, dim, seed=frames)
    with torch.no_grad():
        want = ref(hs_t)[:, 0].numpy()
    got = np.asarray(ours(hs_j))
    assert got.shape == want.shape and got.dtype == np.float32
    err = np.abs(got - want).max()
    print(f"frames {frames} dim {dim}: max abs err {err:.2e}, max |out| {np.abs(want).max():.2e}")
    assert err <= TOL, (frames, err, np.abs(want).max())
    return got.shape


def test_full_width_parity(full_width):
    ref, ours = full_width
    assert sum(p.numel() for p in ref.parameters()) == sum(
        v.size for v in jax.tree_util.tree_leaves(nnx.state(ours, nnx.Param)))
    assert _compare(ref, ours, 1, 201, 2048) == (1, 201, 513)


@pytest.mark.parametrize("frames,out_frames", [(201, 201), (300, 297), (431, 425)])
def test_small_width_parity_and_frame_counts(small_width, frames, out_frames):
    ref, ours = small_width
    assert _compare(ref, ours, 2, frames, 64) == (2, out_frames, 513)


@pytest.mark.parametrize("kernel,stride,padding", [
    (3, (2, 4), 1), ((7, 4), (2, 4), 1), ((5, 4), (2, 4), 1), ((3, 5), (2, 2), 1),
    ((4, 3), (2, 2), (0, 5)), ((3, 4), (2, 2), (0, 2)), ((1, 5), (1, 4), 0), (4, 2, 1), (4, 4, 0), (2, 3, 0)])
def test_conv_transpose_matches_torch(kernel, stride, padding):
    cin, cout = 5, 3
    torch.manual_seed(0)
    ref = torch.nn.ConvTranspose2d(cin, cout, kernel, stride, padding)
    ours = decoders.ConvTranspose2d(cin, cout, kernel, stride, padding, rngs=nnx.Rngs(0))
    # the documented layout: our kernel (kh, kw, in, out) = torch weight (in, out, kh, kw).transpose(2, 3, 0, 1)
    ours.kernel.set_value(jnp.asarray(ref.weight.detach().numpy().transpose(2, 3, 0, 1)))
    ours.bias.set_value(jnp.asarray(ref.bias.detach().numpy()))
    x = np.random.default_rng(1).standard_normal((2, cin, 7, 9)).astype(np.float32)
    with torch.no_grad():
        want = ref(torch.from_numpy(x)).numpy().transpose(0, 2, 3, 1)
    got = np.asarray(ours(jnp.asarray(x.transpose(0, 2, 3, 1))))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_conv_transpose_init_matches_torch_distribution():
    """Same init bounds as PyTorch: uniform +-1/sqrt(out * kh * kw) (fan_in of a (in, out, kh, kw) weight)."""
    ref = torch.nn.ConvTranspose2d(16, 8, (3, 5), 2, 1)
    ours = decoders.ConvTranspose2d(16, 8, (3, 5), 2, 1, rngs=nnx.Rngs(0))
    bound = 1 / np.sqrt(8 * 15)
    for t, j in ((ref.weight.detach(), ours.kernel), (ref.bias.detach(), ours.bias)):
        assert float(t.abs().max()) <= bound and float(jnp.abs(j[...]).max()) <= bound
        assert float(jnp.abs(j[...]).max()) > 0.8 * bound
