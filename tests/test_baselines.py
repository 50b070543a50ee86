"""Baselines and sanity checks on a tiny random CNN14, no torch: shapes, finite maps, batched =
per-example, what GradCAM reads, SSIM properties and cascading randomisation."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from clap_jax import frontend
from clap_jax.models.cnn14 import Cnn14, Cnn14Config
from lmac import baselines, sanity

# 32 mels (not 16): five 2x2 poolings leave conv_block6 one mel bin wide (16 would leave none)
CFG = Cnn14Config(n_mels=32, channels=(4, 8, 8, 16, 16, 16), embed_dim=0, num_classes=5)
SPEC = frontend.SpectrogramConfig(sample_rate=16000, n_fft=256, win_length=256, hop_length=128, n_mels=32,
                                  fmin=0.0, fmax=8000.0, mel_scale="speechbrain", mel_norm=None,
                                  mel_exponent=1.0, compression="log1p", window="hamming", pad_mode="constant")
OPTIONS = {"smoothgrad": {"nt_samples": 3, "stdev": 0.3}, "integrated_gradients": {"n_steps": 4}}


@pytest.fixture(scope="module")
def model():
    return nnx.split(Cnn14(CFG, rngs=nnx.Rngs(0)))


def _features(b=3, t=64, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal((b, 1, t, CFG.n_mels)), jnp.float32)


def _magnitude(b=2, t=64, seed=0):
    return jnp.asarray(np.random.default_rng(seed).uniform(0.0, 2.0, (b, t, SPEC.n_freq)), jnp.float32)


@pytest.fixture(scope="module")
def run(model):
    """run(name, x, target, from_magnitude=False): the baseline jitted with the state as an argument."""
    graphdef, state = model
    cache = {}

    def go(name, x, target, from_magnitude=False, key=0):
        if (name, from_magnitude) not in cache:
            to_feats = (lambda m: frontend.log_mel_from_magnitude(m, SPEC)[:, None]) if from_magnitude else None
            cache[name, from_magnitude] = jax.jit(lambda s, v, t, k: baselines.explain_with(
                name, baselines.cnn14_forward(graphdef, s, to_feats), v, t, key=k, **OPTIONS.get(name, {})))
        return np.asarray(cache[name, from_magnitude](state, x, jnp.asarray(target), jax.random.key(key)))
    return go


def test_registry_names():
    assert set(baselines.BASELINES) == {"saliency", "smoothgrad", "integrated_gradients", "gradcam", "gradcam_pp"}
    with pytest.raises(KeyError, match="unknown baseline"):
        baselines.explain_with("lime", None, None, None)
    with pytest.raises(ValueError, match="key"):
        baselines.smoothgrad(lambda x: {"logits": x}, jnp.zeros((1, 2)), jnp.zeros(1, int))


@pytest.mark.parametrize("name", sorted(baselines.BASELINES))
def test_shapes_finite_and_batched(run, name):
    """Features (B, 1, T, M) and magnitudes (B, T, F) give maps of the same shape, finite, not all
    zero. Batched = per example: reordering the batch and replacing an example leaves every other
    example's map unchanged (same compiled shape; SmoothGrad's noise is per row, so it is left out)."""
    x, target = _features(), np.array([0, 3, 1])
    maps = run(name, x, target)
    assert maps.shape == x.shape and np.isfinite(maps).all() and np.abs(maps).max() > 0
    if name != "smoothgrad":
        other = jnp.concatenate([x[2:3], x[0:1], _features(1, seed=9)])
        again = run(name, other, np.array([1, 0, 4]))
        for got, want in ((again[0], maps[2]), (again[1], maps[0])):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.abs(want).max())
        assert not np.allclose(again[2], maps[1])
    mag = _magnitude()
    maps = run(name, mag, np.array([2, 4]), from_magnitude=True)
    assert maps.shape == mag.shape and np.isfinite(maps).all() and np.abs(maps).max() > 0


def test_smoothgrad_noise_is_saliency_mean(model):
    """Explicit noise: the mean of saliency at the perturbed inputs; zero noise is saliency itself;
    one example with its own noise rows equals its row of the batch."""
    graphdef, state = model
    sal = jax.jit(lambda s, v, t: baselines.saliency(baselines.cnn14_forward(graphdef, s), v, t))
    sg = jax.jit(lambda s, v, t, n: baselines.smoothgrad(baselines.cnn14_forward(graphdef, s), v, t, noise=n))
    x, target = _features(2), jnp.array([1, 2])
    noise = 0.5 * jax.random.normal(jax.random.key(3), (2, 3) + x.shape[1:])
    got = sg(state, x, target, noise)
    want = np.mean([sal(state, x + noise[:, s], target) for s in range(3)], axis=0)
    tol = 1e-5 * float(np.abs(want).max())
    np.testing.assert_allclose(got, want, rtol=0, atol=tol)
    one = sg(state, x[1:], target[1:], noise[1:])
    np.testing.assert_allclose(one[0], got[1], rtol=0, atol=tol)
    zero = sg(state, x, target, jnp.zeros_like(noise))
    np.testing.assert_allclose(zero, sal(state, x, target), rtol=0, atol=tol)


def test_integrated_gradients_completeness(model):
    """IG's completeness: sum of the attribution = logit(x) - logit(0), approximately (Gauss-Legendre);
    the quadrature points and weights are captum's."""
    graphdef, state = model
    fwd = baselines.cnn14_forward(graphdef, state)
    x, target = 0.2 * _features(2), jnp.array([0, 4])
    ig = baselines.integrated_gradients(fwd, x, target, n_steps=32)
    lg = lambda v: jnp.take_along_axis(fwd(v)["logits"], target[:, None], 1)[:, 0]
    np.testing.assert_allclose(ig.sum(axis=(1, 2, 3)), lg(x) - lg(jnp.zeros_like(x)), rtol=2e-2, atol=1e-3)
    a, w = baselines.ig_points(4)
    assert np.isclose(w.sum(), 1) and np.all((a > 0) & (a < 1))
    a, w = baselines.ig_points(5, "riemann_trapezoid")
    np.testing.assert_allclose(a, [0, .25, .5, .75, 1])
    np.testing.assert_allclose(w, [.1, .2, .2, .2, .1])


def test_taps_do_not_change_the_forward_and_reach_the_right_block(model):
    """A zero tap leaves the logits bit-identical; the gradient with respect to the tap on block k is
    the gradient with respect to blocks[k] (checked through the chain rule with block k+1's input)."""
    graphdef, state = model
    fwd = baselines.cnn14_forward(graphdef, state)
    x = _features(2)
    plain = fwd(x)
    for k in range(6):
        tapped = fwd(x, taps={k: jnp.zeros_like(plain["blocks"][k])})
        np.testing.assert_array_equal(tapped["logits"], plain["logits"])
    # a nonzero tap on block 3 moves every later block, never an earlier one
    t = fwd(x, taps={2: jnp.ones_like(plain["blocks"][2])})
    np.testing.assert_array_equal(t["blocks"][1], plain["blocks"][1])
    assert not np.allclose(t["blocks"][3], plain["blocks"][3])
    # the last block's tap is added to its own output
    t = fwd(x, taps={5: jnp.ones_like(plain["blocks"][5])})
    np.testing.assert_allclose(t["blocks"][5], plain["blocks"][5] + 1, rtol=1e-6)


def test_gradcam_by_hand(model):
    """The gradient with respect to the last block by hand (mean over mel bins, max + mean over
    frames, linear head), GradCAM from it, and the nearest upsampling of each cell onto its share of
    the grid."""
    graphdef, state = model
    fwd = baselines.cnn14_forward(graphdef, state)
    x, target = _features(1, t=64), jnp.array([2])
    acts, grads = map(np.asarray, baselines.layer_gradients(fwd, x, target, -1))
    assert acts.shape == (1, 2, 1, 16)
    w = np.asarray(nnx.to_pure_dict(state)["head"]["kernel"])[:, 2]                 # (16,)
    v = acts.mean(axis=2)[0]                                                         # (T=2, C)
    is_max = (v == v.max(axis=0)).astype(np.float32)                                 # ties share the max
    frame_w = is_max / is_max.sum(axis=0) + 1 / 2                                    # max + mean
    np.testing.assert_allclose(grads[0, :, 0], frame_w * w, rtol=1e-6)
    cam = np.asarray(baselines.gradcam(fwd, x, target, relu=False))
    want = np.sum(grads.mean(axis=(1, 2)) * acts, axis=-1)                           # (1, 2, 1)
    np.testing.assert_allclose(cam[0, 0, :32], np.full((32, 32), want[0, 0, 0]), rtol=1e-6)
    np.testing.assert_allclose(cam[0, 0, 32:], np.full((32, 32), want[0, 1, 0]), rtol=1e-6)
    relu = np.asarray(baselines.gradcam(fwd, x, target))
    np.testing.assert_allclose(relu, np.maximum(cam, 0), rtol=1e-6)
    np.testing.assert_array_equal(baselines.nearest_indices(3, 7), [0, 0, 0, 1, 1, 2, 2])
    assert baselines.gradcam(fwd, x, target, size=(64, 129)).shape == (1, 64, 129)


def test_ssim_properties():
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.uniform(size=(3, 20, 16)), jnp.float32)
    b = jnp.asarray(rng.uniform(size=(3, 20, 16)), jnp.float32)
    np.testing.assert_array_equal(sanity.ssim(a, a, data_range=1.0), np.ones(3, np.float32))
    s = np.asarray(sanity.ssim(a, b, data_range=1.0))
    assert s.shape == (3,) and np.all(s < 0.2)
    np.testing.assert_allclose(sanity.ssim(a[:, None], b[:, None], data_range=1.0), s, rtol=1e-6)
    np.testing.assert_allclose(sanity.ssim(b, a, data_range=1.0), s, rtol=1e-5)
    one = sanity.ssim(a[1:2], b[1:2], data_range=1.0)
    np.testing.assert_allclose(one[0], s[1], rtol=1e-6)
    with pytest.raises(ValueError, match="win_size"):
        sanity.ssim(a[:, :5], b[:, :5], data_range=1.0)


def test_unrelated_ssim_pairs_each_map_with_the_next_clips_and_summary_reports_it():
    rng = np.random.default_rng(1)
    a = rng.uniform(size=(3, 20, 16)).astype(np.float32)
    u = sanity.unrelated_ssim(jnp.asarray(a), data_range=1.0)
    expected = [sanity.ssim(a[i:i + 1], a[(i - 1) % 3][None], data_range=1.0)[0] for i in range(3)]
    np.testing.assert_allclose(u, expected, rtol=1e-6)
    assert np.all(u < 0.2)                                            # independent maps
    same = np.repeat(a[:1], 3, axis=0)
    np.testing.assert_allclose(sanity.unrelated_ssim(jnp.asarray(same), data_range=1.0), 1.0, rtol=1e-6)
    assert sanity.unrelated_ssim(jnp.asarray(a[:1]), data_range=1.0).size == 0
    scores = np.array([[1.0, 1.0, 1.0], [0.5, np.nan, 0.3]])
    rec = sanity.summary(scores, u)
    assert rec["ssim_mean"][0] == 1.0 and rec["ssim_mean"][1] is None and rec["ssim"][1][1] is None
    np.testing.assert_allclose(rec["unrelated_mean"], float(np.mean(u)), rtol=1e-6)
    assert sanity.summary(scores, np.zeros(0))["unrelated_mean"] is None


def test_reinitialize_touches_only_named_modules(model):
    graphdef, state = model
    new = sanity.reinitialize(graphdef, state, ["head", "conv_block6", "fc1"], seed=7)
    old_pure, new_pure = nnx.to_pure_dict(state), nnx.to_pure_dict(new)
    for name in old_pure:
        same = jax.tree.leaves(jax.tree.map(lambda u, v: bool(np.array_equal(u, v)), old_pure[name], new_pure[name]))
        if name in ("head", "conv_block6"):
            assert not all(same), name
        else:
            assert all(same), name


def test_cascading_randomization_saliency(model):
    """Saliency depends on the weights: after the head and every block are re-initialised its maps
    are unlike the original (SSIM well below 1), the unrandomised row is exactly 1. A map that does
    not depend on the state keeps SSIM 1 through every step."""
    graphdef, state = model
    x, target = _features(2, t=64, seed=5), jnp.array([1, 3])
    explain = jax.jit(lambda s: baselines.saliency(baselines.cnn14_forward(graphdef, s), x, target))
    out = sanity.cascading_randomization(graphdef, state, explain, seed=11)
    assert out["steps"] == ("original", "head", "block6", "block5", "block4", "block3", "block2", "block1")
    assert out["ssim"].shape == (8, 2) and out["maps"].shape == (8, 2, 1, 64, 32)
    np.testing.assert_array_equal(out["ssim"][0], [1.0, 1.0])
    assert np.all(out["ssim"][1:] < 0.999)
    assert np.all(out["ssim"][-1] < 0.5), out["ssim"]

    constant = sanity.cascading_randomization(graphdef, state, lambda s: jnp.abs(x), seed=11)
    np.testing.assert_allclose(constant["ssim"], 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="data_range"):
        sanity.cascading_randomization(graphdef, state, explain, normalize=False)
