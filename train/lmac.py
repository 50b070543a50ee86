"""L-MAC decoder training as a task of the shared loop: the classifier frozen, the decoder trained.

    python -m train.lmac --config=configs/lmac_soundscapes.py --workdir=runs/soundscapes-lmac \
        --export=clap_jax/bundled/soundscapes-lmac
    python -m train.lmac --config=configs/lmac_cnn14_esc50.py --workdir=runs/lmac-esc50 \
        --config.data.root=ESC-50-master --config.data.noise_dir=wham_noise/tr --export=converted/lmac-esc50
    ... --config.finetune=True --config.init_from=converted/lmac-esc50     # the "L-MAC FT" stage

    batch: waves (B, samples) [+ noise (B, samples)] ──mix at 0 dB──> |STFT| ──lmac.masking.forward──>
        mask, logits clean / masked-in / masked-out ──lmac.losses.lmac_loss──> loss

The classifier (``model.classifier``, a CNN14 on running batch-norm statistics) travels as the
loop's frozen state: replicated, never optimised, decayed or checkpointed. With
``finetune=True`` the loss adds the "L-MAC FT" oracle term, comparing the mask with the clean
clip's spectrogram.
"""
from __future__ import annotations

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from clap_jax import classifier as classifier_lib, frontend
from clap_jax.classifier import Classifier
from clap_jax.configs import from_config
from lmac import decoders, explainer as explainer_lib, losses, masking, metrics
from train import cli, lmac_data, loop
from train.data import Loader


class LmacModel(nnx.Module):
    """The frozen classifier and the decoder that explains it, as one module for the loop."""

    def __init__(self, classifier: nnx.Module, decoder: nnx.Module):
        self.classifier, self.decoder = classifier, decoder


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """What the step computes besides the network: mask domain, loss weights, fine-tuning, the
    peak normalisation of noise mixtures (``signed``: the recipe's; ``abs``: max |x|)."""
    domain: str = "log1p"
    weights: losses.LossWeights = losses.LossWeights()
    finetune: bool = False
    noise_peak: str = "signed"


def make_loss(spectrogram: frontend.SpectrogramConfig, cfg: LossConfig):
    """``loss(model, batch, rng)`` for :class:`train.loop.Task`. ``batch["waves"]`` are clean clips
    (B, samples), peak-normalised; ``batch["noise"]`` (optional, same shape) is mixed in at 0 dB."""

    def loss(model: LmacModel, batch: dict, rng: jax.Array):
        del rng
        clean = batch["waves"]
        noisy = losses.mix_at_0db(clean, batch["noise"], cfg.noise_peak) if "noise" in batch else clean
        mag = frontend.magnitude(frontend.stft(noisy, spectrogram), spectrogram.magnitude_eps)
        out = masking.forward(model.classifier, model.decoder, mag, spectrogram, cfg.domain)
        frames = out["mask"].shape[1]
        guide = {}
        if cfg.finetune:
            clean_mag = frontend.magnitude(frontend.stft(clean, spectrogram), spectrogram.magnitude_eps)
            guide = {"clean_log": jnp.log1p(clean_mag[:, :frames]), "noisy_log": jnp.log1p(mag[:, :frames])}
        value, parts = losses.lmac_loss(out["logits_clean"], out["logits_in"], out["logits_out"], out["mask"],
                                        cfg.weights, **guide)
        target = jnp.argmax(out["logits_clean"], -1)
        parts["fid_in"] = jnp.mean(jnp.argmax(out["logits_in"], -1) == target)
        return value, parts
    return loss


def make_task(classifier: Classifier, decoder: nnx.Module, cfg: LossConfig = LossConfig(), evaluate=None) -> loop.Task:
    """The loop task: ``classifier`` (a loaded :class:`clap_jax.Classifier`) frozen, ``decoder`` trained."""
    model = LmacModel(nnx.merge(classifier.graphdef, classifier.state), decoder)
    return loop.Task(model=model, loss=make_loss(classifier.spec.audio.spectrogram, cfg), evaluate=evaluate,
                     frozen=nnx.PathContains("classifier"))


def default_decoder(classifier: Classifier, *, seed: int = 0) -> nnx.Module:
    """The recipe's decoder sized for ``classifier``: width = its last block's channels."""
    cfg = decoders.DecoderConfig(kind="cnn14_psi", dim=classifier.spec.model.channels[-1])
    return decoders.init_decoder(cfg, seed=seed)


def loss_config(cfg: ml_collections.ConfigDict) -> LossConfig:
    """:class:`LossConfig` from ``cfg.loss`` (``weights``: :class:`lmac.losses.LossWeights`) and ``cfg.finetune``."""
    return from_config(LossConfig, cfg.loss, "config.loss", finetune=cfg.finetune)


def make_evaluate(classifier: Classifier, waves: np.ndarray, cfg: LossConfig, batch_size: int):
    """``evaluate(model)`` for the loop: the faithfulness metrics of the current decoder on held-out
    clips (B, samples), clean (no noise), as the recipe validates (``fid_in`` drives the plateau)."""
    spectrogram = classifier.spec.audio.spectrogram

    @functools.partial(jax.jit, static_argnums=1)
    def batch_metrics(model_state, graphdef, w, valid):
        model = nnx.merge(graphdef, model_state)
        with jax.default_matmul_precision("highest"):
            mag = frontend.magnitude(frontend.stft(w, spectrogram), spectrogram.magnitude_eps)
            out = masking.forward(model.classifier, model.decoder, mag, spectrogram, cfg.domain)
        soft = lambda z: jax.nn.softmax(z, axis=-1)
        return metrics.batch_metrics(soft(out["logits_clean"]), soft(out["logits_in"]), soft(out["logits_out"]),
                                     out["mask"], valid=valid)

    def evaluate(model: LmacModel) -> dict[str, float]:
        graphdef, state = nnx.split(model)
        agg = metrics.Aggregator()
        for start in range(0, len(waves), batch_size):
            chunk = waves[start:start + batch_size]
            valid = np.arange(batch_size) < len(chunk)
            chunk = np.pad(chunk, ((0, batch_size - len(chunk)), (0, 0)))      # one shape: no recompile
            agg.add(jax.device_get(batch_metrics(state, graphdef, jnp.asarray(chunk), jnp.asarray(valid))))
        result = agg.result()
        return {k.lower().replace("-", "_"): float(v) for k, v in result.items()}
    return evaluate


def resolve_classifier(name_or_dir: str) -> str:
    """A converted classifier directory, or the bundled one of that name."""
    if os.path.isdir(name_or_dir):
        return name_or_dir
    bundled = os.path.join(explainer_lib.BUNDLED_DIR, name_or_dir)
    if os.path.isdir(bundled):
        return bundled
    raise FileNotFoundError(f"{name_or_dir}: no converted classifier directory or bundled classifier of that name")


def initial_decoder(cfg: ml_collections.ConfigDict, classifier: Classifier) -> tuple[nnx.Module, str]:
    """A fresh decoder sized for the classifier, or the decoder of ``cfg.init_from`` (an explainer
    directory, e.g. for the fine-tuning stage); returns it and its mask domain."""
    if not cfg.init_from:
        return default_decoder(classifier, seed=cfg.seed), cfg.loss.domain
    found = explainer_lib.load(cfg.init_from)
    if found.classifier.spec != classifier.spec:
        raise ValueError(f"init_from={cfg.init_from} explains a different classifier than {cfg.classifier}")
    return found.decoder(), found.spec.domain


def run(cfg: ml_collections.ConfigDict, workdir: str, export: str | None = None) -> explainer_lib.Explainer:
    """Trains (or resumes) the decoder and optionally exports the explainer directory."""
    clf_dir = resolve_classifier(cfg.classifier)
    classifier = classifier_lib.load_classifier(clf_dir)
    decoder, domain = initial_decoder(cfg, classifier)
    if domain != cfg.loss.domain:
        raise ValueError(f"init_from={cfg.init_from} masks in the {domain} domain, the config in {cfg.loss.domain}")
    lcfg = loss_config(cfg)
    train_set, valid_set = lmac_data.sources(cfg.data)
    prepare = lmac_data.Prepare(classifier.spec.audio, cfg.data)
    evaluate = make_evaluate(classifier, lmac_data.waves(valid_set, prepare), lcfg, cfg.batch_size)
    task = make_task(classifier, decoder, lcfg, evaluate)
    loader = Loader(train_set, lmac_data.make_decode(prepare, lmac_data.noise_source(cfg.data, prepare)),
                    cfg.batch_size, seed=cfg.seed, process_index=jax.process_index(),
                    process_count=jax.process_count(), workers=cfg.data.workers)
    trained = loop.train(cfg, task, loader, workdir)
    spec = explainer_lib.ExplainerSpec(decoder=decoders.DecoderConfig(kind="cnn14_psi", dim=classifier.spec.model.channels[-1]),
                                       domain=cfg.loss.domain, source="clap-jax")
    explainer = explainer_lib.Explainer(spec, classifier, trained.decoder)
    if export and jax.process_index() == 0:
        explainer.save(export, clf_dir, overwrite=True)
        print(f"wrote {export}")
    return explainer


if __name__ == "__main__":
    cli.main(run, "Write the trained explainer directory here.")
