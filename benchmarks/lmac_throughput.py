r"""L-MAC decoder training step and explanation throughput (clips/s), ours against SpeechBrain's recipe.

    python benchmarks/lmac_throughput.py --batch_size=4 --seconds=5 --steps=3 --header

Both sides run the recipe's models at the recipe's sizes with the same random weights:
SpeechBrain's ``Cnn14(mel_bins=80, emb_dim=2048)`` + ``Linear(2048, 50)``, frozen, and
``CNN14PSI_stft(dim=2048)``, trained. One training step = noise mixed in at 0 dB, STFT, log1p
features, the classifier on the clean, masked-in and masked-out inputs, the decoder's backward
pass and an Adam update (lr 2e-4, weight decay 2e-6); ours is ``train.loop``'s jitted step of
``train.lmac``'s task, the reference the recipe's ``compute_forward`` + ``compute_objectives``
arithmetic in PyTorch with ``torch.optim.Adam``. Explanation = masks, masked-in/out
probabilities and the masked-in waveform (ISTFT); ours ``lmac.Explainer.explain_prepared``.
Compilation and one warm-up call are excluded; the median of ``--steps`` timed calls is
reported. Prints markdown table rows.
"""
from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from flax import nnx

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

import ml_collections  # noqa: E402

from timing import median_seconds as _median  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch_size", 4, "Clips per step.")
flags.DEFINE_float("seconds", 5.0, "Clip length (s) at 16 kHz; the recipe's is 5.")
flags.DEFINE_integer("steps", 3, "Timed calls per side (after one warm-up call).")
flags.DEFINE_bool("header", False, "Print the table header first.")


def _reference(waves, noise):
    import reference_models
    import torch
    from speechbrain.lobes.models.Cnn14 import CNN14PSI_stft
    from speechbrain.processing.features import ISTFT, STFT, Filterbank, spectral_magnitude
    from speechbrain.processing.NMF import spectral_phase
    F = torch.nn.functional
    torch.set_num_threads(os.cpu_count())
    emb, clf = reference_models.speechbrain_cnn14()
    emb.requires_grad_(False), clf.requires_grad_(False)
    torch.manual_seed(3)
    psi = CNN14PSI_stft(dim=2048)
    stft = STFT(sample_rate=16000, n_fft=1024, win_length=23.2199, hop_length=11.6099)
    istft = ISTFT(sample_rate=16000, win_length=23.2199, hop_length=11.6099)
    fbank = Filterbank(n_mels=80, n_fft=1024, sample_rate=16000, log_mel=False)
    opt = torch.optim.Adam(psi.parameters(), lr=2e-4, weight_decay=2e-6)
    clean, noise = torch.from_numpy(waves), torch.from_numpy(noise)
    classify = lambda mel: clf(emb(mel)[0]).squeeze(1)

    def forward(wavs):
        X = stft(wavs)
        mag = spectral_magnitude(X, power=0.5)
        X_log = torch.log1p(mag)
        embedding, hs = emb(torch.log1p(fbank(mag)))
        logits = clf(embedding).squeeze(1)
        xhat = torch.sigmoid(psi(hs).squeeze(1))
        T = xhat.shape[1]
        return X, X_log[:, :T], logits, xhat

    def step():
        mixed = clean / clean.norm(dim=1, keepdim=True) + noise / noise.norm(dim=1, keepdim=True)
        mixed = mixed / mixed.max(dim=1, keepdim=True).values
        _, X_log, logits, xhat = forward(mixed)
        l_in = classify(torch.log1p(fbank(torch.expm1(xhat * X_log))))
        l_out = classify(torch.log1p(fbank(torch.expm1((1 - xhat) * X_log))))
        pred = logits.argmax(1)
        loss = (4 * F.nll_loss(l_in.log_softmax(1), pred) - 0.2 * F.nll_loss(l_out.log_softmax(1), pred)
                + (xhat.abs().mean() * 0.4 * torch.ones(len(xhat))).sum())
        opt.zero_grad()
        loss.backward()
        opt.step()

    @torch.no_grad()
    def explain():
        X, X_log, logits, xhat = forward(clean)
        p_in = classify(torch.log1p(fbank(torch.expm1(xhat * X_log)))).softmax(1)
        p_out = classify(torch.log1p(fbank(torch.expm1((1 - xhat) * X_log)))).softmax(1)
        phase = spectral_phase(X)[:, :xhat.shape[1]]
        spec = torch.expm1(xhat * X_log)[..., None] * torch.stack([torch.cos(phase), torch.sin(phase)], -1)
        return istft(spec), p_in, p_out
    return step, explain, (emb, clf, psi)


def _ours(models, waves, noise, tmp):
    import torch
    from clap_jax import convert
    from lmac import convert as lmac_convert, explainer as explainer_lib
    from train import lmac, loop
    emb, clf, psi = models
    torch.save(emb.state_dict(), os.path.join(tmp, "embedding_model.ckpt"))
    torch.save(clf.state_dict(), os.path.join(tmp, "classifier.ckpt"))
    torch.save(psi.state_dict(), os.path.join(tmp, "psi_model.ckpt"))
    convert.convert("speechbrain", tmp, os.path.join(tmp, "classifier"))
    lmac_convert.convert(os.path.join(tmp, "psi_model.ckpt"), os.path.join(tmp, "classifier"), os.path.join(tmp, "exp"))
    explainer = explainer_lib.load(os.path.join(tmp, "exp"))

    task = lmac.make_task(explainer.classifier, explainer.decoder())
    cfg = ml_collections.ConfigDict(dict(steps=10, optim=dict(
        name="adam", learning_rate=2e-4, warmup_steps=0, schedule="constant", weight_decay=2e-6, no_decay=(),
        grad_clip=0.0)))
    tx = loop.make_optimizer(cfg)
    graphdef, frozen, params, rest = nnx.split(task.model, task.frozen, task.trainable, ...)
    state = {"params": params, "rest": rest, "opt_state": tx.init(params), "rng": jax.random.key(0),
             "step": jnp.zeros((), jnp.int32), "plateau": loop.plateau_init()}
    # Committed to a device like the step's outputs: otherwise the second call compiles again.
    holder = {"state": jax.device_put(state, jax.devices()[0])}
    step_fn = jax.jit(loop._train_step(graphdef, tx, task), donate_argnums=0)
    batch = {"waves": jnp.asarray(waves), "noise": jnp.asarray(noise)}

    def step():
        holder["state"], metrics = step_fn(holder["state"], frozen, batch)
        jax.block_until_ready(metrics["loss"])

    def explain():
        return explainer.explain_prepared(waves)
    return step, explain


def main(argv):
    del argv
    from clap_jax import runtime
    runtime.quiet_logs()  # the table alone on the output (dependencies log WARNING and above)
    import tempfile
    b, n = FLAGS.batch_size, int(16000 * FLAGS.seconds)
    rng = np.random.default_rng(0)
    t = np.arange(n) / 16000
    waves = np.stack([np.sin(2 * np.pi * 300 * (k + 1) * t) + 0.1 * rng.standard_normal(n) for k in range(b)])
    waves = (waves / waves.max(axis=1, keepdims=True)).astype(np.float32)
    noise = rng.standard_normal((b, n)).astype(np.float32)
    ref_step, ref_explain, models = _reference(waves, noise)
    with tempfile.TemporaryDirectory() as tmp:
        our_step, our_explain = _ours(models, waves, noise, tmp)
        # Explanation first: the training step donates the decoder's buffers it started from.
        explain = ("explain (masks, probabilities, ISTFT)", _median(our_explain, FLAGS.steps),
                   _median(ref_explain, FLAGS.steps))
        rows = [("decoder training step", _median(our_step, FLAGS.steps), _median(ref_step, FLAGS.steps)), explain]
    dev = jax.devices()[0]
    if FLAGS.header:
        print("| L-MAC (recipe sizes: CNN14 + CNN14PSI_stft dim 2048) | device | batch | clip s | clips/s (ours) "
              "| clips/s (PyTorch) | speed-up |")
        print("|---|---|---|---|---|---|---|")
    for name, ours, ref in rows:
        print(f"| {name} | {dev.platform}:{getattr(dev, 'device_kind', '')} | {b} | {FLAGS.seconds:g} | "
              f"{b / ours:.2f} | {b / ref:.2f} | {ref / ours:.2f}x |")


if __name__ == "__main__":
    app.run(main)
