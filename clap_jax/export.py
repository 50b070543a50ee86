r"""Writes a converted CLAP of Microsoft CLAP 2022's shape back in msclap's checkpoint layout.

    python -m clap_jax.export --model=soundscapes-small-cnn14 --out=exported/soundscapes-small-cnn14

    model (CNN14 + BERT [CLS], msclap projections, one logit scale)
        --weights.state_of(MSCLAP_2022_RULES)-->  OUT/CLAP_weights_2022.pth
            {"model": state dict in msclap's names and layouts, "clap_jax_spec": the spec as JSON}
        OUT/tokenizer/         the model's tokenizer (WordPiece vocab.txt: transformers' BertTokenizer reads it)
        OUT/msclap_args.json   the arguments of ``msclap.models.clap.CLAP`` for this model

The state dict holds what the published ``CLAP_weights_2022.pth`` holds, key for key, with the
frozen torchlibrosa tensors (STFT kernels, mel bank) built for this model's front end; it lacks
BERT's unused pooler and BatchNorm's ``num_batches_tracked``, which msclap's own loader
(``load_state_dict(strict=False)``) does not need. ``clap_jax_spec`` carries what no tensor holds
(sample rate, hop, clip length, tokenizer), so ``python -m clap_jax.convert --source=msclap``
reads the file back into the same model. msclap's ``Cnn14`` hard-codes 64 mel bins and channels
64..2048, so a narrower model runs in msclap's code once those layers are rebuilt at its widths
with msclap's own ``ConvBlock`` (``tests/test_export.py`` does).
"""
from __future__ import annotations

import json
import os

import librosa
import numpy as np
from absl import flags
from flax import nnx

from clap_jax import api, checkpoint, cli_errors, weights
from clap_jax.converters.msclap import MSCLAP_2022_RULES, SPEC_ENTRY
from clap_jax.frontend import SpectrogramConfig, mel_filterbank
from clap_jax.spec import ClapSpec
from clap_jax.tokenizer import copy_tokenizer_files

CHECKPOINT_FILE = "CLAP_weights_2022.pth"
ARGS_FILE = "msclap_args.json"
_AUDIO = "audio_encoder.base."


def check_exportable(spec: ClapSpec) -> None:
    """One-line ``ValueError`` unless ``spec`` is a model msclap 2022's code computes: CNN14 +
    BERT [CLS] with msclap projections and one logit scale, on torchlibrosa's log-mel (Hann,
    centred reflect padding, power Slaney mel in dB, ref 1, no top_db)."""
    m, s = spec.model, spec.audio.spectrogram
    wants = {"audio encoder cnn14": m.audio.kind == "cnn14", "text encoder bert": m.text.kind == "bert",
             "[CLS] pooling": getattr(m.text, "pooling", None) == "cls",
             "projection msclap": m.projection == "msclap", "one logit scale": m.shared_logit_scale,
             "an fc1 layer and a tagging head": m.audio.kind == "cnn14" and m.audio.embed_dim > 0
             and m.audio.num_classes > 0,
             "torchlibrosa's log-mel": (s.window, s.pad_mode, s.compression, s.mel_exponent, s.mel_scale, s.mel_norm,
                                        s.ref, s.top_db, s.win_length, s.mel_sample_rate)
             == ("hann", "reflect", "db", 2.0, "slaney", "slaney", 1.0, None, s.n_fft, None)}
    if missing := [what for what, ok in wants.items() if not ok]:
        raise ValueError(f"the model is not of Microsoft CLAP 2022's shape (needs {', '.join(missing)}); "
                         "only CNN14 + BERT models export to msclap's layout")


def frontend_tensors(s: SpectrogramConfig) -> dict[str, np.ndarray]:
    """torchlibrosa's frozen tensors for ``s``: the DFT kernels ``W[:, :n_freq] * window`` (n_freq,
    1, n_fft) with ``W = exp(-2πi kn / n_fft)`` and the mel bank (n_freq, n_mels), float32."""
    n, n_freq = s.n_fft, s.n_fft // 2 + 1
    window = librosa.filters.get_window("hann", n, fftbins=True)
    k, t = np.arange(n_freq)[:, None], np.arange(n)[None, :]
    phase = 2 * np.pi * k * t / n
    return {_AUDIO + "spectrogram_extractor.stft.conv_real.weight": (np.cos(phase) * window)[:, None].astype(np.float32),
            _AUDIO + "spectrogram_extractor.stft.conv_imag.weight": (-np.sin(phase) * window)[:, None].astype(np.float32),
            _AUDIO + "logmel_extractor.melW": mel_filterbank(s)}


def msclap_args(spec: ClapSpec, text_model: str) -> dict:
    """``msclap.models.clap.CLAP(**args)`` for ``spec`` (``text_model``: the tokenizer/BERT name or folder)."""
    a, s = spec.model.audio, spec.audio.spectrogram
    return dict(audioenc_name="Cnn14", sample_rate=s.sample_rate, window_size=s.n_fft, hop_size=s.hop_length,
                mel_bins=s.n_mels, fmin=s.fmin, fmax=s.fmax, classes_num=a.num_classes, out_emb=a.embed_dim,
                text_model=text_model, transformer_embed_dim=spec.model.text.hidden_size, d_proj=spec.model.joint_dim)


def export_msclap(name_or_dir: str, out: str, overwrite: bool = False) -> str:
    """Writes the converted model ``name_or_dir`` (a directory or a bundled name) to the directory
    ``out`` (atomically) as the module docstring says; returns the checkpoint's path."""
    try:
        import torch
    except ImportError as err:
        raise ImportError("writing a PyTorch checkpoint needs torch (pip install 'clap-jax[convert]')") from err
    directory = api.model_dir(name_or_dir)
    model = api.load(directory)
    check_exportable(model.spec)
    tok_dir = os.path.join(directory, checkpoint.TOKENIZER_DIR)
    if not os.path.isdir(tok_dir):
        raise FileNotFoundError(f"{directory}: no {checkpoint.TOKENIZER_DIR}/ folder to export with the weights")
    state = {**weights.state_of(nnx.merge(model.graphdef, model.state), MSCLAP_2022_RULES), **frontend_tensors(model.spec.audio.spectrogram)}
    with checkpoint.atomic_directory(out, overwrite, must_contain=CHECKPOINT_FILE) as tmp:
        torch.save({"model": {k: torch.from_numpy(v) for k, v in state.items()}, SPEC_ENTRY: model.spec.to_json()},
                   os.path.join(tmp, CHECKPOINT_FILE))
        copy_tokenizer_files(tok_dir, os.path.join(tmp, checkpoint.TOKENIZER_DIR))
        with open(os.path.join(tmp, ARGS_FILE), "w") as f:
            json.dump(msclap_args(model.spec, checkpoint.TOKENIZER_DIR), f, indent=2)
    return os.path.join(out, CHECKPOINT_FILE)


FLAGS = flags.FLAGS


def _define_flags() -> None:
    flags.DEFINE_string("model", None, "A converted CLAP directory or a bundled name (CNN14 + BERT).")
    flags.DEFINE_string("out", None, "Output directory (written atomically).")
    flags.DEFINE_bool("overwrite", False, "Replace an earlier export (a directory holding " + CHECKPOINT_FILE + ").")


@cli_errors.guard("clap_jax.export")
def main(argv):
    """Exit status 0 when written; 1 with one line on stderr naming what is wrong."""
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {argv[1:]}")
    path = export_msclap(FLAGS.model, FLAGS.out, FLAGS.overwrite)
    print(f"wrote {path} (msclap 2022 layout), its tokenizer and {ARGS_FILE}")
    return 0


if __name__ == "__main__":
    from clap_jax import runtime
    _define_flags()
    flags.mark_flags_as_required(["model", "out"])
    runtime.run(main)
