"""The one training loop: data parallel over a device mesh, checkpointed, resumable.

A *task* says what is trained (see :class:`Task`); this loop owns everything else:

* a ``jax.sharding.Mesh`` with one ``data`` axis over all devices of all processes; batches are
  sharded on their leading axis, parameters and optimiser state replicated, and the step is one
  ``jax.jit`` with those shardings (XLA inserts the gradient all-reduce);
* Optax optimiser and learning-rate schedule from the config;
* orbax ``CheckpointManager``: resume from the latest step (the data order is a function of the
  step, see :mod:`train.data`, so a killed run continues exactly where it stopped);
* JSONL metrics, a progress bar with the loss, periodic evaluation;
* a NaN/inf loss stops the run with the step named, before anything is overwritten.

Each step's loss is read back on the host (for the NaN check and the progress bar), which also
keeps CPU collectives from piling up (XLA's forced host devices can deadlock on 2 cores when
many steps are in flight).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
import tqdm
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from train.data import Loader

log = logging.getLogger(__name__)


class NonFiniteLoss(FloatingPointError):
    """The loss became NaN or inf."""


@dataclasses.dataclass
class Task:
    """What a training job provides to the loop.

    ``model``: the NNX module to train (initialised; its ``nnx.Param`` s are optimised, other
    state such as batch statistics is carried along). ``loss(model, batch, rng)`` returns
    ``(scalar loss, dict of scalar metrics)`` and may update non-parameter state in place (batch
    norm in training mode). ``evaluate(model)`` (optional) returns metrics on held-out data,
    computed on the host side with the current parameters.
    """
    model: nnx.Module
    loss: Callable[[nnx.Module, dict[str, jax.Array], jax.Array], tuple[jax.Array, dict[str, jax.Array]]]
    evaluate: Callable[[nnx.Module], dict[str, float]] | None = None


def make_optimizer(cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """Optax optimiser from ``cfg.optim``: name (adamw|adam|sgd), learning_rate, warmup_steps,
    schedule (cosine|constant), weight_decay, grad_clip (global norm, 0 = off)."""
    o = cfg.optim
    warmup = max(1, min(o.warmup_steps, cfg.steps - 1))
    if o.schedule == "cosine":
        lr = optax.warmup_cosine_decay_schedule(0.0, o.learning_rate, warmup, max(cfg.steps, warmup + 1))
    elif o.schedule == "constant":
        lr = optax.join_schedules([optax.linear_schedule(0.0, o.learning_rate, warmup),
                                   optax.constant_schedule(o.learning_rate)], [warmup])
    else:
        raise ValueError(f"optim.schedule: unknown {o.schedule!r} (cosine, constant)")
    if o.name == "adamw":
        tx = optax.adamw(lr, weight_decay=o.weight_decay)
    elif o.name == "adam":
        tx = optax.adam(lr)
    elif o.name == "sgd":
        tx = optax.sgd(lr, momentum=0.9)
    else:
        raise ValueError(f"optim.name: unknown {o.name!r} (adamw, adam, sgd)")
    return optax.chain(optax.clip_by_global_norm(o.grad_clip), tx) if o.grad_clip else tx


def data_mesh() -> jax.sharding.Mesh:
    """A 1-D mesh named ``data`` over every device of every process."""
    return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def _train_step(graphdef, tx, loss_fn):
    def step(state, batch):
        params, rest, opt_state, rng = state["params"], state["rest"], state["opt_state"], state["rng"]
        rng, step_rng = jax.random.split(rng)

        def objective(p, r):
            model = nnx.merge(graphdef, p, r, copy=True)   # fresh variables in this trace: BN may update them
            loss, metrics = loss_fn(model, batch, step_rng)
            return loss, (metrics, nnx.state(model, nnx.Not(nnx.Param)))

        (loss, (metrics, new_rest)), grads = jax.value_and_grad(objective, has_aux=True)(params, rest)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), **metrics}
        return {"params": params, "rest": new_rest, "opt_state": opt_state, "rng": rng,
                "step": state["step"] + 1}, metrics
    return step


class MetricsWriter:
    """Appends one JSON object per line (process 0 only)."""

    def __init__(self, path: str):
        self.path = path if jax.process_index() == 0 else None

    def write(self, step: int, kind: str, metrics: dict[str, Any]) -> None:
        if self.path:
            with open(self.path, "a") as f:
                f.write(json.dumps({"step": step, "kind": kind, "time": time.time(),
                                    **{k: float(v) for k, v in metrics.items()}}) + "\n")


def train(cfg: ml_collections.ConfigDict, task: Task, loader: Loader, workdir: str,
          on_step: Callable[[int, dict[str, float]], None] | None = None) -> nnx.Module:
    """Runs ``cfg.steps`` steps (resuming from ``workdir``'s latest checkpoint) and returns the model.

    Config fields used: steps, seed, log_every, eval_every, checkpoint_every, keep_checkpoints,
    optim.*. ``on_step`` is called on the host after every step (tests use it to kill a run).
    """
    os.makedirs(workdir, exist_ok=True)
    mesh = data_mesh()
    replicated, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    tx = make_optimizer(cfg)
    graphdef, params, rest = nnx.split(task.model, nnx.Param, ...)
    state = {"params": params, "rest": rest, "opt_state": tx.init(params),
             "rng": jax.random.key_data(jax.random.key(cfg.seed)), "step": jnp.zeros((), jnp.int32)}
    state = jax.device_put(state, replicated)

    manager = ocp.CheckpointManager(
        os.path.abspath(os.path.join(workdir, "checkpoints")),
        options=ocp.CheckpointManagerOptions(max_to_keep=cfg.keep_checkpoints, create=True))
    if manager.latest_step() is not None:
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
        state = manager.restore(manager.latest_step(), args=ocp.args.StandardRestore(abstract))
        log.info("resumed from step %d", int(state["step"]))
    start = int(state["step"])

    def step_fn(state, batch):
        state = dict(state, rng=jax.random.wrap_key_data(state["rng"]))
        new, metrics = _train_step(graphdef, tx, task.loss)(state, batch)
        return dict(new, rng=jax.random.key_data(new["rng"])), metrics

    step_fn = jax.jit(step_fn, in_shardings=(replicated, sharded), out_shardings=(replicated, replicated),
                      donate_argnums=0)
    writer = MetricsWriter(os.path.join(workdir, "metrics.jsonl"))
    bar = tqdm.tqdm(total=cfg.steps, initial=start, disable=jax.process_index() != 0, dynamic_ncols=True)
    try:
        for step, local in loader.iterate(start, cfg.steps):
            batch = {k: jax.make_array_from_process_local_data(sharded, v) for k, v in local.items()}
            state, metrics = step_fn(state, batch)
            metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}   # one host sync per step
            if not np.isfinite(metrics["loss"]):
                raise NonFiniteLoss(f"step {step}: loss is {metrics['loss']}; stopping. The last good checkpoint "
                                    f"(step {manager.latest_step()}) in {workdir} is kept.")
            done = step + 1
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['loss']:.4f}")
            if done % cfg.log_every == 0 or done == cfg.steps:
                writer.write(done, "train", {**metrics, "skipped_examples": loader.skipped.count})
            if task.evaluate and (done % cfg.eval_every == 0 or done == cfg.steps):
                evals = task.evaluate(nnx.merge(graphdef, state["params"], state["rest"]))
                writer.write(done, "eval", evals)
                log.info("step %d eval %s", done, evals)
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                manager.save(done, args=ocp.args.StandardSave(state))
            if on_step:
                on_step(done, metrics)
    finally:
        manager.wait_until_finished()
        manager.close()
        bar.close()
    if loader.skipped.count:
        log.warning("%d examples failed to decode and were replaced: %s", loader.skipped.count,
                    dict(loader.skipped.reasons))
    return nnx.merge(graphdef, state["params"], state["rest"])
