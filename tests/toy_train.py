"""A small regression job on the shared training loop, run as a subprocess by test_train_loop.py
(the device count and jax.distributed must be set before JAX starts).

    python tests/toy_train.py --workdir=W --out=params.npz --devices=4 [--steps=8] [--kill_at=5]
        [--nan_at=3] [--bad_every=0] [--log_every=1] [--frozen] [--process_id=0 --num_processes=2 --port=12345]

``--frozen``: the model is a container of a frozen sub-network (batch norm on running statistics
with random statistics, then a linear layer; Task.frozen) and a trainable head with its own
training-mode batch norm; the loss also tries to overwrite the frozen variables. --out holds the
trained state and, as ``initial.*``, the state before training.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--devices", type=int, default=1)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--kill_at", type=int, default=0)
    ap.add_argument("--nan_at", type=int, default=-1)
    ap.add_argument("--bad_every", type=int, default=0)
    ap.add_argument("--log_every", type=int, default=1)
    ap.add_argument("--frozen", action="store_true")
    ap.add_argument("--process_id", type=int, default=0)
    ap.add_argument("--num_processes", type=int, default=1)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()

    import jax
    jax.config.update("jax_num_cpu_devices", args.devices)
    if args.num_processes > 1:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(f"127.0.0.1:{args.port}", args.num_processes, args.process_id)

    import jax.numpy as jnp
    import ml_collections
    import numpy as np
    from flax import nnx

    from train import loop
    from train.data import Loader

    rng = np.random.default_rng(0)
    xs = rng.standard_normal((256, 8)).astype(np.float32)
    ys = (xs @ rng.standard_normal(8) + 0.1).astype(np.float32)

    class Source:
        def __len__(self):
            return len(xs)

        def __getitem__(self, i):
            return i

    def decode(i, r):
        if args.bad_every and i % args.bad_every == 0:
            raise ValueError(f"record {i} is corrupt")
        return {"x": xs[i] + 0.01 * r.standard_normal(8).astype(np.float32), "y": ys[i:i + 1]}

    class Net(nnx.Module):
        def __init__(self, dim=8):
            r = nnx.Rngs(0)
            # No bias before the batch norm: its gradient is exactly zero in theory and float noise in
            # practice, which Adam would amplify into device-count-dependent updates.
            self.l1 = nnx.Linear(dim, 16, use_bias=False, rngs=r)
            self.bn, self.l2 = nnx.BatchNorm(16, rngs=r), nnx.Linear(16, 1, rngs=r)

        def __call__(self, x):
            return self.l2(jax.nn.relu(self.bn(self.l1(x))))

    class Frozen(nnx.Module):   # a stand-in for a frozen classifier
        def __init__(self):
            r = nnx.Rngs(1)
            self.bn, self.lin = nnx.BatchNorm(8, use_running_average=True, rngs=r), nnx.Linear(8, 16, rngs=r)
            g = np.random.default_rng(1)
            for v, values in ((self.bn.mean, g.standard_normal(8)), (self.bn.var, g.uniform(0.5, 2.0, 8)),
                              (self.bn.scale, g.uniform(0.5, 2.0, 8)), (self.bn.bias, g.standard_normal(8)),
                              (self.lin.bias, g.standard_normal(16))):
                v[...] = jnp.asarray(values, jnp.float32)

        def __call__(self, x):
            return jax.nn.relu(self.lin(self.bn(x)))

    class Both(nnx.Module):
        def __init__(self):
            self.frozen, self.head = Frozen(), Net(16)

        def __call__(self, x):
            return self.head(self.frozen(x))

    def loss(model, batch, rng):
        del rng
        err = model(batch["x"]) - batch["y"]
        if args.frozen:   # the loop must drop writes to frozen state
            model.frozen.bn.mean[...] = model.frozen.bn.mean[...] + 1.0
            model.frozen.lin.kernel[...] = 0.0 * model.frozen.lin.kernel[...]
        return jnp.mean(err ** 2), {"mae": jnp.mean(jnp.abs(err))}

    cfg = ml_collections.ConfigDict(dict(
        seed=0, steps=args.steps, log_every=args.log_every, eval_every=10**9, checkpoint_every=2, keep_checkpoints=3,
        optim=dict(name="adam", learning_rate=1e-2, warmup_steps=0, schedule="constant", weight_decay=0.0,
                   grad_clip=0.0)))
    model = Both() if args.frozen else Net()
    model.train()
    if args.frozen:
        model.frozen.eval()
    flat = lambda state: {".".join(map(str, k)): np.array(v) for k, v in nnx.to_flat_state(state)}
    initial = flat(nnx.state(model))
    loader = Loader(Source(), decode, global_batch=16, seed=0, process_index=jax.process_index(),
                    process_count=jax.process_count())
    if args.nan_at >= 0:
        base = loader.batch

        def poisoned(step):   # NaN targets from a given step on
            b = base(step)
            if step >= args.nan_at:
                b["y"] = b["y"] * np.nan
            return b
        loader.batch = poisoned

    def on_step(step, metrics):
        if step == args.kill_at:
            os._exit(17)          # a killed run: no cleanup, no final checkpoint
    task = loop.Task(model=model, loss=loss, frozen=nnx.PathContains("frozen") if args.frozen else nnx.Nothing)
    trained = loop.train(cfg, task, loader, args.workdir, on_step=on_step)
    if jax.process_index() == 0:
        np.savez(args.out, skipped=loader.skipped.count, **flat(nnx.state(trained)),
                 **{f"initial.{k}": v for k, v in initial.items()})


if __name__ == "__main__":
    main()
