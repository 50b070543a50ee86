"""Small tokenizers in the published formats, trained here so no hub download is needed (used by
the test fixtures in conftest.py and by the benchmarks). Nothing here needs torch."""
from __future__ import annotations

import json
import os


def train_roberta(out: str, texts: list[str], vocab_size: int = 400) -> str:
    """RoBERTa's format (vocab.json + merges.txt), special ids as roberta-base: <s>=0 <pad>=1 </s>=2 <unk>=3."""
    from tokenizers import ByteLevelBPETokenizer
    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tok.save_model(out)
    return out


def train_bert(out: str, texts: list[str], vocab_size: int = 300) -> str:
    """bert-base-uncased's format: a WordPiece vocab.txt, lower-cased, [PAD]=0."""
    from tokenizers import BertWordPieceTokenizer
    tok = BertWordPieceTokenizer(lowercase=True)
    tok.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=1,
                            special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tok.save_model(out)
    return out


def train_gpt2(out: str, texts: list[str], vocab_size: int = 400) -> str:
    """gpt2's format (vocab.json + merges.txt): ``!`` is id 0 as in gpt2 (the first symbol of the
    byte-level alphabet) and ``<|endoftext|>`` is the last id."""
    from tokenizers import ByteLevelBPETokenizer
    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=1, special_tokens=["<|endoftext|>"])
    tok.save_model(out)
    path = os.path.join(out, "vocab.json")
    with open(path) as f:
        vocab = json.load(f)
    order = sorted((i, t) for t, i in vocab.items() if t != "<|endoftext|>")
    vocab = {t: n for n, (_, t) in enumerate(order)}
    vocab["<|endoftext|>"] = len(vocab)
    if vocab.get("!") != 0:
        raise AssertionError("'!' should be the first byte-level symbol (id 0), as in gpt2")
    with open(path, "w") as f:
        json.dump(vocab, f)
    return out
