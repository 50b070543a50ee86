"""The fine-tuned concept head H (train.concept_head) on synthetic embeddings, through the shared loop."""
from __future__ import annotations

import importlib.util
import json
import os
import zlib

import numpy as np
import pytest

from train import concept_head

D, K = 16, 4
CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "concept_head.py")


def load_config():
    spec = importlib.util.spec_from_file_location("concept_head_config", CONFIG)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config()


def vector(text):
    return np.random.default_rng(zlib.crc32(text.encode())).standard_normal(D).astype(np.float32)


def text_fn(texts):
    """Prompts "This is a sound of X." embed like the concept "X" (plus a little prompt noise)."""
    out = []
    for t in texts:
        core = t[len("This is a sound of "):-1] if t.startswith("This is a sound of ") else t
        out.append(vector(core) + (0.1 * vector(t) if core != t else 0))
    return np.stack(out)


def synthetic(n, seed, rotation):
    """Audio embeddings of K classes that a fixed rotation has moved away from their prompts."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, n)
    classes = [f"class{k}" for k in range(K)]
    t = np.stack([vector(c) for c in classes])
    z = (t[y] + 0.4 * rng.standard_normal((n, D))) @ rotation
    return z.astype(np.float32), y, classes


def test_concept_head_learns_through_the_shared_loop(tmp_path):
    rot, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((D, D)))
    train_z, train_y, classes = synthetic(512, 1, rot)
    eval_z, eval_y, _ = synthetic(200, 2, rot)
    vocab = tmp_path / "v.txt"
    vocab.write_text("\n".join(classes + [f"distractor {i}" for i in range(20)]) + "\n")
    cfg = load_config()
    with cfg.unlocked():
        cfg.steps, cfg.batch_size, cfg.log_every, cfg.eval_every, cfg.checkpoint_every = 80, 32, 20, 40, 80
        cfg.optim.learning_rate, cfg.optim.warmup_steps = 2e-2, 5
        cfg.vocabulary, cfg.method, cfg.lam = str(vocab), "fista", 0.05
    out = concept_head.run(cfg, str(tmp_path / "run"), data=(train_z, train_y, eval_z, eval_y, classes), text=text_fn)
    r = out["results"]
    base = r["CLAP embedding (zero-shot)"]["accuracy"]
    head = r["fine-tuned H z, no decomposition"]["accuracy"]
    head_concepts = r["fine-tuned concept-based"]["accuracy"]
    assert base < 0.6 and head > 0.9 and head_concepts > 0.85, r
    assert 0 < r["fine-tuned concept-based"]["mean_l0"] <= 24
    assert json.load(open(tmp_path / "run" / "results.json")) == json.loads(json.dumps(out))
    logs = [json.loads(x) for x in open(tmp_path / "run" / "metrics.jsonl")]
    losses = [x["loss"] for x in logs if x["kind"] == "train"]
    assert losses[-1] < 0.5 * losses[0]
    assert [x["step"] for x in logs if x["kind"] == "eval"] == [40, 80]
    assert "| fine-tuned concept-based |" in concept_head.table(out)


def test_embedding_source_and_errors():
    src = concept_head.EmbeddingSource(np.ones((3, D)) * 2, np.array([0, 1, 2]))
    ex = src.decode(src[1], np.random.default_rng(0))
    assert ex["z"].shape == (D,) and np.isclose(np.linalg.norm(ex["z"]), 1) and ex["y"] == 1 and len(src) == 3
    with pytest.raises(ValueError, match="3 embeddings but 2 labels"):
        concept_head.EmbeddingSource(np.ones((3, D)), np.array([0, 1]))
