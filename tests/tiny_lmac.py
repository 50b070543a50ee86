"""Tiny L-MAC models for tests: a random CNN14 classifier on the recipe's SpeechBrain front end
and the recipe's decoder at width 32, initialised in one compiled call each (eager
initialisation compiles a program per parameter shape, slow on 2 cores)."""
from __future__ import annotations

import os

import jax
import numpy as np
from flax import nnx

from clap_jax import checkpoint
from clap_jax.classifier import Classifier
from clap_jax.frontend import SpectrogramConfig
from clap_jax.models.cnn14 import Cnn14, Cnn14Config
from clap_jax.spec import AudioConfig, ClassifierSpec

SB = SpectrogramConfig(sample_rate=16000, n_fft=1024, win_length=372, hop_length=186, n_mels=80, fmin=0,
                       fmax=8000, mel_scale="speechbrain", mel_norm=None, pad_mode="constant",
                       window="hamming", mel_exponent=1.0, compression="log1p", magnitude_eps=1e-14)
CLIP_SAMPLES = 37200          # 201 frames: a length the recipe's decoder maps to exactly 201 frames


def init(make):
    """``make()`` (an nnx module) initialised in one jitted call."""
    return nnx.merge(nnx.split(nnx.eval_shape(make))[0], jax.jit(lambda: nnx.split(make())[1])())


def classifier(num_classes: int = 3, seed: int = 0, labels: tuple[str, ...] = ()) -> Classifier:
    """A random CNN14 (channels 4, 4, 4, 8, 16, 32) with random running statistics."""
    spec = ClassifierSpec(model=Cnn14Config(n_mels=80, channels=(4, 4, 4, 8, 16, 32), embed_dim=0,
                                            num_classes=num_classes),
                          audio=AudioConfig(spectrogram=SB, clip_samples=CLIP_SAMPLES, normalize="max"),
                          source="speechbrain", activation="softmax",
                          labels=labels or tuple(f"class {i}" for i in range(num_classes)))
    net = init(lambda: Cnn14(spec.model, rngs=nnx.Rngs(seed)))
    g = np.random.default_rng(seed + 5)
    for _, bn in nnx.iter_graph(net):        # running statistics as a trained network has
        if isinstance(bn, nnx.BatchNorm):
            bn.mean[...] = g.normal(0, 0.1, bn.mean.shape).astype(np.float32)
            bn.var[...] = g.uniform(0.5, 1.5, bn.var.shape).astype(np.float32)
    return Classifier(spec, net)


def save_classifier(directory: str, clf: Classifier) -> str:
    checkpoint.save_converted(directory, clf.spec, nnx.merge(clf.graphdef, clf.state), None)
    return directory


def explainer(directory: str, num_classes: int = 3, seed: int = 0):
    """A random explainer (classifier + decoder) saved at ``directory``; returns (explainer, its classifier dir)."""
    from lmac import decoders, explainer as explainer_lib
    clf = classifier(num_classes, seed)
    clf_dir = save_classifier(os.path.join(directory, "classifier-src"), clf)
    cfg = decoders.DecoderConfig(kind="cnn14_psi", dim=32)
    exp = explainer_lib.Explainer(explainer_lib.ExplainerSpec(decoder=cfg), clf, decoders.init_decoder(cfg, seed + 1))
    exp.save(os.path.join(directory, "explainer"), clf_dir)
    return exp, clf_dir
