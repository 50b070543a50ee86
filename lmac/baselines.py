"""Post-hoc explanation baselines for CNN14 classifiers, batched JAX equivalents of captum's
``Saliency``, ``NoiseTunnel(Saliency)`` (SmoothGrad), ``IntegratedGradients``, ``LayerGradCam`` and
of pytorch-grad-cam's ``GradCAMPlusPlus``::

    forward = classifier_forward(clf, state, from_magnitude=True)   # x -> logits, blocks (taps)
    x (B, T, F) magnitude | (B, 1, T, M) features, target (B,) ints
      -> gradients of logits[b, target[b]] w.r.t. x  -> saliency / smoothgrad / integrated_gradients
      -> gradients w.r.t. blocks[layer] (a zero tap)  -> gradcam / gradcam_pp (B, h, w)
                                                      -> nearest upsampling to x's (T, F) grid

Every map has x's shape. ``forward(x, taps=None)`` is pure and returns ``logits`` (B, K) and
``blocks`` (the six NHWC CNN14 block outputs); ``taps`` ({block index: array of that block's
shape}) are added to the block outputs, so that GradCAM differentiates with respect to them
(the saliency family only calls ``forward(x)``). The examples of a batch are independent
(BatchNorm uses running statistics), so the gradient of sum_b logits[b, target[b]] is the
per-example gradient: no loop over examples. For parity with PyTorch run the functions under
``jax.default_matmul_precision("highest")``; jit them with the state as an argument
(``jax.jit(lambda s, x, t: saliency(classifier_forward(clf, s), x, t))``), not as a constant.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lmac.sanity import minmax

Forward = Callable[..., dict]
BASELINES: dict[str, Callable] = {}      # name -> fn(forward, x, target, **options) -> map of x's shape
NEEDS_KEY = {"smoothgrad"}               # baselines that draw noise: pass key=jax.random.key(...)


def register(name: str):
    def wrap(fn):
        BASELINES[name] = fn
        return fn
    return wrap


def explain_with(name: str, forward: Forward, x, target, *, key=None, **options) -> jnp.ndarray:
    """Resolves ``name`` in :data:`BASELINES` (``lmac.evaluate --methods=...``) and runs it; ``key``
    is passed only to the baselines that need one."""
    if name not in BASELINES:
        raise KeyError(f"unknown baseline {name!r}; known: {sorted(BASELINES)}")
    if name in NEEDS_KEY:
        options["key"] = key
    return BASELINES[name](forward, x, target, **options)


# ------------------------------------------------------------------ forwards

class _Tapped:
    """Calls a ConvBlock with an additive tap on its input or its output (a plain callable, so
    the merged module keeps its graph; only used inside one trace)."""

    def __init__(self, block, pre=None, post=None):
        self.block, self.pre, self.post = block, pre, post

    def __call__(self, x):
        y = self.block(x if self.pre is None else x + self.pre)
        return y if self.post is None else y + self.post


def map_to_mask(m: jnp.ndarray, signed: bool = False) -> jnp.ndarray:
    """(N, T, F) attribution maps -> masks in [0, 1], per row: the positive part (the evidence for the
    target), then min-max. The one conversion of every baseline's map, in ``lmac.evaluate`` and its
    zero-shot mode: a no-op ReLU for the CAMs, Saliency and SmoothGrad (maps >= 0); for Integrated
    Gradients it keeps only the bins that raised the logit. With ``signed`` the map itself is min-max
    scaled: its zero (no effect on the logit) becomes a mid grey, and IG's masks then keep about half
    of every bin."""
    return minmax(m if signed else jnp.maximum(m, 0))


def cnn14_forward(graphdef, state, to_features: Callable | None = None) -> Forward:
    """Pure forward of a :class:`clap_jax.models.cnn14.Cnn14` split with ``nnx.split``:
    ``forward(x, taps=None)`` -> the model's dict (``logits`` (B, K), ``blocks``). ``to_features``
    maps x to the model input (B, 1, frames, n_mels) (e.g. ``clf.log_mel_from_magnitude``).
    A tap on blocks[k] (pooled output of conv_block{k+1}) is added where that output enters the next
    block (or at conv_block6's output for the last), so d(logits)/d(tap) = d(logits)/d(blocks[k])."""
    def forward(x, taps: dict | None = None) -> dict:
        model = nnx.merge(graphdef, state)
        n = len(model.blocks)
        for k, tap in (taps or {}).items():
            k = k % n
            name = f"conv_block{k + 2}" if k < n - 1 else f"conv_block{n}"
            block = getattr(model, name)
            setattr(model, name, _Tapped(block, pre=tap) if k < n - 1 else _Tapped(block, post=tap))
        return model(x if to_features is None else to_features(x))
    return forward


def classifier_forward(clf, state=None, *, from_magnitude: bool = False) -> Forward:
    """:func:`cnn14_forward` of a ``clap_jax.Classifier``: input features (B, 1, frames, n_mels), or
    with ``from_magnitude`` the linear STFT magnitude (B, frames, n_freq) through the classifier's
    own mel bank and compression."""
    return cnn14_forward(clf.graphdef, clf.state if state is None else state,
                         clf.log_mel_from_magnitude if from_magnitude else None)


def _score(logits: jnp.ndarray, target: jnp.ndarray) -> jnp.ndarray:
    """sum_b logits[b, target[b]]: its gradient is every example's own gradient."""
    return jnp.take_along_axis(logits, jnp.asarray(target, jnp.int32)[:, None], axis=1).sum()


def input_gradient(forward: Forward, x: jnp.ndarray, target: jnp.ndarray) -> jnp.ndarray:
    """d logits[b, target[b]] / d x[b], x's shape."""
    return jax.grad(lambda v: _score(forward(v)["logits"], target))(x)


# ------------------------------------------------------------------ gradient family

@register("saliency")
def saliency(forward: Forward, x: jnp.ndarray, target: jnp.ndarray, *, abs: bool = True) -> jnp.ndarray:
    """captum ``Saliency``: |d logit_target / d x| (``abs=True``, captum's default), x's shape."""
    g = input_gradient(forward, x, target)
    return jnp.abs(g) if abs else g


@register("smoothgrad")
def smoothgrad(forward: Forward, x: jnp.ndarray, target: jnp.ndarray, *, key=None, stdev: float = 1.0,
               nt_samples: int = 5, noise: jnp.ndarray | None = None, abs: bool = True) -> jnp.ndarray:
    """captum ``NoiseTunnel(Saliency).attribute(nt_type="smoothgrad", stdevs=stdev, nt_samples=...)``:
    the mean over samples s of saliency(x + n_s), n_s ~ N(0, stdev^2) in x's units, x's shape.

    ``noise`` (B, nt_samples, *x.shape[1:]) gives the perturbations themselves (already scaled by
    stdev; captum's draw for example b, sample s is its row b * nt_samples + s); otherwise they are
    drawn from ``key``. Samples run as a ``lax.scan`` (memory of one batch)."""
    if noise is None:
        if key is None:
            raise ValueError("smoothgrad draws noise: pass key=jax.random.key(seed) (or noise=...)")
        noise = stdev * jax.random.normal(key, (x.shape[0], nt_samples) + x.shape[1:], x.dtype)
    noise = jnp.moveaxis(jnp.asarray(noise, x.dtype), 1, 0)            # (S, B, ...)

    def step(acc, n):
        return acc + saliency(forward, x + n, target, abs=abs), None
    total, _ = jax.lax.scan(step, jnp.zeros_like(x), noise)
    return total / noise.shape[0]


def ig_points(n_steps: int, method: str = "gausslegendre") -> tuple[np.ndarray, np.ndarray]:
    """captum's integration points ``alphas`` in [0, 1] and weights ``step_sizes``, float64:
    "gausslegendre" (captum's default; Legendre nodes and weights mapped from [-1, 1] to [0, 1]) or
    "riemann_left|right|middle|trapezoid"."""
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n_steps)
        return 0.5 * (1 + nodes), 0.5 * weights
    kinds = {"riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle"}
    if method not in kinds:
        raise ValueError(f"unknown IG method {method!r}; use 'gausslegendre' or one of {sorted(kinds)}")
    if n_steps < 2:
        raise ValueError("Riemann IG needs n_steps > 1 (as captum)")
    n = n_steps
    steps = np.full(n, 1.0 / n)
    if method == "riemann_trapezoid":
        steps[0] /= 2
        steps[-1] /= 2
        alphas = np.linspace(0, 1, n)
    elif method == "riemann_left":
        alphas = np.linspace(0, 1 - 1 / n, n)
    elif method == "riemann_middle":
        alphas = np.linspace(1 / (2 * n), 1 - 1 / (2 * n), n)
    else:
        alphas = np.linspace(1 / n, 1, n)
    # captum builds these with torch.linspace in float32 and then .tolist()
    return alphas.astype(np.float32).astype(np.float64), steps


@register("integrated_gradients")
def integrated_gradients(forward: Forward, x: jnp.ndarray, target: jnp.ndarray, *, n_steps: int = 50,
                         method: str = "gausslegendre", baseline: jnp.ndarray | float = 0.0) -> jnp.ndarray:
    """captum ``IntegratedGradients`` (multiply_by_inputs): (x - x0) * sum_i w_i g(x0 + a_i (x - x0)),
    g the target logit's input gradient, x0 = ``baseline`` (zeros), (a_i, w_i) = :func:`ig_points`.
    Steps run as a ``lax.scan``; x's shape."""
    alphas, weights = ig_points(n_steps, method)
    x0 = jnp.broadcast_to(jnp.asarray(baseline, x.dtype), x.shape)
    delta = x - x0

    def step(acc, aw):
        a, w = aw
        return acc + w * input_gradient(forward, x0 + a * delta, target), None
    total, _ = jax.lax.scan(step, jnp.zeros_like(x),
                            (jnp.asarray(alphas, x.dtype), jnp.asarray(weights, x.dtype)))
    return delta * total


# ------------------------------------------------------------------ CAM family

def layer_gradients(forward: Forward, x: jnp.ndarray, target: jnp.ndarray, layer: int = -1):
    """Activations A = blocks[layer] (B, h, w, C) and d logit_target / d A, one forward + backward."""
    shape = jax.eval_shape(forward, x)["blocks"][layer]

    def score(tap):
        out = forward(x, taps={layer: tap})
        return _score(out["logits"], target), out["blocks"][layer]
    grads, acts = jax.grad(score, has_aux=True)(jnp.zeros(shape.shape, shape.dtype))
    return acts, grads


def nearest_indices(n_in: int, n_out: int) -> np.ndarray:
    """Source rows of ``F.interpolate(mode="nearest")``: min(floor(i * (n_in / n_out)), n_in - 1) with
    the scale and product in float32, as PyTorch's CPU kernel computes them."""
    if n_out == n_in:
        return np.arange(n_out)
    scale = np.float32(n_in) / np.float32(n_out)
    return np.minimum(np.floor(np.arange(n_out, dtype=np.float32) * scale).astype(np.int64), n_in - 1)


def upsample_nearest(cam: jnp.ndarray, size: tuple[int, int]) -> jnp.ndarray:
    """(B, h, w) -> (B, *size): captum ``LayerAttribution.interpolate`` (default mode "nearest")."""
    return cam[:, nearest_indices(cam.shape[1], size[0])][:, :, nearest_indices(cam.shape[2], size[1])]


def _to_grid(cam: jnp.ndarray, x: jnp.ndarray, size) -> jnp.ndarray:
    """Upsample (B, h, w) to x's last two axes (or ``size``) and give it x's leading axes."""
    if size is not None:
        return upsample_nearest(cam, tuple(size))
    return upsample_nearest(cam, x.shape[-2:]).reshape(x.shape)


@register("gradcam")
def gradcam(forward: Forward, x: jnp.ndarray, target: jnp.ndarray, *, layer: int = -1, relu: bool = True,
            size: tuple[int, int] | None = None) -> jnp.ndarray:
    """captum ``LayerGradCam(layer=conv_block{layer+1}).attribute(relu_attributions=True)`` +
    ``LayerAttribution.interpolate`` (nearest): ReLU(sum_c mean_hw(dS/dA_c) * A_c), upsampled to x's
    (frames, bins) grid, x's shape; ``size`` (T, F) gives (B, T, F) instead (e.g. features in, map on
    the STFT grid). ``layer`` indexes ``blocks`` (-1 = conv_block6)."""
    acts, grads = layer_gradients(forward, x, target, layer)
    cam = jnp.sum(grads.mean(axis=(1, 2), keepdims=True) * acts, axis=-1)     # (B, h, w)
    return _to_grid(jax.nn.relu(cam) if relu else cam, x, size)


@register("gradcam_pp")
def gradcam_pp(forward: Forward, x: jnp.ndarray, target: jnp.ndarray, *, layer: int = -1,
               size: tuple[int, int] | None = None, eps: float = 1e-6) -> jnp.ndarray:
    """GradCAM++ (Chattopadhyay et al. 2018) as pytorch-grad-cam's ``GradCAMPlusPlus`` computes it,
    with the exp(score) trick (higher derivatives of exp(S) are powers of dS/dA, g = dS/dA):
    alpha = g^2 / (2 g^2 + sum_hw(A) g^3 + eps) (0 where g = 0), w_c = sum_hw(alpha * ReLU(g)),
    map = ReLU(sum_c w_c A_c), upsampled as :func:`gradcam` (nearest; pytorch-grad-cam's own min-max
    scaling and cv2 resize are left out). x's shape, or (B, *size)."""
    acts, g = layer_gradients(forward, x, target, layer)
    g2 = g * g
    alpha = g2 / (2 * g2 + acts.sum(axis=(1, 2), keepdims=True) * g2 * g + eps)
    alpha = jnp.where(g != 0, alpha, 0.0)
    w = jnp.sum(alpha * jax.nn.relu(g), axis=(1, 2), keepdims=True)             # (B, 1, 1, C)
    return _to_grid(jax.nn.relu(jnp.sum(w * acts, axis=-1)), x, size)
