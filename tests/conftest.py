"""Shared fixtures. Reference packages (torch, laion_clap, transformers) are imported lazily so
the tests that do not need them run without them."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

CAPTIONS = [
    "a dog barks while rain falls on a tin roof", "a high beep, then rain", "a siren wails over traffic",
    "birds chirp in the morning", "a clock ticking in a quiet room", "white noise and a rising chirp",
    "someone speaks, then a door slams", "an engine hums in the distance!", "the bell rings three times",
    "This is a sound of footsteps.", "wind blowing through trees", "a kettle whistles loudly",
]


@pytest.fixture(scope="session")
def roberta_tokenizer_dir(tmp_path_factory) -> str:
    """A small byte-level BPE tokenizer in RoBERTa's format (vocab.json + merges.txt), trained
    here so no hub download is needed. Special ids as roberta-base: <s>=0 <pad>=1 </s>=2 <unk>=3."""
    from tokenizers import ByteLevelBPETokenizer
    out = tmp_path_factory.mktemp("roberta_tok")
    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(CAPTIONS * 20, vocab_size=400, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tok.save_model(str(out))
    return str(out)


@pytest.fixture(scope="session")
def clips() -> list[np.ndarray]:
    """48 kHz test clips: shorter than 10 s (repeat-padded), exactly 10 s, and longer."""
    rng = np.random.default_rng(0)
    t = lambda n: np.arange(n) / 48000.0
    short = 0.3 * np.sin(2 * np.pi * 440 * t(96000)) + 0.05 * rng.standard_normal(96000)
    exact = 0.2 * rng.standard_normal(480000) * np.sin(2 * np.pi * 0.5 * t(480000))
    chirp = 0.4 * np.sin(2 * np.pi * (200 + 300 * t(150000)) * t(150000))
    return [a.astype(np.float32) for a in (short, exact, chirp)]
