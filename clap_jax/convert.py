r"""Converts published PyTorch CLAP checkpoints into converted directories.

    python -m clap_jax.convert --source=laion --checkpoint=630k-audioset-best.pt \
        --tokenizer=roberta-base/ --out=converted/laion-tiny [--allow_unsafe_pickle]
    python -m clap_jax.convert --source=hf --checkpoint=clap-htsat-unfused/ --out=converted/hf-tiny

The architecture is read from the checkpoint itself (LAION: tensor shapes; HF: config.json and
preprocessor_config.json), so any sizes load, not only the published ones.
"""
from __future__ import annotations

import json
import os
import re

import numpy as np
from absl import app, flags

from clap_jax import checkpoint, weights
from clap_jax.frontend import SpectrogramConfig
from clap_jax.models.clap import ClapConfig
from clap_jax.models.htsat import HTSATConfig
from clap_jax.models.text import TextConfig
from clap_jax.spec import AudioConfig, ClapSpec, TokenizerConfig

# Our module paths -> LAION names (applied in order).
LAION_RULES = [
    (r"^text_branch\.embeddings\.word\.", "text_branch.embeddings.word_embeddings."),
    (r"^text_branch\.embeddings\.position\.", "text_branch.embeddings.position_embeddings."),
    (r"^text_branch\.embeddings\.token_type\.", "text_branch.embeddings.token_type_embeddings."),
    (r"^text_branch\.embeddings\.norm\.", "text_branch.embeddings.LayerNorm."),
    (r"^text_branch\.layers\.(\d+)\.attention\.(query|key|value)\.", r"text_branch.encoder.layer.\1.attention.self.\2."),
    (r"^text_branch\.layers\.(\d+)\.attention\.out\.", r"text_branch.encoder.layer.\1.attention.output.dense."),
    (r"^text_branch\.layers\.(\d+)\.attention\.norm\.", r"text_branch.encoder.layer.\1.attention.output.LayerNorm."),
    (r"^text_branch\.layers\.(\d+)\.intermediate\.", r"text_branch.encoder.layer.\1.intermediate.dense."),
    (r"^text_branch\.layers\.(\d+)\.output_norm\.", r"text_branch.encoder.layer.\1.output.LayerNorm."),
    (r"^text_branch\.layers\.(\d+)\.output\.", r"text_branch.encoder.layer.\1.output.dense."),
    (r"^text_branch\.pooler\.", "text_branch.pooler.dense."),
    (r"\.fusion_model\.local_in\.conv\.", ".fusion_model.local_att.0."),
    (r"\.fusion_model\.local_in\.bn\.", ".fusion_model.local_att.1."),
    (r"\.fusion_model\.local_out\.conv\.", ".fusion_model.local_att.3."),
    (r"\.fusion_model\.local_out\.bn\.", ".fusion_model.local_att.4."),
    (r"\.fusion_model\.global_in\.conv\.", ".fusion_model.global_att.1."),
    (r"\.fusion_model\.global_in\.bn\.", ".fusion_model.global_att.2."),
    (r"\.fusion_model\.global_out\.conv\.", ".fusion_model.global_att.4."),
    (r"\.fusion_model\.global_out\.bn\.", ".fusion_model.global_att.5."),
    (r"^(audio|text)_projection\.linear1\.", r"\1_projection.0."),
    (r"^(audio|text)_projection\.linear2\.", r"\1_projection.2."),
]

# LAION tensors the embedding model does not use: the frozen torchlibrosa STFT/mel (we build
# them; checked in ``check_laion_frontend``), buffers we recompute, training-only heads.
LAION_IGNORE = [
    r"^audio_branch\.(spectrogram_extractor|logmel_extractor)\.", r"\.num_batches_tracked$",
    r"\.relative_position_index$", r"\.attn_mask$", r"^audio_branch\.(tscam_conv|head)\.",
    r"^(audio|text)_transform\.", r"^text_branch\.embeddings\.(position_ids|token_type_ids)$",
]

# Hugging Face ClapModel names -> LAION names (substring rules, in order).
HF_TO_LAION = [
    (r"^audio_model\.audio_encoder\.", "audio_branch."),
    (r"^text_model\.", "text_branch."),
    (r"^audio_branch\.batch_norm\.", "audio_branch.bn0."),
    (r"\.attention\.self\.relative_position_bias_table$", ".attn.relative_position_bias_table"),
    (r"\.attention\.self\.relative_position_index$", ".attn.relative_position_index"),
    (r"^(audio_branch\..*)\.attention\.output\.dense\.", r"\1.attn.proj."),
    (r"^(audio_branch\..*)\.intermediate\.dense\.", r"\1.mlp.fc1."),
    (r"^(audio_branch\..*)\.output\.dense\.", r"\1.mlp.fc2."),
    (r"\.layernorm_before\.", ".norm1."),
    (r"\.layernorm_after\.", ".norm2."),
    (r"^(audio|text)_projection\.linear1\.", r"\1_projection.0."),
    (r"^(audio|text)_projection\.linear2\.", r"\1_projection.2."),
]


def hf_to_laion(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
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


def _count(state, key_format: str) -> int:
    """How many of ``key_format.format(0)``, ``.format(1)``, ... exist, counting from 0 without gaps
    (stray keys further on are reported as unexpected instead of growing the architecture)."""
    n = 0
    while key_format.format(n) in state:
        n += 1
    return n


def laion_config(state: dict[str, np.ndarray]) -> ClapConfig:
    """Reads the architecture from the shapes of a LAION (LAION-named) state dict."""
    try:
        embed_dim = state["audio_branch.patch_embed.proj.weight"].shape[0]
        n_stages = _count(state, "audio_branch.layers.{}.blocks.0.norm1.weight")
        depths = tuple(_count(state, f"audio_branch.layers.{i}.blocks.{{}}.norm1.weight") for i in range(n_stages))
        tables = [state[f"audio_branch.layers.{i}.blocks.0.attn.relative_position_bias_table"] for i in range(n_stages)]
        window = (int(round(np.sqrt(tables[0].shape[0]))) + 1) // 2
        words = state["text_branch.embeddings.word_embeddings.weight"]
        hidden = words.shape[1]
        audio = HTSATConfig(
            embed_dim=embed_dim, depths=depths, num_heads=tuple(t.shape[1] for t in tables), window_size=window,
            n_mels=state["audio_branch.bn0.weight"].shape[0],
            fusion="audio_branch.patch_embed.mel_conv2d.weight" in state)
        text = TextConfig(
            vocab_size=words.shape[0], hidden_size=hidden,
            num_layers=_count(state, "text_branch.encoder.layer.{}.attention.self.query.weight"), num_heads=hidden // 64,
            intermediate_size=state["text_branch.encoder.layer.0.intermediate.dense.weight"].shape[0],
            max_positions=state["text_branch.embeddings.position_embeddings.weight"].shape[0],
            type_vocab_size=state["text_branch.embeddings.token_type_embeddings.weight"].shape[0],
            layer_norm_eps=1e-5, pad_token_id=1)
        joint = state["audio_projection.0.weight"].shape[0]
    except KeyError as err:
        raise weights.CheckpointMismatch("laion", [str(err.args[0])], []) from err
    return ClapConfig(audio=audio, text=text, joint_dim=joint)


def laion_spec(state: dict[str, np.ndarray]) -> ClapSpec:
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


def check_laion_frontend(state: dict[str, np.ndarray], spec: ClapSpec) -> None:
    """The checkpoint's frozen mel bank must equal the one we build (non-fusion models)."""
    from clap_jax.frontend import mel_filterbank
    mel_w = state.get("audio_branch.logmel_extractor.melW")
    if mel_w is not None and not spec.audio.fusion:
        ours = mel_filterbank(spec.audio.spectrogram)
        if mel_w.shape != ours.shape or np.abs(mel_w - ours).max() > 1e-6:
            raise ValueError("audio_branch.logmel_extractor.melW: the checkpoint's mel bank differs from the "
                             f"configured one ({spec.audio.spectrogram}); refusing to convert")


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


def _read_json(path: str) -> dict | None:
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def convert(source: str, checkpoint_path: str, out: str, tokenizer: str | None = None,
            allow_unsafe_pickle: bool = False, overwrite: bool = False) -> ClapSpec:
    """Converts one checkpoint; returns the spec written to ``out``."""
    if source == "laion":
        state = weights.read_state_dict(checkpoint_path, allow_unsafe_pickle)
        spec = laion_spec(state)
        check_laion_frontend(state, spec)
        tok_dir = tokenizer
    elif source == "hf":
        if not os.path.isdir(checkpoint_path):
            raise NotADirectoryError(f"{checkpoint_path}: --source=hf takes a ClapModel directory")
        config = _read_json(os.path.join(checkpoint_path, "config.json"))
        if config is None:
            raise FileNotFoundError(f"{checkpoint_path}: no config.json")
        weights_file = next((os.path.join(checkpoint_path, f) for f in ("model.safetensors", "pytorch_model.bin")
                             if os.path.exists(os.path.join(checkpoint_path, f))), None)
        if weights_file is None:
            raise FileNotFoundError(f"{checkpoint_path}: no model.safetensors or pytorch_model.bin")
        spec = hf_spec(config, _read_json(os.path.join(checkpoint_path, "preprocessor_config.json")))
        tok_config = _read_json(os.path.join(checkpoint_path, "tokenizer_config.json")) or {}
        max_len = min(int(tok_config.get("model_max_length", spec.tokenizer.max_length)), spec.tokenizer.max_length)
        spec = ClapSpec(model=spec.model, audio=spec.audio, tokenizer=TokenizerConfig(max_len), source="hf")
        state = hf_to_laion(weights.read_state_dict(weights_file, allow_unsafe_pickle))
        tok_dir = tokenizer or checkpoint_path
    else:
        raise ValueError(f"unknown --source {source!r} (laion, hf)")
    model = checkpoint.abstract_model(spec)
    weights.load_state(model, state, LAION_RULES, LAION_IGNORE, source=checkpoint_path)
    if tok_dir is None:
        raise ValueError(f"{checkpoint_path}: LAION checkpoints carry no tokenizer; pass --tokenizer=DIR "
                         "(a Hugging Face roberta-base directory)")
    checkpoint.save_converted(out, spec, model, tok_dir, overwrite)
    return spec


FLAGS = flags.FLAGS
flags.DEFINE_enum("source", None, ["laion", "hf"], "Checkpoint family.")
flags.DEFINE_string("checkpoint", None, "LAION .pt file, or a Hugging Face ClapModel directory.")
flags.DEFINE_string("out", None, "Output directory (written atomically).")
flags.DEFINE_string("tokenizer", None, "Tokenizer directory in Hugging Face format (required for LAION).")
flags.DEFINE_bool("allow_unsafe_pickle", False,
                  "Read the checkpoint with torch.load(weights_only=False). The published LAION .pt files need it "
                  "under current torch, but full unpickling executes any code stored in the file: use it only for "
                  "files from a source you trust.")
flags.DEFINE_bool("overwrite", False, "Replace an existing output directory.")


def main(argv):
    del argv
    spec = convert(FLAGS.source, FLAGS.checkpoint, FLAGS.out, FLAGS.tokenizer, FLAGS.allow_unsafe_pickle,
                   FLAGS.overwrite)
    print(f"wrote {FLAGS.out}: {spec.source} HTSAT embed_dim={spec.model.audio.embed_dim} "
          f"depths={spec.model.audio.depths} fusion={spec.model.audio.fusion}, "
          f"text layers={spec.model.text.num_layers}, joint_dim={spec.model.joint_dim}")


if __name__ == "__main__":
    flags.mark_flags_as_required(["source", "checkpoint", "out"])
    app.run(main)
