r"""Contrastive training of a CLAP on the soundscapes corpus.

    python -m train.clap --config=configs/clap_soundscapes.py --workdir=runs/clap \
        [--config.steps=200] [--export=clap_jax/bundled/soundscapes-small]

The audio encoder is the project's HTSAT and the text encoder its RoBERTa, or (Microsoft CLAP
2022's shape, ``configs/clap_soundscapes_cnn14.py``) its CNN14 and BERT, all with small configs
(the same modules as the converted checkpoints), the tokenizer a byte-level BPE or WordPiece
trained on the corpus captions. Loss: symmetric InfoNCE over the global batch with a learnable
logit scale (capped at 100), as CLAP trains; with ``data.hard_negatives`` each clip's edited
description (:func:`caption_pair`) joins the texts its audio must rank below its own, and
``init_from`` fine-tunes a converted model. Clips are synthesised on the fly from their index,
so the dataset needs no disk and every epoch order is reproducible.
"""
from __future__ import annotations

import dataclasses
import os
import random
import shutil

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from clap_jax import api, checkpoint, pipeline
from clap_jax.data import soundscapes
from clap_jax.configs import from_config
from clap_jax.frontend import SpectrogramConfig
from clap_jax.linalg import l2_normalize
from clap_jax.models.clap import ClapConfig, ClapModel
from clap_jax.spec import AudioConfig, ClapSpec, TokenizerConfig
from clap_jax.tokenizer import Tokenizer
from train import cli, loop
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


# Text-encoder fields that follow from the tokenizer family: RoBERTa (positions offset past the
# pad id 1, pooler) or BERT as Microsoft CLAP 2022 has it (absolute positions, [CLS] state, pad 0).
_TEXT_OF_FAMILY = {
    "roberta": lambda n: {"max_positions": n + 2, "layer_norm_eps": 1e-5, "pad_token_id": 1},
    "bert": lambda n: {"max_positions": n, "layer_norm_eps": 1e-12, "pad_token_id": 0, "type_vocab_size": 2,
                       "positions": "absolute", "pooling": "cls"},
}


def tokenizer_family(cfg: ml_collections.ConfigDict) -> str:
    """``tokenizer.family``: ``roberta`` (byte-level BPE, the default) or ``bert`` (WordPiece)."""
    family = cfg.tokenizer.get("family", "roberta")
    if family not in _TEXT_OF_FAMILY:
        raise ValueError(f"config.tokenizer.family: one of {sorted(_TEXT_OF_FAMILY)}, got {family!r}")
    return family


def build_spec(cfg: ml_collections.ConfigDict, vocab_size: int) -> ClapSpec:
    """The converted-model spec of the config: ``model`` (``audio`` HTSAT or CNN14, BERT-family
    ``text``, ``joint_dim``, projections) and ``frontend`` as written, with what follows from
    other sections derived here (mel bins; the text encoder's positions, pad id and pooling
    from the tokenizer family)."""
    f, family = cfg.frontend, tokenizer_family(cfg)
    text = {"vocab_size": vocab_size, **_TEXT_OF_FAMILY[family](cfg.tokenizer.max_length)}
    model = from_config(ClapConfig, cfg.model, "config.model", audio={"n_mels": f.n_mels}, text=text)
    spec = from_config(SpectrogramConfig, f, "config.frontend", win_length=f.n_fft)
    audio = AudioConfig(spectrogram=spec, clip_samples=int(f.sample_rate * cfg.data.duration), quantize_int16=False)
    return ClapSpec(model=model, audio=audio,
                    tokenizer=TokenizerConfig(max_length=cfg.tokenizer.max_length, family=family),
                    source="soundscapes")


def train_tokenizer(cfg: ml_collections.ConfigDict, out_dir: str) -> Tokenizer:
    """A tokenizer trained on captions of the training clips, plus class labels: byte-level BPE
    (RoBERTa's files) or, for ``tokenizer.family="bert"``, lower-cased WordPiece (``vocab.txt``)."""
    from tokenizers import BertWordPieceTokenizer, ByteLevelBPETokenizer
    source = SoundscapesSource(cfg.data.seed, cfg.tokenizer.train_clips, cfg.frontend.sample_rate, 1.0)
    texts = [c for i in range(len(source)) for c in source[i].captions]
    texts += [PROMPT.format(c.label) for c in soundscapes.CLASSES]
    family = tokenizer_family(cfg)
    if family == "bert":
        tok = BertWordPieceTokenizer(lowercase=True)
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    else:
        tok = ByteLevelBPETokenizer()
        specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok.train_from_iterator(texts, vocab_size=cfg.tokenizer.vocab_size, min_frequency=2, special_tokens=specials)
    os.makedirs(out_dir, exist_ok=True)
    tok.save_model(out_dir)
    return Tokenizer.load(out_dir, cfg.tokenizer.max_length, family)


def edited_events(clip: soundscapes.Clip, r: random.Random) -> list[soundscapes.Event]:
    """``clip``'s events with one edit: one dropped (clips of two or more events, half of the
    time) or an absent class added at a random time."""
    events = list(clip.events)
    if len(events) >= 2 and r.random() < 0.5:
        del events[r.randrange(len(events))]
        return events
    present = {e.class_id for e in events}
    absent = [c for c in soundscapes.CLASS_IDS if c not in present]
    onset = r.uniform(0.0, 0.8 * clip.duration)
    added = absent[r.randrange(len(absent))]
    return events + [soundscapes.Event(added, onset, min(clip.duration, onset + r.uniform(0.3, 2.0)), 0.0)]


def caption_pair(clip: soundscapes.Clip, r: random.Random, tag_prob: float = 0.0) -> tuple[str, str]:
    """(positive, hard negative) texts for ``clip``; the negative describes
    :func:`edited_events`. Both have the same form: with probability ``tag_prob`` tag lists
    (:func:`soundscapes.tag_caption`, the form of concept vocabularies), else sentences (the
    positive one of the clip's own captions, the negative from :func:`soundscapes.caption_for`).
    """
    edited = edited_events(clip, r)
    if r.random() < tag_prob:
        return (soundscapes.tag_caption(r, clip.labels), soundscapes.tag_caption(r, [e.class_id for e in edited]))
    bg_prob = soundscapes.SoundscapeConfig.background_caption_prob
    return clip.captions[r.randrange(len(clip.captions))], soundscapes.caption_for(r, edited, clip.background, bg_prob)


def make_decode(spec: ClapSpec, tokenizer: Tokenizer, text_length: int, tag_prob: float = 0.0,
                hard_negatives: bool = False):
    """Clip -> fixed-shape arrays: ``waves`` (samples,) at the model rate, the positive text's
    ``ids``/``mask`` (text_length,), and with ``hard_negatives`` the negative's
    ``neg_ids``/``neg_mask`` (see :func:`caption_pair`)."""
    length = spec.audio.clip_samples

    def tokens(text: str, prefix: str) -> dict[str, np.ndarray]:
        ids, mask = tokenizer([text])
        ids, mask = ids[0, :text_length], mask[0, :text_length]
        pad = text_length - len(ids)
        return {prefix + "ids": np.pad(ids, (0, pad), constant_values=tokenizer.pad_id),
                prefix + "mask": np.pad(mask, (0, pad))}

    def decode(clip: soundscapes.Clip, rng: np.random.Generator) -> dict[str, np.ndarray]:
        wave = clip.audio[:length]
        wave = np.pad(wave, (0, length - len(wave)))
        positive, negative = caption_pair(clip, random.Random(int(rng.integers(2**63))), tag_prob)
        out = {"waves": wave.astype(np.float32), **tokens(positive, "")}
        return {**out, **tokens(negative, "neg_")} if hard_negatives else out
    return decode


def contrastive_loss(spec: ClapSpec):
    chunk = spec.audio.spectrogram.num_frames(spec.audio.clip_samples)
    max_scale = float(np.log(100.0))

    def loss(model: ClapModel, batch, rng):
        del rng
        mel, _ = pipeline.features({"waves": batch["waves"], "longer": None}, spec.audio, chunk)
        a = model.encode_audio(mel)["embedding"]
        ids, mask = batch["ids"], batch["mask"]
        if "neg_ids" in batch:       # one text encoder pass over positives and negatives
            ids, mask = jnp.concatenate([ids, batch["neg_ids"]]), jnp.concatenate([mask, batch["neg_mask"]])
        t = model.encode_text(ids, mask)["embedding"]
        a, t = l2_normalize(a), l2_normalize(t)
        log_scale = model.logit_scale if model.cfg.shared_logit_scale else model.logit_scale_a
        scale = jnp.exp(jnp.minimum(log_scale[...], max_scale))
        logits = scale * a @ t.T                     # (B, B) or (B, 2B): negatives only compete for audio
        b = a.shape[0]
        labels = jnp.arange(b)
        ce = optax.softmax_cross_entropy_with_integer_labels
        value = 0.5 * (ce(logits, labels).mean() + ce(logits[:, :b].T, labels).mean())
        metrics = {"batch_accuracy": (jnp.argmax(logits[:, :b], axis=1) == labels).mean(), "logit_scale": scale}
        if "neg_ids" in batch:       # how often the clip's own text beats its edited one
            metrics["negative_accuracy"] = (logits[labels, labels] > logits[labels, labels + b]).mean()
        return value, metrics
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


def initial_model(spec: ClapSpec, init_from: str | None, seed: int) -> ClapModel:
    """A freshly initialised model, or the weights of the converted directory ``init_from``
    (fine-tuning; its spec must be the one the config builds)."""
    if not init_from:
        return ClapModel(spec.model, rngs=nnx.Rngs(seed))
    found = checkpoint.read_spec(init_from)
    if found.model != spec.model or found.audio != spec.audio:
        raise ValueError(f"init_from={init_from}: its spec.json does not match the config's model/front end:\n"
                         f"  found  {found.model}, {found.audio}\n  config {spec.model}, {spec.audio}")
    return checkpoint.restore_params(os.path.join(init_from, checkpoint.PARAMS_DIR), checkpoint.abstract_model(spec))


def run(cfg: ml_collections.ConfigDict, workdir: str, export: str | None = None) -> api.Clap:
    tok_dir = os.path.join(workdir, "tokenizer")
    init_from = cfg.init_from or None
    family = tokenizer_family(cfg)
    vocab = os.path.join(tok_dir, "vocab.txt" if family == "bert" else "vocab.json")
    if init_from and not os.path.exists(vocab):
        shutil.copytree(os.path.join(init_from, "tokenizer"), tok_dir, dirs_exist_ok=True)
    tokenizer = (Tokenizer.load(tok_dir, cfg.tokenizer.max_length, family) if os.path.exists(vocab)
                 else train_tokenizer(cfg, tok_dir))
    spec = build_spec(cfg, tokenizer.tok.get_vocab_size())
    model = initial_model(spec, init_from, cfg.seed)
    model.train()
    single, multi = evaluation_sets(cfg)

    def evaluate_model(m):
        m.eval()
        return evaluate(api.Clap(spec, m, tokenizer), single, multi)

    loader = Loader(SoundscapesSource(cfg.data.seed, cfg.data.train_clips, cfg.frontend.sample_rate, cfg.data.duration),
                    make_decode(spec, tokenizer, cfg.data.text_length, cfg.data.tag_caption_prob,
                                cfg.data.hard_negatives), cfg.batch_size, seed=cfg.data.seed,
                    process_index=jax.process_index(), process_count=jax.process_count(), workers=cfg.data.workers)
    task = loop.Task(model=model, loss=contrastive_loss(spec), evaluate=evaluate_model)
    trained = loop.train(cfg, task, loader, workdir)
    trained.eval()
    model = api.Clap(spec, trained, tokenizer)
    if export and jax.process_index() == 0:
        checkpoint.save_converted(export, spec, trained, tok_dir, overwrite=True)
        # A model trained on soundscapes ships the SpLiCE audio mean of that corpus (sparse.embed).
        from sparse import embed
        np.save(os.path.join(export, api.REFERENCE_AUDIO_MEAN), embed.soundscapes_audio_mean(model, cache_dir=False))
    return model


if __name__ == "__main__":
    cli.main(run, "Write the trained model as a converted directory here.",
             report=lambda cfg, model: print(evaluate(model, *evaluation_sets(cfg))))
