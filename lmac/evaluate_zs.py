r"""Zero-shot evaluation of an LMAC-ZS explainer (methods.md C.4) on soundscapes clips with ground truth.

    python -m lmac.evaluate --zero_shot --explainer=soundscapes-small-lmac-zs --clips=500 --seed=70000 \
        --out=runs/eval-soundscapes-small-lmac-zs

Per clip (2-3 events over a background), CLAP's zero-shot decision ĉ over the prompts of every
corpus class (``--prompts`` template, default "this is the sound of {label}") and the explainer's
masks for four prompts: ĉ's, each present event's (up to 3) and one absent class's (drawn from the
seed among the classes not in the clip). Each (prompt, clip) pair is one row of
``zero_shot.forward_pairs``; the masked-in / masked-out clips are scored against every class prompt.

* faithfulness of ĉ's mask (AI, AD, AG, FF, Fid-In on the zero-shot softmax) and SPS, COMP, MM, as
  ``lmac.metrics`` computes them for L-MAC;
* localisation of each present event's prompt mask against that event's true mask on the CLAP's STFT
  grid (relevance mass, rank, ROC-AUC, best IoU), averaged over events;
* whether two events of one clip get masks of their own (``metrics.prompt_specificity``, over ordered
  pairs of present events of distinct classes): ``prompt_specificity``, how much more of its mass a's
  prompt's mask puts on a's event than b's prompt's mask does (0 for one mask per clip),
  ``copresent_mask_corr``, the two masks' correlation, and, in the CLAP's own terms with no ground
  truth, ``own_mask_margin``, a's logit on the clip kept by a's mask minus a's logit on the clip kept
  by b's mask, and ``own_mask_wins``, the share of pairs where that margin is > 0 (1/2 for one mask per clip);
* mask means of present and absent prompts and their ratio;
* Spearman ρ between mask mean and similarity over every (present or absent prompt, clip) pair;
* per protocol, no explainer involved, how far CLAP's own similarities separate the present prompts from
  the absent ones (``lmac.separation``): the absent / present ratio of a mask that is a step in the
  similarity.

Protocols: ``in_domain`` and the paper's OOD contaminations at 3 dB SNR (``mixtures_3db``,
``white_noise_3db``, ``speech_3db``: another clip, white noise, the corpus' voice-like source); the true
masks stay the clean clip's. Writes ``results.json`` (``results``: {protocol: {method: {metric: value}}},
``prompt_separation``: {protocol: {...}}) and ``results.md``. The same rows are explained by GradCAM,
GradCAM++, SmoothGrad, Integrated Gradients and Saliency on the CLAP audio encoder (``lmac.zs_baselines``;
target: the row's prompt), their maps made masks on the STFT grid as ``lmac.evaluate`` makes L-MAC's
baselines' (positive part, then per-row min-max: ``lmac.baselines.map_to_mask``) and scored identically
(``ig_signed``, not run by default: IG's signed map min-max scaled, its zero a mid grey). ``optimized``
(not run by default: 200 Adam steps, about 1 min per 8 clips on 2 CPU cores) is no explainer but the
yardstick of one: the decoder's own objective minimised for each row apart (``lmac.zs_optimized``), scored
like the rest. ``truth`` (not run by default) is the oracle every row could have: the ground truth of
the row's class as its mask (present events' regions, nothing for an absent class), scored like the
rest; whether the CLAP keeps its decision, and tells two co-present events apart, on exactly the true
regions. ``scatter.png``: mask mean against similarity of the first protocol's pairs; ``maps.png``:
the present and absent prompts' masks of its first clips beside the true masks; ``separation.png``: the
step curves of ``lmac.separation.prompt_separation`` per protocol; ``sanity.json`` / ``sanity.png``: cascading
randomisation of the audio encoder for LMAC-ZS and GradCAM++ (``lmac.sanity_zs``).
"""
from __future__ import annotations

import dataclasses
import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from clap_jax import atomic
from clap_jax.data import soundscapes
from clap_jax.linalg import l2_normalize
from lmac import metrics, protocols, report_figures, zero_shot, zs_explainer, zs_optimized
from lmac.separation import copresent_pairs, prompt_separation, separation_table, spearman, step_curve

PROTOCOLS = ("in_domain", "mixtures_3db", "white_noise_3db", "speech_3db")
EVAL_SEED = 70000      # used by nothing in training or selection (see configs/lmac_zs_soundscapes.py)


def eval_clips(explainer, n: int, seed: int):
    """``waves`` (n, samples) prepared for the CLAP, per clip its events' (corpus class, true mask) on the
    CLAP's STFT grid, and the clip ids."""
    clap = explainer.clap
    sg = clap.spec.audio.spectrogram
    cfg = soundscapes.SoundscapeConfig(sample_rate=sg.sample_rate, duration=clap.spec.audio.clip_samples / sg.sample_rate,
                                       min_events=2, max_events=3, stft=sg)
    clips = [soundscapes.generate_clip(seed, i, cfg) for i in range(n)]
    truth = [[(e.target, m) for e, m in zip(c.events, soundscapes.ground_truth(c))] for c in clips]
    waves = clap.prepare_audio([c.audio for c in clips], sg.sample_rate).waves.astype(np.float32)
    return waves, truth, [c.clip_id for c in clips]


DEFAULT_METHODS = ("lmac_zs", "gradcam", "gradcam++", "smoothgrad", "ig", "saliency")
METHODS = DEFAULT_METHODS + ("ig_signed", "optimized", "truth")   # ig_signed: IG's signed map min-max scaled
_OWN_LOSS = ("lmac_zs", "optimized")   # masks in the explainer's own domain and loss (others: the STFT)
_BASELINE = {"gradcam": "gradcam", "gradcam++": "gradcam_pp", "smoothgrad": "smoothgrad",
             "ig": "integrated_gradients", "saliency": "saliency", "ig_signed": "integrated_gradients"}
_SIGNED = ("ig_signed",)   # map -> mask by min-max of the signed map (``baselines.map_to_mask``)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _masks(graphs, method, states, mag, text, text_unit, scale, key):
    """(N, T, F) masks in [0, 1] for N (prompt, clip) rows: the decoder's, or a baseline's map of the
    prompt's zero-shot logit made a mask per row by ``baselines.map_to_mask``."""
    (clap_graph, spectrogram), dec_graph, cfg, options = graphs
    with jax.default_matmul_precision("highest"):
        if method == "lmac_zs":
            clap_model, dec = nnx.merge(clap_graph, states[0]), nnx.merge(dec_graph, states[1])
            return zero_shot.forward_pairs(clap_model, dec, mag, text, spectrogram, cfg,
                                           zero_shot.normalizes(cfg))["mask"]
        if method == "optimized":
            return zs_optimized.optimized_masks(nnx.merge(clap_graph, states[0]), mag, text, text_unit, spectrogram,
                                                cfg, scale, **dict(dict(options)[method]))
        from lmac import baselines, zs_baselines
        forward = zs_baselines.zero_shot_forward(clap_graph, states[0], spectrogram, cfg, text_unit, scale)
        target = jnp.argmax(text @ text_unit.T, axis=1)          # the row's prompt among the K
        m = baselines.explain_with(_BASELINE[method], forward, mag, target, key=key, **dict(dict(options)[method]))
        return baselines.map_to_mask(m, signed=method in _SIGNED)


@functools.partial(jax.jit, static_argnums=0)
def _masked(graphs, state, mag, mask):
    """Clean, masked-in and masked-out embeddings (N, D) of N rows."""
    (clap_graph, spectrogram), _, cfg, _ = graphs
    clap_model = nnx.merge(clap_graph, state)
    normalize = zero_shot.normalizes(cfg)
    frames = min(mask.shape[1], mag.shape[1])
    with jax.default_matmul_precision("highest"):
        audio, _ = zero_shot._embed(clap_model, zero_shot.encoder_input(mag, None, spectrogram, cfg), normalize)
        both = jnp.concatenate([mask[:, :frames], 1.0 - mask[:, :frames]])
        masked, _ = zero_shot._embed(clap_model, zero_shot.encoder_input(
            jnp.tile(mag[:, :frames], (2, 1, 1)), both, spectrogram, cfg), normalize)
    masked_in, masked_out = jnp.split(masked, 2)
    return audio, masked_in, masked_out


def _truth_masks(rows, truth_batch, shape: tuple[int, int]) -> np.ndarray:
    """(rows, T, F) ground-truth masks (``truth``, an oracle): per row the true mask of its clip's event
    of the row's class (the one localisation compares with; a clip's events have distinct classes), cut
    or zero-padded to T frames; all zeros for a class not in the clip."""
    out = np.zeros((len(rows),) + tuple(shape), np.float32)
    for r, (i, k, _) in enumerate(rows):
        if (m := next((m for kk, m in truth_batch[i] if kk == k), None)) is not None:
            t = min(shape[0], m.shape[0])
            out[r, :t] = m[:t]
    return out


def _rows(truth_batch, pred, rng, n_classes: int):
    """ROWS (clip in batch, prompt class, kind) per clip: ĉ, present events (padded), one absent class."""
    rows = []
    for i, events in enumerate(truth_batch):
        present = [k for k, _ in events]
        absent = int(rng.choice([k for k in range(n_classes) if k not in present]))
        rows.append((i, int(pred[i]), "pred"))
        rows += [(i, present[min(j, len(present) - 1)], "present" if j < len(present) else "pad") for j in range(3)]
        rows.append((i, absent, "absent"))
    return rows


class _Scores:
    """Accumulates one method's metrics over batches."""

    def __init__(self):
        self.agg, self.loc, self.present, self.absent, self.mm, self.sim = metrics.Aggregator(), [], [], [], [], []
        self.kind, self.pairs = [], []

    def add(self, rows, valid_clips, mask, logits, logits_in, logits_out, truth_batch, stft_mask=None):
        """``mask`` (rows, T, F') as the encoder saw it; ``logits``, ``logits_in``, ``logits_out`` (rows, K)
        the zero-shot logits of every class prompt on the clean, masked-in and masked-out clip;
        ``stft_mask`` the mask on the STFT grid of the ground truth (None: ``mask`` is on it)."""
        stft_mask = mask if stft_mask is None else stft_mask
        soft = lambda z: np.asarray(jax.nn.softmax(z, axis=-1))
        p_cl, p_in, p_out = soft(logits), soft(logits_in), soft(logits_out)
        sims = logits[np.arange(len(rows)), [r[1] for r in rows]]
        kind = np.array([r[2] for r in rows])
        first = kind == "pred"
        self.agg.add(jax.device_get(metrics.batch_metrics(p_cl[first], p_in[first], p_out[first], mask[first],
                                                          valid=jnp.asarray(np.arange(first.sum()) < valid_clips))))
        means = mask.reshape(len(rows), -1).mean(1)
        present, truths = [], []
        for r, (i, k, what) in enumerate(rows):
            if i >= valid_clips or what in ("pred", "pad"):
                continue
            (self.present if what == "present" else self.absent).append(means[r])
            self.mm.append(means[r])
            self.sim.append(sims[r])
            self.kind.append(what)
            if what == "present":
                present.append(r)
                truths.append(next(m for kk, m in truth_batch[i] if kk == k))
        # One localisation call per batch, padded to 3 rows a clip so its shape never changes.
        n, width = len(present), 3 * len(truth_batch)
        frames = min(truths[0].shape[0], stft_mask.shape[1])
        maps = stft_mask[np.array(present + present[:1] * (width - n))][:, :frames]
        truth = np.stack(truths + truths[:1] * (width - n))[:, :frames]
        scores = jax.device_get(metrics.localization_per_sample(maps, truth))
        self.loc.append({key: np.asarray(v)[:n] for key, v in scores.items()})
        # Ordered pairs of present events of distinct classes in one clip (padded to 6 a clip, one shape).
        pairs = copresent_pairs([rows[r][0] for r in present], [rows[r][1] for r in present])
        if pairs:
            padded = pairs + pairs[:1] * (6 * len(truth_batch) - len(pairs))
            own, other = (np.array([present[p[e]] for p in padded]) for e in (0, 1))
            truth_own = np.stack([truths[p[0]] for p in padded])[:, :frames]
            spec = jax.device_get(metrics.prompt_specificity(stft_mask[own][:, :frames], stft_mask[other][:, :frames],
                                                             truth_own))
            k_own = np.array([rows[r][1] for r in own])        # a's prompt on the clip kept by a's / b's mask
            spec["margin"] = logits_in[own, k_own] - logits_in[other, k_own]
            self.pairs.append({key: np.asarray(v)[:len(pairs)] for key, v in spec.items()})

    def result(self) -> dict[str, float]:
        out = self.agg.result()
        for key in metrics.LOCALIZATION_KEYS:
            out[key] = float(np.nanmean(np.concatenate([np.asarray(x[key]) for x in self.loc])))
        pairs = {k: np.concatenate([x[k] for x in self.pairs]) if self.pairs else np.array([np.nan])
                 for k in ("specificity", "correlation", "margin")}
        mean = lambda v: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
        out["prompt_specificity"], out["copresent_mask_corr"] = mean(pairs["specificity"]), mean(pairs["correlation"])
        out["own_mask_margin"] = mean(pairs["margin"])
        out["own_mask_wins"] = mean(np.where(np.isfinite(pairs["margin"]), pairs["margin"] > 0, np.nan))
        out["mask_mean_present"] = float(np.mean(self.present))
        out["mask_mean_absent"] = float(np.mean(self.absent))
        out["absent_over_present"] = out["mask_mean_absent"] / max(out["mask_mean_present"], 1e-12)
        out["spearman_mask_mean_similarity"] = spearman(np.asarray(self.mm), np.asarray(self.sim))
        return out

    def points(self) -> dict:
        """The (mask mean, similarity, kind) of every present / absent pair: scatter.png's data."""
        return {"mask_mean": [float(v) for v in self.mm], "similarity": [float(v) for v in self.sim],
                "kind": list(self.kind), "spearman": spearman(np.asarray(self.mm), np.asarray(self.sim))}


def evaluate(explainer, waves: np.ndarray, truth, template: str, *, methods=DEFAULT_METHODS, seed: int = EVAL_SEED,
             batch_size: int = 8, ig_steps: int = 20, smoothgrad_samples: int = 5, smoothgrad_noise: float = 0.15,
             optimized_steps: int = zs_optimized.STEPS, optimized_lr: float = zs_optimized.LR,
             optimized_l1: float | None = None, optimized_l1_rejected: float | None = None,
             progress: bool = True, scatter: dict | None = None, examples: dict | None = None,
             n_examples: int = 3) -> dict[str, dict[str, float]]:
    """{method: metrics} (module docstring) for prepared clips (N, samples) and their ground truth;
    ``scatter`` (a dict), if given, is filled with {method: mask mean / similarity points};
    ``examples`` (a dict), if given, with the present and absent prompts' masks of the first
    ``n_examples`` clips (:func:`_examples`: maps.png's data)."""
    clap = explainer.clap
    sg = clap.spec.audio.spectrogram
    sr = sg.sample_rate
    labels = [c.label for c in soundscapes.CLASSES]
    text_all = clap.embed_text([template.format(label=lab) for lab in labels])             # (K, D)
    t_unit = l2_normalize(text_all)
    scale = float(clap.logit_scale if explainer.spec.loss.logit_scale is None else explainer.spec.loss.logit_scale)
    options = (("gradcam", ()), ("gradcam++", ()), ("saliency", ()), ("ig", (("n_steps", ig_steps),)),
               ("ig_signed", (("n_steps", ig_steps),)),
               ("smoothgrad", (("nt_samples", smoothgrad_samples), ("stdev", smoothgrad_noise))),
               ("optimized", (("steps", optimized_steps), ("lr", optimized_lr), ("l1", optimized_l1),
                             ("l1_rejected", optimized_l1_rejected))))
    stft_cfg = dataclasses.replace(explainer.spec.loss, domain="stft")
    rng = np.random.default_rng([seed, 7])
    scores = {m: _Scores() for m in methods}
    states = (clap.state, explainer.decoder_state)
    starts = range(0, len(waves), batch_size)
    if progress:
        import tqdm
        starts = tqdm.tqdm(starts, desc="zero-shot eval", unit="batch")
    for s in starts:
        b = min(batch_size, len(waves) - s)
        w = np.concatenate([waves[s:s + b], np.repeat(waves[s + b - 1:s + b], batch_size - b, 0)])   # one shape
        tb = truth[s:s + b] + [truth[s + b - 1]] * (batch_size - b)
        mag = np.asarray(clap.magnitude(jnp.asarray(w)))
        clean = clap.embed_audio(w, sr)
        pred = (l2_normalize(clean) @ t_unit.T).argmax(1)
        rows = _rows(tb, pred, rng, len(labels))
        idx, ks = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
        mag_rows, text_rows = jnp.asarray(mag[idx]), jnp.asarray(text_all[ks])
        keep = (_examples(examples, rows, min(n_examples, b), mag, tb, labels)
                if examples is not None and s == 0 else [])
        for m in methods:
            cfg = explainer.spec.loss if m in _OWN_LOSS else stft_cfg
            graphs = ((clap.graphdef, clap.spec.audio.spectrogram), explainer.decoder_graph, cfg, options)
            mask = (jnp.asarray(_truth_masks(rows, tb, mag.shape[1:])) if m == "truth" else
                    _masks(graphs, m, states, mag_rows, text_rows, jnp.asarray(t_unit), scale, jax.random.key(seed + s)))
            audio, m_in, m_out = jax.device_get(_masked(graphs, clap.state, mag_rows, mask))
            logits = lambda a: scale * a @ t_unit.T                                  # (rows, K)
            on_stft = None if cfg.domain == "stft" else np.asarray(zs_explainer.mel_to_stft_mask(mask, sg))
            scores[m].add(rows, b, np.asarray(mask), logits(audio), logits(m_in), logits(m_out), tb, on_stft)
            if keep:
                examples["maps"][m] = np.asarray(mask if on_stft is None else on_stft)[keep]
                examples["similarity"] = [float(v) for v in scale * np.sum(audio[keep] * t_unit[ks[keep]], axis=1)]
    if scatter is not None:
        scatter.update({m: sc.points() for m, sc in scores.items()})
    return {m: sc.result() for m, sc in scores.items()}


def _examples(examples: dict, rows, n: int, mag: np.ndarray, truth_batch, labels) -> list[int]:
    """Fills ``examples`` with the present and absent prompt rows of the first ``n`` clips of a batch:
    ``clip`` and ``prompt`` (its class label) and ``kind`` per row, ``spectrogram`` (rows, T, F) log1p
    magnitude, ``truth`` (rows, T, F) the event's true mask (zeros for an absent prompt) and an empty
    ``maps`` {method: (rows, T, F) on the STFT grid} for the caller. Returns the rows' indices."""
    keep = [r for r, (i, _, kind) in enumerate(rows) if i < n and kind in ("present", "absent")]
    shape = truth_batch[0][0][1].shape
    examples.update(
        clip=[rows[r][0] for r in keep], prompt=[labels[rows[r][1]] for r in keep], kind=[rows[r][2] for r in keep],
        spectrogram=np.log1p(mag[[rows[r][0] for r in keep]]), maps={},
        truth=np.stack([next((m for k, m in truth_batch[rows[r][0]] if k == rows[r][1]), np.zeros(shape, bool))
                        for r in keep]).astype(np.float32))
    return keep


COLUMNS = (("AI", "AI ↑"), ("AD", "AD ↓"), ("AG", "AG ↑"), ("FF", "FF ↑"), ("Fid-In", "Fid-In ↑"), ("SPS", "SPS ↑"),
           ("COMP", "COMP ↓"), ("MM", "MM"), ("relevance_mass", "mass ↑"), ("relevance_rank", "rank ↑"),
           ("roc_auc", "AUC ↑"), ("iou", "IoU ↑"), ("prompt_specificity", "specificity ↑"),
           ("copresent_mask_corr", "r co-present"), ("own_mask_wins", "own mask wins ↑"), ("mask_mean_present", "MM present"),
           ("mask_mean_absent", "MM absent"), ("absent_over_present", "absent / present ↓"),
           ("spearman_mask_mean_similarity", "ρ(MM, sim) ↑"))


def table(results: dict[str, dict[str, float]]) -> str:
    """Markdown: one row per method."""
    lines = ["| method | " + " | ".join(h for _, h in COLUMNS) + " |", "|---|" + "---:|" * len(COLUMNS)]
    for name, r in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{r[k]:.3f}" if abs(r[k]) < 10 else f"{r[k]:.2f}"
                                                 for k, _ in COLUMNS) + " |")
    return "\n".join(lines)


def run(explainer, *, name: str, clips: int, seed: int, template: str, out: str,
        protocol_names=PROTOCOLS, methods=DEFAULT_METHODS, batch_size: int = 8, sanity_clips: int = 16,
        figure_clips: int = 3, **options) -> dict:
    """Every protocol and method on ``clips`` clips of ``seed``; writes results.json (rewritten whole
    after every protocol, ``complete`` true at the end) and results.md; scatter.png (the first
    protocol's pairs), separation.png (every protocol's step curve), maps.png (the first protocol's
    first ``figure_clips`` clips, 0: none: :func:`lmac.report_figures.prompt_maps_figure`) and, on the
    first ``sanity_clips`` clean clips (0: skip), sanity.json and sanity.png (:mod:`lmac.sanity_zs`)."""
    waves, truth, keys = eval_clips(explainer, clips, seed)
    sg = explainer.clap.spec.audio.spectrogram
    speech = protocols.corpus_speech(len(waves), seed, sg.sample_rate, waves.shape[1])
    results, separation, sim_present, points, examples = {}, {}, {}, {}, {}

    def save(complete: bool) -> None:      # after every protocol: a killed run keeps the finished ones
        atomic.write_json(os.path.join(out, "results.json"), {
            "explainer": name, "clips": clips, "seed": seed, "template": template, "options": options,
            "results": results, "prompt_separation": separation, "keys": keys, "complete": complete})
    for p in protocol_names:
        contaminated = protocols.contaminate(p, waves, seed, speech)
        points[p] = {}
        results[p] = evaluate(explainer, contaminated, truth, template, methods=methods, seed=seed,
                              batch_size=batch_size, scatter=points[p],
                              examples=examples if p == protocol_names[0] and figure_clips > 0 else None,
                              n_examples=figure_clips, **options)
        first = points[p][methods[0]]       # the rows' unmasked similarities are the same for every method
        sim_present[p] = (np.asarray(first["similarity"]), np.array(first["kind"]) == "present")
        separation[p] = prompt_separation(*sim_present[p])
        print(f"### {p}\n\n{table(results[p])}\n\n{separation_table({p: separation[p]})}\n", flush=True)
        if p == protocol_names[0] and examples:
            report_figures.prompt_maps_figure(os.path.join(out, "maps.png"), dict(examples, protocol=p))
        save(complete=False)
    from lmac import sanity_zs
    report_figures.separation_figure(os.path.join(out, "separation.png"),
                                     {p: step_curve(*v) for p, v in sim_present.items()}, title=name)
    sanity_methods = [m for m in sanity_zs.SANITY_METHODS if m in methods] or list(sanity_zs.SANITY_METHODS)
    sane = (sanity_zs.sanity_check(explainer, waves[:sanity_clips], template, methods=sanity_methods, seed=seed)
            if sanity_clips > 0 else None)
    sanity_zs.write(out, sane, points[protocol_names[0]], protocol_names[0])
    if sane:
        print(f"### cascading randomisation (SSIM to the original map)\n\n{sanity_zs.table(sane)}\n", flush=True)
    save(complete=True)
    atomic.write_text(os.path.join(out, "results.md"),
                      f"LMAC-ZS `{name}` and gradient baselines on the CLAP audio encoder, {clips} soundscapes clips "
                      f"of seed {seed}, prompts \"{template}\"\n\n"
                      + "\n\n".join(f"### {p}\n\n{table(r)}" for p, r in results.items()) + "\n"
                      + f"\n### CLAP's own separation of present and absent prompts\n\n{separation_table(separation)}\n"
                      + (f"\n### cascading randomisation (SSIM to the original map)\n\n{sanity_zs.table(sane)}\n"
                         if sane else ""))
    return results


def run_from_flags(f, protocols) -> None:
    """``lmac.evaluate --zero_shot``: :func:`run` from the command's absl flags ``f`` (defined by
    ``lmac.evaluate``); ``protocols`` as resolved there. Unset flags take the zero-shot defaults."""
    import lmac
    from lmac.evaluate import resolve
    explainer = lmac.load(f.explainer if f["explainer"].present else "soundscapes-small-lmac-zs", model=f.model)
    start = time.time()
    run(explainer, name=f.explainer, clips=f.clips, seed=f.seed if f["seed"].present else EVAL_SEED,
        template=f.prompts, out=f.out, protocol_names=protocols if f["protocols"].present else PROTOCOLS,
        methods=resolve(f.methods, dict.fromkeys(METHODS), "method") if f["methods"].present else DEFAULT_METHODS,
        batch_size=f.batch_size, ig_steps=f.ig_steps, smoothgrad_samples=f.smoothgrad_samples,
        smoothgrad_noise=f.smoothgrad_noise, optimized_steps=f.optimized_steps, optimized_lr=f.optimized_lr,
        optimized_l1=f.optimized_l1, optimized_l1_rejected=f.optimized_l1_rejected, figure_clips=f.figure_clips,
        **({"sanity_clips": f.sanity_clips} if f["sanity_clips"].present else {}))
    names = ("results.json", "results.md", "scatter.png", "separation.png", "maps.png", "sanity.json", "sanity.png")
    written = [n for n in names if os.path.exists(os.path.join(f.out, n))
               and os.path.getmtime(os.path.join(f.out, n)) >= start - 1]       # not an earlier run's
    print(f"wrote {', '.join(written)} in {f.out}")
