"""A small L-MAC decoder training run on the shared loop, run as a subprocess by test_train_lmac.py
(the device count must be set before JAX starts): a tiny random CNN14 classifier (SpeechBrain
front end, 3 classes) frozen, the recipe's decoder at width 32 trained on random tones mixed
with noise at 0 dB.

    python tests/toy_lmac.py --workdir=W --out=state.npz --devices=2 [--steps=6] [--kill_at=3] [--finetune]

--out holds the final classifier and decoder variables and, as ``initial.*``, both before training.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path[:0] = [os.path.join(os.path.dirname(__file__), ".."), os.path.dirname(__file__)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--devices", type=int, default=1)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--kill_at", type=int, default=0)
    ap.add_argument("--finetune", action="store_true")
    args = ap.parse_args()

    import jax
    jax.config.update("jax_num_cpu_devices", args.devices)
    import ml_collections
    import numpy as np
    from flax import nnx

    import tiny_lmac
    from lmac import decoders
    from train import lmac, loop
    from train.data import Loader

    classifier = tiny_lmac.classifier()
    decoder = decoders.init_decoder(decoders.DecoderConfig(kind="cnn14_psi", dim=32), seed=1)
    task = lmac.make_task(classifier, decoder, lmac.LossConfig(finetune=args.finetune))
    initial = {f"initial.{'.'.join(map(str, k))}": np.asarray(v) for k, v in nnx.to_flat_state(nnx.state(task.model))}

    t = np.arange(37200) / 16000   # 201 frames: a length the recipe decoder fits exactly

    class Source:
        def __len__(self):
            return 64

        def __getitem__(self, i):
            return i

    def decode(i, r):
        wave = np.sin(2 * np.pi * (300 + 40 * i) * t) * (t < 1 + (i % 3) * 0.3)
        wave = wave / wave.max()
        return {"waves": wave.astype(np.float32), "noise": r.standard_normal(37200).astype(np.float32)}

    cfg = ml_collections.ConfigDict(dict(
        seed=0, steps=args.steps, log_every=2, eval_every=10**9, checkpoint_every=2, keep_checkpoints=3,
        optim=dict(name="adam", learning_rate=2e-4, warmup_steps=0, schedule="constant", weight_decay=2e-6,
                   grad_clip=0.0)))
    loader = Loader(Source(), decode, global_batch=4, seed=0)

    def on_step(step, metrics):
        if step == args.kill_at:
            os._exit(17)
    trained = loop.train(cfg, task, loader, args.workdir, on_step=on_step)
    flat = {".".join(map(str, k)): np.asarray(v) for k, v in nnx.to_flat_state(nnx.state(trained))}
    np.savez(args.out, **flat, **initial)


if __name__ == "__main__":
    main()
