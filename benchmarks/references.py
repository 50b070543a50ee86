"""Shared by the benchmarks: offline tokenizers and our model converted in memory from a
reference's state dict (the same weights on both sides)."""
from __future__ import annotations

import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

CAPTIONS = ["a dog barks while rain falls on a tin roof", "a high beep, then rain", "a siren wails over traffic",
            "birds chirp in the morning near a river", "a clock ticking in a quiet room",
            "white noise and a rising chirp", "someone speaks, then a door slams shut",
            "an engine hums in the distance"]


def tokenizer_dir(family: str = "roberta") -> str:
    """A small tokenizer of ``family`` (roberta, bert, gpt2) trained on CAPTIONS, in a temp folder."""
    import offline_tokenizers
    train = {"roberta": offline_tokenizers.train_roberta, "bert": offline_tokenizers.train_bert,
             "gpt2": offline_tokenizers.train_gpt2}[family]
    return train(tempfile.mkdtemp(prefix=f"bench_{family}_tok"), CAPTIONS * 50, 500)


def numpy_state(state_dict) -> dict:
    return {k: v.detach().float().numpy() if v.is_floating_point() else v.numpy() for k, v in state_dict.items()}


def ours_from_laion(state_dict, tok_dir, dtype):
    """Our model with a laion_clap model's weights, converted in memory."""
    from clap_jax import api, checkpoint, convert, weights
    state = numpy_state(state_dict)
    spec = convert.laion_spec(state)
    model = checkpoint.abstract_model(spec, dtype)
    weights.load_state(model, state, convert.LAION_RULES, convert.LAION_IGNORE)
    return api.from_model(spec, model, tok_dir)
