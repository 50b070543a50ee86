"""lmac.decoders without torch: shapes on our own encoders' outputs, the HTSAT token-grid geometry
(unfolding equals HTSAT's fold; time and frequency order kept), gradients to every parameter, the
config's JSON round trip and recipe state dicts refused by key."""
from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from clap_jax import frontend, weights
from clap_jax.models.cnn14 import Cnn14, Cnn14Config
from clap_jax.models.htsat import HTSAT, HTSATConfig
from lmac import decoders

# The bundled soundscapes-small HTSAT: embed 32, depths 1-1-2-1, a 128 x 128 image of 32 mels at 16 kHz.
SMALL_HTSAT = HTSATConfig(embed_dim=32, depths=(1, 1, 2, 1), num_heads=(2, 4, 8, 8), spec_size=128, n_mels=32)
SMALL_SPEC = frontend.SpectrogramConfig(sample_rate=16000, n_fft=512, win_length=512, hop_length=160, n_mels=32,
                                        fmin=50.0, fmax=8000.0)


def _init(factory, seed: int = 0):
    """The module ``factory()`` builds, with numpy-random parameters (fan-in scaled; norms at identity,
    BatchNorm statistics 0 / 1): random initialisation in JAX compiles one threefry program per
    parameter shape, which costs about a second each on a shared CPU."""
    model = nnx.eval_shape(factory)
    rng = np.random.default_rng(seed)
    for path, var in nnx.iter_graph(model):
        if isinstance(var, nnx.Variable) and jnp.issubdtype(var.dtype, jnp.floating):
            name, shape = str(path[-1]), var.shape
            if name in ("scale", "var", "mean"):
                value = np.full(shape, float(name != "mean"))
            else:
                value = rng.uniform(-1, 1, shape) / np.sqrt(max(int(np.prod(shape[:-1])), 1))
            var.set_value(jnp.asarray(value, var.dtype))
    return model


def _grad_norms(model, loss):
    """Norm of d loss / d p for every nnx.Param leaf of ``model``, keyed by path."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    grads = jax.jit(jax.grad(lambda p: loss(nnx.merge(graphdef, p, rest))))(params)
    return {jax.tree_util.keystr(k): float(jnp.linalg.norm(g)) for k, g in jax.tree_util.tree_leaves_with_path(grads)}


@nnx.jit
def _blocks(model, mel):
    b = model(mel)["blocks"]
    return [b[5], b[4], b[3], b[2]]          # SpeechBrain's hs: (block6, block5, block4, block3)


@pytest.fixture(scope="module")
def small_cnn14():
    cfg = Cnn14Config(n_mels=80, channels=(2, 4, 8, 16, 32, 64), embed_dim=0, num_classes=0)
    return _init(lambda: Cnn14(cfg, rngs=nnx.Rngs(0)))


def test_cnn14_psi_on_our_cnn14_blocks(small_cnn14):
    """Our Cnn14's blocks 6, 5, 4, 3 feed the decoder as they are; frame counts as the recipe measured."""
    dec = _init(lambda: decoders.build_decoder(decoders.DecoderConfig(kind="cnn14_psi", dim=64), rngs=nnx.Rngs(1)))
    run = nnx.jit(lambda m, h: m(h))
    hs = _blocks(small_cnn14, jax.random.normal(jax.random.key(0), (2, 1, 431, 80)))
    out = run(dec, hs)
    assert out.shape == (2, 425, 513) and out.dtype == jnp.float32 and bool(jnp.isfinite(out).all())
    for frames, out_frames in ((201, 201), (300, 297)):
        mel = jax.ShapeDtypeStruct((2, 1, frames, 80), jnp.float32)
        hs = nnx.eval_shape(lambda m, x: _blocks(m, x), small_cnn14, mel)
        assert nnx.eval_shape(lambda m, h: m(h), dec, hs).shape == (2, out_frames, 513)
    wide = nnx.eval_shape(lambda: decoders.Cnn14PsiDecoder(64, outdim=3, rngs=nnx.Rngs(0)))
    assert nnx.eval_shape(lambda m, h: m(h), wide, hs).shape == (2, 297, 513, 3)


def test_cnn14_psi_gradients_reach_every_parameter(small_cnn14):
    hs = _blocks(small_cnn14, jax.random.normal(jax.random.key(0), (1, 1, 201, 80)))
    dec = _init(lambda: decoders.Cnn14PsiDecoder(64, rngs=nnx.Rngs(1)))
    norms = _grad_norms(dec, lambda m: jnp.mean(jax.nn.sigmoid(m(hs))))
    assert len(norms) == 18 and all(n > 0 for n in norms.values()), norms


def test_conv_transpose_output_size():
    for k, s, p, n in [((7, 4), (2, 4), 1, (5, 6)), ((4, 3), (2, 2), (0, 5), (9, 40)), (1, 1, 0, (3, 3))]:
        layer = nnx.eval_shape(lambda: decoders.ConvTranspose2d(2, 3, k, s, p, rngs=nnx.Rngs(0)))
        (kh, kw), (sh, sw), (ph, pw) = (decoders._pair(v) for v in (k, s, p))
        want = ((n[0] - 1) * sh - 2 * ph + kh, (n[1] - 1) * sw - 2 * pw + kw)
        assert nnx.eval_shape(lambda m, x: m(x), layer, jnp.ones((1, *n, 2))).shape == (1, *want, 3)


# --- HTSAT ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_htsat():
    return _init(lambda: HTSAT(SMALL_HTSAT, rngs=nnx.Rngs(0)))


def test_htsat_stage_outputs(small_htsat):
    out = nnx.jit(lambda m, x: m(x))(small_htsat, jax.random.normal(jax.random.key(0), (2, 1, 501, 32)))
    assert [s.shape for s in out["stages"]] == [(2, 32, 32, 32), (2, 16, 16, 64), (2, 8, 8, 128), (2, 4, 4, 256)]
    np.testing.assert_allclose(small_htsat.norm(out["stages"][-1]), out["tokens"], atol=1e-6)


@pytest.mark.parametrize("stage", [0, 1, 3])
def test_unfold_tokens_inverts_htsat_fold(small_htsat, stage):
    """A log-mel whose value encodes (frame, mel), folded by HTSAT.to_image and pooled over the pixels of
    a stage-k token, unfolds to the (time, mel) means of that token's frames and bands."""
    target, n_mels, side = 512, 32, 4 * 2 ** stage           # frames HTSAT sees; pixels per token side
    t, m = np.meshgrid(np.arange(target), np.arange(n_mels), indexing="ij")
    mel = jnp.asarray((1000.0 * t + m)[None, None], jnp.float32)
    img = small_htsat.to_image(mel)                          # (1, 128, 128, 1)
    g = img.shape[1] // side
    grid = img.reshape(1, g, side, g, side, 1).mean(axis=(2, 4))
    got = np.asarray(decoders.unfold_tokens(grid, freq_ratio=4))[0, ..., 0]
    want = 1000.0 * (side * np.arange(target // side)[:, None] + (side - 1) / 2) \
        + (side * np.arange(n_mels // side)[None, :] + (side - 1) / 2)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def _htsat_decoder(**kw):
    cfg = decoders.DecoderConfig.for_htsat(SMALL_HTSAT, SMALL_SPEC, dim=16, n_freq=257, sample_rate=16000, **kw)
    return _init(lambda: decoders.build_decoder(cfg, rngs=nnx.Rngs(2)), seed=2)


@pytest.fixture(scope="module")
def stages(small_htsat):
    return nnx.jit(lambda m, x: m(x)["stages"])(small_htsat, jax.random.normal(jax.random.key(1), (2, 1, 501, 32)))


def test_htsat_decoder_shapes_and_gradients(stages):
    dec = _htsat_decoder()
    out = nnx.eval_shape(lambda m, s: m(s, 501), dec, stages)
    assert out.shape == (2, 501, 257) and out.dtype == jnp.float32
    norms = _grad_norms(dec, lambda m: jnp.mean(jax.nn.sigmoid(m(stages, 431)) ** 2))
    n_params = len(jax.tree_util.tree_leaves(nnx.state(dec, nnx.Param)))
    assert len(norms) == n_params and all(n > 0 for n in norms.values()), norms


def _fold(unfolded: jnp.ndarray, freq_ratio: int) -> jnp.ndarray:
    """Inverse of unfold_tokens: (B, R W, H / R, C) -> (B, H, W, C)."""
    b, t, m, c = unfolded.shape
    x = unfolded.reshape(b, freq_ratio, t // freq_ratio, m, c).transpose(0, 1, 3, 2, 4)
    return x.reshape(b, freq_ratio * m, t // freq_ratio, c)


@functools.partial(jax.jit, static_argnames=("time", "mel"))
def _perturbed(stages, time=(0.0, 1.0), mel=(0.0, 1.0)):
    """The stage outputs with a large bump on the tokens of a (time, mel) region given in fractions of
    the unfolded axes, folded back into HTSAT's layout."""
    out = []
    for s in stages:
        u = decoders.unfold_tokens(s, 4)
        (t0, t1), (m0, m1) = ((round(a * n), round(b * n)) for (a, b), n in ((time, u.shape[1]), (mel, u.shape[2])))
        bump = jnp.zeros_like(u).at[:, t0:t1, m0:m1].set(5.0 * jnp.sign(jnp.arange(u.shape[-1]) % 2 - 0.5))
        out.append(_fold(u + bump, 4))
    return out


def test_htsat_decoder_keeps_time_order(stages):
    dec, frames, margin = _htsat_decoder(), 431, 20
    run = nnx.jit(lambda m, s: m(s, frames))
    base = run(dec, stages)
    for part, (lo, hi) in {"late": (0.8, 1.0), "early": (0.0, 0.2), "middle": (0.45, 0.55)}.items():
        diff = np.abs(np.asarray(run(dec, _perturbed(stages, time=(lo, hi))) - base)).mean(axis=(0, 2))
        a, b = int(lo * frames), int(hi * frames)
        inside = diff[a:b].mean()
        outside = np.concatenate([diff[:max(a - margin, 0)], diff[b + margin:]])
        assert inside > 20 * outside.max(), (part, inside, outside.max())


def test_htsat_decoder_keeps_frequency_order(stages):
    """A bump on the lowest mel tokens changes low bins, not high ones, and the other way round; the mel
    bands sit at their centre frequencies (Slaney scale), not spread uniformly over the bins."""
    dec = _htsat_decoder()
    run = nnx.jit(lambda m, s: m(s, 301))
    base = run(dec, stages)
    hz = np.arange(257) * 16000 / 512
    for mel, near, far in (((0.0, 0.25), hz < 1000, hz > 5000), ((0.75, 1.0), hz > 4000, hz < 300)):
        diff = np.abs(np.asarray(run(dec, _perturbed(stages, mel=mel)) - base)).mean(axis=(0, 1))
        assert diff[near].mean() > 20 * diff[far].max(), (mel, diff[near].mean(), diff[far].max())


def test_mel_centres_match_filterbank_peaks():
    for spec in (SMALL_SPEC, frontend.SpectrogramConfig(sample_rate=44100, n_fft=1024, n_mels=64, fmin=50,
                                                         fmax=14000, mel_sample_rate=32000)):
        peaks = np.argmax(frontend.mel_filterbank(spec), axis=0) * spec.sample_rate / spec.n_fft
        np.testing.assert_allclose(decoders.mel_centres_hz(spec), peaks, atol=spec.sample_rate / spec.n_fft)


# --- config and checkpoints -----------------------------------------------------------------------

def test_config_json_round_trip():
    for cfg in (decoders.DecoderConfig(kind="cnn14_psi", dim=128),
                decoders.DecoderConfig.for_htsat(SMALL_HTSAT, SMALL_SPEC, dim=16, n_freq=257)):
        back = decoders.DecoderConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert back == cfg and hash(back) == hash(cfg)
    with pytest.raises(ValueError, match=r"DecoderConfig: unknown fields \['width'\]"):
        decoders.DecoderConfig.from_dict({"kind": "cnn14_psi", "width": 3})
    with pytest.raises(ValueError, match="unknown decoder kind"):
        decoders.DecoderConfig(kind="unet")


def _recipe_state(dec: decoders.Cnn14PsiDecoder) -> dict[str, np.ndarray]:
    """A recipe-style state dict of ``dec``: torch weight (in, out, kh, kw) = our kernel .transpose(2, 3, 0, 1)."""
    return {f"convt{i}.{leaf}": np.asarray(getattr(dec, f"convt{i}").kernel[...]).transpose(2, 3, 0, 1)
            if leaf == "weight" else np.asarray(getattr(dec, f"convt{i}").bias[...])
            for i in range(1, 10) for leaf in ("weight", "bias")}


def test_recipe_state_round_trip_and_mismatch(small_cnn14):
    cfg = decoders.DecoderConfig(kind="cnn14_psi", dim=64)
    src = _init(lambda: decoders.build_decoder(cfg, rngs=nnx.Rngs(5)), seed=5)
    state = _recipe_state(src)
    loaded = decoders.decoder_from_recipe_state(state, cfg)
    hs = _blocks(small_cnn14, jax.random.normal(jax.random.key(0), (1, 1, 201, 80)))
    run = nnx.jit(lambda m, h: m(h))
    np.testing.assert_array_equal(run(loaded, hs), run(src, hs))

    bad = dict(state)
    del bad["convt9.bias"]
    bad["convt10.weight"] = state["convt9.weight"]
    with pytest.raises(weights.CheckpointMismatch) as err:
        decoders.decoder_from_recipe_state(bad, cfg)
    assert err.value.missing == ["convt9.bias"] and err.value.unexpected == ["convt10.weight"]
    with pytest.raises(weights.CheckpointMismatch, match="convt1.weight"):
        decoders.decoder_from_recipe_state(state, decoders.DecoderConfig(kind="cnn14_psi", dim=128))
    with pytest.raises(ValueError, match="cnn14_psi"):
        decoders.decoder_from_recipe_state(state, decoders.DecoderConfig(kind="htsat_grid", dim=64))
