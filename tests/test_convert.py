"""Checkpoint conversion: safe reading, refusals that name what is wrong, atomic output."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs the pinned torch==2.13.0 to write PyTorch checkpoints")
pytestmark = pytest.mark.parity

from clap_jax import checkpoint, convert, weights  # noqa: E402


@pytest.fixture(scope="module")
def laion_state():
    import reference_models
    return reference_models.laion_module("HTSAT-tiny", text_layers=1).model.state_dict()


def _save(state, path, **extra):
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()}, **extra}, path)


def _leftovers(parent):
    return [p for p in os.listdir(parent) if p.startswith(".")]


def test_unsafe_pickle_refused_unless_flagged(laion_state, tmp_path, roberta_tokenizer_dir):
    path = tmp_path / "ckpt.pt"
    _save(laion_state, path, args=argparse.Namespace(lr=1e-4))      # like training checkpoints: not tensors only
    with pytest.raises(ValueError, match="--allow_unsafe_pickle"):
        convert.convert("laion", str(path), str(tmp_path / "out"), tokenizer=roberta_tokenizer_dir)
    assert not (tmp_path / "out").exists()
    spec = convert.convert("laion", str(path), str(tmp_path / "out"), tokenizer=roberta_tokenizer_dir,
                           allow_unsafe_pickle=True)
    assert spec.model.audio.depths == (2, 2, 6, 2) and spec.model.text.num_layers == 1
    assert checkpoint.read_spec(str(tmp_path / "out")) == spec


def test_cli_refusal_names_the_flag(laion_state, tmp_path, roberta_tokenizer_dir):
    path = tmp_path / "ckpt.pt"
    _save(laion_state, path, args=argparse.Namespace(lr=1e-4))
    proc = subprocess.run([sys.executable, "-m", "clap_jax.convert", "--source=laion", f"--checkpoint={path}",
                           f"--out={tmp_path / 'out'}", f"--tokenizer={roberta_tokenizer_dir}"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "--allow_unsafe_pickle" in proc.stderr and str(path) in proc.stderr


def test_mismatch_lists_missing_and_unexpected_and_writes_nothing(laion_state, tmp_path, roberta_tokenizer_dir):
    state = dict(laion_state)
    del state["audio_branch.layers.1.blocks.0.mlp.fc2.bias"]
    state["audio_branch.layers.9.extra.weight"] = torch.zeros(3)
    _save(state, tmp_path / "bad.pt")
    with pytest.raises(weights.CheckpointMismatch) as err:
        convert.convert("laion", str(tmp_path / "bad.pt"), str(tmp_path / "out"), tokenizer=roberta_tokenizer_dir)
    assert "audio_branch.layers.1.blocks.0.mlp.fc2.bias" in str(err.value)
    assert "audio_branch.layers.9.extra.weight" in str(err.value)
    assert not (tmp_path / "out").exists() and not _leftovers(tmp_path)


def test_shape_mismatch_names_the_key(laion_state, tmp_path, roberta_tokenizer_dir):
    state = dict(laion_state)
    state["text_projection.2.weight"] = torch.zeros(512, 7)
    _save(state, tmp_path / "bad.pt")
    with pytest.raises(weights.CheckpointMismatch, match=r"text_projection\.2\.weight: checkpoint \(7, 512\)"):
        convert.convert("laion", str(tmp_path / "bad.pt"), str(tmp_path / "out"), tokenizer=roberta_tokenizer_dir)


def test_foreign_mel_bank_refused(laion_state, tmp_path, roberta_tokenizer_dir):
    state = dict(laion_state)
    state["audio_branch.logmel_extractor.melW"] = state["audio_branch.logmel_extractor.melW"] * 1.01
    _save(state, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="melW"):
        convert.convert("laion", str(tmp_path / "bad.pt"), str(tmp_path / "out"), tokenizer=roberta_tokenizer_dir)


def test_interrupted_write_leaves_nothing(laion_state, tmp_path, roberta_tokenizer_dir, monkeypatch):
    _save(laion_state, tmp_path / "ok.pt")

    def killed(*a, **k):
        raise KeyboardInterrupt("killed while writing parameters")
    monkeypatch.setattr(checkpoint, "save_params", killed)
    with pytest.raises(KeyboardInterrupt):
        convert.convert("laion", str(tmp_path / "ok.pt"), str(tmp_path / "out"), tokenizer=roberta_tokenizer_dir)
    assert not (tmp_path / "out").exists() and not _leftovers(tmp_path)


def test_existing_output_needs_overwrite(laion_state, tmp_path, roberta_tokenizer_dir):
    _save(laion_state, tmp_path / "ok.pt")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="--overwrite"):
        convert.convert("laion", str(tmp_path / "ok.pt"), str(tmp_path / "out"), tokenizer=roberta_tokenizer_dir)
    assert (tmp_path / "out" / "keep.txt").read_text() == "user data"


def test_laion_needs_a_tokenizer(laion_state, tmp_path):
    _save(laion_state, tmp_path / "ok.pt")
    with pytest.raises(ValueError, match="--tokenizer"):
        convert.convert("laion", str(tmp_path / "ok.pt"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_hf_rename_leaves_only_known_keys(laion_state):
    """LAION state dict -> HF names (transformers' conversion table, re-implemented in the test as
    clap_models.md §3.4 lists it) -> our HF reader gives back LAION's names and values."""
    import re
    hf = {}
    for k, v in laion_state.items():
        for a, b in [("text_branch", "text_model"), ("audio_branch", "audio_model.audio_encoder"),
                     ("attn", "attention.self"), ("self.proj", "output.dense"),
                     ("attention.self_mask", "attn_mask"), ("mlp.fc1", "intermediate.dense"),
                     ("mlp.fc2", "output.dense"), ("norm1", "layernorm_before"), ("norm2", "layernorm_after"),
                     ("bn0", "batch_norm")]:
            k = k.replace(a, b)
        k = re.sub(r"_projection\.0\.", "_projection.linear1.", re.sub(r"_projection\.2\.", "_projection.linear2.", k))
        if "qkv" in k:
            for name, part in zip(("query", "key", "value"), np.split(v.numpy(), 3)):
                hf[k.replace("qkv", name)] = part
        else:
            hf[k] = v.numpy()
    back = convert.hf_to_laion(hf)
    for k, v in laion_state.items():
        if k in back:
            np.testing.assert_array_equal(back[k], v.numpy(), err_msg=k)
    model = checkpoint.abstract_model(convert.laion_spec({k: v.numpy() for k, v in laion_state.items()}))
    weights.load_state(model, back, convert.LAION_RULES, convert.LAION_IGNORE)
