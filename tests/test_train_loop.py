"""The shared training loop: data parallelism, resume, NaN stop, multi-process, bad examples,
frozen submodules, the weight-decay mask and metrics read every ``log_every`` steps.

Each run is a subprocess (tests/toy_train.py) because the CPU device count and
jax.distributed must be configured before JAX starts. On CPU the loop waits for every step to
finish, so forced-host-device collectives cannot pile up and hang on 2 cores; every
subprocess is bounded by a timeout anyway. The optimiser tests run in process.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import nnx

from train import loop

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


def _rows(path):
    return [r for r in map(json.loads, open(path)) if r["kind"] == "train"]


def _losses(path):
    return [r["loss"] for r in _rows(path)]


def test_four_devices_match_one(tmp_path):
    _, one = _run(tmp_path, "one", "--devices=1")
    _, four = _run(tmp_path, "four", "--devices=4")
    _assert_same(one, four, atol=1e-5)
    np.testing.assert_allclose(_losses(tmp_path / "one" / "metrics.jsonl"),
                               _losses(tmp_path / "four" / "metrics.jsonl"), rtol=1e-5)


def test_training_lowers_the_loss(tmp_path):
    """The loop learns, not only runs: 60 Adam steps on the toy regression bring the mean loss of the
    last 10 steps under a fifth of the first 5 (measured 5.1 -> 0.56). Zero, stale or wrong-signed
    gradients would leave it near 5 or raise it."""
    _run(tmp_path, "learn", "--devices=1", "--steps=60")
    losses = _losses(tmp_path / "learn" / "metrics.jsonl")
    assert len(losses) == 60 and np.isfinite(losses).all()
    first, last = np.mean(losses[:5]), np.mean(losses[-10:])
    assert first > 3 and last < 0.2 * first, (first, last)


def test_kill_and_resume_matches_uninterrupted(tmp_path):
    _, full = _run(tmp_path, "full", "--devices=2", "--steps=8")
    killed, _ = _run(tmp_path, "resumed", "--devices=2", "--steps=8", "--kill_at=5", check=False)
    assert killed.returncode == 17
    _, resumed = _run(tmp_path, "resumed", "--devices=2", "--steps=8")
    _assert_same(full, resumed, atol=1e-6)


def test_nan_loss_stops_with_the_step(tmp_path):
    # The host reads metrics every 4 steps; the first bad step is still named exactly.
    proc, out = _run(tmp_path, "nan", "--devices=2", "--steps=8", "--nan_at=3", "--log_every=4", check=False)
    assert proc.returncode != 0 and out is None
    assert "step 3: loss is nan" in proc.stderr
    saved = sorted(os.listdir(tmp_path / "nan" / "checkpoints"))
    assert "2" in saved and "4" not in saved, saved     # the last good checkpoint is kept, none after it


def test_metrics_are_means_over_log_every_steps(tmp_path):
    _, _ = _run(tmp_path, "each", "--devices=1", "--steps=8")
    _, _ = _run(tmp_path, "fourth", "--devices=1", "--steps=8", "--log_every=4")
    rows = _rows(tmp_path / "fourth" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [4, 8]
    each = _losses(tmp_path / "each" / "metrics.jsonl")
    np.testing.assert_allclose([r["loss"] for r in rows], [np.mean(each[:4]), np.mean(each[4:])], rtol=1e-6)


def test_frozen_submodule_is_held_fixed_not_checkpointed_and_resumes(tmp_path):
    _, full = _run(tmp_path, "full", "--devices=2", "--steps=8", "--frozen")
    frozen = [k for k in full if k.startswith("frozen.")]
    assert {"frozen.bn.mean", "frozen.bn.var", "frozen.bn.scale", "frozen.lin.kernel"} <= set(frozen)
    for k in frozen:                   # params and batch statistics, though the loss writes to them
        assert np.array_equal(full[k], full["initial." + k]), k
    for k in ("head.l1.kernel", "head.l2.bias", "head.bn.scale", "head.bn.mean"):   # trained / carried
        assert not np.array_equal(full[k], full["initial." + k]), k
    import orbax.checkpoint as ocp
    meta = ocp.StandardCheckpointer().metadata(str(tmp_path / "full" / "checkpoints" / "8" / "default"))
    saved = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(meta.item_metadata)[0]]
    assert not [k for k in saved if "frozen" in k], saved
    assert any("['rest']['head']['bn']['mean']" in k for k in saved), saved

    killed, _ = _run(tmp_path, "resumed", "--devices=2", "--steps=8", "--frozen", "--kill_at=5", check=False)
    assert killed.returncode == 17
    _, resumed = _run(tmp_path, "resumed", "--devices=2", "--steps=8", "--frozen")
    _assert_same(full, resumed, atol=1e-6)
    for k in frozen:                   # taken from the Task on resume, not from the checkpoint
        assert np.array_equal(resumed[k], full[k]), k


class _Toy(nnx.Module):
    def __init__(self):
        r = nnx.Rngs(0)
        self.dense, self.norm, self.bn = nnx.Linear(4, 3, rngs=r), nnx.LayerNorm(3, rngs=r), nnx.BatchNorm(3, rngs=r)
        self.logit_scale_a = nnx.Param(jnp.asarray(2.0))
        self.embed = nnx.Embed(5, 3, rngs=r)
        self.norm.scale[...] = jnp.full(3, 1.5)
        self.dense.bias[...] = jnp.arange(3.0) - 1.0


def _optim(name, wd, **kw):
    return ml_collections.ConfigDict(dict(name=name, learning_rate=0.0, weight_decay=wd, grad_clip=0.0, **kw))


def test_decay_mask_spares_biases_norms_and_logit_scales():
    params = nnx.state(_Toy(), nnx.Param)
    names = {loop._path_name(p): keep for p, keep in
             jax.tree_util.tree_flatten_with_path(loop.decay_mask(loop.NO_DECAY)(params))[0]}
    assert names == {"dense/kernel": True, "dense/bias": False, "norm/scale": False, "norm/bias": False,
                     "bn/scale": False, "bn/bias": False, "logit_scale_a": False, "embed/embedding": True}
    lr, wd = 0.01, 0.1
    tx = loop.optimizer(_optim("adamw", wd), lr)
    grads = jax.grad(lambda p: 0.0 * sum(jnp.sum(x) for x in jax.tree.leaves(p)))(params)   # zero gradient
    new = optax.apply_updates(params, tx.update(grads, tx.init(params), params)[0])
    for (path, before), after in zip(jax.tree_util.tree_flatten_with_path(params)[0], jax.tree.leaves(new)):
        before, after = np.asarray(before), np.asarray(after)
        if names[loop._path_name(path)]:          # decoupled decay: w - lr * wd * w exactly
            np.testing.assert_allclose(after, before - lr * wd * before, rtol=1e-7, atol=0)
            assert not np.array_equal(after, before)
        else:
            assert np.array_equal(after, before), loop._path_name(path)
    tx = loop.optimizer(_optim("adamw", wd, no_decay=()), lr)        # empty: every parameter decays
    new = optax.apply_updates(params, tx.update(grads, tx.init(params), params)[0])
    assert not np.array_equal(np.asarray(new["dense"]["bias"][...]), np.asarray(params["dense"]["bias"][...]))


def test_adam_weight_decay_is_l2_on_the_gradient_as_torch_adam():
    lr, wd, steps = 0.01, 0.05, 3
    rng = np.random.default_rng(0)
    params = {"w": {"kernel": rng.standard_normal((4, 3)).astype(np.float32),
                    "bias": rng.standard_normal(3).astype(np.float32)}}
    grads = [{"w": {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in params["w"].items()}}
             for _ in range(steps)]
    tx = loop.optimizer(_optim("adam", wd), lr)
    p, ours = jax.tree.map(jnp.asarray, params), []
    state = tx.init(p)
    for g in grads:
        updates, state = tx.update(jax.tree.map(jnp.asarray, g), state, p)
        p = optax.apply_updates(p, updates)
        ours.append(jax.tree.map(np.asarray, p))
    # One step by hand: g + wd * w (kernel only) through Adam's first, bias-corrected step.
    for k, decay in (("kernel", wd), ("bias", 0.0)):
        g = grads[0]["w"][k] + decay * params["w"][k]
        m, v = 0.1 * g / (1 - 0.9), 0.001 * g ** 2 / (1 - 0.999)
        np.testing.assert_allclose(ours[0]["w"][k], params["w"][k] - lr * m / (np.sqrt(v) + 1e-8),
                                   rtol=1e-6, atol=1e-7, err_msg=k)
    try:
        import torch
    except ImportError:
        return
    kernel, bias = (torch.tensor(params["w"][k], requires_grad=True) for k in ("kernel", "bias"))
    opt = torch.optim.Adam([{"params": [kernel], "weight_decay": wd}, {"params": [bias], "weight_decay": 0.0}], lr=lr)
    for i, g in enumerate(grads):
        kernel.grad, bias.grad = torch.tensor(g["w"]["kernel"]), torch.tensor(g["w"]["bias"])
        opt.step()
        np.testing.assert_allclose(ours[i]["w"]["kernel"], kernel.detach().numpy(), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(ours[i]["w"]["bias"], bias.detach().numpy(), rtol=1e-5, atol=1e-7)


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
