"""Microsoft CLAP (``msclap``'s ``CLAP_weights_2022.pth`` / ``CLAP_weights_2023.pth``).

    CLAP_weights_202x.pth ["model"] --msclap_spec--> ClapSpec ("msclap-2022" | "msclap-2023")
        (version told apart by the audio encoder's tensors; the rule table follows it)

msclap ``CLAP``: audio_encoder.{base,projection}, caption_encoder.{base,projection}, logit_scale.
2022: Cnn14 (PANNs names) + BertModel; 2023: HTSAT (LAION names, under ``htsat``) + GPT2Model
(transformers' names, which our GPT-2 uses). Microsoft's own loader uses
``load_state_dict(strict=False)`` and silently ignores missing keys; we refuse them.
"""
from __future__ import annotations

import dataclasses

from clap_jax import weights
from clap_jax.converters.base import BERT_RULES, Source, State, bert_config, check_mel_bank, cnn14_config, count, \
    htsat_config, renames, shapes_of, stft_size
from clap_jax.frontend import SpectrogramConfig
from clap_jax.models.clap import ClapConfig
from clap_jax.models.gpt2 import GPT2Config
from clap_jax.spec import AudioConfig, ClapSpec, TokenizerConfig

MSCLAP_2022_RULES = BERT_RULES + renames("^", "", [
    ("audio_branch.head", "audio_encoder.base.fc_audioset"), ("audio_branch", "audio_encoder.base"),
    ("text_branch", "caption_encoder.base"), ("audio_projection", "audio_encoder.projection"),
    ("text_projection", "caption_encoder.projection")])
MSCLAP_2023_RULES = renames("^", "", [
    ("audio_branch", "audio_encoder.base.htsat"), ("text_branch", "caption_encoder.base"),
    ("audio_projection", "audio_encoder.projection"), ("text_projection", "caption_encoder.projection")])

# msclap tensors we do not use: frozen torchlibrosa STFT/mel (checked against ours), recomputed
# buffers, HTSAT's tagging head, BERT's pooler (msclap takes last_hidden_state[:, 0]), and the
# causal-mask buffers older transformers kept in GPT-2 state dicts.
MSCLAP_IGNORE = [
    r"\.(spectrogram_extractor|logmel_extractor)\.", r"\.num_batches_tracked$", r"\.relative_position_index$",
    r"\.attn_mask$", r"^audio_encoder\.base\.htsat\.(tscam_conv|head)\.", r"^caption_encoder\.base\.pooler\.",
    r"^caption_encoder\.base\.embeddings\.(position_ids|token_type_ids)$",
    r"^caption_encoder\.base\.h\.\d+\.attn\.(bias|masked_bias)$",
]


# The entry ``clap_jax.export`` writes beside ``"model"`` (a ClapSpec as JSON): the front end,
# clip length and tokenizer of a model Microsoft did not publish, which no tensor holds.
SPEC_ENTRY = "clap_jax_spec"


def msclap_spec(state: State, written: ClapSpec | None = None) -> ClapSpec:
    """Microsoft CLAP 2022 or 2023 (told apart by the audio encoder's tensors), its pipeline as
    ``CLAPWrapper`` runs it: 44.1 kHz mono, no quantisation; 5 s (2022) or 7 s (2023) windows,
    short clips repeated and cut (``repeat``), long clips cropped (the reference crops at random;
    we crop the centre unless asked). Mel: torchlibrosa Slaney bank, n_fft 1024, hop 320, 64 mels,
    50-14000 Hz; 2023's HTSAT builds that bank for 32 kHz (``msclap/models/config.py``) and
    applies it to 44.1 kHz audio. Text: BERT [CLS] with 100 tokens (2022); GPT-2 with
    ``" <|endoftext|>"`` appended, ``!`` as the pad token (id 0) and 77 tokens (2023).
    Embeddings are returned unnormalised, as msclap's ``get_*_embeddings`` do.

    ``written``: the spec a file exported by ``clap_jax.export`` carries (:data:`SPEC_ENTRY`);
    its model, front end and tokenizer replace the published defaults (the version, the tensors'
    shapes and the mel bank are still checked against the state dict)."""
    if any(k.startswith("clap.") or k.startswith("clap_project.") for k in state):
        raise ValueError("this looks like a clapcap (captioning) checkpoint; only CLAP_weights_2022/2023 are supported")
    with shapes_of("msclap"):
        if "audio_encoder.base.htsat.patch_embed.proj.weight" in state:
            version, prefix = "2023", "audio_encoder.base.htsat."
            audio = htsat_config(state, prefix)
            text = GPT2Config(
                vocab_size=state["caption_encoder.base.wte.weight"].shape[0],
                max_positions=state["caption_encoder.base.wpe.weight"].shape[0],
                hidden_size=state["caption_encoder.base.wte.weight"].shape[1],
                num_layers=count(state, "caption_encoder.base.h.{}.ln_1.weight"),
                num_heads=state["caption_encoder.base.wte.weight"].shape[1] // 64)
        elif "audio_encoder.base.conv_block1.conv1.weight" in state:
            version, prefix = "2022", "audio_encoder.base."
            audio = cnn14_config(state, prefix, "bn0", prefix + "fc_audioset")
            text = bert_config(state, "caption_encoder.base.", layer_norm_eps=1e-12, pad_token_id=0,
                               positions="absolute", pooling="cls")
        else:
            raise weights.CheckpointMismatch("msclap", ["audio_encoder.base.htsat.* (2023) or "
                                                        "audio_encoder.base.conv_block1.* (2022)"], [])
        joint = state["audio_encoder.projection.linear1.weight"].shape[0]
    model = ClapConfig(audio=audio, text=text, joint_dim=joint, projection="msclap", shared_logit_scale=True)
    if written is not None:
        return _written_spec(state, written, model, version, prefix)
    n_fft = stft_size(state, prefix + "spectrogram_extractor.stft.conv_real.weight")
    seconds = {"2022": 5, "2023": 7}[version]
    spec = SpectrogramConfig(sample_rate=44100, n_fft=n_fft, win_length=n_fft, hop_length=320, n_mels=audio.n_mels,
                             fmin=50.0, fmax=14000.0, mel_sample_rate=32000 if version == "2023" else None)
    check_mel_bank(state, prefix + "logmel_extractor.melW", spec)
    tok = (TokenizerConfig(max_length=100, family="bert") if version == "2022" else
           TokenizerConfig(max_length=77, family="gpt2", suffix=" <|endoftext|>", pad_token="!"))
    return ClapSpec(model=model, audio=AudioConfig(spectrogram=spec, clip_samples=seconds * 44100, pad="repeat",
                                                   quantize_int16=False),
                    tokenizer=tok, source=f"msclap-{version}", normalize_embeddings=False)


def _written_spec(state: State, written: ClapSpec, model: ClapConfig, version: str, prefix: str) -> ClapSpec:
    """``written`` checked against the state dict it came with (see :func:`msclap_spec`)."""
    where = f"the {SPEC_ENTRY} entry"
    if written.model.audio.kind != model.audio.kind or written.model.text.kind != model.text.kind:
        raise ValueError(f"{where} describes a {written.model.audio.kind} + {written.model.text.kind} model, the "
                         f"tensors a {model.audio.kind} + {model.text.kind} one (msclap {version})")
    n_fft = stft_size(state, prefix + "spectrogram_extractor.stft.conv_real.weight")
    if n_fft != written.audio.spectrogram.n_fft:
        raise ValueError(f"{where}: n_fft {written.audio.spectrogram.n_fft}, the STFT tensors {n_fft}")
    check_mel_bank(state, prefix + "logmel_extractor.melW", written.audio.spectrogram)
    return dataclasses.replace(written, source=f"msclap-{version}")


def read(path: str, allow_unsafe_pickle: bool) -> tuple[State, ClapSpec]:
    """A ``CLAP_weights_202x.pth`` file (the state dict under ``"model"``) and its spec."""
    state, entries = weights.read_checkpoint(path, allow_unsafe_pickle, entry="model")
    written = entries.get(SPEC_ENTRY)
    try:
        written = ClapSpec.from_json(written) if written is not None else None
    except (ValueError, TypeError) as err:
        raise weights.CheckpointError(f"{path}: its {SPEC_ENTRY} entry is not a clap-jax spec ({err})") from err
    return state, msclap_spec(state, written)


SOURCE = Source(name="msclap", checkpoint="Microsoft CLAP CLAP_weights_202x.pth", read=read,
                rules={"msclap-2022": MSCLAP_2022_RULES, "msclap-2023": MSCLAP_2023_RULES}, ignore=MSCLAP_IGNORE,
                tokenizer="bert-base-uncased (2022) or gpt2 (2023)", title="Microsoft CLAP")
