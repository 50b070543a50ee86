"""Shared fixtures. Reference packages (torch, laion_clap, transformers) are imported lazily so
the tests that do not need them run without them."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

import offline_tokenizers  # noqa: E402

CAPTIONS = [
    "a dog barks while rain falls on a tin roof", "a high beep, then rain", "a siren wails over traffic",
    "birds chirp in the morning", "a clock ticking in a quiet room", "white noise and a rising chirp",
    "someone speaks, then a door slams", "an engine hums in the distance!", "the bell rings three times",
    "This is a sound of footsteps.", "wind blowing through trees", "a kettle whistles loudly",
]


# Prepended to code run in a fresh interpreter: importing torch fails there (a meta-path finder
# refuses it), so whatever runs after it provably works without torch.
NO_TORCH = """import importlib.abc, sys
class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, _NoTorch())
"""


@pytest.fixture(scope="session")
def roberta_tokenizer_dir(tmp_path_factory) -> str:
    """A small byte-level BPE tokenizer in RoBERTa's format (vocab.json + merges.txt), trained
    here so no hub download is needed. Special ids as roberta-base: <s>=0 <pad>=1 </s>=2 <unk>=3."""
    return offline_tokenizers.train_roberta(str(tmp_path_factory.mktemp("roberta_tok")), CAPTIONS * 20)


@pytest.fixture(scope="session")
def clips() -> list[np.ndarray]:
    """48 kHz test clips: shorter than 10 s (repeat-padded), exactly 10 s, and longer."""
    rng = np.random.default_rng(0)
    t = lambda n: np.arange(n) / 48000.0
    short = 0.3 * np.sin(2 * np.pi * 440 * t(96000)) + 0.05 * rng.standard_normal(96000)
    exact = 0.2 * rng.standard_normal(480000) * np.sin(2 * np.pi * 0.5 * t(480000))
    chirp = 0.4 * np.sin(2 * np.pi * (200 + 300 * t(150000)) * t(150000))
    return [a.astype(np.float32) for a in (short, exact, chirp)]


@pytest.fixture(scope="session")
def bert_tokenizer_dir(tmp_path_factory) -> str:
    """A small WordPiece vocab.txt in bert-base-uncased's format ([PAD]=0, lower-cased)."""
    return offline_tokenizers.train_bert(str(tmp_path_factory.mktemp("bert_tok")), CAPTIONS * 20)


@pytest.fixture(scope="session")
def gpt2_tokenizer_dir(tmp_path_factory) -> str:
    """A small byte-level BPE in gpt2's format: ``!`` is id 0 and ``<|endoftext|>`` the last id."""
    return offline_tokenizers.train_gpt2(str(tmp_path_factory.mktemp("gpt2_tok")), CAPTIONS * 20)
