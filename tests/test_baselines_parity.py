"""Parity of lmac.baselines and lmac.sanity with their references, random weights, offline:

* captum 0.9 ``Saliency``, ``NoiseTunnel(Saliency)`` (SmoothGrad), ``IntegratedGradients`` and
  ``LayerGradCam`` + ``LayerAttribution.interpolate`` on SpeechBrain's ``Cnn14`` + ``Linear`` (the L-MAC
  recipe's classifier), converted with ``clap_jax.convert``;
* GradCAM++: pytorch-grad-cam (``grad-cam``) is not installed beside torch 2.13 here, so its
  ``GradCAMPlusPlus`` weights are computed in the test with PyTorch autograd (hooks on the block);
* ``torch.nn.functional.interpolate(mode="nearest")`` for the upsampling;
* ``skimage.metrics.structural_similarity`` for SSIM.

Most tests use SpeechBrain's Cnn14 with narrow ConvBlocks (SpeechBrain's own ``ConvBlock`` class, fewer
channels; its forward code unchanged) on 0.7 s of features (64 frames x 80 mels); the magnitude test runs
the recipe's full width (64..2048) from the STFT grid. Tolerance: |ours - ref| <= 1e-4 x max|ref| per map.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="parity tests need the pinned torch==2.13.0 (pip install -e '.[test]')")
pytestmark = [pytest.mark.parity,
              pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")]

import captum.attr as captum_attr  # noqa: E402  (with torch: part of the test extras, never skipped)
import skimage.metrics as skimage_metrics  # noqa: E402

import clap_jax  # noqa: E402
from clap_jax import convert  # noqa: E402
from lmac import baselines, sanity  # noqa: E402

K = 10
NARROW = (8, 16, 32, 32, 64, 64)
TARGET = np.array([3, 7])


def _close(got, want, what=""):
    want = np.asarray(want)
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=1e-4 * np.abs(want).max(), err_msg=what)
    assert np.abs(want).max() > 0, what


def _build(tmp_path_factory, name, channels=None):
    """SpeechBrain Cnn14(mel_bins=80, emb_dim=2048) [+ narrow ConvBlocks] + Linear, converted."""
    import reference_models
    from speechbrain.lobes.models.Cnn14 import ConvBlock
    emb, _ = reference_models.speechbrain_cnn14(seed=0, classes=K)
    if channels is not None:
        torch.manual_seed(1)
        for i, (cin, cout) in enumerate(zip((1,) + channels[:-1], channels)):
            setattr(emb, f"conv_block{i + 1}", ConvBlock(cin, cout, "bn"))
        reference_models.randomize_batchnorm(emb, 2)
    clf = torch.nn.Linear(emb.conv_block6.conv2.weight.shape[0], K)
    emb.eval(), clf.eval()
    d = tmp_path_factory.mktemp(name)
    torch.save(emb.state_dict(), d / "embedding_model.ckpt")
    torch.save(clf.state_dict(), d / "classifier.ckpt")
    (d / "label_encoder.txt").write_text("".join(f"'c{i}' => {i}\n" for i in range(K))
                                         + "================\n'starting_index' => 0\n")
    convert.convert("speechbrain", str(d), str(d / "converted"))
    return emb, clf, clap_jax.load_classifier(str(d / "converted"))


class _Logits(torch.nn.Module):
    """features (B, 1, T, M) -> logits (B, K); with ``fbank``: magnitude (B, T, F) -> log1p(fbank) first.
    Records every input it is called with (captum's noisy SmoothGrad inputs)."""

    def __init__(self, emb, clf, fbank=None):
        super().__init__()
        self.emb, self.clf, self.fbank, self.seen = emb, clf, fbank, []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        if self.fbank is not None:
            x = torch.log1p(self.fbank(x))
        return self.clf(self.emb(x)[0]).squeeze(1)


@pytest.fixture(scope="module")
def narrow(tmp_path_factory):
    emb, clf, ours = _build(tmp_path_factory, "narrow", NARROW)
    assert ours.spec.model.channels == NARROW
    return _Logits(emb, clf), ours


def _features(b=2, t=64, seed=0):
    return np.log1p(np.random.default_rng(seed).uniform(0, 4, (b, 1, t, 80))).astype(np.float32)


def _ours(clf, fn, x, target=TARGET, from_magnitude=False, **kw):
    with jax.default_matmul_precision("highest"):
        run = jax.jit(lambda s, v, t: fn(baselines.classifier_forward(clf, s, from_magnitude=from_magnitude),
                                         v, t, **kw))
        return np.asarray(run(clf.state, jnp.asarray(x), jnp.asarray(target)))


def test_saliency_and_integrated_gradients_match_captum(narrow):
    model, ours = narrow
    x = _features()
    xt, tt = torch.from_numpy(x), torch.from_numpy(TARGET)
    with torch.no_grad():
        np.testing.assert_allclose(ours.apply(ours.state, jnp.asarray(x))["logits"], model(xt).numpy(), atol=1e-5)
    ref = captum_attr.Saliency(model).attribute(xt, target=tt).numpy()
    _close(_ours(ours, baselines.saliency, x), ref, "saliency")
    ig = captum_attr.IntegratedGradients(model)
    ref = ig.attribute(xt, target=tt, n_steps=6).detach().numpy()                     # gausslegendre
    _close(_ours(ours, baselines.integrated_gradients, x, n_steps=6), ref, "IG gausslegendre")
    ref = ig.attribute(xt, target=tt, n_steps=4, method="riemann_trapezoid").detach().numpy()
    _close(_ours(ours, baselines.integrated_gradients, x, n_steps=4, method="riemann_trapezoid"), ref, "IG trapezoid")


def test_smoothgrad_matches_captum_with_its_own_noise(narrow):
    """captum draws the noise with torch; the model records the noisy inputs captum evaluated, and
    our SmoothGrad gets exactly those perturbations (row b * nt + s is example b, sample s)."""
    model, ours = narrow
    x, nt = _features(seed=1), 3
    xt = torch.from_numpy(x)
    model.seen.clear()
    torch.manual_seed(5)
    ref = captum_attr.NoiseTunnel(captum_attr.Saliency(model)).attribute(
        xt, nt_type="smoothgrad", nt_samples=nt, stdevs=0.5, target=torch.from_numpy(TARGET)).numpy()
    noisy = [s for s in model.seen if s.shape[0] == 2 * nt]
    assert len(noisy) == 1
    noise = (noisy[0] - xt.repeat_interleave(nt, dim=0)).numpy().reshape(2, nt, *x.shape[1:])
    assert 0.4 < noise.std() < 0.6
    _close(_ours(ours, baselines.smoothgrad, x, noise=jnp.asarray(noise)), ref, "smoothgrad")
    # the same formula with other noise is a different map: the comparison is not vacuous
    other = _ours(ours, baselines.smoothgrad, x, noise=jnp.asarray(-noise))
    assert np.abs(other - ref).max() > 1e-2 * np.abs(ref).max()


@pytest.mark.parametrize("layer", [5, 3])
def test_gradcam_matches_captum(narrow, layer):
    """``LayerGradCam(conv_block{layer+1}).attribute(relu_attributions=True)`` + ``interpolate`` (nearest)."""
    model, ours = narrow
    x = _features(seed=2)
    cam = captum_attr.LayerGradCam(model, getattr(model.emb, f"conv_block{layer + 1}"))
    attr = cam.attribute(torch.from_numpy(x), target=torch.from_numpy(TARGET), relu_attributions=True)
    ref = captum_attr.LayerAttribution.interpolate(attr, x.shape[-2:]).detach().numpy()
    _close(_ours(ours, baselines.gradcam, x, layer=layer), ref, f"gradcam block {layer + 1}")


def _gradcam_pp_torch(model, block, x, target):
    """pytorch-grad-cam's GradCAMPlusPlus weights with PyTorch autograd, then F.interpolate (nearest)."""
    store = {}

    def keep(module, args, out):          # returns None: the output is not replaced
        out.retain_grad()
        store["a"] = out
    hook = block.register_forward_hook(keep)
    try:
        logits = model(torch.from_numpy(x))
        logits.gather(1, torch.from_numpy(target)[:, None]).sum().backward()
    finally:
        hook.remove()
    a, g = store["a"].detach(), store["a"].grad
    g2 = g ** 2
    aij = g2 / (2 * g2 + a.sum(dim=(2, 3), keepdim=True) * g2 * g + 1e-6)
    aij = torch.where(g != 0, aij, torch.zeros_like(aij))
    w = (torch.clamp(g, min=0) * aij).sum(dim=(2, 3), keepdim=True)
    cam = torch.relu((w * a).sum(dim=1, keepdim=True))
    return torch.nn.functional.interpolate(cam, size=x.shape[-2:], mode="nearest").numpy()


@pytest.mark.parametrize("layer", [5, 4])
def test_gradcam_pp_matches_torch_autograd(narrow, layer):
    model, ours = narrow
    x = _features(seed=3)
    ref = _gradcam_pp_torch(model, getattr(model.emb, f"conv_block{layer + 1}"), x, TARGET)
    _close(_ours(ours, baselines.gradcam_pp, x, layer=layer), ref, f"gradcam++ block {layer + 1}")


def test_full_width_from_magnitude(tmp_path_factory):
    """The recipe's CNN14 (64..2048 channels) on a linear magnitude (B, T, 513) through SpeechBrain's
    Filterbank + log1p: Saliency and GradCAM (block 6, upsampled to the STFT grid) as captum computes them."""
    import reference_models  # noqa: F401  (torchaudio stand-in before speechbrain)
    from speechbrain.processing.features import Filterbank
    emb, clf, ours = _build(tmp_path_factory, "full")
    assert ours.spec.model.channels == (64, 128, 256, 512, 1024, 2048)
    model = _Logits(emb, clf, Filterbank(n_mels=80, n_fft=1024, sample_rate=16000, log_mel=False))
    mag = np.random.default_rng(4).uniform(0, 3, (2, 48, 513)).astype(np.float32)
    mt, tt = torch.from_numpy(mag), torch.from_numpy(TARGET)
    ref = captum_attr.Saliency(model).attribute(mt, target=tt).numpy()
    _close(_ours(ours, baselines.saliency, mag, from_magnitude=True), ref, "saliency on |X|")
    attr = captum_attr.LayerGradCam(model, emb.conv_block6).attribute(mt, target=tt, relu_attributions=True)
    ref = captum_attr.LayerAttribution.interpolate(attr, mag.shape[-2:]).detach().numpy()[:, 0]
    assert ref.shape == mag.shape
    _close(_ours(ours, baselines.gradcam, mag, from_magnitude=True), ref, "gradcam on the STFT grid")


@pytest.mark.parametrize("n_in,n_out", [(2, 64), (3, 101), (5, 80), (2, 513), (12, 431), (13, 425), (6, 6),
                                         (3, 1000), (7, 3)])
def test_nearest_upsampling_matches_torch(n_in, n_out):
    cam = np.random.default_rng(n_in * n_out).standard_normal((2, n_in, n_in + 1)).astype(np.float32)
    size = (n_out, n_out + 3)
    ref = torch.nn.functional.interpolate(torch.from_numpy(cam)[:, None], size=size, mode="nearest")[:, 0]
    np.testing.assert_array_equal(baselines.upsample_nearest(jnp.asarray(cam), size), ref.numpy())


@pytest.mark.parametrize("shape,win,sample_cov,data_range",
                         [((40, 32), 7, True, 1.0), ((64, 80), 7, True, 2.5), ((21, 9), 5, False, 1.0),
                          ((101, 513), 7, True, 1.0)])
def test_ssim_matches_skimage(shape, win, sample_cov, data_range):
    rng = np.random.default_rng(0)
    a = rng.uniform(0, data_range, (3,) + shape).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.2 * data_range, a.shape), 0, data_range).astype(np.float32)
    b[2] = rng.uniform(0, data_range, shape)                        # one unrelated pair
    ref = [skimage_metrics.structural_similarity(a[i], b[i], win_size=win, data_range=data_range,
                                                 gaussian_weights=False, use_sample_covariance=sample_cov)
           for i in range(3)]
    got = sanity.ssim(jnp.asarray(a), jnp.asarray(b), data_range=data_range, win_size=win,
                      use_sample_covariance=sample_cov)
    np.testing.assert_allclose(np.asarray(got), ref, rtol=0, atol=1e-5)
    assert ref[0] > ref[2] + 0.3         # similar and unrelated pairs both covered
