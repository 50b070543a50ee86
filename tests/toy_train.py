"""A small regression job on the shared training loop, run as a subprocess by test_train_loop.py
(the device count and jax.distributed must be set before JAX starts).

    python tests/toy_train.py --workdir=W --out=params.npz --devices=4 [--steps=8] [--kill_at=5]
        [--nan_at=3] [--bad_every=0] [--process_id=0 --num_processes=2 --port=12345]
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
        def __init__(self):
            r = nnx.Rngs(0)
            # No bias before the batch norm: its gradient is exactly zero in theory and float noise in
            # practice, which Adam would amplify into device-count-dependent updates.
            self.l1 = nnx.Linear(8, 16, use_bias=False, rngs=r)
            self.bn, self.l2 = nnx.BatchNorm(16, rngs=r), nnx.Linear(16, 1, rngs=r)

        def __call__(self, x):
            return self.l2(jax.nn.relu(self.bn(self.l1(x))))

    def loss(model, batch, rng):
        del rng
        err = model(batch["x"]) - batch["y"]
        return jnp.mean(err ** 2), {"mae": jnp.mean(jnp.abs(err))}

    cfg = ml_collections.ConfigDict(dict(
        seed=0, steps=args.steps, log_every=1, eval_every=10**9, checkpoint_every=2, keep_checkpoints=3,
        optim=dict(name="adam", learning_rate=1e-2, warmup_steps=0, schedule="constant", weight_decay=0.0,
                   grad_clip=0.0)))
    model = Net()
    model.train()
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
    trained = loop.train(cfg, loop.Task(model=model, loss=loss), loader, args.workdir, on_step=on_step)
    if jax.process_index() == 0:
        flat = {".".join(map(str, k)): np.asarray(v) for k, v in nnx.to_flat_state(nnx.state(trained))}
        np.savez(args.out, skipped=loader.skipped.count, **flat)


if __name__ == "__main__":
    main()
