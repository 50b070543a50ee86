"""The one training loop: data parallel over a device mesh, checkpointed, resumable.

A *task* says what is trained (see :class:`Task`); this loop owns everything else::

    Task.model --nnx.split--> frozen (Task.frozen)       replicated, not donated, not optimised, not saved
                          +-> params (Task.trainable) --grad, optimiser--> params'  \\  checkpointed with
                          +-> rest (batch stats, ...) --written by the loss--> rest'  /  opt state, rng, step
    batch (sharded on "data") --jit step--> metrics --summed on device--> host every log_every steps

* a ``jax.sharding.Mesh`` with one ``data`` axis over all devices of all processes; batches are
  sharded on their leading axis, parameters, frozen state and optimiser state replicated, and the
  step is one ``jax.jit`` with those shardings (XLA inserts the gradient all-reduce);
* Optax optimiser, learning-rate schedule and weight-decay mask from the config (:func:`make_optimizer`),
  optionally scaled by a plateau schedule driven by an evaluation metric (:func:`plateau_update`);
* orbax ``CheckpointManager``: resume from the latest step (the data order is a function of the
  step, see :mod:`train.data`, so a killed run continues exactly where it stopped);
* JSONL metrics (means over each ``log_every`` interval), a progress bar, periodic evaluation;
* a NaN/inf loss stops the run with the step named, before anything is overwritten: the first
  non-finite step is carried on device and checked at every host sync, and there is one before
  every checkpoint and evaluation.

The host reads metrics only at log, eval and checkpoint steps and at the end, so accelerators
run ahead. On the CPU backend the loop waits for each step to finish (no transfer): XLA's forced
host devices can deadlock on 2 cores when many steps with collectives are in flight
(``cfg.block_every_step`` overrides the default).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import re
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
import tqdm
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from train.data import Loader, SkippedExamples

log = logging.getLogger(__name__)

# Parameters never weight-decayed by default (``optim.no_decay``), regexes searched in the
# path name ("audio/blocks/0/norm/scale"): biases, norm scales (LayerNorm, BatchNorm, RMSNorm
# all name theirs ``scale``; their offsets are ``bias``) and CLAP's logit scales. Embedding
# tables are decayed, as in BERT/RoBERTa training.
NO_DECAY = (r"(^|/)bias$", r"(^|/)scale$", r"(^|/)logit_scale[^/]*$")


class NonFiniteLoss(FloatingPointError):
    """The loss became NaN or inf."""


@dataclasses.dataclass
class Task:
    """What a training job provides to the loop.

    ``model``: the NNX module (initialised), split by two nnx filters:
    ``frozen`` (default none) selects variables held fixed, e.g. ``nnx.PathContains("classifier")``
    for every Param and BatchStat of ``model.classifier``: they enter the step as a replicated,
    non-donated argument, have no optimiser state or decay and are not checkpointed (a resumed
    run takes them from ``model`` as given). Whatever the loss writes to them is discarded. The
    loop switches no modes: put the frozen submodule in evaluation mode yourself (``.eval()``:
    running averages, no dropout) before training. ``trainable`` (default ``nnx.Param``) selects
    the optimised variables among the rest; everything else (batch statistics, ...) is carried
    and checkpointed, and the loss may update it in place (batch norm in training mode).
    ``loss(model, batch, rng)`` gets the whole merged model and returns ``(scalar loss, dict of
    scalar metrics)``. ``evaluate(model)`` (optional) returns metrics on held-out data, computed
    on the host side with the current parameters.
    """
    model: nnx.Module
    loss: Callable[[nnx.Module, dict[str, jax.Array], jax.Array], tuple[jax.Array, dict[str, jax.Array]]]
    evaluate: Callable[[nnx.Module], dict[str, float]] | None = None
    trainable: Any = nnx.Param
    frozen: Any = nnx.Nothing


def _path_name(path) -> str:
    """Tree path -> "a/b/kernel" (an nnx.Variable's own ``.value`` key dropped)."""
    if path and isinstance(path[-1], jax.tree_util.GetAttrKey) and path[-1].name == "value":
        path = path[:-1]
    return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)


def decay_mask(no_decay: Sequence[str]) -> Callable[[Any], Any]:
    """params -> tree of bools, True where the path name matches none of the regexes ``no_decay``."""
    patterns = [re.compile(p) for p in no_decay]
    return lambda params: jax.tree_util.tree_map_with_path(
        lambda path, _: not any(p.search(_path_name(path)) for p in patterns), params)


def optimizer(o: ml_collections.ConfigDict, lr) -> optax.GradientTransformation:
    """The optimiser ``o`` (= ``cfg.optim``) names at learning rate ``lr`` (float or schedule).

    ``weight_decay`` applies to parameters matching none of ``no_decay`` (default :data:`NO_DECAY`;
    empty: every parameter). ``adamw``: decoupled decay (``p -= lr * (adam + wd * p)``). ``adam``
    and ``sgd`` (momentum 0.9): L2 added to the gradient before the update, as ``torch.optim.Adam``
    / ``SGD(weight_decay=wd)`` do. ``grad_clip`` (global norm, 0 = off) acts on the raw gradient.
    """
    wd, no_decay = o.weight_decay, tuple(o.get("no_decay", NO_DECAY))
    mask = decay_mask(no_decay) if wd and no_decay else None
    if o.name == "adamw":
        tx = optax.adamw(lr, weight_decay=wd, mask=mask)
    elif o.name in ("adam", "sgd"):
        tx = optax.adam(lr) if o.name == "adam" else optax.sgd(lr, momentum=0.9)
        tx = optax.chain(optax.add_decayed_weights(wd, mask), tx) if wd else tx
    else:
        raise ValueError(f"optim.name: unknown {o.name!r} (adamw, adam, sgd)")
    return optax.chain(optax.clip_by_global_norm(o.grad_clip), tx) if o.grad_clip else tx


def make_optimizer(cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """:func:`optimizer` of ``cfg.optim`` with its schedule: warmup_steps (linear from 0, at least
    one step), then cosine decay to 0 at ``cfg.steps`` or constant (``optim.schedule``)."""
    o = cfg.optim
    warmup = max(1, min(o.warmup_steps, cfg.steps - 1))
    if o.schedule == "cosine":
        lr = optax.warmup_cosine_decay_schedule(0.0, o.learning_rate, warmup, max(cfg.steps, warmup + 1))
    elif o.schedule == "constant":
        lr = optax.join_schedules([optax.linear_schedule(0.0, o.learning_rate, warmup),
                                   optax.constant_schedule(o.learning_rate)], [warmup])
    else:
        raise ValueError(f"optim.schedule: unknown {o.schedule!r} (cosine, constant)")
    return optimizer(o, lr)


def plateau_init() -> dict[str, jax.Array]:
    """Learning-rate scale and ReduceLROnPlateau bookkeeping, carried (and checkpointed) in the state."""
    return {"scale": jnp.ones((), jnp.float32), "anchor": jnp.full((), jnp.inf, jnp.float32),
            "count": jnp.zeros((), jnp.int32)}


def plateau_update(p: dict, evals: dict[str, float], epoch: int, o: ml_collections.ConfigDict) -> dict:
    """SpeechBrain's ``ReduceLROnPlateau`` (the L-MAC recipe's schedule), once per evaluation.

    ``o`` = ``cfg.optim.plateau``: ``metric`` (an evaluation metric), ``mode`` (``max``: the
    recipe's −Fid-In is minimised, i.e. Fid-In maximised), ``factor``, ``patience``, ``start``
    (evaluations up to this one only move the anchor: "no halving before epoch 100"),
    ``min_scale``. After ``start``: a value at least as good as the anchor resets the count and
    becomes the anchor; a worse one counts; when the count has reached ``patience`` the scale is
    multiplied by ``factor`` and the count restarts. The evaluation interval is the "epoch".
    """
    if o.metric not in evals:
        raise KeyError(f"optim.plateau.metric={o.metric!r} is not an evaluation metric ({sorted(evals)})")
    value = -evals[o.metric] if o.mode == "max" else evals[o.metric]
    scale, anchor, count = float(p["scale"]), float(p["anchor"]), int(p["count"])
    if epoch <= o.start or value <= anchor:
        anchor, count = value, 0 if epoch > o.start else count
    elif count < o.patience:
        count += 1
    else:
        scale, count = max(scale * o.factor, o.min_scale), 0
    return {"scale": np.float32(scale), "anchor": np.float32(anchor), "count": np.int32(count)}


def data_mesh() -> jax.sharding.Mesh:
    """A 1-D mesh named ``data`` over every device of every process."""
    return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def _train_step(graphdef, tx, task: Task):
    def step(state, frozen, batch):
        params, rest, opt_state = state["params"], state["rest"], state["opt_state"]
        rng, step_rng = jax.random.split(state["rng"])

        def objective(p, r):
            model = nnx.merge(graphdef, frozen, p, r, copy=True)   # fresh variables in this trace: BN may update them
            loss, metrics = task.loss(model, batch, step_rng)
            *_, new_rest = nnx.state(model, task.frozen, task.trainable, ...)   # writes to frozen are dropped
            return loss, (metrics, new_rest)

        (loss, (metrics, new_rest)), grads = jax.value_and_grad(objective, has_aux=True)(params, rest)
        updates, opt_state = tx.update(grads, opt_state, params)
        updates = jax.tree.map(lambda u: u * state["plateau"]["scale"], updates)   # ReduceLROnPlateau
        params = optax.apply_updates(params, updates)
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), **metrics}
        return {"params": params, "rest": new_rest, "opt_state": opt_state, "rng": rng,
                "step": state["step"] + 1, "plateau": state["plateau"]}, metrics
    return step


@functools.partial(jax.jit, donate_argnums=0)
def _accumulate(acc, metrics, done):
    """Adds one step's metrics to ``acc`` (None: start anew), keeping the first step (0-based, =
    ``done - 1``) whose loss was not finite and that loss."""
    metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
    bad = ~jnp.isfinite(metrics["loss"])
    if acc is None:
        return {"sum": metrics, "count": jnp.ones((), jnp.int32), "first_bad": jnp.where(bad, done - 1, -1),
                "bad_loss": metrics["loss"]}
    new_bad = bad & (acc["first_bad"] < 0)
    return {"sum": jax.tree.map(jnp.add, acc["sum"], metrics), "count": acc["count"] + 1,
            "first_bad": jnp.where(new_bad, done - 1, acc["first_bad"]),
            "bad_loss": jnp.where(new_bad, metrics["loss"], acc["bad_loss"])}


def _strict(strict: bool | None) -> bool:
    """``strict``, or the job's ``--strict`` flag (train.cli) when not given."""
    if strict is not None:
        return strict
    from absl import flags
    return "strict" in flags.FLAGS and flags.FLAGS.is_parsed() and bool(flags.FLAGS.strict)


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
          on_step: Callable[[int, dict[str, float] | None], None] | None = None,
          strict: bool | None = None) -> nnx.Module:
    """Runs ``cfg.steps`` steps (resuming from ``workdir``'s latest checkpoint) and returns the model.

    Config fields used: steps, seed, log_every, eval_every, checkpoint_every, keep_checkpoints,
    optim.* (:func:`make_optimizer`), block_every_step (optional, default: on the CPU backend).
    ``on_step(step, metrics)`` is called on the host after every step (tests use it to kill a run)
    with the number of steps done; ``metrics`` (means since the last log) only at log steps, else None.
    Examples that fail to decode are listed in ``workdir/skipped.jsonl`` (``skipped.<process>.jsonl``
    with several processes) and counted in metrics.jsonl; ``strict`` (default: the job's
    ``--strict`` flag) stops at the first instead (:mod:`train.data`).
    """
    os.makedirs(workdir, exist_ok=True)
    manifest = "skipped.jsonl" if jax.process_count() == 1 else f"skipped.{jax.process_index()}.jsonl"
    loader.skipped = SkippedExamples(os.path.join(workdir, manifest), _strict(strict))
    mesh = data_mesh()
    replicated, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    tx = make_optimizer(cfg)
    graphdef, frozen, params, rest = nnx.split(task.model, task.frozen, task.trainable, ...)
    state = {"params": params, "rest": rest, "opt_state": tx.init(params),
             "rng": jax.random.key_data(jax.random.key(cfg.seed)), "step": jnp.zeros((), jnp.int32),
             "plateau": plateau_init()}
    state, frozen = jax.device_put((state, frozen), replicated)

    manager = ocp.CheckpointManager(
        os.path.abspath(os.path.join(workdir, "checkpoints")),
        options=ocp.CheckpointManagerOptions(max_to_keep=cfg.keep_checkpoints, create=True))
    if manager.latest_step() is not None:
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
        state = manager.restore(manager.latest_step(), args=ocp.args.StandardRestore(abstract))
        log.info("resumed from step %d", int(state["step"]))
    start = int(state["step"])

    def step_fn(state, frozen, batch):
        state = dict(state, rng=jax.random.wrap_key_data(state["rng"]))
        new, metrics = _train_step(graphdef, tx, task)(state, frozen, batch)
        return dict(new, rng=jax.random.key_data(new["rng"])), metrics

    step_fn = jax.jit(step_fn, in_shardings=(replicated, replicated, sharded),
                      out_shardings=(replicated, replicated), donate_argnums=0)
    plateau_cfg = cfg.optim.get("plateau", None)
    block = cfg.get("block_every_step", None)
    block = jax.default_backend() == "cpu" if block is None else block

    def host_means(acc):   # the one host sync; refuses to go on after a non-finite loss
        acc = jax.device_get(acc)
        if acc["first_bad"] >= 0:
            raise NonFiniteLoss(f"step {acc['first_bad']}: loss is {acc['bad_loss']}; stopping. The last good "
                                f"checkpoint (step {manager.latest_step()}) in {workdir} is kept.")
        return {k: float(v) / acc["count"] for k, v in acc["sum"].items()}

    writer = MetricsWriter(os.path.join(workdir, "metrics.jsonl"))
    bar = tqdm.tqdm(total=cfg.steps, initial=start, disable=jax.process_index() != 0, dynamic_ncols=True)
    acc = None
    try:
        for step, local in loader.iterate(start, cfg.steps):
            batch = {k: jax.make_array_from_process_local_data(sharded, v) for k, v in local.items()}
            state, metrics = step_fn(state, frozen, batch)
            acc = _accumulate(acc, metrics, state["step"])
            if block:
                jax.block_until_ready(state["step"])
            done, last = step + 1, step + 1 == cfg.steps
            bar.update(1)
            log_now = done % cfg.log_every == 0 or last
            eval_now = task.evaluate is not None and (done % cfg.eval_every == 0 or last)
            save_now = done % cfg.checkpoint_every == 0 or last
            means = host_means(acc) if log_now or eval_now or save_now else None
            if log_now:
                writer.write(done, "train", {**means, "skipped_examples": loader.skipped.count})
                bar.set_postfix(loss=f"{means['loss']:.4f}")
                acc = None
            if eval_now:
                evals = task.evaluate(nnx.merge(graphdef, frozen, state["params"], state["rest"]))
                if plateau_cfg:
                    found = plateau_update(jax.device_get(state["plateau"]), evals, done // cfg.eval_every, plateau_cfg)
                    state = dict(state, plateau=jax.device_put(found, replicated))
                    evals = {**evals, "lr_scale": float(found["scale"])}
                writer.write(done, "eval", evals)
                log.info("step %d eval %s", done, evals)
            if save_now:
                manager.save(done, args=ocp.args.StandardSave(state))
            if on_step:
                on_step(done, means if log_now else None)
    finally:
        manager.wait_until_finished()
        manager.close()
        bar.close()
    if loader.skipped.count:
        log.warning("%d examples failed to decode and were replaced (%s); listed in %s", loader.skipped.count,
                    dict(loader.skipped.reasons), loader.skipped.manifest)
    return nnx.merge(graphdef, frozen, state["params"], state["rest"])
