"""LAION CLAP (``laion_clap``'s ``.pt`` checkpoints): HTSAT + RoBERTa, with or without fusion.

    630k-audioset-best.pt --weights.read_state_dict--> LAION names --laion_spec--> ClapSpec
        (sizes from tensor shapes; 48 kHz, 10 s, int16 round trip; mel bank checked)
"""
from __future__ import annotations

import numpy as np

from clap_jax import weights
from clap_jax.converters.base import BERT_RULES, Source, State, check_mel_bank, htsat_config, bert_config, renames, \
    shapes_of
from clap_jax.frontend import SpectrogramConfig
from clap_jax.models.clap import ClapConfig
from clap_jax.spec import AudioConfig, ClapSpec, TokenizerConfig

# Our projection MLPs -> LAION's nn.Sequential (also Hugging Face's names -> LAION's, in ``hf``).
PROJECTION_RULES = renames(r"^(audio|text)_projection\.", r"\1_projection.", [("linear1", "0"), ("linear2", "2")])

# Our module paths -> LAION names (applied in order).
LAION_RULES = BERT_RULES + [
    *renames(r"\.fusion_model\.", ".fusion_model.", [
        ("local_in.conv", "local_att.0"), ("local_in.bn", "local_att.1"),
        ("local_out.conv", "local_att.3"), ("local_out.bn", "local_att.4"),
        ("global_in.conv", "global_att.1"), ("global_in.bn", "global_att.2"),
        ("global_out.conv", "global_att.4"), ("global_out.bn", "global_att.5")]),
    *PROJECTION_RULES,
]

# LAION tensors the embedding model does not use: the frozen torchlibrosa STFT/mel (we build
# them; checked in ``check_laion_frontend``), buffers we recompute, training-only heads.
LAION_IGNORE = [
    r"^audio_branch\.(spectrogram_extractor|logmel_extractor)\.", r"\.num_batches_tracked$",
    r"\.relative_position_index$", r"\.attn_mask$", r"^audio_branch\.(tscam_conv|head)\.",
    r"^(audio|text)_transform\.", r"^text_branch\.embeddings\.(position_ids|token_type_ids)$",
]


def laion_config(state: State) -> ClapConfig:
    """Reads the architecture from the shapes of a LAION (LAION-named) state dict."""
    with shapes_of("laion"):
        audio = htsat_config(state, "audio_branch.")
        text = bert_config(state, "text_branch.", layer_norm_eps=1e-5, pad_token_id=1)
        joint = state["audio_projection.0.weight"].shape[0]
    return ClapConfig(audio=audio, text=text, joint_dim=joint)


def laion_spec(state: State) -> ClapSpec:
    """LAION's pipeline: 48 kHz, 10 s, int16 round trip, repeatpad; Slaney mel (non-fusion) or
    torchaudio's HTK mel with antialiased shrink (fusion). The STFT size comes from the
    checkpoint's frozen torchlibrosa kernels when present (HTSAT-tiny-win-1536 uses 1536)."""
    cfg = laion_config(state)
    n_fft = state.get("audio_branch.spectrogram_extractor.stft.conv_real.weight", np.zeros((0, 0, 1024))).shape[-1]
    htk = cfg.audio.fusion
    spec = SpectrogramConfig(sample_rate=48000, n_fft=n_fft, win_length=n_fft, hop_length=480,
                             n_mels=cfg.audio.n_mels, fmin=50.0, fmax=14000.0,
                             mel_scale="htk" if htk else "slaney", mel_norm=None if htk else "slaney")
    return ClapSpec(model=cfg, audio=AudioConfig(spectrogram=spec, clip_samples=480000, quantize_int16=True,
                                                 fusion=cfg.audio.fusion, fusion_shrink="bilinear_antialias"),
                    tokenizer=TokenizerConfig(max_length=77), source="laion")


def check_laion_frontend(state: State, spec: ClapSpec) -> None:
    """The checkpoint's frozen mel bank must equal the one we build (non-fusion models)."""
    if not spec.audio.fusion:
        check_mel_bank(state, "audio_branch.logmel_extractor.melW", spec.audio.spectrogram)


def read(path: str, allow_unsafe_pickle: bool) -> tuple[State, ClapSpec]:
    """A LAION ``.pt`` file: its state dict and spec (front end checked)."""
    state = weights.read_state_dict(path, allow_unsafe_pickle)
    spec = laion_spec(state)
    check_laion_frontend(state, spec)
    return state, spec


SOURCE = Source(name="laion", checkpoint="LAION .pt file", read=read, rules={"laion": LAION_RULES},
                ignore=LAION_IGNORE, tokenizer="roberta-base", title="LAION")
