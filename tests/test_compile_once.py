"""Compile once: the encoders compile once per batch bucket, shared by every model object over
the same architecture, and a second process loads its programs from the persistent cache."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from clap_jax import api, batching


def test_bucket_sizes():
    assert [batching.bucket(n) for n in (1, 2, 3, 5, 9, 17, 31, 32)] == [1, 2, 4, 8, 16, 32, 32, 32]
    assert batching.buckets(32) == [1, 2, 4, 8, 16, 32]
    assert batching.buckets(24, multiple=4) == [4, 8, 16, 24]
    padded, valid = batching.pad_rows({"x": np.arange(3)}, 4)
    assert padded["x"].tolist() == [0, 1, 2, 2] and valid.tolist() == [True, True, True, False]


def test_batch_sizes_1_to_33_compile_once_per_bucket():
    import clap_jax
    model = clap_jax.load("soundscapes-small")
    rng = np.random.default_rng(0)
    audio_before, text_before = api.audio_embeddings._cache_size(), api.text_embeddings._cache_size()
    ragged = None
    for n in range(1, 34):
        clips = list(rng.normal(0, 0.1, (n, 4000)).astype(np.float32))
        emb = model.embed_audio(clips, 16000)
        assert emb.shape == (n, 256)
        if n == 33:
            ragged = (clips, emb)
        model.embed_text(["a dog barks"] * n)
    # buckets 1, 2, 4, 8, 16, 32 (33 clips: a batch of 32 and one of 1): six programs each
    assert api.audio_embeddings._cache_size() - audio_before <= len(batching.buckets(32))
    assert api.text_embeddings._cache_size() - text_before <= len(batching.buckets(32))
    # padding does not change a clip's embedding: the last batch alone equals its place in the whole
    clips, emb = ragged
    np.testing.assert_allclose(model.embed_audio(clips[-1:], 16000), emb[-1:], atol=1e-6)
    np.testing.assert_allclose(model.embed_audio(clips, 16000, batch_size=5), emb, atol=1e-6)

    size = api.audio_embeddings._cache_size()
    again = clap_jax.load("soundscapes-small")               # a second object: no new program
    np.testing.assert_allclose(again.embed_audio(clips[:7], 16000), emb[:7], atol=1e-6)
    assert api.audio_embeddings._cache_size() == size


SCRIPT = """
import jax, numpy as np
from clap_jax import runtime
runtime.enable_compilation_cache()
events = []
jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))
import clap_jax
clap_jax.load("soundscapes-small").embed_audio(np.zeros((3, 4000), np.float32) + 0.1, 16000)
hits = events.count("/jax/compilation_cache/cache_hits")
misses = events.count("/jax/compilation_cache/cache_misses")
print(f"hits={hits} misses={misses}")
"""


def test_a_second_process_hits_the_persistent_cache(tmp_path):
    env = {**os.environ, "CLAP_JAX_CACHE": str(tmp_path), "JAX_PLATFORMS": "cpu"}
    runs = [subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
            for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr[-2000:]
    first = dict(kv.split("=") for kv in runs[0].stdout.split())
    second = dict(kv.split("=") for kv in runs[1].stdout.split())
    assert int(first["misses"]) >= 1 and int(first["hits"]) == 0
    assert int(second["hits"]) >= 1 and int(second["misses"]) == 0
    assert os.listdir(tmp_path / "xla")
