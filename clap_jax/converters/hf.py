"""Hugging Face ``ClapModel`` directories (``laion/clap-htsat-*``, ``laion/larger_clap_*``).

    config.json + preprocessor_config.json --hf_spec--> ClapSpec
    model.safetensors | pytorch_model.bin --hf_to_laion--> LAION names (then LAION's rules)

The folder is also the tokenizer directory unless ``--tokenizer`` names another.
"""
from __future__ import annotations

import os
import re

import numpy as np

from clap_jax import weights
from clap_jax.converters.base import Source, State, read_json, renames
from clap_jax.converters.laion import LAION_IGNORE, LAION_RULES, PROJECTION_RULES
from clap_jax.frontend import SpectrogramConfig
from clap_jax.models.clap import ClapConfig
from clap_jax.models.htsat import HTSATConfig
from clap_jax.models.text import TextConfig
from clap_jax.spec import AudioConfig, ClapSpec, TokenizerConfig

# Hugging Face ClapModel names -> LAION names (substring rules, in order).
HF_TO_LAION = [
    (r"^audio_model\.audio_encoder\.", "audio_branch."),
    (r"^text_model\.", "text_branch."),
    (r"^audio_branch\.batch_norm\.", "audio_branch.bn0."),
    (r"\.attention\.self\.relative_position_bias_table$", ".attn.relative_position_bias_table"),
    (r"\.attention\.self\.relative_position_index$", ".attn.relative_position_index"),
    *renames(r"^(audio_branch\..*)\.", r"\1.", [
        ("attention.output.dense", "attn.proj"), ("intermediate.dense", "mlp.fc1"), ("output.dense", "mlp.fc2")]),
    *renames(r"\.", ".", [("layernorm_before", "norm1"), ("layernorm_after", "norm2")]),
    *PROJECTION_RULES,
]


def hf_to_laion(state: State) -> State:
    """Renames a Hugging Face ``ClapModel`` state dict to LAION names, joining q/k/v into qkv."""
    rules = [(re.compile(p), r) for p, r in HF_TO_LAION]
    out, qkv = {}, {}
    for key, value in state.items():
        for pattern, repl in rules:
            key = pattern.sub(repl, key)
        m = re.match(r"^(audio_branch\..*)\.attention\.self\.(query|key|value)\.(weight|bias)$", key)
        if m:
            qkv.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = value
        else:
            out[key] = value
    for (block, leaf), parts in qkv.items():
        if set(parts) != {"query", "key", "value"}:
            raise weights.CheckpointMismatch("hf", [f"{block}.attention.self.{p}.{leaf}" for p in
                                                    {"query", "key", "value"} - set(parts)], [])
        out[f"{block}.attn.qkv.{leaf}"] = np.concatenate([parts["query"], parts["key"], parts["value"]], axis=0)
    return out


def hf_spec(config: dict, preprocessor: dict | None) -> ClapSpec:
    """A spec from Hugging Face ``config.json`` and ``preprocessor_config.json`` (class defaults
    where a field is absent, as transformers does; note ``frequency_min`` defaults to 0)."""
    a, t = config.get("audio_config", {}), config.get("text_config", {})
    embed_dim = a.get("patch_embeds_hidden_size", 96)
    depths = tuple(a.get("depths", (2, 2, 6, 2)))
    audio = HTSATConfig(
        embed_dim=embed_dim, depths=depths, num_heads=tuple(a.get("num_attention_heads", (4, 8, 16, 32))),
        window_size=a.get("window_size", 8), spec_size=a.get("spec_size", 256), patch_size=a.get("patch_size", 4),
        n_mels=a.get("num_mel_bins", 64), mlp_ratio=a.get("mlp_ratio", 4.0), fusion=a.get("enable_fusion", False),
        aff_ratio=a.get("aff_block_r", 4), layer_norm_eps=a.get("layer_norm_eps", 1e-5))
    hidden = a.get("hidden_size", 768)
    if hidden != audio.num_features:
        raise ValueError(f"config.json: audio hidden_size {hidden} != patch_embeds_hidden_size * 2^(stages-1) "
                         f"= {audio.num_features}")
    text = TextConfig(
        vocab_size=t.get("vocab_size", 50265), hidden_size=t.get("hidden_size", 768),
        num_layers=t.get("num_hidden_layers", 12), num_heads=t.get("num_attention_heads", 12),
        intermediate_size=t.get("intermediate_size", 3072), max_positions=t.get("max_position_embeddings", 514),
        type_vocab_size=t.get("type_vocab_size", 1), layer_norm_eps=t.get("layer_norm_eps", 1e-12),
        pad_token_id=t.get("pad_token_id", 1))
    model = ClapConfig(audio=audio, text=text, joint_dim=config.get("projection_dim", 512),
                       logit_scale_init=float(np.log(config.get("logit_scale_init_value", 1 / 0.07))))
    p = preprocessor or {}
    truncation = p.get("truncation", "fusion")
    fusion = truncation == "fusion"
    if fusion != audio.fusion:
        raise ValueError(f"preprocessor_config.json: truncation={truncation!r} does not fit a model with "
                         f"enable_fusion={audio.fusion}")
    n_fft, sr = p.get("fft_window_size", 1024), p.get("sampling_rate", 48000)
    spec = SpectrogramConfig(
        sample_rate=sr, n_fft=n_fft, win_length=n_fft, hop_length=p.get("hop_length", 480),
        n_mels=p.get("feature_size", 64), fmin=float(p.get("frequency_min", 0)),
        fmax=float(p.get("frequency_max", 14000)), mel_scale="htk" if fusion else "slaney",
        mel_norm=None if fusion else "slaney", top_db=p.get("top_db"))
    padding = p.get("padding", "repeatpad")
    audio_cfg = AudioConfig(spectrogram=spec, clip_samples=int(p.get("max_length_s", 10) * sr),
                            pad=padding, quantize_int16=False, fusion=fusion, fusion_shrink="bilinear")
    return ClapSpec(model=model, audio=audio_cfg, tokenizer=TokenizerConfig(max_length=text.max_positions - 2),
                    source="hf")


def read(path: str, allow_unsafe_pickle: bool) -> tuple[State, ClapSpec]:
    """A ``ClapModel`` directory: its weights in LAION names and its spec (the tokenizer's
    ``model_max_length`` caps the text length)."""
    if not os.path.isdir(path):
        raise NotADirectoryError(f"{path}: --source=hf takes a ClapModel directory")
    config = read_json(os.path.join(path, "config.json"))
    if config is None:
        raise FileNotFoundError(f"{path}: no config.json")
    weights_file = next((os.path.join(path, f) for f in ("model.safetensors", "pytorch_model.bin")
                         if os.path.exists(os.path.join(path, f))), None)
    if weights_file is None:
        raise FileNotFoundError(f"{path}: no model.safetensors or pytorch_model.bin")
    spec = hf_spec(config, read_json(os.path.join(path, "preprocessor_config.json")))
    tok_config = read_json(os.path.join(path, "tokenizer_config.json")) or {}
    max_len = min(int(tok_config.get("model_max_length", spec.tokenizer.max_length)), spec.tokenizer.max_length)
    spec = ClapSpec(model=spec.model, audio=spec.audio, tokenizer=TokenizerConfig(max_len), source="hf")
    return hf_to_laion(weights.read_state_dict(weights_file, allow_unsafe_pickle)), spec


SOURCE = Source(name="hf", checkpoint="Hugging Face ClapModel directory", read=read, rules={"hf": LAION_RULES},
                ignore=LAION_IGNORE, tokenizer_in_checkpoint=True)
