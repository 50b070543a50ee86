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
from flax import nnx  # noqa: E402


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


def _hf_layout(module) -> dict[str, callable]:
    """PyTorch -> Flax layout of each tensor of one transformers module, from its type: Linear
    weights transposed (out, in) -> (in, out), Conv2d OIHW -> HWIO, everything else as stored."""
    if isinstance(module, torch.nn.Linear):
        return {"weight": lambda a: a.T}
    if isinstance(module, torch.nn.Conv2d):
        return {"weight": lambda a: a.transpose(2, 3, 1, 0)}
    return {}


def _pooled(out):
    """transformers 4.x returns the tensor, 5.x a ModelOutput holding it in ``pooler_output``."""
    return (out if isinstance(out, torch.Tensor) else out.pooler_output).detach().numpy()


def test_hf_state_dict_is_consumed_exactly_once(tmp_path, roberta_tokenizer_dir):
    """transformers' own ``ClapModel`` (a small fusion config) saved with ``save_pretrained`` and
    converted with ``--source=hf``, twice. With random weights (every tensor perturbed, so no two
    norms are alike) the converted model gives HF's embeddings and logit scales. Relabelled 1, 2,
    3, ... (distinct, exact in float32), each Flax value names the HF tensor and element it came
    from, without any table of names: every float tensor of the saved state dict lands in the Flax
    tree exactly once and in its layout. Saved tensors that are not loaded must be integer
    buffers we recompute, and equal ours; any other leftover fails."""
    import jax.numpy as jnp
    import transformers
    from safetensors.numpy import load_file
    from clap_jax.models import htsat
    import clap_jax
    cfg = transformers.ClapConfig(
        text_config=dict(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=48, max_position_embeddings=40),
        audio_config=dict(patch_embeds_hidden_size=16, depths=[1, 1, 2, 1], num_attention_heads=[2, 2, 4, 4],
                          hidden_size=128, enable_fusion=True),
        projection_dim=24)
    torch.manual_seed(0)
    model = transformers.ClapModel(cfg).eval()
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.add_(0.05 * torch.randn_like(t))
    model.save_pretrained(tmp_path / "random")
    transformers.ClapFeatureExtractor(truncation="fusion").save_pretrained(tmp_path / "random")
    convert.convert("hf", str(tmp_path / "random"), str(tmp_path / "random_out"), tokenizer=roberta_tokenizer_dir)
    ours = clap_jax.load(str(tmp_path / "random_out"))
    flax_model = nnx.merge(ours.graphdef, ours.state)
    gen = torch.Generator().manual_seed(1)
    mel, longer = 5 * torch.randn((2, 4, 1001, 64), generator=gen), torch.tensor([[True], [False]])
    ids = torch.randint(3, 300, (2, 12), generator=gen)
    ids[:, 0], ids[0, 11], ids[1, 7], ids[1, 8:] = 0, 2, 2, 1                 # <s> ... </s> <pad>
    mask = (ids != 1).long()
    with torch.no_grad():
        ref_a = _pooled(model.get_audio_features(input_features=mel, is_longer=longer))
        ref_t = _pooled(model.get_text_features(input_ids=ids, attention_mask=mask))
    unit = lambda x: np.asarray(x / jnp.linalg.norm(x, axis=-1, keepdims=True))
    encode = nnx.jit(lambda m, *args, kind: getattr(m, f"encode_{kind}")(*args)["embedding"], static_argnames="kind")
    got_a = unit(encode(flax_model, jnp.asarray(mel.numpy()), jnp.asarray(longer.numpy()[:, 0]), kind="audio"))
    got_t = unit(encode(flax_model, jnp.asarray(ids.numpy()), jnp.asarray(mask.numpy()), kind="text"))
    np.testing.assert_allclose(got_a, ref_a, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got_t, ref_t, atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.asarray(flax_model.logit_scales()),
                               [model.logit_scale_a.exp().item(), model.logit_scale_t.exp().item()], rtol=1e-6)

    layout = {}
    for name, module in model.named_modules():
        for leaf, fn in _hf_layout(module).items():
            layout[f"{name}.{leaf}"] = fn
    offsets, next_label = {}, 1
    with torch.no_grad():
        for key, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.arange(next_label, next_label + t.numel(), dtype=torch.float64).reshape(t.shape))
                offsets[key], next_label = next_label, next_label + t.numel()
    assert next_label < 2 ** 24                               # every label exact in float32
    model.save_pretrained(tmp_path / "hf")
    transformers.ClapFeatureExtractor(truncation="fusion").save_pretrained(tmp_path / "hf")
    convert.convert("hf", str(tmp_path / "hf"), str(tmp_path / "out"), tokenizer=roberta_tokenizer_dir)
    saved = load_file(str(tmp_path / "hf" / "model.safetensors"))
    assert set(saved) == set(model.state_dict()), "save_pretrained dropped or renamed tensors"

    ours = clap_jax.load(str(tmp_path / "out"))
    flax = {"/".join(map(str, k)): np.asarray(v[...]) for k, v in nnx.to_flat_state(ours.state)}
    keys = list(offsets)
    starts = np.array([offsets[k] for k in keys])
    counts = np.zeros(next_label, np.int64)
    for path, leaf in flax.items():
        assert np.issubdtype(leaf.dtype, np.floating), path
        v = leaf.astype(np.float64).ravel()
        assert np.all(v == np.round(v)) and v.min() >= 1 and v.max() < next_label, \
            f"{path}: holds values that are not from the HF state dict"
        np.add.at(counts, v.astype(np.int64), 1)
        sources = sorted({keys[i] for i in np.searchsorted(starts, v, side="right") - 1}, key=keys.index)
        parts = [layout.get(k, lambda a: a)(saved[k].astype(np.float64)) for k in sources]
        expected = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)   # q, k, v -> qkv
        assert np.array_equal(leaf, expected.reshape(leaf.shape)) and leaf.size == expected.size, (path, sources)
    unused = [k for k in keys if counts[offsets[k]] == 0]
    assert not unused, f"HF tensors not loaded: {unused}"
    assert counts[1:].max() == 1 and counts[1:].min() == 1        # every element exactly once

    leftovers = sorted(set(saved) - set(offsets))
    buffers = dict(model.named_buffers())
    a, t = cfg.audio_config, cfg.text_config
    for key in leftovers:
        assert key in buffers and not np.issubdtype(saved[key].dtype, np.floating), key
        if key.endswith(".relative_position_index"):
            np.testing.assert_array_equal(saved[key], htsat._relative_position_index(a.window_size), err_msg=key)
        elif key.endswith(".num_batches_tracked"):
            pass                                                  # training counter; eval uses running stats
        elif key == "text_model.embeddings.position_ids":
            np.testing.assert_array_equal(saved[key], np.arange(t.max_position_embeddings)[None])
        elif key == "text_model.embeddings.token_type_ids":
            assert not saved[key].any()
        else:
            raise AssertionError(f"{key}: an HF buffer that is neither loaded nor recomputed")
    assert any(k.endswith(".relative_position_index") for k in leftovers)
