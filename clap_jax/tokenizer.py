"""Text tokenisation with the ``tokenizers`` library from files in Hugging Face format.

A directory holds either ``tokenizer.json`` or the byte-level BPE pair ``vocab.json`` +
``merges.txt`` (RoBERTa: ``<s> ... </s>``). Texts longer than the context are truncated to
``max_length`` tokens including the special tokens, as the references do (LAION: 77).
"""
from __future__ import annotations

import os
import shutil

import numpy as np
import tokenizers
from tokenizers import decoders, models, pre_tokenizers, processors

TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "vocab.txt", "tokenizer_config.json",
                   "special_tokens_map.json", "added_tokens.json")


def _pad_length(longest: int, max_length: int) -> int:
    """Pads to a power of two (at least 8, at most ``max_length``) so jit sees few shapes."""
    return min(max_length, max(8, 1 << (longest - 1).bit_length()))


class Tokenizer:
    """Callable: list of texts -> (ids (B, L) int32, attention mask (B, L) int32)."""

    def __init__(self, tok: tokenizers.Tokenizer, max_length: int, pad_id: int):
        self.tok, self.max_length, self.pad_id = tok, max_length, pad_id
        self.tok.no_padding()
        self.tok.enable_truncation(max_length)

    @classmethod
    def load(cls, directory: str, max_length: int) -> "Tokenizer":
        path = os.path.join(directory, "tokenizer.json")
        if os.path.exists(path):
            tok = tokenizers.Tokenizer.from_file(path)
        elif all(os.path.exists(os.path.join(directory, f)) for f in ("vocab.json", "merges.txt")):
            tok = _byte_level_bpe(os.path.join(directory, "vocab.json"), os.path.join(directory, "merges.txt"))
        else:
            raise FileNotFoundError(f"{directory}: no tokenizer.json or vocab.json + merges.txt")
        pad = tok.token_to_id("<pad>")
        if pad is None:
            raise ValueError(f"{directory}: tokenizer has no <pad> token")
        return cls(tok, max_length, pad)

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts:
            raise ValueError("texts: empty list")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ValueError(f"texts[{i}]: expected a string, got {type(t).__name__}")
        encs = self.tok.encode_batch(texts)
        length = _pad_length(max(len(e.ids) for e in encs), self.max_length)
        ids = np.full((len(encs), length), self.pad_id, np.int32)
        mask = np.zeros((len(encs), length), np.int32)
        for i, e in enumerate(encs):
            ids[i, :len(e.ids)] = e.ids
            mask[i, :len(e.ids)] = 1
        return ids, mask


def _byte_level_bpe(vocab: str, merges: str) -> tokenizers.Tokenizer:
    """RoBERTa's tokenizer from its two files: byte-level BPE wrapped in ``<s> ... </s>``."""
    tok = tokenizers.Tokenizer(models.BPE.from_file(vocab, merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")), add_prefix_space=False)
    return tok


def copy_tokenizer_files(src: str, dst: str) -> list[str]:
    """Copies the known tokenizer files of ``src`` into ``dst``; returns the names copied."""
    os.makedirs(dst, exist_ok=True)
    copied = [f for f in TOKENIZER_FILES if os.path.exists(os.path.join(src, f))]
    for f in copied:
        shutil.copyfile(os.path.join(src, f), os.path.join(dst, f))
    if not copied:
        raise FileNotFoundError(f"{src}: no tokenizer files ({', '.join(TOKENIZER_FILES)})")
    return copied
