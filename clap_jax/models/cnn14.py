"""CNN14 (PANNs, Kong et al. 2020): the audio encoder of Microsoft CLAP 2022 and the classifier
that L-MAC explains.

Input is a log-mel (B, C=1, frames, n_mels): dB for PANNs and Microsoft CLAP, log1p of
SpeechBrain's fbank for the L-MAC recipe. It is batch-normalised per mel bin, then six
ConvBlocks (3x3 conv - BN - ReLU, twice; no conv bias) with 64..2048 channels, each followed
by 2x2 average pooling except the last (floor: an odd trailing frame or bin is dropped, as
``F.avg_pool2d`` does). The clip vector is the mean over mel bins, then max + mean over
frames. PANNs/Microsoft CLAP add ``fc1`` + ReLU (the 2048-d embedding); SpeechBrain's
encoder returns the pooled vector itself. An optional linear head gives class logits (PANNs:
AudioSet tagging, apply a sigmoid; SpeechBrain ESC-50: apply a softmax).

Every BatchNorm (eps 1e-5) is built in evaluation mode: running statistics, so inference and
frozen-classifier explanation need no flag. To train, switch modes with nnx's ``model.train()``
(every BatchNorm's ``use_running_average`` becomes False: batch statistics, running averages
updated with momentum 0.99) and back with ``model.eval()`` (``train.classifier`` does). The mode
is an attribute of the module, not a parameter: a loaded checkpoint is always in evaluation
mode. Activations are NHWC
(B, frames, mels, channels); the block outputs are returned for decoders (L-MAC's consumes
blocks 3-6). Attribute names follow PANNs (``bn0``, ``conv_block{i}.conv1/bn1/conv2/bn2``,
``fc1``); checkpoints of other layouts map through the rule tables in ``clap_jax.convert``.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx


@dataclasses.dataclass(frozen=True)
class Cnn14Config:
    """Sizes of a CNN14. Defaults are PANNs' AudioSet Cnn14 (64 mels, fc1 2048 -> 2048, 527 classes).

    ``embed_dim``: width of ``fc1`` (0 = no fc1: the SpeechBrain encoder, whose embedding is the
    pooled last block). ``num_classes``: width of the linear head (0 = no head).
    """
    kind: str = "cnn14"
    n_mels: int = 64
    channels: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048)
    embed_dim: int = 2048
    num_classes: int = 527
    bn_eps: float = 1e-5

    @property
    def num_features(self) -> int:
        """Width of the audio embedding."""
        return self.embed_dim or self.channels[-1]


def _bn(n: int, eps: float, dtype, rngs: nnx.Rngs) -> nnx.BatchNorm:
    return nnx.BatchNorm(n, use_running_average=True, epsilon=eps, dtype=dtype, rngs=rngs)


def avg_pool_2x2(x: jnp.ndarray) -> jnp.ndarray:
    """``F.avg_pool2d(kernel_size=2)`` on (B, H, W, C): floor mode, trailing odd row/column dropped."""
    b, h, w, c = x.shape
    x = x[:, :h // 2 * 2, :w // 2 * 2]
    return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


class ConvBlock(nnx.Module):
    """(3x3 conv, no bias -> BN -> ReLU) x 2 on (B, H, W, C)."""

    def __init__(self, cin: int, cout: int, eps: float, *, dtype, rngs: nnx.Rngs):
        pad = ((1, 1), (1, 1))
        self.conv1 = nnx.Conv(cin, cout, (3, 3), padding=pad, use_bias=False, dtype=dtype, rngs=rngs)
        self.bn1 = _bn(cout, eps, dtype, rngs)
        self.conv2 = nnx.Conv(cout, cout, (3, 3), padding=pad, use_bias=False, dtype=dtype, rngs=rngs)
        self.bn2 = _bn(cout, eps, dtype, rngs)

    def __call__(self, x):
        x = jax.nn.relu(self.bn1(self.conv1(x)))
        return jax.nn.relu(self.bn2(self.conv2(x)))


class Cnn14(nnx.Module):
    """CNN14: log-mel (B, C, frames, n_mels) -> embedding (B, num_features) [+ logits (B, classes)]."""

    def __init__(self, cfg: Cnn14Config, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.cfg = cfg
        self.bn0 = _bn(cfg.n_mels, cfg.bn_eps, jnp.float32, rngs)
        cins = (1,) + tuple(cfg.channels[:-1])
        for i, (cin, cout) in enumerate(zip(cins, cfg.channels)):
            setattr(self, f"conv_block{i + 1}", ConvBlock(cin, cout, cfg.bn_eps, dtype=dtype, rngs=rngs))
        self.fc1 = nnx.Linear(cfg.channels[-1], cfg.embed_dim, dtype=dtype, rngs=rngs) if cfg.embed_dim else None
        self.head = (nnx.Linear(cfg.num_features, cfg.num_classes, dtype=dtype, rngs=rngs)
                     if cfg.num_classes else None)
        self.dtype = dtype

    @property
    def blocks(self) -> list[ConvBlock]:
        return [getattr(self, f"conv_block{i + 1}") for i in range(len(self.cfg.channels))]

    def __call__(self, mel: jnp.ndarray, longer: jnp.ndarray | None = None) -> dict:
        """``mel``: (B, 1, frames, n_mels) or (B, frames, n_mels). ``longer`` is accepted for the
        HTSAT call signature and ignored.

        Returns ``embedding`` (B, num_features) float32, ``blocks``: the six block outputs after
        pooling, NHWC (B, frames / 2^k, mels / 2^k, channels), and ``logits`` (B, classes) when
        the model has a head.
        """
        if mel.ndim == 4:
            if mel.shape[1] != 1:
                raise ValueError(f"CNN14 takes one mel channel, got {mel.shape[1]}")
            mel = mel[:, 0]
        if mel.shape[-1] != self.cfg.n_mels:
            raise ValueError(f"CNN14 was built for {self.cfg.n_mels} mel bins, got {mel.shape[-1]}")
        x = self.bn0(mel.astype(jnp.float32))[..., None].astype(self.dtype)     # (B, T, M, 1)
        outs = []
        blocks = self.blocks
        for i, block in enumerate(blocks):
            x = block(x)
            if i < len(blocks) - 1:
                x = avg_pool_2x2(x)
            outs.append(x)
        x = x.mean(axis=2)                                   # over mel bins: (B, T', C)
        x = x.max(axis=1) + x.mean(axis=1)                   # over frames:   (B, C)
        if self.fc1 is not None:
            x = jax.nn.relu(self.fc1(x))
        out = {"embedding": x.astype(jnp.float32), "blocks": outs}
        if self.head is not None:
            out["logits"] = self.head(x).astype(jnp.float32)
        return out
