"""``python -m clap_jax.extract``: shards equal the API's embeddings, bad files are skipped and
listed, a killed run resumes to exactly the uninterrupted result, and two processes (gloo on
loopback) or two devices write the same shards as one."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from clap_jax import audio, cli_errors, extract, shards

GOOD = 30
# Each kind of bad file the corpus holds (named in the manifest, skipped, counted).
BAD_FILES = {"corrupt.wav", "empty.wav", "header_only.wav", "nan.wav", "inf.wav", "text.wav", "zero.mp3"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A folder of GOOD short clips (16 kHz and 22.05 kHz, some stereo) among the BAD_FILES."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    for i in range(GOOD):
        rate = 16000 if i % 3 else 22050
        t = np.arange(int(rate * (0.5 + 0.1 * i))) / rate
        x = 0.3 * np.sin(2 * np.pi * (300 + 40 * i) * t) + 0.05 * rng.standard_normal(t.size)
        if i % 5 == 0:
            x = np.stack([x, 0.5 * x], axis=1)
        sub = root / ("tones" if i % 2 else "noisy")
        sub.mkdir(exist_ok=True)
        sf.write(sub / f"clip{i:02d}.wav", x.astype(np.float32), rate)
    (root / "corrupt.wav").write_bytes(rng.bytes(3000))
    (root / "empty.wav").write_bytes(b"")
    sf.write(root / "header_only.wav", np.zeros(0, np.float32), 16000)
    sf.write(root / "nan.wav", np.full(4000, np.nan, np.float32), 16000, subtype="FLOAT")
    sf.write(root / "inf.wav", np.full(4000, np.inf, np.float32), 16000, subtype="FLOAT")
    (root / "text.wav").write_text("this is not audio\n" * 20)
    (root / "zero.mp3").write_bytes(b"")
    return str(root)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Subprocess environment: a compilation cache shared by this module's runs."""
    return {**os.environ, "CLAP_JAX_CACHE": str(tmp_path_factory.mktemp("cache")), "JAX_PLATFORMS": "cpu"}


def _cmd(corpus, out, *extra):
    return [sys.executable, "-m", "clap_jax.extract", "--model=soundscapes-small", "--dataset=folder",
            f"--root={corpus}", f"--out={out}", "--shard_size=4", "--batch_size=4", "--workers=2", *extra]


def _run(cmd, env, **kw):
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, **kw)


@pytest.fixture(scope="module")
def full_run(corpus, env, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("full"))
    proc = _run(_cmd(corpus, out), env)
    return out, proc


def test_bad_files_skipped_listed_and_counted(full_run):
    out, proc = full_run
    assert proc.returncode == cli_errors.PARTIAL, proc.stderr
    assert "Traceback" not in proc.stderr
    manifest = shards.read_json(os.path.join(out, "manifest.json"))
    assert manifest["complete"] and manifest["records"] == GOOD + len(BAD_FILES)
    assert manifest["embedded"] == GOOD and manifest["skipped"] == len(BAD_FILES)
    listed = {os.path.basename(s["path"]): s["reason"] for s in manifest["skipped_files"]}
    assert set(listed) == BAD_FILES
    assert "NaN" in listed["nan.wav"] and "empty" in listed["empty.wav"]
    skipped_lines = [line for line in proc.stderr.splitlines() if line.startswith("clap_jax.extract: skipped ")]
    for name in BAD_FILES:                                    # each named on stderr, one line
        assert sum(name in line for line in skipped_lines) == 1, name
    assert f"{GOOD} of {GOOD + len(BAD_FILES)} clips" in proc.stderr


def test_shards_equal_embed_audio(full_run):
    import clap_jax
    out, _ = full_run
    ids, emb, rows = extract.read(out)
    assert isinstance(emb, shards.ShardedArray) and emb.shape == (GOOD, 256)
    assert isinstance(emb._parts[0], np.memmap)
    assert len(set(ids)) == GOOD and not (set(ids) & BAD_FILES)
    model = clap_jax.load("soundscapes-small")
    clips = [audio.read_audio(r["path"]) for r in rows]
    ref = model.embed_audio([x for x, _ in clips], [r for _, r in clips])
    np.testing.assert_allclose(np.asarray(emb), ref, atol=1e-6)
    np.testing.assert_allclose(emb[[3, 17, 29]], ref[[3, 17, 29]], atol=1e-6)     # gathers across shards
    np.testing.assert_allclose(emb.mean(), ref.mean(0), atol=1e-6)
    assert {r["label"] for r in rows} == {"tones", "noisy"}


def test_killed_run_resumes_to_the_uninterrupted_result(corpus, env, full_run, tmp_path):
    out = str(tmp_path / "killed")
    rng = np.random.default_rng(int(time.time()))
    proc = subprocess.Popen(_cmd(corpus, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not shards.done_shards(out) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(float(rng.uniform(0, 0.4)))                   # a random point after the first shard
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not os.path.exists(os.path.join(out, "manifest.json")), "the run finished before it was killed"
    partial = shards.done_shards(out)
    assert 0 < len(partial) < 10
    resumed = _run(_cmd(corpus, out), env)
    assert resumed.returncode == cli_errors.PARTIAL, resumed.stderr
    ids, emb, rows = extract.read(out)
    ref_ids, ref_emb, ref_rows = extract.read(full_run[0])
    assert ids == ref_ids and len(set(ids)) == len(ids) == GOOD            # every clip exactly once
    np.testing.assert_allclose(np.asarray(emb), np.asarray(ref_emb), atol=1e-6)
    assert rows == ref_rows
    assert not [d for d in os.listdir(os.path.join(out, shards.SHARDS)) if d.startswith(".")]
    manifest = shards.read_json(os.path.join(out, "manifest.json"))
    assert manifest["embedded"] == GOOD and {os.path.basename(s["path"]) for s in manifest["skipped_files"]} \
        == BAD_FILES


def test_a_different_job_in_the_same_out_is_refused(corpus, env, full_run):
    proc = _run(_cmd(corpus, full_run[0], "--crop=random"), env)
    assert proc.returncode == cli_errors.FAILED
    assert "different crop" in proc.stderr and "Traceback" not in proc.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_and_two_devices_write_what_one_does(corpus, env, full_run, tmp_path):
    out = str(tmp_path / "two")
    port = _free_port()
    procs = [subprocess.Popen(_cmd(corpus, out, "--distributed", f"--coordinator_address=127.0.0.1:{port}",
                                   "--num_processes=2", f"--process_id={i}"),
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, results):
        assert p.returncode in (cli_errors.OK, cli_errors.PARTIAL), err
    assert "process 1:" in results[1][1] and "process 0:" in results[0][1]
    ids, emb, rows = extract.read(out)
    ref_ids, ref_emb, _ = extract.read(full_run[0])
    assert ids == ref_ids
    np.testing.assert_allclose(np.asarray(emb), np.asarray(ref_emb), atol=1e-6)
    assert shards.read_json(os.path.join(out, "manifest.json"))["complete"]

    two_dev = str(tmp_path / "devices")
    proc = _run(_cmd(corpus, two_dev, "--cpu_devices=2", "--crop=random", "--crop_seed=3"), env)
    assert proc.returncode == cli_errors.PARTIAL, proc.stderr
    one_dev = str(tmp_path / "device")
    proc = _run(_cmd(corpus, one_dev, "--cpu_devices=1", "--crop=random", "--crop_seed=3"), env)
    a, b = extract.read(two_dev), extract.read(one_dev)
    assert a[0] == b[0] and a[2] == b[2]
    np.testing.assert_allclose(np.asarray(a[1]), np.asarray(b[1]), atol=1e-6)


def test_read_refuses_a_folder_that_is_not_an_extraction(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an extraction folder"):
        extract.read(str(tmp_path))
    (tmp_path / "job.json").write_text(json.dumps({}))
    with pytest.raises(FileNotFoundError, match="without --text"):
        os.makedirs(tmp_path / "shards" / "00000")
        np.save(tmp_path / "shards" / "00000" / "embeddings.npy", np.zeros((1, 4), np.float32))
        extract.read(str(tmp_path), text=True)


def test_downstream_commands_read_an_extraction_folder(full_run):
    import clap_jax
    from sparse import decompose as decompose_mod
    from sparse import embed
    from clap_jax.data.datasets import extracted_dataset
    out, _ = full_run
    model = clap_jax.load("soundscapes-small")
    ids, emb, rows = extract.read(out)
    np.testing.assert_allclose(embed.resolve_audio_mean(out, model), np.asarray(emb).mean(0), atol=1e-6)
    records = decompose_mod.run(model, embeddings=out, out=False, audio_mean=out, progress=False)
    assert [r["key"] for r in records] == ids
    direct = decompose_mod.decompose(
        clap_jax_dictionary(model).with_audio_mean(np.asarray(emb).mean(0)), np.asarray(emb), 0.05)
    np.testing.assert_allclose([r["l1"] for r in records], direct.l1, rtol=1e-4, atol=1e-6)
    data, audio_emb = extracted_dataset(out, model)
    assert [r.key for r in data.records] == ids and data.classes == ["noisy", "tones"]
    assert [data.classes[label] for label in data.labels()] == [r["label"] for r in rows]
    np.testing.assert_array_equal(audio_emb, np.asarray(emb))


def clap_jax_dictionary(model):
    from sparse import dictionary
    from sparse.vocabulary import load
    return dictionary.build(model, load("soundscapes"), center=True)


def test_text_embeds_each_clips_captions(tmp_path):
    import clap_jax
    from clap_jax.data import datasets
    model = clap_jax.load("soundscapes-small")
    data = datasets.soundscapes_records(10000, 5, 16000, 2.0, single_event=False)
    extract.extract(model, data, str(tmp_path), shard_size=3, batch_size=4, text=True, progress=False)
    ids, emb, rows = extract.read(str(tmp_path), text=True)
    expected = [(r.key, c) for r in data.records for c in r.captions]
    assert [(r["id"], r["caption"]) for r in rows] == expected and ids == [k for k, _ in expected]
    np.testing.assert_allclose(np.asarray(emb), model.embed_text([c for _, c in expected]), atol=1e-6)
    audio_ids, _, audio_rows = extract.read(str(tmp_path))
    assert audio_ids == [r.key for r in data.records]
    assert [r["captions"] for r in audio_rows] == [list(r.captions) for r in data.records]
