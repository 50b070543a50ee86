"""The shared training loop: data parallelism, resume, NaN stop, multi-process, bad examples.

Each run is a subprocess (tests/toy_train.py) because the CPU device count and
jax.distributed must be configured before JAX starts. The loop reads every step's loss back on
the host, so forced-host-device collectives cannot pile up and hang on 2 cores; every
subprocess is bounded by a timeout anyway.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "toy_train.py")
ENV = {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"}


def _run(tmp, name, *args, timeout=300, check=True):
    out = tmp / f"{name}.npz"
    proc = subprocess.run([sys.executable, SCRIPT, f"--workdir={tmp / name}", f"--out={out}", *args],
                          capture_output=True, text=True, timeout=timeout, env=ENV)
    if check and proc.returncode:
        raise AssertionError(f"{name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc, (dict(np.load(out)) if out.exists() else None)


def _assert_same(a, b, atol):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=atol, rtol=0, err_msg=k)


def _losses(path):
    import json
    return [r["loss"] for r in map(json.loads, open(path)) if r["kind"] == "train"]


def test_four_devices_match_one(tmp_path):
    _, one = _run(tmp_path, "one", "--devices=1")
    _, four = _run(tmp_path, "four", "--devices=4")
    _assert_same(one, four, atol=1e-5)
    np.testing.assert_allclose(_losses(tmp_path / "one" / "metrics.jsonl"),
                               _losses(tmp_path / "four" / "metrics.jsonl"), rtol=1e-5)


def test_kill_and_resume_matches_uninterrupted(tmp_path):
    _, full = _run(tmp_path, "full", "--devices=2", "--steps=8")
    killed, _ = _run(tmp_path, "resumed", "--devices=2", "--steps=8", "--kill_at=5", check=False)
    assert killed.returncode == 17
    _, resumed = _run(tmp_path, "resumed", "--devices=2", "--steps=8")
    _assert_same(full, resumed, atol=1e-6)


def test_nan_loss_stops_with_the_step(tmp_path):
    proc, out = _run(tmp_path, "nan", "--devices=2", "--steps=8", "--nan_at=3", check=False)
    assert proc.returncode != 0 and out is None
    assert "step 3: loss is nan" in proc.stderr
    assert os.path.isdir(tmp_path / "nan" / "checkpoints" / "2")     # the last good checkpoint is kept


def test_bad_examples_are_replaced_and_counted(tmp_path):
    _, out = _run(tmp_path, "bad", "--devices=1", "--steps=4", "--bad_every=7")
    assert int(out["skipped"]) > 0


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process(tmp_path):
    _, single = _run(tmp_path, "single", "--devices=4", "--steps=4")
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, SCRIPT, f"--workdir={tmp_path / 'multi'}", f"--out={tmp_path}/multi.npz",
                               "--devices=2", "--steps=4", f"--process_id={i}", "--num_processes=2", f"--port={port}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV) for i in range(2)]
    try:
        results = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert all(p.returncode == 0 for p in procs), results[0][1][-2000:] + results[1][1][-2000:]
    _assert_same(single, dict(np.load(tmp_path / "multi.npz")), atol=1e-5)
