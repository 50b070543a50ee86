"""L-MAC decoder training on the shared loop (tests/toy_lmac.py, subprocesses, the fine-tuning
stage's loss): the frozen classifier is bit-identical after training on two devices and absent
from the checkpoint, the decoder trains, and a killed run resumes to identical parameters."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np

SCRIPT = os.path.join(os.path.dirname(__file__), "toy_lmac.py")
ENV = {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"}


def _run(tmp, name, *args, check=True):
    out = tmp / f"{name}.npz"
    proc = subprocess.run([sys.executable, SCRIPT, f"--workdir={tmp / name}", f"--out={out}", *args],
                          capture_output=True, text=True, timeout=600, env=ENV)
    if check and proc.returncode:
        raise AssertionError(f"{name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc, (dict(np.load(out)) if out.exists() else None)


def test_frozen_classifier_decoder_training_and_resume(tmp_path):
    _, full = _run(tmp_path, "full", "--devices=2", "--steps=6", "--finetune")
    classifier = [k for k in full if k.startswith("classifier.")]
    assert any(k.endswith(".mean") for k in classifier) and any(k.endswith(".kernel") for k in classifier)
    for k in classifier:      # parameters and batch statistics, bit for bit
        assert np.array_equal(full[k], full[f"initial.{k}"]), k
    decoder = [k for k in full if k.startswith("decoder.")]
    assert decoder and all(not np.array_equal(full[k], full[f"initial.{k}"]) for k in decoder if k.endswith("kernel"))

    import orbax.checkpoint as ocp
    meta = ocp.StandardCheckpointer().metadata(str(tmp_path / "full" / "checkpoints" / "6" / "default"))
    saved = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(meta.item_metadata)[0]]
    assert not [k for k in saved if "classifier" in k] and any("decoder" in k for k in saved), saved
    rows = [json.loads(line) for line in open(tmp_path / "full" / "metrics.jsonl")]
    assert {"ce_in", "ce_out", "l1", "guide", "guided_fraction", "fid_in"} <= set(rows[0])

    killed, _ = _run(tmp_path, "resumed", "--devices=2", "--steps=6", "--finetune", "--kill_at=3", check=False)
    assert killed.returncode == 17
    _, resumed = _run(tmp_path, "resumed", "--devices=2", "--steps=6", "--finetune")
    for k in decoder + classifier:
        np.testing.assert_array_equal(resumed[k], full[k], err_msg=k)


def test_cli_lowers_the_loss_and_exports_a_loadable_explainer(tmp_path):
    """``python -m train.lmac`` on soundscapes mixtures with a tiny classifier: the loss falls over
    a few steps, validation metrics are logged, and the export loads with lmac.load."""
    sys.path.insert(0, os.path.dirname(__file__))
    import tiny_lmac
    import lmac
    clf_dir = tiny_lmac.save_classifier(str(tmp_path / "clf"), tiny_lmac.classifier())
    args = ["--config=configs/lmac_soundscapes.py", f"--workdir={tmp_path / 'run'}", f"--export={tmp_path / 'exp'}",
            f"--config.classifier={clf_dir}", "--config.steps=16", "--config.log_every=4", "--config.eval_every=8",
            "--config.checkpoint_every=8", "--config.batch_size=4", "--config.data.eval_clips=4",
            "--config.data.duration=2.325", "--config.optim.learning_rate=1e-3", "--config.data.workers=1"]
    root = os.path.join(os.path.dirname(__file__), "..")
    proc = subprocess.run([sys.executable, "-m", "train.lmac", *args], capture_output=True, text=True, timeout=600,
                          env=ENV, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    train = [r["loss"] for r in rows if r["kind"] == "train"]
    evals = [r for r in rows if r["kind"] == "eval"]
    assert len(train) == 4 and train[-1] < train[0], train
    assert evals and {"fid_in", "ai", "ad", "lr_scale"} <= set(evals[-1])
    explainer = lmac.load(str(tmp_path / "exp"))
    [e] = explainer.explain([np.sin(np.arange(20000) / 8.0).astype(np.float32)], 16000)
    assert e.mask.shape == (201, 513)
