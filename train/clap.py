r"""Contrastive training of a CLAP on the soundscapes corpus.

    python -m train.clap --config=configs/clap_soundscapes.py --workdir=runs/clap \
        [--config.steps=200] [--export=clap_jax/bundled/soundscapes-small]

The audio encoder is the project's HTSAT and the text encoder its RoBERTa, both with small
configs (the same modules as the converted checkpoints), the tokenizer a byte-level BPE
trained on the corpus captions. Loss: symmetric InfoNCE over the global batch with a learnable
logit scale (capped at 100), as CLAP trains. Clips are synthesised on the fly from their index,
so the dataset needs no disk and every epoch order is reproducible.
"""
from __future__ import annotations

import dataclasses
import logging
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import app, flags
from flax import nnx
from ml_collections import config_flags

from clap_jax import api, checkpoint, pipeline
from clap_jax.data import soundscapes
from clap_jax.frontend import SpectrogramConfig
from clap_jax.models.clap import ClapConfig, ClapModel
from clap_jax.models.htsat import HTSATConfig
from clap_jax.models.text import TextConfig
from clap_jax.spec import AudioConfig, ClapSpec, TokenizerConfig
from clap_jax.tokenizer import Tokenizer
from train import loop
from train.data import Loader

PROMPT = "This is a sound of {}."


class SoundscapesSource:
    """Random access to synthetic clips: index -> soundscapes.Clip (generated on demand).

    Every ``single_every``-th index is a single-event clip, the rest hold 1-3 events.
    """

    def __init__(self, seed: int, size: int, sample_rate: int, duration: float, single_every: int = 3):
        self.seed, self.size, self.single_every = seed, size, single_every
        self.multi = soundscapes.SoundscapeConfig(sample_rate=sample_rate, duration=duration, stft=None)
        self.single = dataclasses.replace(self.multi, single_event=True)

    def __len__(self):
        return self.size

    def __getitem__(self, index: int) -> soundscapes.Clip:
        single = self.single_every and index % self.single_every == 0
        return soundscapes.generate_clip(self.seed, int(index), self.single if single else self.multi)


def build_spec(cfg: ml_collections.ConfigDict, vocab_size: int) -> ClapSpec:
    a, t, f = cfg.model.audio, cfg.model.text, cfg.frontend
    audio = HTSATConfig(embed_dim=a.embed_dim, depths=tuple(a.depths), num_heads=tuple(a.num_heads),
                        window_size=a.window_size, spec_size=a.spec_size, n_mels=f.n_mels)
    text = TextConfig(vocab_size=vocab_size, hidden_size=t.hidden_size, num_layers=t.num_layers,
                      num_heads=t.num_heads, intermediate_size=t.intermediate_size,
                      max_positions=cfg.tokenizer.max_length + 2, layer_norm_eps=1e-5, pad_token_id=1)
    spec = SpectrogramConfig(sample_rate=f.sample_rate, n_fft=f.n_fft, win_length=f.n_fft, hop_length=f.hop_length,
                             n_mels=f.n_mels, fmin=f.fmin, fmax=f.fmax)
    return ClapSpec(model=ClapConfig(audio=audio, text=text, joint_dim=cfg.model.joint_dim),
                    audio=AudioConfig(spectrogram=spec, clip_samples=int(f.sample_rate * cfg.data.duration),
                                      quantize_int16=False),
                    tokenizer=TokenizerConfig(cfg.tokenizer.max_length), source="soundscapes")


def train_tokenizer(cfg: ml_collections.ConfigDict, out_dir: str) -> Tokenizer:
    """Byte-level BPE (RoBERTa format) trained on captions of the training clips, plus class labels."""
    from tokenizers import ByteLevelBPETokenizer
    source = SoundscapesSource(cfg.data.seed, cfg.tokenizer.train_clips, cfg.frontend.sample_rate, 1.0)
    texts = [c for i in range(len(source)) for c in source[i].captions]
    texts += [PROMPT.format(c.label) for c in soundscapes.CLASSES]
    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(texts, vocab_size=cfg.tokenizer.vocab_size, min_frequency=2,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    os.makedirs(out_dir, exist_ok=True)
    tok.save_model(out_dir)
    return Tokenizer.load(out_dir, cfg.tokenizer.max_length)


def make_decode(spec: ClapSpec, tokenizer: Tokenizer, text_length: int):
    """Clip -> fixed-shape arrays: waveform at the model rate and one random caption's tokens."""
    length = spec.audio.clip_samples

    def decode(clip: soundscapes.Clip, rng: np.random.Generator) -> dict[str, np.ndarray]:
        wave = clip.audio[:length]
        wave = np.pad(wave, (0, length - len(wave)))
        ids, mask = tokenizer([clip.captions[int(rng.integers(len(clip.captions)))]])
        ids, mask = ids[0, :text_length], mask[0, :text_length]
        pad = text_length - len(ids)
        return {"waves": wave.astype(np.float32),
                "ids": np.pad(ids, (0, pad), constant_values=tokenizer.pad_id), "mask": np.pad(mask, (0, pad))}
    return decode


def contrastive_loss(spec: ClapSpec):
    chunk = spec.audio.spectrogram.num_frames(spec.audio.clip_samples)
    max_scale = float(np.log(100.0))

    def loss(model: ClapModel, batch, rng):
        del rng
        mel, _ = pipeline.features({"waves": batch["waves"], "longer": None}, spec.audio, chunk)
        a = model.encode_audio(mel)["embedding"]
        t = model.encode_text(batch["ids"], batch["mask"])["embedding"]
        a = a / jnp.linalg.norm(a, axis=-1, keepdims=True)
        t = t / jnp.linalg.norm(t, axis=-1, keepdims=True)
        scale = jnp.exp(jnp.minimum(model.logit_scale_a[...], max_scale))
        logits = scale * a @ t.T
        labels = jnp.arange(logits.shape[0])
        ce = optax.softmax_cross_entropy_with_integer_labels
        value = 0.5 * (ce(logits, labels).mean() + ce(logits.T, labels).mean())
        acc = (jnp.argmax(logits, axis=1) == labels).mean()
        return value, {"batch_accuracy": acc, "logit_scale": scale}
    return loss


def evaluation_sets(cfg: ml_collections.ConfigDict):
    """Held-out clips (a seed never used for training): single-event clips for zero-shot
    classification and multi-event clips with one caption each for text-to-audio retrieval."""
    seed, sr, dur = cfg.data.eval_seed, cfg.frontend.sample_rate, cfg.data.duration
    single = soundscapes.generate(seed, cfg.data.eval_clips, sample_rate=sr, duration=dur, single_event=True,
                                  stft=None)
    multi = soundscapes.generate(seed + 1, cfg.data.eval_clips, sample_rate=sr, duration=dur, stft=None)
    return single, multi


def evaluate(model: api.Clap, single, multi, batch_size: int = 64) -> dict[str, float]:
    """Zero-shot accuracy (prompt "This is a sound of {label}.") and text-to-audio recall@1."""
    def embed_audio(clips):
        return np.concatenate([model.embed_audio([c.audio for c in clips[i:i + batch_size]], clips[0].sample_rate)
                               for i in range(0, len(clips), batch_size)])
    prompts = model.embed_text([PROMPT.format(c.label) for c in soundscapes.CLASSES])
    pred = np.argmax(model.similarity(embed_audio(single), prompts), axis=1)
    truth = np.array([soundscapes.class_index(c.labels[0]) for c in single])
    captions = np.concatenate([model.embed_text([c.captions[0] for c in multi[i:i + batch_size]])
                               for i in range(0, len(multi), batch_size)])
    ranks = np.argmax(model.similarity(embed_audio(multi), captions).T, axis=1)
    return {"zero_shot_accuracy": float((pred == truth).mean()),
            "text_to_audio_r1": float((ranks == np.arange(len(multi))).mean())}


def run(cfg: ml_collections.ConfigDict, workdir: str, export: str | None = None) -> api.Clap:
    tok_dir = os.path.join(workdir, "tokenizer")
    tokenizer = (Tokenizer.load(tok_dir, cfg.tokenizer.max_length) if os.path.exists(os.path.join(tok_dir, "vocab.json"))
                 else train_tokenizer(cfg, tok_dir))
    spec = build_spec(cfg, tokenizer.tok.get_vocab_size())
    model = ClapModel(spec.model, rngs=nnx.Rngs(cfg.seed))
    model.train()
    single, multi = evaluation_sets(cfg)

    def evaluate_model(m):
        m.eval()
        return evaluate(api.Clap(spec, m, tokenizer), single, multi)

    loader = Loader(SoundscapesSource(cfg.data.seed, cfg.data.train_clips, cfg.frontend.sample_rate, cfg.data.duration),
                    make_decode(spec, tokenizer, cfg.data.text_length), cfg.batch_size, seed=cfg.data.seed,
                    process_index=jax.process_index(), process_count=jax.process_count(), workers=cfg.data.workers)
    task = loop.Task(model=model, loss=contrastive_loss(spec), evaluate=evaluate_model)
    trained = loop.train(cfg, task, loader, workdir)
    trained.eval()
    if export and jax.process_index() == 0:
        checkpoint.save_converted(export, spec, trained, tok_dir, overwrite=True)
    return api.Clap(spec, trained, tokenizer)


FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Training config (a configs/*.py file).", lock_config=True)
flags.DEFINE_string("workdir", None, "Checkpoints, metrics.jsonl and the tokenizer go here; rerun to resume.")
flags.DEFINE_string("export", None, "Write the trained model as a converted directory here.")


def main(argv):
    del argv
    logging.getLogger().setLevel(logging.INFO)
    cfg = FLAGS.config
    if cfg.get("distributed", False):
        jax.distributed.initialize()
    model = run(cfg, FLAGS.workdir, FLAGS.export)
    single, multi = evaluation_sets(cfg)
    print(evaluate(model, single, multi))


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main)
