r"""Training-step throughput (examples/s) of ``train.clap`` against the same step in plain PyTorch.

    python benchmarks/train_throughput.py --config=configs/clap_soundscapes.py --batch_size=32 --steps=5

Both sides train the same architecture at the same size: LAION-CLAP's own PyTorch HTSAT
(``laion_clap.clap_module.htsat``, torchlibrosa front end, in training mode) and a
``transformers`` RoBERTa with the config's text sizes, MLP projections, symmetric InfoNCE with a
learnable logit scale, AdamW. Ours is the jitted step of ``train.loop`` with
``train.clap.contrastive_loss``. Inputs are random waveforms and token ids already in memory
(data generation excluded on both sides); compilation and the first step are excluded; the
median step time is reported. Prints one markdown table row.
"""
from __future__ import annotations

import os
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from flax import nnx

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from timing import median_seconds  # noqa: E402
from train import clap, cli, loop  # noqa: E402

FLAGS = flags.FLAGS
cli.define_config_flag("Training config: configs/clap_soundscapes.py, or a shipped config's name.")
flags.DEFINE_integer("batch_size", 32, "Global batch size.")
flags.DEFINE_integer("steps", 5, "Timed steps per side (after one warm-up step).")
flags.DEFINE_bool("header", False, "Print the table header first.")


def _ours(cfg, waves, ids, mask):
    spec = clap.build_spec(cfg, cfg.tokenizer.vocab_size)
    model = clap.ClapModel(spec.model, rngs=nnx.Rngs(0))
    model.train()
    tx = loop.make_optimizer(cfg)
    task = loop.Task(model=model, loss=clap.contrastive_loss(spec))
    graphdef, frozen, params, rest = nnx.split(model, task.frozen, task.trainable, ...)
    state = {"params": params, "rest": rest, "opt_state": tx.init(params), "rng": jax.random.key(0),
             "step": jnp.zeros((), jnp.int32), "plateau": loop.plateau_init()}
    step = jax.jit(loop._train_step(graphdef, tx, task), donate_argnums=0)
    batch = {"waves": jnp.asarray(waves), "ids": jnp.asarray(ids), "mask": jnp.asarray(mask)}
    holder = {"state": jax.device_put(state, jax.devices()[0])}   # committed: no second compile

    def run():
        holder["state"], metrics = step(holder["state"], frozen, batch)
        jax.block_until_ready(metrics["loss"])
    return run, sum(x.size for x in jax.tree.leaves(params))


def _reference(cfg, waves, ids, mask):
    import reference_models  # noqa: F401  (offline laion_clap import)
    import torch
    import transformers
    from laion_clap.clap_module.htsat import HTSAT_Swin_Transformer
    torch.set_num_threads(os.cpu_count())
    a, t, f = cfg.model.audio, cfg.model.text, cfg.frontend
    audio_cfg = types.SimpleNamespace(window_size=f.n_fft, hop_size=f.hop_length, sample_rate=f.sample_rate,
                                      mel_bins=f.n_mels, fmin=f.fmin, fmax=f.fmax)
    torch.manual_seed(0)

    class TorchClap(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.audio = HTSAT_Swin_Transformer(spec_size=a.spec_size, embed_dim=a.embed_dim, depths=list(a.depths),
                                                num_heads=list(a.num_heads), window_size=a.window_size,
                                                config=audio_cfg, num_classes=8)
            self.text = transformers.RobertaModel(transformers.RobertaConfig(
                vocab_size=cfg.tokenizer.vocab_size, hidden_size=t.hidden_size, num_hidden_layers=t.num_layers,
                num_attention_heads=t.num_heads, intermediate_size=t.intermediate_size,
                max_position_embeddings=cfg.tokenizer.max_length + 2, type_vocab_size=1, pad_token_id=1))
            width = a.embed_dim * 2 ** (len(a.depths) - 1)
            mlp = lambda d: torch.nn.Sequential(torch.nn.Linear(d, cfg.model.joint_dim), torch.nn.ReLU(),
                                                torch.nn.Linear(cfg.model.joint_dim, cfg.model.joint_dim))
            self.audio_projection, self.text_projection = mlp(width), mlp(t.hidden_size)
            self.logit_scale = torch.nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))

        def forward(self, w, i, m):
            ea = torch.nn.functional.normalize(self.audio_projection(self.audio({"waveform": w})["embedding"]), dim=-1)
            et = torch.nn.functional.normalize(self.text_projection(
                self.text(input_ids=i, attention_mask=m).pooler_output), dim=-1)
            logits = self.logit_scale.clamp(max=np.log(100)).exp() * ea @ et.T
            labels = torch.arange(len(w))
            return 0.5 * (torch.nn.functional.cross_entropy(logits, labels)
                          + torch.nn.functional.cross_entropy(logits.T, labels))

    model = TorchClap().train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.learning_rate, weight_decay=cfg.optim.weight_decay)
    w, i, m = torch.from_numpy(waves), torch.from_numpy(ids).long(), torch.from_numpy(mask).long()

    def run():
        opt.zero_grad()
        loss = model(w, i, m)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        opt.step()
    return run, sum(p.numel() for p in model.parameters() if p.requires_grad)


def main(argv):
    del argv
    from clap_jax import runtime
    runtime.quiet_logs()  # the table alone on the output (dependencies log WARNING and above)
    cfg, b = FLAGS.config, FLAGS.batch_size
    rng = np.random.default_rng(0)
    waves = (0.1 * rng.standard_normal((b, int(cfg.frontend.sample_rate * cfg.data.duration)))).astype(np.float32)
    ids = rng.integers(5, cfg.tokenizer.vocab_size, (b, cfg.data.text_length)).astype(np.int32)
    ids[:, 0], mask = 0, np.ones_like(ids)
    ours, n_ours = _ours(cfg, waves, ids, mask)
    ref, n_ref = _reference(cfg, waves, ids, mask)
    t_ours, t_ref = median_seconds(ours, FLAGS.steps), median_seconds(ref, FLAGS.steps)
    dev = jax.devices()[0]
    if FLAGS.header:
        print("| job | device | batch | params (ours / ref) | examples/s (ours) | examples/s (PyTorch) | speed-up |")
        print("|---|---|---|---|---|---|---|")
    print(f"| train.clap (soundscapes-small) | {dev.platform}:{getattr(dev, 'device_kind', '')} | {b} | "
          f"{n_ours / 1e6:.2f}M / {n_ref / 1e6:.2f}M | {b / t_ours:.1f} | {b / t_ref:.1f} | {t_ref / t_ours:.2f}x |")


if __name__ == "__main__":
    app.run(main)
