r"""Converts published PyTorch CLAP checkpoints and CNN14 classifiers into converted directories.

    python -m clap_jax.convert --source=laion --checkpoint=630k-audioset-best.pt \
        --tokenizer=roberta-base/ --out=converted/laion-tiny [--allow_unsafe_pickle]
    python -m clap_jax.convert --source=hf --checkpoint=clap-htsat-unfused/ --out=converted/hf-tiny
    python -m clap_jax.convert --source=msclap --checkpoint=CLAP_weights_2023.pth --tokenizer=gpt2/ \
        --out=converted/msclap-2023
    python -m clap_jax.convert --source=panns --checkpoint=Cnn14_mAP=0.431.pth --out=converted/panns-cnn14
    python -m clap_jax.convert --source=speechbrain --checkpoint=cnn14-esc50/ --out=converted/sb-cnn14-esc50

The architecture is read from the checkpoint itself (LAION, Microsoft CLAP, PANNs, SpeechBrain:
tensor shapes; HF: config.json and preprocessor_config.json), so any sizes load, not only the
published ones. Every source has one rule table mapping our module paths to its names
(``*_RULES``) and one list of its tensors we do not use (``*_IGNORE``); every other key must
match both ways. Microsoft's own loader uses ``load_state_dict(strict=False)`` and silently
ignores missing keys; we refuse them.
"""
from __future__ import annotations

import json
import os
import re

import numpy as np
from absl import flags

from clap_jax import checkpoint, cli_errors, weights
from clap_jax.frontend import SpectrogramConfig, mel_filterbank
from clap_jax.models.clap import ClapConfig
from clap_jax.models.cnn14 import Cnn14Config
from clap_jax.models.gpt2 import GPT2Config
from clap_jax.models.htsat import HTSATConfig
from clap_jax.models.text import TextConfig
from clap_jax.spec import AudioConfig, ClapSpec, ClassifierSpec, TokenizerConfig

# Our BERT-family text encoder -> transformers' BertModel/RobertaModel names, under text_branch.
BERT_RULES = [
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
]

# Our module paths -> LAION names (applied in order).
LAION_RULES = BERT_RULES + [
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

# Microsoft CLAP (msclap ``CLAP``): audio_encoder.{base,projection}, caption_encoder.{base,projection},
# logit_scale. 2022: Cnn14 (PANNs names) + BertModel; 2023: HTSAT (LAION names, under ``htsat``) +
# GPT2Model (transformers' names, which our GPT-2 uses).
MSCLAP_2022_RULES = BERT_RULES + [
    (r"^audio_branch\.head\.", "audio_encoder.base.fc_audioset."),
    (r"^audio_branch\.", "audio_encoder.base."),
    (r"^text_branch\.", "caption_encoder.base."),
    (r"^audio_projection\.", "audio_encoder.projection."),
    (r"^text_projection\.", "caption_encoder.projection."),
]
MSCLAP_2023_RULES = [
    (r"^audio_branch\.", "audio_encoder.base.htsat."),
    (r"^text_branch\.", "caption_encoder.base."),
    (r"^audio_projection\.", "audio_encoder.projection."),
    (r"^text_projection\.", "caption_encoder.projection."),
]

# msclap tensors we do not use: frozen torchlibrosa STFT/mel (checked against ours), recomputed
# buffers, HTSAT's tagging head, BERT's pooler (msclap takes last_hidden_state[:, 0]), and the
# causal-mask buffers older transformers kept in GPT-2 state dicts.
MSCLAP_IGNORE = [
    r"\.(spectrogram_extractor|logmel_extractor)\.", r"\.num_batches_tracked$", r"\.relative_position_index$",
    r"\.attn_mask$", r"^audio_encoder\.base\.htsat\.(tscam_conv|head)\.", r"^caption_encoder\.base\.pooler\.",
    r"^caption_encoder\.base\.embeddings\.(position_ids|token_type_ids)$",
    r"^caption_encoder\.base\.h\.\d+\.attn\.(bias|masked_bias)$",
]

# PANNs ``Cnn14`` (audioset_tagging_cnn, panns_inference): our names are PANNs' except the head.
PANNS_RULES = [(r"^head\.", "fc_audioset.")]
PANNS_IGNORE = [r"^(spectrogram_extractor|logmel_extractor)\.", r"\.num_batches_tracked$"]

# SpeechBrain ``Cnn14`` (embedding_model.ckpt) + the recipe's ``torch.nn.Linear`` (classifier.ckpt,
# read under ``classifier.``).
SPEECHBRAIN_RULES = [
    (r"^bn0\.", "norm0."),
    (r"^(conv_block\d+)\.bn(\d)\.", r"\1.norm\2."),
    (r"^head\.", "classifier."),
]
SPEECHBRAIN_IGNORE = [r"\.num_batches_tracked$"]

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


def _htsat_config(state, p: str) -> HTSATConfig:
    """HTSAT sizes from the shapes of LAION-named tensors under prefix ``p``."""
    n_stages = _count(state, p + "layers.{}.blocks.0.norm1.weight")
    if n_stages == 0:
        raise KeyError(p + "layers.0.blocks.0.norm1.weight")
    depths = tuple(_count(state, p + f"layers.{i}.blocks.{{}}.norm1.weight") for i in range(n_stages))
    tables = [state[p + f"layers.{i}.blocks.0.attn.relative_position_bias_table"] for i in range(n_stages)]
    return HTSATConfig(
        embed_dim=state[p + "patch_embed.proj.weight"].shape[0], depths=depths,
        num_heads=tuple(t.shape[1] for t in tables), window_size=(int(round(np.sqrt(tables[0].shape[0]))) + 1) // 2,
        n_mels=state[p + "bn0.weight"].shape[0], fusion=p + "patch_embed.mel_conv2d.weight" in state)


def _bert_config(state, p: str, **kw) -> TextConfig:
    """BERT-family sizes from the shapes of transformers-named tensors under prefix ``p``."""
    words = state[p + "embeddings.word_embeddings.weight"]
    return TextConfig(
        vocab_size=words.shape[0], hidden_size=words.shape[1],
        num_layers=_count(state, p + "encoder.layer.{}.attention.self.query.weight"), num_heads=words.shape[1] // 64,
        intermediate_size=state[p + "encoder.layer.0.intermediate.dense.weight"].shape[0],
        max_positions=state[p + "embeddings.position_embeddings.weight"].shape[0],
        type_vocab_size=state[p + "embeddings.token_type_embeddings.weight"].shape[0], **kw)


def _cnn14_config(state, p: str, bn0: str, head: str, fc1: bool = True) -> Cnn14Config:
    """CNN14 sizes from the shapes of PANNs/SpeechBrain tensors under prefix ``p``."""
    channels = [state[p + "conv_block1.conv1.weight"].shape[0]]      # KeyError if not a CNN14
    while p + f"conv_block{len(channels) + 1}.conv1.weight" in state:
        channels.append(state[p + f"conv_block{len(channels) + 1}.conv1.weight"].shape[0])
    return Cnn14Config(
        n_mels=state[p + bn0 + ".weight"].shape[0], channels=tuple(channels),
        embed_dim=state[p + "fc1.weight"].shape[0] if fc1 else 0,
        num_classes=state[head + ".weight"].shape[0] if head + ".weight" in state else 0)


def laion_config(state: dict[str, np.ndarray]) -> ClapConfig:
    """Reads the architecture from the shapes of a LAION (LAION-named) state dict."""
    try:
        audio = _htsat_config(state, "audio_branch.")
        text = _bert_config(state, "text_branch.", layer_norm_eps=1e-5, pad_token_id=1)
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


def check_mel_bank(state: dict[str, np.ndarray], key: str, spec: SpectrogramConfig) -> None:
    """A checkpoint's frozen torchlibrosa mel bank (``key``), if present, must equal the one we build."""
    mel_w = state.get(key)
    if mel_w is not None:
        ours = mel_filterbank(spec)
        if mel_w.shape != ours.shape or np.abs(mel_w - ours).max() > 1e-6:
            raise ValueError(f"{key}: the checkpoint's mel bank differs from the configured one ({spec}); "
                             "refusing to convert")


def check_laion_frontend(state: dict[str, np.ndarray], spec: ClapSpec) -> None:
    """The checkpoint's frozen mel bank must equal the one we build (non-fusion models)."""
    if not spec.audio.fusion:
        check_mel_bank(state, "audio_branch.logmel_extractor.melW", spec.audio.spectrogram)


def _stft_size(state, key: str, default: int = 1024) -> int:
    """n_fft of a torchlibrosa STFT from its frozen DFT kernel (513, 1, 1024), if the checkpoint has it."""
    return state[key].shape[-1] if key in state else default


def msclap_spec(state: dict[str, np.ndarray]) -> ClapSpec:
    """Microsoft CLAP 2022 or 2023 (told apart by the audio encoder's tensors), its pipeline as
    ``CLAPWrapper`` runs it: 44.1 kHz mono, no quantisation; 5 s (2022) or 7 s (2023) windows,
    short clips repeated and cut (``repeat``), long clips cropped (the reference crops at random;
    we crop the centre unless asked). Mel: torchlibrosa Slaney bank, n_fft 1024, hop 320, 64 mels,
    50-14000 Hz; 2023's HTSAT builds that bank for 32 kHz (``msclap/models/config.py``) and
    applies it to 44.1 kHz audio. Text: BERT [CLS] with 100 tokens (2022); GPT-2 with
    ``" <|endoftext|>"`` appended, ``!`` as the pad token (id 0) and 77 tokens (2023).
    Embeddings are returned unnormalised, as msclap's ``get_*_embeddings`` do."""
    if any(k.startswith("clap.") or k.startswith("clap_project.") for k in state):
        raise ValueError("this looks like a clapcap (captioning) checkpoint; only CLAP_weights_2022/2023 are supported")
    try:
        if "audio_encoder.base.htsat.patch_embed.proj.weight" in state:
            version, prefix = "2023", "audio_encoder.base.htsat."
            audio = _htsat_config(state, prefix)
            text = GPT2Config(
                vocab_size=state["caption_encoder.base.wte.weight"].shape[0],
                max_positions=state["caption_encoder.base.wpe.weight"].shape[0],
                hidden_size=state["caption_encoder.base.wte.weight"].shape[1],
                num_layers=_count(state, "caption_encoder.base.h.{}.ln_1.weight"),
                num_heads=state["caption_encoder.base.wte.weight"].shape[1] // 64)
        elif "audio_encoder.base.conv_block1.conv1.weight" in state:
            version, prefix = "2022", "audio_encoder.base."
            audio = _cnn14_config(state, prefix, "bn0", prefix + "fc_audioset")
            text = _bert_config(state, "caption_encoder.base.", layer_norm_eps=1e-12, pad_token_id=0,
                                positions="absolute", pooling="cls")
        else:
            raise weights.CheckpointMismatch("msclap", ["audio_encoder.base.htsat.* (2023) or "
                                                        "audio_encoder.base.conv_block1.* (2022)"], [])
        joint = state["audio_encoder.projection.linear1.weight"].shape[0]
    except KeyError as err:
        raise weights.CheckpointMismatch("msclap", [str(err.args[0])], []) from err
    model = ClapConfig(audio=audio, text=text, joint_dim=joint, projection="msclap", shared_logit_scale=True)
    n_fft = _stft_size(state, prefix + "spectrogram_extractor.stft.conv_real.weight")
    seconds = {"2022": 5, "2023": 7}[version]
    spec = SpectrogramConfig(sample_rate=44100, n_fft=n_fft, win_length=n_fft, hop_length=320, n_mels=audio.n_mels,
                             fmin=50.0, fmax=14000.0, mel_sample_rate=32000 if version == "2023" else None)
    check_mel_bank(state, prefix + "logmel_extractor.melW", spec)
    tok = (TokenizerConfig(max_length=100, family="bert") if version == "2022" else
           TokenizerConfig(max_length=77, family="gpt2", suffix=" <|endoftext|>", pad_token="!"))
    return ClapSpec(model=model, audio=AudioConfig(spectrogram=spec, clip_samples=seconds * 44100, pad="repeat",
                                                   quantize_int16=False),
                    tokenizer=tok, source=f"msclap-{version}", normalize_embeddings=False)


# PANNs checkpoints do not store their rate or hop; the STFT size tells the published variants
# apart (Cnn14*.pth: 32 kHz; Cnn14_16k*: 16 kHz; Cnn14_8k*: 8 kHz), checked against the stored bank.
PANNS_FRONTENDS = {1024: (32000, 320, 14000.0), 512: (16000, 160, 8000.0), 256: (8000, 80, 4000.0)}


def panns_spec(state: dict[str, np.ndarray]) -> ClassifierSpec:
    """A PANNs Cnn14 (AudioSet tagging): torchlibrosa Slaney log-mel (64 mels from 50 Hz), 10 s
    windows, short clips zero-padded (PANNs' ``pad_or_truncate``), long ones cropped at the centre.
    Logits go through a sigmoid (527 independent AudioSet labels)."""
    try:
        model = _cnn14_config(state, "", "bn0", "fc_audioset")
    except KeyError as err:
        raise weights.CheckpointMismatch("panns", [str(err.args[0])], []) from err
    n_fft = _stft_size(state, "spectrogram_extractor.stft.conv_real.weight")
    if n_fft not in PANNS_FRONTENDS:
        raise ValueError(f"spectrogram_extractor.stft.conv_real.weight: n_fft {n_fft} is not a published PANNs "
                         f"front end ({sorted(PANNS_FRONTENDS)})")
    sr, hop, fmax = PANNS_FRONTENDS[n_fft]
    spec = SpectrogramConfig(sample_rate=sr, n_fft=n_fft, win_length=n_fft, hop_length=hop, n_mels=model.n_mels,
                             fmin=50.0, fmax=fmax)
    check_mel_bank(state, "logmel_extractor.melW", spec)
    return ClassifierSpec(model=model, audio=AudioConfig(spectrogram=spec, clip_samples=10 * sr, pad="zeros",
                                                         quantize_int16=False),
                          source="panns", activation="sigmoid")


def speechbrain_spec(state: dict[str, np.ndarray], labels: tuple[str, ...] = ()) -> ClassifierSpec:
    """SpeechBrain's CNN14 ESC-50 classifier as the L-MAC recipe (``lmac_cnn14.yaml``) runs it:
    16 kHz, clips divided by their maximum sample, 5 s windows (zero-padded); ``STFT(n_fft=1024,
    win_length=23.2199 ms, hop_length=11.6099 ms)``: Hamming window of round(16 * 23.2199) = 372
    samples, hop 186, zero padding at the ends; ``spectral_magnitude(power=0.5)``;
    ``Filterbank(n_mels=80, log_mel=False)`` (0-8000 Hz) on the magnitude; ``log1p``. The
    classifier is ``Linear(2048, classes)`` on the pooled CNN14 output; softmax over classes."""
    try:
        model = _cnn14_config(state, "", "norm0", "classifier", fc1=False)
    except KeyError as err:
        raise weights.CheckpointMismatch("speechbrain", [str(err.args[0])], []) from err
    sr = 16000
    ms = lambda v: int(round(sr / 1000.0 * v))        # SpeechBrain's STFT takes milliseconds
    spec = SpectrogramConfig(
        sample_rate=sr, n_fft=1024, win_length=ms(23.2199), hop_length=ms(11.6099), n_mels=model.n_mels, fmin=0.0,
        fmax=8000.0, mel_scale="speechbrain", mel_norm=None, pad_mode="constant", window="hamming",
        mel_exponent=1.0, compression="log1p", magnitude_eps=1e-14)
    return ClassifierSpec(model=model, audio=AudioConfig(spectrogram=spec, clip_samples=5 * sr, pad="zeros",
                                                         quantize_int16=False, normalize="max"),
                          source="speechbrain", activation="softmax", labels=labels)


def read_speechbrain_labels(path: str) -> tuple[str, ...]:
    """Class names from a SpeechBrain ``label_encoder.txt`` (lines ``'dog' => 0``), by index."""
    names = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"^'(.*)' => (\d+)$", line.strip())
            if m and not m.group(1).startswith("starting_index"):
                names[int(m.group(2))] = m.group(1)
    return tuple(names[i] for i in sorted(names))


def read_speechbrain(path: str, allow_unsafe_pickle: bool = False) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """A SpeechBrain classifier directory (or a file in it): ``embedding_model.ckpt`` (the CNN14)
    and ``classifier.ckpt`` (its Linear, read under ``classifier.``); ``label_encoder.txt`` if present."""
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    files = {name: os.path.join(directory, f"{name}.ckpt") for name in ("embedding_model", "classifier")}
    for name, f in files.items():
        if not os.path.exists(f):
            raise FileNotFoundError(f"{directory}: no {name}.ckpt (a SpeechBrain classifier directory holds "
                                    "embedding_model.ckpt and classifier.ckpt)")
    state = weights.read_state_dict(files["embedding_model"], allow_unsafe_pickle)
    for k, v in weights.read_state_dict(files["classifier"], allow_unsafe_pickle).items():
        state[f"classifier.{k}"] = v
    labels_file = os.path.join(directory, "label_encoder.txt")
    return state, read_speechbrain_labels(labels_file) if os.path.exists(labels_file) else ()


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
        try:
            data = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


SOURCES = ("laion", "hf", "msclap", "panns", "speechbrain")
TOKENIZERS = {"laion": "roberta-base", "msclap": "bert-base-uncased (2022) or gpt2 (2023)"}


def check_arguments(source: str, checkpoint_path: str, out: str, tokenizer: str | None = None,
                    overwrite: bool = False) -> None:
    """Everything about the flags that can be checked before the checkpoint is read: the source,
    the checkpoint exists, a tokenizer folder where the source needs one, and ``out``
    (``checkpoint.check_output_dir``: new, or with ``overwrite`` a converted model)."""
    if source not in SOURCES:
        raise ValueError(f"unknown --source {source!r} ({', '.join(SOURCES)})")
    if not checkpoint_path or not os.path.exists(checkpoint_path):
        raise FileNotFoundError(f"--checkpoint={checkpoint_path}: no such file or folder")
    from clap_jax.tokenizer import TOKENIZER_FILES
    if tokenizer is not None and not os.path.isdir(tokenizer):
        raise FileNotFoundError(f"--tokenizer={tokenizer}: no such folder (a Hugging Face tokenizer directory)")
    tok_dir = tokenizer or (checkpoint_path if source == "hf" and os.path.isdir(checkpoint_path) else None)
    tok_dir = None if source in ("panns", "speechbrain") else tok_dir          # classifiers have no text
    if tok_dir is not None and not any(os.path.exists(os.path.join(tok_dir, f)) for f in TOKENIZER_FILES):
        raise FileNotFoundError(f"{tok_dir}: no tokenizer files ({', '.join(TOKENIZER_FILES)})")
    if tokenizer is None and source in TOKENIZERS:
        raise ValueError(f"{checkpoint_path}: {'LAION' if source == 'laion' else 'Microsoft CLAP'} checkpoints "
                         f"carry no tokenizer; pass --tokenizer=DIR (a Hugging Face {TOKENIZERS[source]} directory)")
    checkpoint.check_output_dir(out, overwrite)


def convert(source: str, checkpoint_path: str, out: str, tokenizer: str | None = None,
            allow_unsafe_pickle: bool = False, overwrite: bool = False) -> ClapSpec | ClassifierSpec:
    """Converts one checkpoint; returns the spec written to ``out``. The arguments are checked
    first (:func:`check_arguments`); a checkpoint that cannot be read or does not fit raises
    ``weights.CheckpointError`` / ``weights.CheckpointMismatch`` naming the file and the key."""
    check_arguments(source, checkpoint_path, out, tokenizer, overwrite)
    try:
        return _convert(source, checkpoint_path, out, tokenizer, allow_unsafe_pickle, overwrite)
    except weights.CheckpointMismatch as err:
        raise err.naming(checkpoint_path) from err


def _convert(source, checkpoint_path, out, tokenizer, allow_unsafe_pickle, overwrite):
    """:func:`convert` after :func:`check_arguments` (a tokenizer is there where needed)."""
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
    elif source == "msclap":
        state = weights.read_state_dict(checkpoint_path, allow_unsafe_pickle, entry="model")
        spec = msclap_spec(state)
        rules = MSCLAP_2022_RULES if spec.source == "msclap-2022" else MSCLAP_2023_RULES
        model = checkpoint.abstract_model(spec)
        weights.load_state(model, state, rules, MSCLAP_IGNORE, source=checkpoint_path)
        checkpoint.save_converted(out, spec, model, tokenizer, overwrite)
        return spec
    else:                                             # panns, speechbrain (check_arguments)
        if source == "panns":
            state = weights.read_state_dict(checkpoint_path, allow_unsafe_pickle, entry="model")
            spec, rules, ignore = panns_spec(state), PANNS_RULES, PANNS_IGNORE
        else:
            state, labels = read_speechbrain(checkpoint_path, allow_unsafe_pickle)
            spec, rules, ignore = speechbrain_spec(state, labels), SPEECHBRAIN_RULES, SPEECHBRAIN_IGNORE
        model = checkpoint.abstract_classifier(spec)
        weights.load_state(model, state, rules, ignore, source=checkpoint_path)
        checkpoint.save_converted(out, spec, model, None, overwrite)
        return spec
    model = checkpoint.abstract_model(spec)
    weights.load_state(model, state, LAION_RULES, LAION_IGNORE, source=checkpoint_path)
    checkpoint.save_converted(out, spec, model, tok_dir, overwrite)
    return spec


FLAGS = flags.FLAGS
flags.DEFINE_enum("source", None, ["laion", "hf", "msclap", "panns", "speechbrain"], "Checkpoint family.")
flags.DEFINE_string("checkpoint", None, "LAION .pt file, Hugging Face ClapModel directory, Microsoft CLAP "
                    "CLAP_weights_202x.pth, PANNs Cnn14*.pth, or a SpeechBrain classifier directory "
                    "(embedding_model.ckpt + classifier.ckpt).")
flags.DEFINE_string("out", None, "Output directory (written atomically).")
flags.DEFINE_string("tokenizer", None, "Tokenizer directory in Hugging Face format (required for LAION: roberta-base; "
                    "msclap 2022: bert-base-uncased; msclap 2023: gpt2).")
flags.DEFINE_bool("allow_unsafe_pickle", False,
                  "Read the checkpoint with torch.load(weights_only=False). The published LAION .pt files need it "
                  "under current torch, but full unpickling executes any code stored in the file: use it only for "
                  "files from a source you trust.")
flags.DEFINE_bool("overwrite", False, "Replace an existing converted model directory (one with spec.json; "
                  "any other existing folder is never replaced), atomically.")


@cli_errors.guard("clap_jax.convert")
def main(argv):
    """Exit status 0 when written; 1 with one line on stderr naming what is wrong (the traceback
    with ``--verbosity=1``), nothing written at ``--out``."""
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {argv[1:]}")
    spec = convert(FLAGS.source, FLAGS.checkpoint, FLAGS.out, FLAGS.tokenizer, FLAGS.allow_unsafe_pickle,
                   FLAGS.overwrite)
    print(f"wrote {FLAGS.out}: {describe(spec)}")
    return 0


def describe(spec: ClapSpec | ClassifierSpec) -> str:
    """One line about a converted model's architecture."""
    a = spec.model if isinstance(spec, ClassifierSpec) else spec.model.audio
    if a.kind == "htsat":
        audio = f"HTSAT embed_dim={a.embed_dim} depths={a.depths} fusion={a.fusion}"
    else:
        audio = f"CNN14 mels={a.n_mels} embedding={a.num_features} classes={a.num_classes}"
    if isinstance(spec, ClassifierSpec):
        return f"{spec.source} classifier, {audio}, {spec.audio.spectrogram.sample_rate} Hz"
    t = spec.model.text
    return f"{spec.source} {audio}, text {t.kind} layers={t.num_layers}, joint_dim={spec.model.joint_dim}"


if __name__ == "__main__":
    from clap_jax import runtime
    flags.mark_flags_as_required(["source", "checkpoint", "out"])
    runtime.run(main)
