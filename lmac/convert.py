"""The L-MAC recipe's trained decoder -> an explainer directory.

    python -m lmac.convert --checkpoint=psi_model.ckpt --classifier=converted/sb-cnn14-esc50 --out=converted/sb-lmac

SpeechBrain's recipe saves the decoder as ``save/CKPT+.../psi_model.ckpt``: the state dict of
``CNN14PSI_stft`` (``convt1.weight`` ... ``convt9.bias``). It is read with
``torch.load(weights_only=True)``; its width (``dim``) is read from ``convt1.weight``; a state dict
that does not fit is refused with the missing, unexpected and misshapen keys listed; the
decoder's input widths must equal the classifier's blocks 6-3. The output directory holds the
decoder and a copy of the classifier, written atomically.
"""
from __future__ import annotations

import os

import numpy as np

from clap_jax import classifier as classifier_lib, weights
from lmac import decoders, explainer


def recipe_config(state: dict[str, np.ndarray], source: str = "checkpoint") -> decoders.DecoderConfig:
    """The decoder architecture of a ``CNN14PSI_stft`` state dict (its width from ``convt1.weight``)."""
    if "convt1.weight" not in state:
        raise weights.CheckpointMismatch(source, ["convt1.weight"], sorted(state)[:10])
    dim = int(state["convt1.weight"].shape[0])
    return decoders.DecoderConfig(kind="cnn14_psi", dim=dim)


def convert(checkpoint_path: str, classifier_dir: str, out: str, overwrite: bool = False) -> explainer.ExplainerSpec:
    """Reads the recipe's ``psi_model`` checkpoint beside a converted SpeechBrain classifier and
    writes an explainer directory (format ``clap-jax-explainer/1``, mask domain log1p)."""
    if os.path.exists(out) and not overwrite:
        raise FileExistsError(f"{out}: already exists (pass --overwrite to replace it)")
    clf = classifier_lib.load_classifier(classifier_dir)
    state = weights.read_state_dict(checkpoint_path)
    cfg = recipe_config(state, checkpoint_path)
    channels = clf.spec.model.channels
    if channels[-1] != cfg.dim or tuple(channels[2:6]) != (cfg.dim // 8, cfg.dim // 4, cfg.dim // 2, cfg.dim):
        raise ValueError(f"{checkpoint_path}: decoder of width {cfg.dim} reads blocks of {cfg.dim // 8}..{cfg.dim} "
                         f"channels, but {classifier_dir} has blocks 3-6 of {tuple(channels[2:6])}")
    decoder = decoders.decoder_from_recipe_state(state, cfg, source=checkpoint_path)
    spec = explainer.ExplainerSpec(decoder=cfg, domain="log1p", source="speechbrain")
    explainer.Explainer(spec, clf, decoder).save(out, classifier_dir, overwrite)
    return spec


def main(argv):
    from absl import flags
    del argv
    f = flags.FLAGS
    try:
        spec = convert(f.checkpoint, f.classifier, f.out, f.overwrite)
    except (OSError, ValueError, KeyError) as err:      # one line naming the file; nothing was written
        raise SystemExit(f"lmac.convert: {err}") from None
    print(f"wrote {f.out}: L-MAC decoder {spec.decoder.kind} dim={spec.decoder.dim} for {f.classifier}")


if __name__ == "__main__":
    from absl import flags
    from clap_jax import runtime
    flags.DEFINE_string("checkpoint", None, "The recipe's psi_model.ckpt (CNN14PSI_stft state dict).")
    flags.DEFINE_string("classifier", None, "Converted SpeechBrain classifier directory "
                        "(python -m clap_jax.convert --source=speechbrain).")
    flags.DEFINE_string("out", None, "Output explainer directory (written atomically).")
    flags.DEFINE_bool("overwrite", False, "Replace an existing output directory.")
    flags.mark_flags_as_required(["checkpoint", "classifier", "out"])
    runtime.run(main)
