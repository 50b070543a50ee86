"""L-MAC decoders: a frozen encoder's internal representations -> a pre-sigmoid mask on the STFT grid.

    Cnn14 blocks 6, 5, 4, 3 (NHWC)  --Cnn14PsiDecoder (SpeechBrain CNN14PSI_stft)-->  (B, T_out, 513)
    HTSAT stages 1..4 (folded token grids) --unfold--> (time, mel) pyramids
        --1x1 proj, top-down 2x transposed convs--> (S*R frames, n_mels) --interp--> (B, T, n_freq)
    mask = sigmoid(decoder(...))            # the caller applies the sigmoid (the recipe does too)

HTSAT folds its S*R stretched frames into an S x S image (R = S / n_mels chunks of S frames stacked
along the rows), so a stage-k token at (row i, column j) of an (H, W) grid is mel token i mod (H/R)
at time token (i // (H/R)) * W + j; ``unfold_tokens`` undoes the fold before any convolution.

``ConvTranspose2d`` has PyTorch ``nn.ConvTranspose2d`` semantics on NHWC activations: output size
(in - 1) * stride - 2 * padding + kernel (no output padding, no dilation). Its ``kernel`` is stored
(kh, kw, in, out) = the PyTorch weight (in, out, kh, kw) ``.transpose(2, 3, 0, 1)``, not flipped
(the flip of the gradient-of-convolution formulation happens at call time); ``bias`` is (out,).
The class attribute ``torch_layout = "conv_transpose"`` tells ``clap_jax.weights`` that layout.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from clap_jax import weights
from clap_jax.configs import from_config

HIGHEST = jax.lax.Precision.HIGHEST

# Our parameter path -> the recipe's ``psi_model`` key: none needed, the attribute names are the
# recipe's (``convt1`` .. ``convt9``) and ``clap_jax.weights`` maps a ConvTranspose2d's ``kernel``
# (it declares ``torch_layout = "conv_transpose"``) to the PyTorch ``weight``.
PSI_RULES: tuple[tuple[str, str], ...] = ()


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


class ConvTranspose2d(nnx.Module):
    """PyTorch ``nn.ConvTranspose2d(cin, cout, kernel_size, stride, padding)`` on (B, H, W, cin).

    Output (B, (H - 1) sh - 2 ph + kh, (W - 1) sw - 2 pw + kw, cout). Initialised as PyTorch does
    (uniform +-1/sqrt(cout kh kw) for weight and bias). A transposed convolution scatters
    ``full[i sh + a, j sw + b] += x[i, j] @ kernel[a, b]``; output row i sh + r (phase r) collects
    kernel row a = q sh + r from input row i - q. So each kernel offset is one matmul over
    channels, added to its phase shifted by q, and the phases are interleaved by a reshape
    ("depth to space"); ``p`` is then cropped per side (p > k - 1, as in the recipe's convt7, crops
    into the kernel's reach). Matmuls, pads and adds have matmul, slice and add gradients:
    XLA:CPU runs the input-dilated convolution of ``lax.conv_transpose``, and above all its kernel
    gradient, 3-10x slower (measured on the recipe's layers).
    """

    torch_layout = "conv_transpose"

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, *,
                 use_bias: bool = True, dtype=jnp.float32, rngs: nnx.Rngs):
        self.kernel_size, self.stride, self.padding = _pair(kernel_size), _pair(stride), _pair(padding)
        kh, kw = self.kernel_size
        bound = 1.0 / math.sqrt(out_channels * kh * kw)
        self.kernel = nnx.Param(jax.random.uniform(rngs.params(), (kh, kw, in_channels, out_channels),
                                                   jnp.float32, -bound, bound))
        self.bias = (nnx.Param(jax.random.uniform(rngs.params(), (out_channels,), jnp.float32, -bound, bound))
                     if use_bias else None)
        self.dtype = dtype

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        b, h, w, _ = x.shape
        qh, qw = -(-kh // sh), -(-kw // sw)                   # kernel offsets per output phase
        x, kernel = x.astype(self.dtype), self.kernel[...].astype(self.dtype)
        zeros = jnp.zeros((b, h + qh - 1, w + qw - 1, kernel.shape[-1]), self.dtype)
        phases = [[zeros] * sw for _ in range(sh)]
        for a in range(kh):                                    # offset (a, c) = (q sh + r, q' sw + r')
            for c in range(kw):
                (q, r), (q2, r2) = divmod(a, sh), divmod(c, sw)
                y = jnp.einsum("nhwc,co->nhwo", x, kernel[a, c], precision=HIGHEST)
                phases[r][r2] = phases[r][r2] + jnp.pad(y, ((0, 0), (q, qh - 1 - q), (q2, qw - 1 - q2), (0, 0)))
        # (B, H + qh - 1, sh, W + qw - 1, sw, O): interleave the phases, crop to the full extent, then p
        full = jnp.stack([jnp.stack(row, axis=3) for row in phases], axis=2)
        full = full.reshape(b, (h + qh - 1) * sh, (w + qw - 1) * sw, -1)
        hf, wf = (h - 1) * sh + kh, (w - 1) * sw + kw
        y = full[:, ph:hf - ph, pw:wf - pw]
        if self.bias is not None:
            y = y + self.bias[...].astype(self.dtype)
        return y


class Cnn14PsiDecoder(nnx.Module):
    """SpeechBrain's L-MAC decoder ``CNN14PSI_stft(dim, outdim)`` (``lobes/models/Cnn14.py``).

    ``dim`` = channels of the classifier's last block (2048 in the recipe); blocks 5, 4, 3 have
    dim/2, dim/4, dim/8. Four U-Net-style sums of transposed convolutions (table: methods.md B.2);
    ReLU after every layer but convt8 and convt9. Frame counts: 201 -> 201, 300 -> 297, 431 -> 425
    input frames (80 mels -> 513 bins); the caller crops its spectrogram to the decoder's frames.
    """

    def __init__(self, dim: int, outdim: int = 1, *, rngs: nnx.Rngs, dtype=jnp.float32):
        if dim % 8:
            raise ValueError(f"dim must be a multiple of 8, got {dim}")
        d, ct = dim, lambda *a: ConvTranspose2d(*a, dtype=dtype, rngs=rngs)
        self.convt1 = ct(d, d, 3, (2, 4), 1)
        self.convt2 = ct(d // 2, d, 3, (2, 4), 1)
        self.convt3 = ct(d, d, (7, 4), (2, 4), 1)
        self.convt4 = ct(d // 4, d, (5, 4), (2, 4), 1)
        self.convt5 = ct(d, d // 2, (3, 5), (2, 2), 1)
        self.convt6 = ct(d // 8, d // 2, 3, (2, 4), 1)
        self.convt7 = ct(d // 2, d // 4, (4, 3), (2, 2), (0, 5))
        self.convt8 = ct(d // 4, d // 8, (3, 4), (2, 2), (0, 2))
        self.convt9 = ct(d // 8, outdim, (1, 5), (1, 4), 0)
        self.dim, self.outdim = dim, outdim

    def __call__(self, hs: Sequence[jnp.ndarray], condition=None) -> jnp.ndarray:
        """``hs``: (block6, block5, block4, block3) NHWC, (B, T/32, F/32, dim), (B, T/32, F/32, dim/2),
        (B, T/16, F/16, dim/4), (B, T/8, F/8, dim/8) (our ``Cnn14`` ``blocks[5], [4], [3], [2]``).
        ``condition(level, h) -> h`` (LMAC-ZS) acts after each of the three skip sums (levels 0, 1, 2,
        widths dim, dim, dim/2).

        Returns the pre-sigmoid map (B, T_out, F_out) float32 ((B, T_out, F_out, outdim) if outdim > 1).
        At the recipe's geometry (80 mels) the skip sums line up exactly; at others (Microsoft CLAP's
        64 mels, other clip lengths) both summands are cropped to their common extent.
        """
        relu = jax.nn.relu
        condition = condition or (lambda level, h: h)
        h = condition(0, _add_cropped(relu(self.convt1(hs[0])), relu(self.convt2(hs[1]))))
        h = condition(1, _add_cropped(relu(self.convt3(h)), relu(self.convt4(hs[2]))))
        h = condition(2, _add_cropped(relu(self.convt5(h)), relu(self.convt6(hs[3]))))
        h = self.convt9(self.convt8(relu(self.convt7(h))))
        return (h[..., 0] if self.outdim == 1 else h).astype(jnp.float32)


def _add_cropped(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """a + b (NHWC), both cropped to their common (H, W) (a no-op where the shapes agree)."""
    h, w = min(a.shape[1], b.shape[1]), min(a.shape[2], b.shape[2])
    return a[:, :h, :w] + b[:, :h, :w]


# ---------------------------------------------------------------------------------------------
# HTSAT token grids
# ---------------------------------------------------------------------------------------------

def unfold_tokens(grid: jnp.ndarray, freq_ratio: int) -> jnp.ndarray:
    """A folded HTSAT token grid (B, H, W, C) -> a (time, mel) grid (B, freq_ratio * W, H / freq_ratio, C).

    HTSAT stretches the log-mel to S * R frames (S = spec_size, R = freq_ratio = S / n_mels) and
    folds it into an S x S image whose row is chunk * n_mels + mel and column the frame within the
    chunk (chunk = frame // S). A stage-k token (row i, column j) therefore covers mel tokens
    i mod (H / R) of chunk i // (H / R) and time tokens chunk * W + j: unfolding stacks the R chunks
    along time. Needs H divisible by R (n_mels a multiple of patch_size * 2^k).
    """
    b, h, w, c = grid.shape
    if h % freq_ratio:
        raise ValueError(f"token grid of {h} rows does not split into {freq_ratio} chunks: n_mels must be a "
                         f"multiple of patch_size * 2^stage")
    x = grid.reshape(b, freq_ratio, h // freq_ratio, w, c).transpose(0, 1, 3, 2, 4)
    return x.reshape(b, freq_ratio * w, h // freq_ratio, c)


def mel_centres_hz(spec) -> tuple[float, ...]:
    """Centre frequency (Hz, of the audio as heard) of each mel band of a ``frontend.SpectrogramConfig``.

    Slaney and HTK banks put n_mels + 2 equally spaced mel points between fmin and fmax, band m peaks
    at point m + 1; SpeechBrain's bank is HTK-scaled. With ``mel_sample_rate`` (a bank designed for
    another rate, Microsoft CLAP 2023) the centres move by sample_rate / mel_sample_rate.
    """
    import librosa
    pts = librosa.mel_frequencies(spec.n_mels + 2, fmin=spec.fmin, fmax=spec.fmax, htk=spec.mel_scale != "slaney")
    scale = spec.sample_rate / spec.mel_sample_rate if spec.mel_sample_rate else 1.0
    return tuple(float(f) * scale for f in pts[1:-1])


def _interp_matrix(positions: np.ndarray, n: int) -> np.ndarray:
    """(len(positions), n) linear interpolation weights at fractional indices, clamped to the edges."""
    pos = np.clip(np.asarray(positions, np.float64), 0, n - 1)
    lo = np.minimum(np.floor(pos).astype(int), max(n - 2, 0))
    frac = pos - lo
    m = np.zeros((len(pos), n), np.float64)
    rows = np.arange(len(pos))
    m[rows, lo] += 1 - frac
    if n > 1:
        m[rows, lo + 1] += frac
    else:
        m[rows, 0] = 1.0
    return m.astype(np.float32)


class HtsatGridDecoder(nnx.Module):
    """A small U-Net decoder for HTSAT stage outputs -> pre-sigmoid map on an STFT grid (B, T, n_freq).

    Each stage grid (B, G/2^k, G/2^k, embed_dim 2^k) is unfolded to (time, mel) (``unfold_tokens``):
    (S R / (p 2^k), n_mels / (p 2^k)), exactly half the previous one per axis. Per stage: LayerNorm
    + 1x1 projection to ``dim``; top-down from the last stage: ReLU(2x ConvTranspose2d(k4, s2, p1))
    + projection, then ReLU(3x3 conv). A ConvTranspose2d(k=s=patch) un-patchifies to (S R, n_mels)
    pixels at dim/2 channels, a 3x3 conv gives ``outdim`` channels. Finally a fixed separable linear
    interpolation maps to the caller's grid: output frame i (of T, spanning the same time as the
    frames the HTSAT saw, whose bicubic align-corners stretch to S R frames we undo) sits at pixel
    i (S R - 1) / (T - 1); STFT bin k (at k sample_rate / (2 (n_freq - 1)) Hz) at the mel index its
    frequency has between the mel centres (``mel_centres_hz``; uniform spacing when None), edges clamped.
    """

    def __init__(self, dim: int, *, embed_dim: int, num_stages: int = 4, n_mels: int = 64,
                 spec_size: int = 256, patch_size: int = 4, n_freq: int = 513, sample_rate: float = 16000.0,
                 mel_centres_hz: Sequence[float] | None = None, outdim: int = 1,
                 rngs: nnx.Rngs, dtype=jnp.float32):
        if spec_size % n_mels or n_mels % (patch_size * 2 ** (num_stages - 1)):
            raise ValueError(f"HTSAT geometry not supported: spec_size {spec_size}, n_mels {n_mels}, "
                             f"patch {patch_size}, {num_stages} stages")
        if mel_centres_hz is not None and len(mel_centres_hz) != n_mels:
            raise ValueError(f"{len(mel_centres_hz)} mel centres for {n_mels} mels")
        self.freq_ratio, self.n_mels, self.n_freq, self.outdim = spec_size // n_mels, n_mels, n_freq, outdim
        self.frames_in = spec_size * self.freq_ratio
        if mel_centres_hz is None:
            freq_pos = np.linspace(0, n_mels - 1, n_freq)
        else:
            hz = np.arange(n_freq) * sample_rate / (2 * (n_freq - 1))
            freq_pos = np.interp(hz, np.asarray(mel_centres_hz, np.float64), np.arange(n_mels))
        self.freq_positions = tuple(float(f) for f in freq_pos)        # static: hashable, not an array
        chans = [embed_dim * 2 ** k for k in range(num_stages)]
        self.norms = nnx.List([nnx.LayerNorm(c, dtype=dtype, rngs=rngs) for c in chans])
        self.proj = nnx.List([nnx.Linear(c, dim, dtype=dtype, precision=HIGHEST, rngs=rngs) for c in chans])
        self.up = nnx.List([ConvTranspose2d(dim, dim, 4, 2, 1, dtype=dtype, rngs=rngs)
                            for _ in range(num_stages - 1)])
        conv = lambda cin, cout: nnx.Conv(cin, cout, (3, 3), padding="SAME", dtype=dtype, precision=HIGHEST,
                                          rngs=rngs)
        self.fuse = nnx.List([conv(dim, dim) for _ in range(num_stages - 1)])
        self.unpatch = ConvTranspose2d(dim, dim // 2, patch_size, patch_size, 0, dtype=dtype, rngs=rngs)
        self.head = conv(dim // 2, outdim)

    def __call__(self, stages: Sequence[jnp.ndarray], frames: int, condition=None) -> jnp.ndarray:
        """``stages``: HTSAT's ``stages`` output, k = 0..3: (B, G/2^k, G/2^k, embed_dim 2^k).
        ``frames``: T, the STFT frames to map onto (static). ``condition(level, h) -> h`` (LMAC-ZS)
        acts on each level's features (width ``dim``), level 0 the coarsest.

        Returns the pre-sigmoid map (B, T, n_freq) float32 ((B, T, n_freq, outdim) if outdim > 1).
        """
        condition = condition or (lambda level, h: h)
        feats = [p(n(unfold_tokens(s, self.freq_ratio))) for s, n, p in zip(stages, self.norms, self.proj)]
        h = condition(0, jax.nn.relu(feats[-1]))
        for k in range(len(feats) - 2, -1, -1):
            h = jax.nn.relu(self.fuse[k](jax.nn.relu(self.up[k](h)) + feats[k]))
            h = condition(len(feats) - 1 - k, h)
        y = self.head(jax.nn.relu(self.unpatch(h))).astype(jnp.float32)    # (B, S R, n_mels, outdim)
        pos = np.arange(frames) * ((self.frames_in - 1) / (frames - 1) if frames > 1 else 0.0)
        time_matrix = _interp_matrix(pos, self.frames_in)                   # (T, S R)
        freq_matrix = _interp_matrix(np.asarray(self.freq_positions), self.n_mels)   # (n_freq, n_mels)
        y = jnp.einsum("tp,bpmo,fm->btfo", time_matrix, y, freq_matrix, precision=HIGHEST)
        return y[..., 0] if self.outdim == 1 else y


# ---------------------------------------------------------------------------------------------
# Config, registry, recipe checkpoints
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """What ``build_decoder`` builds; JSON-able (``to_dict`` / ``from_dict``).

    ``kind``: "cnn14_psi" (uses ``dim``, ``outdim``) or "htsat_grid" (all fields). ``dim``: width
    (cnn14_psi: the classifier's last block channels; htsat_grid: the common decoder width).
    htsat_grid geometry: ``embed_dim``, ``num_stages``, ``n_mels``, ``spec_size``, ``patch_size`` of
    the HTSAT; ``n_freq`` and ``sample_rate`` (Hz) of the output STFT grid; ``mel_centres_hz`` of
    the HTSAT's mel bands (see ``mel_centres_hz``; None: bands spaced uniformly over the bins).
    """
    kind: str = "cnn14_psi"
    dim: int = 2048
    outdim: int = 1
    embed_dim: int = 96
    num_stages: int = 4
    n_mels: int = 64
    spec_size: int = 256
    patch_size: int = 4
    n_freq: int = 513
    sample_rate: float = 16000.0
    mel_centres_hz: tuple[float, ...] | None = None

    def __post_init__(self):
        if self.kind not in _BUILDERS:
            raise ValueError(f"unknown decoder kind {self.kind!r}; known: {sorted(_BUILDERS)}")
        if self.mel_centres_hz is not None:
            object.__setattr__(self, "mel_centres_hz", tuple(float(f) for f in self.mel_centres_hz))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if d["mel_centres_hz"] is not None:
            d["mel_centres_hz"] = list(d["mel_centres_hz"])
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "DecoderConfig":
        return from_config(cls, d)

    @classmethod
    def for_htsat(cls, htsat_cfg, spec, *, dim: int = 64, n_freq: int = 513, sample_rate: float = 16000.0,
                  outdim: int = 1) -> "DecoderConfig":
        """The htsat_grid config for an ``HTSATConfig`` fed by ``spec`` (a ``SpectrogramConfig``),
        writing onto an STFT grid of ``n_freq`` bins at ``sample_rate`` Hz."""
        return cls(kind="htsat_grid", dim=dim, outdim=outdim, embed_dim=htsat_cfg.embed_dim,
                   num_stages=len(htsat_cfg.depths), n_mels=htsat_cfg.n_mels, spec_size=htsat_cfg.spec_size,
                   patch_size=htsat_cfg.patch_size, n_freq=n_freq, sample_rate=float(sample_rate),
                   mel_centres_hz=mel_centres_hz(spec))


_BUILDERS = {
    "cnn14_psi": lambda c, rngs, dtype: Cnn14PsiDecoder(c.dim, c.outdim, rngs=rngs, dtype=dtype),
    "htsat_grid": lambda c, rngs, dtype: HtsatGridDecoder(
        c.dim, embed_dim=c.embed_dim, num_stages=c.num_stages, n_mels=c.n_mels, spec_size=c.spec_size,
        patch_size=c.patch_size, n_freq=c.n_freq, sample_rate=c.sample_rate, mel_centres_hz=c.mel_centres_hz,
        outdim=c.outdim, rngs=rngs, dtype=dtype),
}


def build_decoder(cfg: DecoderConfig, *, rngs: nnx.Rngs, dtype=jnp.float32) -> nnx.Module:
    """The decoder ``cfg`` describes, randomly initialised."""
    return _BUILDERS[cfg.kind](cfg, rngs, dtype)


def init_decoder(cfg: DecoderConfig, seed: int = 0, dtype=jnp.float32) -> nnx.Module:
    """``build_decoder(cfg, rngs=nnx.Rngs(seed))`` initialised in one compiled call (eager initialisation
    compiles one small program per parameter shape, which is slow on CPU)."""
    make = lambda: build_decoder(cfg, rngs=nnx.Rngs(seed), dtype=dtype)
    graphdef, _ = nnx.split(nnx.eval_shape(make))
    return nnx.merge(graphdef, jax.jit(lambda: nnx.split(make())[1])())


def decoder_from_recipe_state(state_dict: Mapping[str, np.ndarray], cfg: DecoderConfig, *,
                              dtype=jnp.float32, source: str = "psi_model") -> Cnn14PsiDecoder:
    """A ``Cnn14PsiDecoder`` holding the recipe's ``psi_model`` state dict (``convt{i}.weight`` (in, out,
    kh, kw), ``convt{i}.bias``); raises ``weights.CheckpointMismatch`` naming missing / unexpected keys
    and shape mismatches. Built abstractly first, so no random initialisation is spent."""
    if cfg.kind != "cnn14_psi":
        raise ValueError(f"recipe checkpoints hold a cnn14_psi decoder, not {cfg.kind!r}")
    model = nnx.eval_shape(lambda: build_decoder(cfg, rngs=nnx.Rngs(0), dtype=dtype))
    weights.load_state(model, state_dict, PSI_RULES, source=source)
    return model
