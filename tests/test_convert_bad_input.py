"""Converter fuzz tests: broken checkpoints and flags give one line naming the file and what is
wrong, exit status 1, no traceback, nothing at --out; existing folders are never deleted.

The checkpoint is a small LAION-named state dict made from our own architecture (random
weights, about 1.5 MB), so no reference package is needed, only torch to write it.
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs torch to write PyTorch checkpoints")

from absl import flags  # noqa: E402

from clap_jax import checkpoint, convert, weights  # noqa: E402
from clap_jax.models.clap import ClapConfig  # noqa: E402
from clap_jax.models.htsat import HTSATConfig  # noqa: E402
from clap_jax.models.text import TextConfig  # noqa: E402
from clap_jax.spec import AudioConfig, ClapSpec, TokenizerConfig  # noqa: E402

FLAGS = flags.FLAGS
TINY = ClapSpec(model=ClapConfig(audio=HTSATConfig(embed_dim=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2)),
                                 text=TextConfig(vocab_size=400, hidden_size=64, num_layers=1, num_heads=1,
                                                 intermediate_size=64, max_positions=40, layer_norm_eps=1e-5,
                                                 pad_token_id=1),
                                 joint_dim=24),
                audio=AudioConfig(), tokenizer=TokenizerConfig(max_length=16))


def _torch_shape(shape, fn):
    """The PyTorch layout whose converted form has our ``shape`` (Linear (out, in), Conv OIHW)."""
    candidates = [shape, shape[::-1]] + ([(shape[3], shape[2], shape[0], shape[1])] if len(shape) == 4 else [])
    return next(c for c in candidates if fn(np.zeros(c)).shape == shape)


@pytest.fixture(scope="module")
def state():
    """A LAION-named state dict (name -> torch tensor) that converts to TINY's architecture."""
    table = weights.torch_names(checkpoint.abstract_model(TINY), convert.LAION_RULES)
    rng = np.random.default_rng(0)
    out = {}
    for key, (var, fn) in table.items():
        shape = _torch_shape(tuple(var.shape), fn)
        out[key] = torch.from_numpy(np.asarray(0.02 * rng.standard_normal(shape), np.float32))
    return out


@pytest.fixture()
def good(state, tmp_path):
    path = tmp_path / "good.pt"
    torch.save({"state_dict": state}, path)
    return path


def cli(capsys, *args):
    """Runs ``python -m clap_jax.convert`` in this process: (exit status, stderr)."""
    FLAGS.unparse_flags()
    FLAGS(["convert", *args])
    try:
        rc = convert.main(["convert"])
    finally:
        FLAGS.unparse_flags()
    return rc, capsys.readouterr().err


def refused(capsys, ckpt, out, tok, *extra, source="laion"):
    """The one error line of a conversion that must fail and write nothing."""
    rc, err = cli(capsys, f"--source={source}", f"--checkpoint={ckpt}", f"--out={out}", f"--tokenizer={tok}",
                  *extra)
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 1 and "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("clap_jax.convert: error: "), err
    assert not out.exists() and not [p for p in os.listdir(out.parent) if p.startswith(".")], os.listdir(out.parent)
    return lines[0]


def test_the_small_checkpoint_converts_with_ordinary_permissions(good, tmp_path, roberta_tokenizer_dir, capsys):
    old = os.umask(0o022)
    try:
        rc, err = cli(capsys, "--source=laion", f"--checkpoint={good}", f"--out={tmp_path / 'out'}",
                      f"--tokenizer={roberta_tokenizer_dir}")
    finally:
        os.umask(old)
    assert rc == 0, err
    assert checkpoint.read_spec(str(tmp_path / "out")).model.audio.embed_dim == 16
    for d, _, _ in os.walk(tmp_path / "out"):
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o755, d


@pytest.mark.parametrize("fraction", [0.0, 0.0005, 0.1, 0.5, 0.9, 0.9999])
def test_empty_and_truncated_zip_checkpoints(good, tmp_path, roberta_tokenizer_dir, capsys, fraction):
    data = good.read_bytes()
    bad = tmp_path / "download.pt"
    bad.write_bytes(data[:int(len(data) * fraction)])
    line = refused(capsys, bad, tmp_path / "out", roberta_tokenizer_dir)
    assert str(bad) in line and "truncated download?" in line


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.95])
def test_truncated_legacy_pickle_checkpoints(state, tmp_path, roberta_tokenizer_dir, capsys, fraction):
    full = tmp_path / "legacy.pt"
    torch.save({"state_dict": state}, full, _use_new_zipfile_serialization=False)
    bad = tmp_path / "legacy_cut.pt"
    bad.write_bytes(full.read_bytes()[:int(full.stat().st_size * fraction)])
    line = refused(capsys, bad, tmp_path / "out", roberta_tokenizer_dir)
    assert str(bad) in line and "truncated download?" in line


def _text(p):
    p.write_text("<html>404 Not Found</html>\n")


def _zip(p):
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("readme.txt", "not weights")


def _random(p):
    p.write_bytes(np.random.default_rng(1).bytes(4096))


def _npy(p):
    with open(p, "wb") as f:
        np.save(f, np.ones(3))


@pytest.mark.parametrize("write,match", [
    (_text, "not a PyTorch checkpoint"), (_zip, "a zip archive but not a PyTorch checkpoint (no data.pkl"),
    (_random, "not a PyTorch checkpoint"), (_npy, "not a PyTorch checkpoint"),
    (lambda p: torch.save(torch.zeros(3, 4), p), "holds a Tensor of shape (3, 4), not a state dict"),
    (lambda p: torch.save([torch.zeros(3)], p), "holds a list, not a state dict"),
])
def test_wrong_containers(tmp_path, roberta_tokenizer_dir, capsys, write, match):
    bad = tmp_path / "model.pt"
    write(bad)
    line = refused(capsys, bad, tmp_path / "out", roberta_tokenizer_dir)
    assert str(bad) in line and match in line, line


def test_dict_without_the_expected_top_level_key(state, tmp_path, roberta_tokenizer_dir, bert_tokenizer_dir, capsys):
    bad = tmp_path / "wrapped.pt"
    torch.save({"weights": state, "epoch": 3}, bad)
    line = refused(capsys, bad, tmp_path / "out", roberta_tokenizer_dir)
    assert str(bad) in line and "no tensors at the top level and no 'state_dict' entry" in line
    assert "top-level keys: epoch, weights" in line
    torch.save({"state_dict": state}, bad)                       # msclap and PANNs files hold 'model'
    line = refused(capsys, bad, tmp_path / "out", bert_tokenizer_dir, source="msclap")
    assert str(bad) in line and "no 'model' entry (top-level keys: state_dict)" in line


@pytest.mark.parametrize("key", [
    "audio_branch.patch_embed.proj.weight",                      # read for the architecture
    "audio_branch.layers.0.blocks.0.norm1.weight",               # counts the stages
    "text_branch.embeddings.word_embeddings.weight",
    "text_branch.encoder.layer.0.attention.self.query.weight",
    "audio_branch.layers.2.blocks.0.mlp.fc2.bias",
    "text_projection.2.weight",
])
def test_one_key_renamed(state, tmp_path, roberta_tokenizer_dir, capsys, key):
    assert key in state
    bad = tmp_path / "renamed.pt"
    torch.save({"state_dict": {(k + "_renamed" if k == key else k): v for k, v in state.items()}}, bad)
    line = refused(capsys, bad, tmp_path / "out", roberta_tokenizer_dir)
    assert str(bad) in line and key in line, line


@pytest.mark.parametrize("key,named", [
    ("text_projection.2.weight", "text_projection.2.weight"),
    ("audio_branch.layers.1.blocks.0.mlp.fc1.weight", "audio_branch.layers.1.blocks.0.mlp.fc1.weight"),
    ("text_branch.encoder.layer.0.output.LayerNorm.bias", "text_branch.encoder.layer.0.output.LayerNorm.bias"),
    ("audio_projection.0.bias", "audio_projection.0.bias"),
    # Tensors the architecture is read from: the mismatch shows on the tensors that depend on them.
    ("audio_branch.bn0.weight", "audio_branch.bn0."),
    ("text_branch.embeddings.word_embeddings.weight", "text_branch."),
])
def test_one_tensor_misshapen(state, tmp_path, roberta_tokenizer_dir, capsys, key, named):
    bad = tmp_path / "misshapen.pt"
    t = state[key]
    wrong = torch.zeros(*t.shape[:-1], t.shape[-1] + 3) if t.ndim else torch.zeros(2)
    torch.save({"state_dict": {**state, key: wrong}}, bad)
    line = refused(capsys, bad, tmp_path / "out", roberta_tokenizer_dir)
    assert str(bad) in line and named in line, line


def test_flags_are_checked_before_the_checkpoint_is_read(tmp_path, roberta_tokenizer_dir, capsys):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"")                                    # reading it would fail: it must not be reached
    line = refused(capsys, garbage, tmp_path / "out", tmp_path / "no_such_tokenizer")
    assert "--tokenizer" in line and "no_such_tokenizer" in line
    rc, err = cli(capsys, "--source=laion", f"--checkpoint={garbage}", f"--out={tmp_path / 'out'}")
    assert rc == 1 and "pass --tokenizer=DIR" in err and "Traceback" not in err
    rc, err = cli(capsys, "--source=laion", f"--checkpoint={tmp_path / 'missing.pt'}", f"--out={tmp_path / 'out'}",
                  f"--tokenizer={roberta_tokenizer_dir}")
    assert rc == 1 and "missing.pt: no such file" in err
    (tmp_path / "taken").mkdir()
    rc, err = cli(capsys, "--source=laion", f"--checkpoint={garbage}", f"--out={tmp_path / 'taken'}",
                  f"--tokenizer={roberta_tokenizer_dir}")
    assert rc == 1 and "already exists (pass --overwrite" in err and "garbage.pt" not in err


def test_overwrite_never_deletes_a_folder_that_is_not_a_converted_model(good, tmp_path, roberta_tokenizer_dir,
                                                                         capsys):
    mine = tmp_path / "results"
    mine.mkdir()
    (mine / "thesis.tex").write_text("months of work")
    rc, err = cli(capsys, "--source=laion", f"--checkpoint={good}", f"--out={mine}",
                  f"--tokenizer={roberta_tokenizer_dir}", "--overwrite")
    assert rc == 1 and "is not a converted model (no spec.json)" in err and "Traceback" not in err
    assert (mine / "thesis.tex").read_text() == "months of work" and os.listdir(mine) == ["thesis.tex"]
    (tmp_path / "afile").write_text("x")
    rc, err = cli(capsys, "--source=laion", f"--checkpoint={good}", f"--out={tmp_path / 'afile'}",
                  f"--tokenizer={roberta_tokenizer_dir}", "--overwrite")
    assert rc == 1 and "not a directory" in err and (tmp_path / "afile").read_text() == "x"


def test_overwrite_replaces_a_converted_model_atomically(good, tmp_path, roberta_tokenizer_dir, capsys, monkeypatch):
    out = tmp_path / "model"
    args = ["--source=laion", f"--checkpoint={good}", f"--out={out}", f"--tokenizer={roberta_tokenizer_dir}"]
    assert cli(capsys, *args)[0] == 0
    before = (out / "spec.json").read_text()
    (out / "marker").write_text("old")

    def killed(*a, **k):
        raise RuntimeError("disk full while writing parameters")
    with monkeypatch.context() as m:                             # a failed replacement keeps the old model
        m.setattr(checkpoint, "save_params", killed)
        rc, err = cli(capsys, *args, "--overwrite")
    assert rc == 1 and "disk full" in err
    assert (out / "marker").read_text() == "old" and (out / "spec.json").read_text() == before
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]
    assert cli(capsys, *args, "--overwrite")[0] == 0            # a successful one replaces it whole
    assert not (out / "marker").exists() and (out / "spec.json").read_text() == before
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]


def test_command_line_end_to_end(good, tmp_path, roberta_tokenizer_dir):
    """As a user runs it: one line and exit status 1, the traceback only with --verbosity=1."""
    bad = tmp_path / "half.pt"
    bad.write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])
    cmd = [sys.executable, "-m", "clap_jax.convert", "--source=laion", f"--checkpoint={bad}",
           f"--out={tmp_path / 'out'}", f"--tokenizer={roberta_tokenizer_dir}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert len(errors) == 1 and str(bad) in errors[0] and "truncated download?" in errors[0]
    assert not (tmp_path / "out").exists()
    proc = subprocess.run(cmd + ["--verbosity=1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "truncated download?" in proc.stderr
