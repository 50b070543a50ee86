"""What every checkpoint source module shares: the :class:`Source` record the registry holds, the
rename-rule helper, the readers of architecture sizes from tensor shapes, and the front-end checks.

    checkpoint file/folder --Source.read--> (state dict in the source's names, spec)
        --weights.load_state(model, state, Source.rules[spec.source], Source.ignore)--> model

A rule is ``(regex, replacement)`` applied with ``re.sub`` to each of our module paths, all rules
in order (``weights.torch_names``); ``ignore`` are regexes of checkpoint keys the model does not use.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from clap_jax import weights
from clap_jax.frontend import SpectrogramConfig, mel_filterbank
from clap_jax.models.cnn14 import Cnn14Config
from clap_jax.models.htsat import HTSATConfig
from clap_jax.models.text import TextConfig
from clap_jax.spec import ClapSpec, ClassifierSpec

Rules = Sequence[tuple[str, str]]
State = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class Source:
    """One checkpoint family, ``--source=<name>``.

    ``read(path, allow_unsafe_pickle)`` reads ``--checkpoint`` into a state dict in the names
    ``rules`` map to and the spec read from it (architecture from tensor shapes or config files,
    front end checked against the checkpoint's frozen tensors); it raises ``weights.CheckpointError``
    / ``CheckpointMismatch`` / ``ValueError`` / ``FileNotFoundError`` with one line naming what is wrong.
    ``rules`` holds one table per variant the reader returns, keyed by ``spec.source``.
    """
    name: str
    checkpoint: str                     # what --checkpoint names, for --help ("LAION .pt file")
    read: Callable[[str, bool], tuple[State, ClapSpec | ClassifierSpec]]
    rules: Mapping[str, Rules]          # spec.source -> our module paths -> checkpoint names
    ignore: Sequence[str] = ()          # regexes of checkpoint keys the model does not use
    classifier: bool = False            # a ClassifierSpec: no text branch, no tokenizer
    tokenizer: str | None = None        # the Hugging Face tokenizer --tokenizer must name (none in the file)
    title: str = ""                     # the family in messages ("LAION checkpoints carry no tokenizer")
    tokenizer_in_checkpoint: bool = False   # a --checkpoint folder is also the tokenizer directory (HF)


def renames(ours: str, theirs: str, names: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Rules for names under one prefix: ``(a, b)`` renames ``ours + a + "."`` to ``theirs + b + "."``.
    ``ours`` is a regex (with any groups ``theirs`` refers to); ``a`` and ``b`` are dotted names,
    ``a`` taken literally. Order is kept, so a longer name goes before a name it starts with."""
    return [(ours + re.escape(a) + r"\.", theirs + b + ".") for a, b in names]


# Our BERT-family text encoder -> transformers' BertModel/RobertaModel names, under text_branch.
BERT_RULES = [
    *renames(r"^text_branch\.embeddings\.", "text_branch.embeddings.", [
        ("word", "word_embeddings"), ("position", "position_embeddings"),
        ("token_type", "token_type_embeddings"), ("norm", "LayerNorm")]),
    *renames(r"^text_branch\.layers\.(\d+)\.", r"text_branch.encoder.layer.\1.", [
        ("attention.query", "attention.self.query"), ("attention.key", "attention.self.key"),
        ("attention.value", "attention.self.value"), ("attention.out", "attention.output.dense"),
        ("attention.norm", "attention.output.LayerNorm"), ("intermediate", "intermediate.dense"),
        ("output_norm", "output.LayerNorm"), ("output", "output.dense")]),
    *renames(r"^text_branch\.", "text_branch.", [("pooler", "pooler.dense")]),
]


@contextlib.contextmanager
def shapes_of(source: str):
    """Reading sizes from tensor shapes: a missing tensor (``KeyError``) becomes
    ``weights.CheckpointMismatch(source, [key], [])``."""
    try:
        yield
    except KeyError as err:
        raise weights.CheckpointMismatch(source, [str(err.args[0])], []) from err


def count(state, key_format: str) -> int:
    """How many of ``key_format.format(0)``, ``.format(1)``, ... exist, counting from 0 without gaps
    (stray keys further on are reported as unexpected instead of growing the architecture)."""
    n = 0
    while key_format.format(n) in state:
        n += 1
    return n


def htsat_config(state, p: str) -> HTSATConfig:
    """HTSAT sizes from the shapes of LAION-named tensors under prefix ``p``."""
    n_stages = count(state, p + "layers.{}.blocks.0.norm1.weight")
    if n_stages == 0:
        raise KeyError(p + "layers.0.blocks.0.norm1.weight")
    depths = tuple(count(state, p + f"layers.{i}.blocks.{{}}.norm1.weight") for i in range(n_stages))
    tables = [state[p + f"layers.{i}.blocks.0.attn.relative_position_bias_table"] for i in range(n_stages)]
    return HTSATConfig(
        embed_dim=state[p + "patch_embed.proj.weight"].shape[0], depths=depths,
        num_heads=tuple(t.shape[1] for t in tables), window_size=(int(round(np.sqrt(tables[0].shape[0]))) + 1) // 2,
        n_mels=state[p + "bn0.weight"].shape[0], fusion=p + "patch_embed.mel_conv2d.weight" in state)


def bert_config(state, p: str, **kw) -> TextConfig:
    """BERT-family sizes from the shapes of transformers-named tensors under prefix ``p``."""
    words = state[p + "embeddings.word_embeddings.weight"]
    return TextConfig(
        vocab_size=words.shape[0], hidden_size=words.shape[1],
        num_layers=count(state, p + "encoder.layer.{}.attention.self.query.weight"), num_heads=words.shape[1] // 64,
        intermediate_size=state[p + "encoder.layer.0.intermediate.dense.weight"].shape[0],
        max_positions=state[p + "embeddings.position_embeddings.weight"].shape[0],
        type_vocab_size=state[p + "embeddings.token_type_embeddings.weight"].shape[0], **kw)


def cnn14_config(state, p: str, bn0: str, head: str, fc1: bool = True) -> Cnn14Config:
    """CNN14 sizes from the shapes of PANNs/SpeechBrain tensors under prefix ``p``."""
    channels = [state[p + "conv_block1.conv1.weight"].shape[0]]      # KeyError if not a CNN14
    while p + f"conv_block{len(channels) + 1}.conv1.weight" in state:
        channels.append(state[p + f"conv_block{len(channels) + 1}.conv1.weight"].shape[0])
    return Cnn14Config(
        n_mels=state[p + bn0 + ".weight"].shape[0], channels=tuple(channels),
        embed_dim=state[p + "fc1.weight"].shape[0] if fc1 else 0,
        num_classes=state[head + ".weight"].shape[0] if head + ".weight" in state else 0)


def stft_size(state, key: str, default: int = 1024) -> int:
    """n_fft of a torchlibrosa STFT from its frozen DFT kernel (513, 1, 1024), if the checkpoint has it."""
    return state[key].shape[-1] if key in state else default


def check_mel_bank(state: State, key: str, spec: SpectrogramConfig) -> None:
    """A checkpoint's frozen torchlibrosa mel bank (``key``), if present, must equal the one we build."""
    mel_w = state.get(key)
    if mel_w is not None:
        ours = mel_filterbank(spec)
        if mel_w.shape != ours.shape or np.abs(mel_w - ours).max() > 1e-6:
            raise ValueError(f"{key}: the checkpoint's mel bank differs from the configured one ({spec}); "
                             "refusing to convert")


def read_json(path: str) -> dict | None:
    """A JSON object from ``path``; ``None`` when there is no such file."""
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
