"""Text tokenisation with the ``tokenizers`` library from files in Hugging Face format.

A directory holds either ``tokenizer.json``, the byte-level BPE pair ``vocab.json`` +
``merges.txt`` (RoBERTa: ``<s> ... </s>``; GPT-2: no special tokens added), or a WordPiece
``vocab.txt`` (bert-base-uncased: lower-cased, ``[CLS] ... [SEP]``). Texts longer than the
context are truncated to ``max_length`` tokens including the special tokens, as the references
do (LAION: 77; Microsoft CLAP: 100 for BERT, 77 for GPT-2).
"""
from __future__ import annotations

import os
import shutil

import numpy as np
import tokenizers
from tokenizers import decoders, models, pre_tokenizers, processors
from tokenizers.implementations import BertWordPieceTokenizer

TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "vocab.txt", "tokenizer_config.json",
                   "special_tokens_map.json", "added_tokens.json")


def _pad_length(longest: int, max_length: int) -> int:
    """Pads to a power of two (at least 8, at most ``max_length``) so jit sees few shapes."""
    return min(max_length, max(8, 1 << (longest - 1).bit_length()))


_PAD_TOKENS = {"roberta": "<pad>", "gpt2": None, "bert": "[PAD]"}


class Tokenizer:
    """Callable: list of texts -> (ids (B, L) int32, attention mask (B, L) int32).

    ``suffix`` is appended to every text before encoding (Microsoft CLAP 2023's
    ``" <|endoftext|>"``). Batches are padded with ``pad_id`` to a power of two (masked).
    """

    def __init__(self, tok: tokenizers.Tokenizer, max_length: int, pad_id: int, suffix: str = ""):
        self.tok, self.max_length, self.pad_id, self.suffix = tok, max_length, pad_id, suffix
        self.tok.no_padding()
        self.tok.enable_truncation(max_length)

    @classmethod
    def load(cls, directory: str, max_length: int, family: str = "roberta", suffix: str = "",
             pad_token: str | None = None) -> "Tokenizer":
        """Reads a tokenizer directory; ``family``/``suffix``/``pad_token`` as in
        :class:`clap_jax.spec.TokenizerConfig`."""
        if family not in _PAD_TOKENS:
            raise ValueError(f"tokenizer family must be one of {sorted(_PAD_TOKENS)}, got {family!r}")
        path = os.path.join(directory, "tokenizer.json")
        has = lambda *names: all(os.path.exists(os.path.join(directory, f)) for f in names)
        if os.path.exists(path):
            tok = tokenizers.Tokenizer.from_file(path)
        elif family == "bert" and has("vocab.txt"):
            tok = BertWordPieceTokenizer(os.path.join(directory, "vocab.txt"), lowercase=True)._tokenizer
        elif family != "bert" and has("vocab.json", "merges.txt"):
            tok = _byte_level_bpe(os.path.join(directory, "vocab.json"), os.path.join(directory, "merges.txt"),
                                  roberta=family == "roberta")
        else:
            files = "vocab.txt" if family == "bert" else "vocab.json + merges.txt"
            raise FileNotFoundError(f"{directory}: no tokenizer.json or {files}")
        pad_token = pad_token or _PAD_TOKENS[family]
        if pad_token is None:
            raise ValueError(f"{directory}: a {family} tokenizer needs an explicit pad_token")
        if pad_token != _PAD_TOKENS[family]:
            tok.add_special_tokens([pad_token])
        pad = tok.token_to_id(pad_token)
        if pad is None:
            raise ValueError(f"{directory}: tokenizer has no {pad_token} token")
        return cls(tok, max_length, pad, suffix)

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts:
            raise ValueError("texts: empty list")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ValueError(f"texts[{i}]: expected a string, got {type(t).__name__}")
        encs = self.tok.encode_batch([t + self.suffix for t in texts] if self.suffix else texts)
        length = _pad_length(max(len(e.ids) for e in encs), self.max_length)
        ids = np.full((len(encs), length), self.pad_id, np.int32)
        mask = np.zeros((len(encs), length), np.int32)
        for i, e in enumerate(encs):
            ids[i, :len(e.ids)] = e.ids
            mask[i, :len(e.ids)] = 1
        return ids, mask


def _byte_level_bpe(vocab: str, merges: str, roberta: bool = True) -> tokenizers.Tokenizer:
    """Byte-level BPE from its two files: RoBERTa's wraps texts in ``<s> ... </s>``; GPT-2's adds
    nothing and knows ``<|endoftext|>`` as a special token."""
    tok = tokenizers.Tokenizer(models.BPE.from_file(vocab, merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    if roberta:
        tok.post_processor = processors.RobertaProcessing(
            ("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")), add_prefix_space=False)
    elif tok.token_to_id("<|endoftext|>") is not None:
        tok.add_special_tokens(["<|endoftext|>"])
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
