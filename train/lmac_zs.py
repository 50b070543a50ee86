r"""LMAC-ZS decoder training as a task of the shared loop: the CLAP frozen, the decoder trained.

    python -m train.lmac_zs --config=configs/lmac_zs_soundscapes.py --workdir=runs/soundscapes-small-lmac-zs \
        --export=clap_jax/bundled/soundscapes-small-lmac-zs
    python -m train.lmac_zs --config=configs/lmac_zs_msclap2022.py --workdir=runs/lmac-zs-msclap \
        --config.model=converted/msclap-2022 --config.data.csv=clotho_captions_development.csv \
        --config.data.root=clotho/development --export=converted/msclap-2022-lmac-zs

    batch: waves (B, samples) at the CLAP's rate + one text per clip (ids, mask) ──frozen text encoder──> t (B, D)
        |STFT| ──lmac.zero_shot.forward (all B×B prompt-clip pairs)──> lmac.zero_shot.loss (Eq. 6-7)

Training texts: on soundscapes, each clip brings one of its captions or, with probability
``data.label_prompt_prob``, the prompt ``data.prompt`` of one of its events (so that prompts name
single sounds of multi-event clips, as the zero-shot explanations will); caption files (Clotho,
AudioCaps CSVs) bring their captions. With ``data.twin_prompts`` (ours, off by default) each clip
also brings a second text, the prompt of another of its event classes (a caption where it has one
class), and takes two rows of the square batch, one per text (``twin_rows``): Eq. 7's diversity term
then compares the clip's masks for two sounds that are both in it, which with one text per clip it
sees only when another clip's text happens to name one of them; ``loss.own_preference`` (ours too)
asks each of the two prompts for a higher logit on the clip kept by its own mask than by the other's,
on the twins whose two texts are prompts of different classes (``twin_distinct``). ``batch_size``
counts clips, so a batch holds 2 x batch_size rows. The CLAP (``model.clap``) travels as the loop's
frozen state.
"""
from __future__ import annotations

import functools
import logging
import math
import random

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from clap_jax import api, frontend, pipeline
from clap_jax.configs import from_config
from clap_jax.data import readers, soundscapes
from lmac import decoders, separation, text_decoders, zero_shot, zs_explainer
from lmac.conditioning import ConditioningConfig
from train import cli, lmac_data, loop
from train.data import Loader


class ZsModel(nnx.Module):
    """The frozen CLAP and the decoder that explains it, as one module for the loop."""

    def __init__(self, clap: nnx.Module, decoder: nnx.Module):
        self.clap, self.decoder = clap, decoder


def loss_config(c: ml_collections.ConfigDict) -> zero_shot.ZsLossConfig:
    """:class:`lmac.zero_shot.ZsLossConfig` from ``cfg.loss``."""
    return from_config(zero_shot.ZsLossConfig, c, "config.loss")


def decoder_config(cfg: ml_collections.ConfigDict, clap: api.Clap) -> text_decoders.ZsDecoderConfig:
    """The decoder for ``clap``'s audio encoder on the mask grid of ``cfg.loss.domain``: the HTSAT-grid
    decoder of width ``cfg.decoder.dim``, or L-MAC's CNN14 stack (as wide as the CNN14's last block),
    conditioned as ``cfg.decoder.conditioning`` says."""
    spec, d = clap.spec, cfg.decoder
    sg = spec.audio.spectrogram
    frames, bins = zero_shot.mask_grid(cfg.loss.domain, sg, sg.num_frames(spec.audio.clip_samples))
    if spec.model.audio.kind == "htsat":
        base = decoders.DecoderConfig.for_htsat(spec.model.audio, sg, dim=d.dim, n_freq=bins,
                                                sample_rate=sg.sample_rate)
        if cfg.loss.domain == "mel":           # bands are the grid: no frequency interpolation
            base = decoders.DecoderConfig(**{**base.to_dict(), "mel_centres_hz": None})
        repeat = 1
    else:
        base = decoders.DecoderConfig(kind="cnn14_psi", dim=spec.model.audio.channels[-1])   # L-MAC's: the encoder's width
        repeat = cnn14_freq_repeat(d.get("freq_repeat", 0), sg.n_mels)
    cond = from_config(ConditioningConfig, d.conditioning, "config.decoder.conditioning", text_dim=spec.model.joint_dim)
    return text_decoders.ZsDecoderConfig(decoder=base, conditioning=cond, frames=frames, n_freq=bins,
                                         freq_repeat=repeat)


def cnn14_freq_repeat(asked: int, n_mels: int) -> int:
    """``config.decoder.freq_repeat`` for a CNN14 of ``n_mels`` bands (see ``ZsDecoderConfig``): as
    asked, or with 0 the smallest power of two that brings the bands to 64. Asked for fewer, the
    masks have one frequency bin (time-only, as the bundled ``soundscapes-small-cnn14-lmac-zs``):
    allowed, and said in the log."""
    if asked < 0:
        raise ValueError(f"config.decoder.freq_repeat={asked}: must be 0 (pick) or a positive repeat")
    repeat = asked or 1 << max(0, math.ceil(math.log2(64 / n_mels)))
    if n_mels * repeat < 64:
        logging.warning("config.decoder.freq_repeat=%d: %d mel bands reach L-MAC's CNN14 decoder (it needs 64): "
                        "its masks will be time-only (one frequency bin); 0 picks %d", asked, n_mels * repeat,
                        cnn14_freq_repeat(0, n_mels))
    return repeat


def make_loss(clap: api.Clap, cfg: zero_shot.ZsLossConfig):
    """``loss(model, batch, rng)``: ``waves`` (B, samples) prepared for the CLAP, ``ids``/``mask`` (B, L)."""
    spectrogram = clap.spec.audio.spectrogram
    normalize, fixed_scale = zero_shot.normalizes(cfg), cfg.logit_scale

    def loss(model: ZsModel, batch: dict, rng: jax.Array):
        del rng
        batch = twin_rows(batch)
        text = model.clap.encode_text(batch["ids"], batch["mask"])["embedding"]
        scale = model.clap.logit_scales()[0] if fixed_scale is None else fixed_scale
        mag = frontend.magnitude(frontend.stft(batch["waves"], spectrogram), spectrogram.magnitude_eps)
        out = zero_shot.forward(model.clap, model.decoder, mag, text, spectrogram, cfg, normalize,
                                jax.lax.stop_gradient(scale))
        return zero_shot.loss(out, cfg, twins=batch.get("twins"))
    return loss


def twin_rows(batch: dict) -> dict:
    """A batch with ``ids_twin`` / ``mask_twin`` (``data.twin_prompts``): every clip twice in a row,
    with its first and then its second text (B clips -> 2B rows), and ``twins`` (B,) its
    ``twin_distinct``; any other batch as it is."""
    if "ids_twin" not in batch:
        return batch
    pair = lambda a, b: jnp.stack([a, b], axis=1).reshape((-1,) + a.shape[1:])        # rows 2k, 2k + 1
    return {"waves": jnp.repeat(batch["waves"], 2, axis=0), "ids": pair(batch["ids"], batch["ids_twin"]),
            "mask": pair(batch["mask"], batch["mask_twin"]), "twins": batch["twin_distinct"]}


def pick_text(clip, rng: random.Random, d: ml_collections.ConfigDict) -> str:
    """One training text for a soundscapes clip: a label prompt of one event or one caption."""
    if rng.random() < d.label_prompt_prob:
        return d.prompt.format(label=soundscapes.get_class(rng.choice(clip.labels)).label)
    return rng.choice(clip.captions)


def pick_twin(clip, first: str, rng: random.Random, d: ml_collections.ConfigDict) -> str:
    """The second text of a clip (``data.twin_prompts``): the prompt of one of its event classes other
    than ``first`` (captions describe the whole clip, so after a caption any class); for a clip of one
    class whose ``first`` is that class's prompt, one of its captions."""
    prompts = sorted({d.prompt.format(label=soundscapes.get_class(c).label) for c in clip.labels} - {first})
    return rng.choice(prompts) if prompts else rng.choice(clip.captions)


def make_decode(clap: api.Clap, d: ml_collections.ConfigDict):
    """Item -> ``waves`` (clip_samples,) prepared as the CLAP prepares audio, ``ids``/``mask`` (text_length,)
    and, with ``data.twin_prompts``, the second text's ``ids_twin``/``mask_twin`` (text_length,) and
    ``twin_distinct`` () 1.0 where both texts are prompts of (different) classes, else 0.0."""
    class_prompts = {d.prompt.format(label=c.label) for c in soundscapes.CLASSES}
    tok, length = clap.tokenizer, d.text_length

    def tokens(text: str) -> dict[str, np.ndarray]:
        ids, mask = tok([text])
        ids, mask = ids[0, :length], mask[0, :length]
        return {"ids": np.pad(ids, (0, length - len(ids)), constant_values=tok.pad_id),
                "mask": np.pad(mask, (0, length - len(mask)))}

    def decode(item, rng: np.random.Generator) -> dict[str, np.ndarray]:
        if d.twin_prompts and not isinstance(item, soundscapes.Clip):
            raise ValueError("data.twin_prompts needs soundscapes clips (their event classes name the second text)")
        twin = None
        if isinstance(item, soundscapes.Clip):
            pick = random.Random(int(rng.integers(2**63)))
            wave, rate, text = item.audio, item.sample_rate, pick_text(item, pick, d)
            if d.twin_prompts:
                twin = pick_twin(item, text, pick, d)
        else:                                   # a captions record (Clotho, AudioCaps): one of its captions
            wave, rate = readers.load_audio(item, clap.spec.audio.spectrogram.sample_rate)
            text = random.Random(int(rng.integers(2**63))).choice(item.captions)
        waves = pipeline.prepare([(wave, rate)], clap.spec.audio, crop="random" if d.random_crop else None,
                                 seed=int(rng.integers(2**31)))
        out = {"waves": waves.waves[0].astype(np.float32), **tokens(text)}
        if twin is not None:
            out.update({f"{k}_twin": v for k, v in tokens(twin).items()})
            out["twin_distinct"] = np.float32(text in class_prompts and twin in class_prompts)
        return out
    return decode


def sources(d: ml_collections.ConfigDict):
    """(training source, validation source) for ``cfg.data``."""
    if d.dataset == "soundscapes":
        make = lambda seed, n: lmac_data.SoundscapesClips(seed, n, d.sample_rate, d.duration, d.min_events,
                                                          d.max_events)
        return make(d.seed, d.train_clips), make(d.eval_seed, d.eval_clips)
    if d.dataset == "captions":
        if not d.csv:
            raise ValueError("data.csv: a captions CSV (Clotho or AudioCaps) is required for dataset=captions")
        records = readers.CaptionCsv(d.csv, d.root).records
        n_eval = min(d.eval_clips, len(records) // 10)          # the first clips validate, the rest train
        return records[n_eval:], records[:n_eval]
    raise ValueError(f"data.dataset: unknown {d.dataset!r} (soundscapes, captions)")


def make_prompt_probe(clap: api.Clap, valid, template: str, cfg: zero_shot.ZsLossConfig, batch_size: int):
    """``probe(model)`` on soundscapes validation clips (None for other sources): the mean mask of
    each clip's event prompts (``mm_present``) and of as many absent classes' prompts
    (``mm_absent``, classes drawn with a fixed seed), ``absent_present`` (their ratio),
    ``rho_mm_sim`` (Spearman's ρ between mask mean and similarity over both) and ``own_mask_wins``
    (over ordered pairs (a, b) of a clip's present prompts, the share where a's logit on the clip
    kept by a's mask beats a's logit on it kept by b's): what ``lmac.evaluate --zero_shot``
    reports on held-out clips, here on validation clips for selection."""
    if not isinstance(valid, lmac_data.SoundscapesClips):
        return None
    names = [c.id for c in soundscapes.CLASSES]
    text_all = clap.embed_text([template.format(label=c.label) for c in soundscapes.CLASSES])       # (K, D)
    clips = [valid[i] for i in range(len(valid))]
    rng, rows = np.random.default_rng(0), []                                 # (clip, class, present)
    for i, clip in enumerate(clips):
        present = sorted({names.index(label) for label in clip.labels})
        absent = rng.choice(sorted(set(range(len(names))) - set(present)), len(present), replace=False)
        rows += [(i, k, True) for k in present] + [(i, int(k), False) for k in absent]
    waves = clap.prepare_audio([c.audio for c in clips], clips[0].sample_rate).waves.astype(np.float32)
    spectrogram, normalize = clap.spec.audio.spectrogram, zero_shot.normalizes(cfg)

    @functools.partial(jax.jit, static_argnums=1)
    def scores(state, graphdef, w, t):
        model = nnx.merge(graphdef, state)
        mag = frontend.magnitude(frontend.stft(w, spectrogram), spectrogram.magnitude_eps)
        out = zero_shot.forward_pairs(model.clap, model.decoder, mag, t, spectrogram, cfg, normalize)
        return out["mask"].mean(axis=(1, 2)), jnp.sum(out["text"] * out["audio"], axis=-1), out["masked_in"]

    shown = np.flatnonzero([r[2] for r in rows])                              # present-prompt rows
    pairs = shown[np.array(separation.copresent_pairs([rows[r][0] for r in shown], [rows[r][1] for r in shown]),
                           np.int64).reshape(-1, 2)]                              # co-present rows (a, b)

    def probe(model: ZsModel) -> dict[str, float]:
        graphdef, state = nnx.split(model)
        mm, sim, kept = [], [], []
        for s in range(0, len(rows), batch_size):
            part = rows[s:s + batch_size]
            pad = part + [part[-1]] * (batch_size - len(part))               # one program for every batch
            m, c, k = scores(state, graphdef, waves[[r[0] for r in pad]], text_all[[r[1] for r in pad]])
            mm.append(np.asarray(m)[:len(part)]), sim.append(np.asarray(c)[:len(part)])
            kept.append(np.asarray(k)[:len(part)])
        mm, sim, present = np.concatenate(mm), np.concatenate(sim), np.array([r[2] for r in rows])
        kept, t = np.concatenate(kept), np.asarray(text_all)[[r[1] for r in rows]]
        t = t / np.linalg.norm(t, axis=-1, keepdims=True) if normalize else t
        own, other = (np.sum(t[pairs[:, 0]] * kept[pairs[:, c]], axis=-1) for c in (0, 1))
        return {"mm_present": float(mm[present].mean()), "mm_absent": float(mm[~present].mean()),
                "absent_present": float(mm[~present].mean() / max(mm[present].mean(), 1e-12)),
                "rho_mm_sim": separation.spearman(mm, sim),
                "own_mask_wins": float(np.mean(own > other)) if len(pairs) else float("nan")}
    return probe


def make_evaluate(clap: api.Clap, valid, decode, cfg: zero_shot.ZsLossConfig, batch_size: int,
                  template: str = "this is the sound of {label}"):
    """``evaluate(model)``: the loss parts on fixed validation clips, batch by batch (square batches),
    and on soundscapes the prompt probe (:func:`make_prompt_probe`)."""
    rng = np.random.default_rng(0)
    items = [decode(valid[i], rng) for i in range(len(valid) - len(valid) % batch_size)]
    batches = [{k: np.stack([it[k] for it in items[s:s + batch_size]]) for k in items[0]}
               for s in range(0, len(items), batch_size)]
    loss_fn = make_loss(clap, cfg)

    @functools.partial(jax.jit, static_argnums=1)
    def parts(state, graphdef, batch):
        return loss_fn(nnx.merge(graphdef, state), batch, None)[1]

    probe = make_prompt_probe(clap, valid, template, cfg, batch_size)

    def evaluate(model: ZsModel) -> dict[str, float]:
        graphdef, state = nnx.split(model)
        rows = [jax.device_get(parts(state, graphdef, b)) for b in batches]
        result = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} if rows else {}
        return {**result, **(probe(model) if probe else {})}
    return evaluate


def run(cfg: ml_collections.ConfigDict, workdir: str, export: str | None = None) -> zs_explainer.ZsExplainer:
    """Trains (or resumes) the decoder and optionally exports the explainer directory."""
    clap = api.load(cfg.model)
    if clap.tokenizer is None:
        raise ValueError(f"{cfg.model}: the CLAP has no tokenizer files; LMAC-ZS needs its text encoder")
    lcfg, dcfg = loss_config(cfg.loss), decoder_config(cfg, clap)
    if lcfg.own_preference and not cfg.data.twin_prompts:
        raise ValueError("config.loss.own_preference compares a clip's masks for two of its sounds: it needs "
                         "config.data.twin_prompts=True")
    decoder = text_decoders.init(dcfg, seed=cfg.seed)
    train_set, valid_set = sources(cfg.data)
    decode = make_decode(clap, cfg.data)
    task = loop.Task(model=ZsModel(nnx.merge(clap.graphdef, clap.state), decoder), loss=make_loss(clap, lcfg),
                     evaluate=make_evaluate(clap, valid_set, decode, lcfg, cfg.batch_size, cfg.data.prompt),
                     frozen=nnx.PathContains("clap"))
    loader = Loader(train_set, decode, cfg.batch_size, seed=cfg.seed, process_index=jax.process_index(),
                    process_count=jax.process_count(), workers=cfg.data.workers)
    trained = loop.train(cfg, task, loader, workdir)
    spec = zs_explainer.ZsExplainerSpec(decoder=dcfg, loss=lcfg, model=cfg.model,
                                        model_spec=zs_explainer.model_spec_dict(clap.spec))
    explainer = zs_explainer.ZsExplainer(spec, clap, trained.decoder)
    if export and jax.process_index() == 0:
        explainer.save(export, overwrite=True)
        print(f"wrote {export}")
    return explainer


if __name__ == "__main__":
    cli.main(run, "Write the trained LMAC-ZS explainer directory here.")
