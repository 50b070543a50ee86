"""Training readers and bad examples: replaced (batch shapes fixed), named, listed once in the
run's manifest, counted; ``strict`` stops at the first, naming it; the list survives a restart."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from train.data import BadExample, Loader, SkippedExamples

TOY = os.path.join(os.path.dirname(__file__), "toy_train.py")


class Record(dict):
    pass


def _source(n=12, bad=(3, 7)):
    return [Record(path=f"clips/{i}.wav", bad=i in bad, x=float(i)) for i in range(n)]


def _decode(record, rng):
    if record["bad"]:
        raise ValueError(f"{record['path']}: header only, no samples")
    return {"x": np.full(2, record["x"], np.float32)}


def _manifest(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_bad_examples_are_replaced_listed_once_and_counted(tmp_path):
    loader = Loader(_source(), _decode, global_batch=12, seed=0, workers=1)
    loader.skipped = SkippedExamples(str(tmp_path / "skipped.jsonl"))
    for step in range(3):                                    # 3 epochs: each bad file met 3 times
        batch = loader.batch(step)
        assert batch["x"].shape == (12, 2) and not np.isin(batch["x"][:, 0], (3.0, 7.0)).any()
    assert loader.skipped.count == 6 and loader.skipped.reasons == {"ValueError": 6}
    rows = _manifest(tmp_path / "skipped.jsonl")
    assert sorted(r["index"] for r in rows) == [3, 7]
    assert {r["file"] for r in rows} == {"clips/3.wav", "clips/7.wav"}
    assert all("header only" in r["reason"] and "\n" not in r["reason"] for r in rows)

    # A restarted run (same workdir) keeps the list and does not list the same files again.
    again = SkippedExamples(str(tmp_path / "skipped.jsonl"))
    again.add(3, ValueError("x"), "clips/3.wav")
    again.add(5, ValueError("new"), "clips/5.wav")
    rows = _manifest(tmp_path / "skipped.jsonl")
    assert len(rows) == 3 and sorted(r["index"] for r in rows) == [3, 5, 7] and rows[-1]["file"] == "clips/5.wav"


def test_strict_stops_at_the_first_bad_example_naming_it(tmp_path):
    loader = Loader(_source(), _decode, global_batch=12, seed=0, workers=1)
    loader.skipped = SkippedExamples(str(tmp_path / "skipped.jsonl"), strict=True)
    with pytest.raises(BadExample, match=r"example (3|7) \(clips/(3|7)\.wav\): clips/\d\.wav: header only"):
        loader.batch(0)
    assert not (tmp_path / "skipped.jsonl").exists()


def test_training_run_writes_the_manifest(tmp_path):
    """The shared loop points the loader's list at WORKDIR/skipped.jsonl (the toy job's records
    are integers: no file names, the index and reason are listed)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, TOY, f"--workdir={tmp_path / 'run'}", f"--out={tmp_path / 'o.npz'}",
                           "--devices=1", "--steps=4", "--bad_every=7"], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = _manifest(tmp_path / "run" / "skipped.jsonl")
    assert rows and all(r["index"] % 7 == 0 and "is corrupt" in r["reason"] for r in rows)
    assert len({r["index"] for r in rows}) == len(rows)
    assert int(np.load(tmp_path / "o.npz")["skipped"]) >= len(rows)


def test_malformed_audio_through_a_training_reader_is_listed_not_trained_on(tmp_path):
    """The corpus of malformed audio (tests/test_commands_bad_input.py) read as a training set
    (an audio folder, the L-MAC job's decode): every bad file listed in the manifest by name,
    no batch holds anything but good clips, and the batch shape never changes."""
    import ml_collections

    from clap_jax.data import readers
    from clap_jax.spec import AudioConfig
    from test_commands_bad_input import BAD, GOOD, SILENT, write_corpus
    from train import lmac_data
    write_corpus(tmp_path / "clips")
    source = readers.AudioFolder(str(tmp_path / "clips"))
    prepare = lmac_data.Prepare(AudioConfig(), ml_collections.ConfigDict())
    loader = Loader(source, lmac_data.make_decode(prepare, None), global_batch=len(source), seed=0, workers=1,
                    max_attempts=50)      # 9 of 15 files are bad: replacements may need many draws
    loader.skipped = SkippedExamples(str(tmp_path / "skipped.jsonl"))
    for step in range(2):
        batch = loader.batch(step)
        assert batch["waves"].shape == (len(source), prepare.length) and np.isfinite(batch["waves"]).all()
    listed = {os.path.basename(r["file"]): r["reason"] for r in _manifest(tmp_path / "skipped.jsonl")}
    assert set(listed) == set(BAD), listed
    assert loader.skipped.count >= len(BAD) and len(GOOD + SILENT) + len(BAD) == len(source)
