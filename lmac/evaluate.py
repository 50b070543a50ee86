"""L-MAC against the gradient baselines: faithfulness, ground-truth localisation, OOD, sanity.

    clips ──protocols.contaminate──> waves (B, samples) ──STFT──> |X| (B, T, F)
      method (METHODS): |X| -> target = argmax f(|X|), map (B, T, F) >= 0, mask (B, T', F) in [0, 1]
      f(apply_mask(|X|[:, :T'], mask)), f(apply_mask(.., 1 - mask)) ──> AI AD AG FF Fid-In SPS COMP MM
      map vs the true mask of the predicted class's event ──> relevance mass, rank, ROC-AUC, IoU
    cascading randomisation (lmac.sanity) of L-MAC and GradCAM ──> SSIM per re-initialised block

    python -m lmac.evaluate --explainer=soundscapes-lmac --dataset=soundscapes --clips=500 --out=eval/
    results = lmac.evaluate.evaluate(explainer, waves, truth, ["lmac", "gradcam"], ["in_domain"])

Methods (one table, :data:`METHODS`): ``lmac`` is the explainer's decoder mask; ``saliency``,
``smoothgrad``, ``ig``, ``gradcam``, ``gradcam++`` are :mod:`lmac.baselines` on the classifier,
differentiated w.r.t. the linear STFT magnitude (forward = classifier on
``log_mel_from_magnitude(|x|)``; |.| only matters for SmoothGrad's noisy copies), so every map is
on the grid of the ground truth. Maps are made non-negative (saliency and SmoothGrad |grad|, IG
and the CAMs ReLU: positive evidence for the target) and, for the masked-in/out metrics, turned
into masks by per-clip min-max normalisation to [0, 1] (as LMAC-ZS compares against GradCAM).
CAM maps live on the feature's mel axis: each STFT bin takes the value of its dominant mel filter.
Every method's mask is cropped to the decoder's T' frames and applied with the explainer's masking
(``frontend.apply_mask`` in its domain on ``|X|[:, :T']``, as :mod:`lmac.masking`), so all methods
are scored on the same classifier inputs; the target is the prediction on the (contaminated) clip.

Metrics are aggregated as the recipe (:class:`lmac.metrics.Aggregator`). Localisation uses the
event whose class is the prediction; clips whose prediction matches no event are excluded and
counted (``n_no_match``), as are matched events with an empty mask (``n_degenerate``).

Batches: one jitted function per method (:func:`_batch`, keyed on a hashable context), the last
partial batch padded with a validity mask, so each method compiles once for all protocols. (One
module of ~400 lines: the method table, the batched scorer and the command share one context.)
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from clap_jax import atomic, cli_errors, frontend
from lmac import baselines, masking, metrics, sanity
from lmac import protocols as protocols_lib
from lmac.report_figures import markdown, write_outputs

DEFAULT_METHODS = ("lmac", "saliency", "smoothgrad", "ig", "gradcam", "gradcam++")
DEFAULT_PROTOCOLS = ("in_domain", "mixtures", "white_noise", "speech")
EVAL_SEED = 50000   # soundscapes seeds 0 / 10000 / 20000 / 30000 train and select models
METRIC_KEYS = (*metrics.FAITHFULNESS_KEYS, "SPS", "COMP", "MM")
SANITY_METHODS = ("lmac", "gradcam")


@dataclasses.dataclass(frozen=True)
class Options:
    """Baseline settings: IG steps (captum's default 50), SmoothGrad samples (captum's 5) and noise
    std as a fraction of each clip's magnitude range (SmoothGrad paper: 0.1-0.2)."""
    ig_steps: int = 50
    smoothgrad_samples: int = 5
    smoothgrad_noise: float = 0.15


@dataclasses.dataclass(frozen=True)
class _Ctx:
    """Everything static of a batch computation (hashable: the jit cache key)."""
    method: str
    clf_graph: object
    dec_graph: object
    spectrogram: frontend.SpectrogramConfig
    domain: str
    frames_out: int
    options: Options


METHODS: dict[str, callable] = {}   # name -> fn(ctx, clf_state, dec_state, mag, key, target) -> dict


def method(name: str):
    def wrap(fn):
        METHODS[name] = fn
        return fn
    return wrap


def resolve(names, table, what: str) -> list[str]:
    """Checks names against a registry; raises ValueError with a one-line list of the known ones."""
    names = [n.strip() for n in names if n.strip()]
    unknown = [n for n in names if n not in table]
    if unknown or not names:
        raise ValueError(f"unknown {what} {', '.join(map(repr, unknown)) or '(none given)'}; known: {', '.join(table)}")
    return names


@method("lmac")
def _lmac(ctx, clf_state, dec_state, mag, key, target=None):
    """The decoder's mask; with a randomised classifier state the decoder reads the new blocks."""
    clf, dec = nnx.merge(ctx.clf_graph, clf_state), nnx.merge(ctx.dec_graph, dec_state)
    out = masking.forward(clf, dec, mag, ctx.spectrogram, ctx.domain)
    return {"logits_clean": out["logits_clean"], "map": masking.full_grid(out["mask"], mag.shape[1]),
            "mask": out["mask"], "logits_in": out["logits_in"], "logits_out": out["logits_out"]}


@functools.lru_cache(maxsize=8)
def _mel_of_bin(spectrogram: frontend.SpectrogramConfig) -> np.ndarray:
    """(n_freq,) the mel band whose filter weighs each STFT bin most (bins outside the bank: the
    nearest end band)."""
    bank = frontend.mel_filterbank(spectrogram)
    idx = np.argmax(bank, axis=1)
    empty = bank.max(axis=1) <= 0
    first = np.argmax(~empty) if (~empty).any() else 0
    idx[empty & (np.arange(len(idx)) < first)] = 0
    idx[empty & (np.arange(len(idx)) >= first)] = bank.shape[1] - 1
    return idx


def _baseline(name: str):
    def run(ctx, clf_state, dec_state, mag, key, target=None):
        sg, opt = ctx.spectrogram, ctx.options
        forward = baselines.cnn14_forward(
            ctx.clf_graph, clf_state, lambda x: frontend.log_mel_from_magnitude(jnp.abs(x), sg)[:, None])
        logits = forward(mag)["logits"]
        target = jnp.argmax(logits, -1) if target is None else target
        if name == "saliency":
            m = baselines.saliency(forward, mag, target)
        elif name == "smoothgrad":
            span = mag.max(axis=(1, 2), keepdims=True) - mag.min(axis=(1, 2), keepdims=True)
            noise = jax.random.normal(key, (mag.shape[0], opt.smoothgrad_samples) + mag.shape[1:], mag.dtype)
            m = baselines.smoothgrad(forward, mag, target, noise=noise * (opt.smoothgrad_noise * span)[:, None])
        elif name == "ig":
            m = jax.nn.relu(baselines.integrated_gradients(forward, mag, target, n_steps=opt.ig_steps))
        else:
            cam = baselines.gradcam if name == "gradcam" else baselines.gradcam_pp
            m = cam(forward, mag, target, size=(mag.shape[1], sg.n_mels))[:, :, _mel_of_bin(sg)]
        return {"logits_clean": logits, "map": m, "mask": baselines.map_to_mask(m)[:, :ctx.frames_out]}
    return run


for _name in ("saliency", "smoothgrad", "ig", "gradcam", "gradcam++"):
    method(_name)(_baseline(_name))


def _context(explainer, name: str, options: Options) -> _Ctx:
    clf = explainer.classifier
    sg = clf.spec.audio.spectrogram
    frames = sg.num_frames(clf.spec.audio.clip_samples)
    blocks = jax.eval_shape(lambda s, x: clf.apply(s, x)["blocks"], clf.state,
                            jax.ShapeDtypeStruct((1, 1, frames, sg.n_mels), jnp.float32))
    out = jax.eval_shape(lambda s, b: nnx.merge(explainer.decoder_graph, s)(masking.decoder_inputs(b)),
                         explainer.decoder_state, blocks)
    return _Ctx(name, clf.graphdef, explainer.decoder_graph, sg, explainer.spec.domain, int(out.shape[1]), options)


def _magnitude(ctx, waves):
    return frontend.magnitude(frontend.stft(waves, ctx.spectrogram), ctx.spectrogram.magnitude_eps)


@functools.partial(jax.jit, static_argnums=0)
def _batch(ctx: _Ctx, clf_state, dec_state, waves, valid, truth, truth_class, key):
    """One batch of one method: ``waves`` (B, samples), ``valid`` (B,) bool, ``truth`` (B, E, T, F)
    bool event masks with classes ``truth_class`` (B, E) (-1: none). Returns metrics (for
    :class:`Aggregator`), localisation (B,) arrays and flags, predictions, maps (B, T, F)."""
    with jax.default_matmul_precision("highest"):
        mag = _magnitude(ctx, waves)
        out = METHODS[ctx.method](ctx, clf_state, dec_state, mag, key)
        mask, cropped = out["mask"], mag[:, :ctx.frames_out]
        clf = nnx.merge(ctx.clf_graph, clf_state)
        logits = lambda m: clf(masking.features(frontend.apply_mask(cropped, m, ctx.domain), ctx.spectrogram))["logits"]
        logits_in = out["logits_in"] if "logits_in" in out else logits(mask)
        logits_out = out["logits_out"] if "logits_out" in out else logits(1.0 - mask)
    soft = lambda z: jax.nn.softmax(z, axis=-1)
    batch = metrics.batch_metrics(soft(out["logits_clean"]), soft(logits_in), soft(logits_out), mask, valid=valid)
    pred = jnp.argmax(out["logits_clean"], -1)
    match = truth_class == pred[:, None]
    matched = match.any(axis=1) & valid
    chosen = truth[jnp.arange(truth.shape[0]), jnp.argmax(match, axis=1)]
    loc = metrics.localization_per_sample(out["map"], chosen)
    return {"metrics": batch, "loc": {k: loc[k] for k in metrics.LOCALIZATION_KEYS},
            "has_truth": jnp.any(truth_class >= 0, axis=1) & valid, "matched": matched,
            "localized": matched & loc["valid"], "prediction": pred, "map": out["map"], "truth": chosen}


def _truth_arrays(truth, idx, frames, n_freq, events):
    """Host (B, E, T, F) bool masks and (B, E) classes for clips ``idx`` (-1 marks padding/none)."""
    masks = np.zeros((len(idx), events, frames, n_freq), bool)
    classes = np.full((len(idx), events), -1, np.int32)
    for b, i in enumerate(idx):
        if truth is None or i < 0:
            continue
        for e, (c, m) in enumerate(truth[i]):
            masks[b, e], classes[b, e] = np.asarray(m, bool)[:frames], c
    return masks, classes


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def evaluate(explainer, clips: np.ndarray, truth=None, methods=DEFAULT_METHODS, protocols=DEFAULT_PROTOCOLS, *,
             batch_size: int = 16, seed: int = EVAL_SEED, speech: np.ndarray | None = None, n_examples: int = 3,
             options: Options = Options(), progress: bool = True, on_protocol=None) -> dict:
    """Scores ``methods`` on ``clips`` (N, clip_samples), prepared at the classifier's rate, under
    each protocol. ``truth``: None or per clip a list of (classifier class index or -1, bool mask
    (frames, n_freq)); ``speech`` (N, clip_samples) for the speech protocol (default: the corpus'
    voice-like source). Returns ``results`` {protocol: {method: {metric: float | None, counts}}}
    (None where a value is NaN or undefined) and ``examples`` (the first ``n_examples`` clips of the
    first protocol: log1p spectrogram, each method's map, the predicted event's mask).
    ``on_protocol(results so far)`` is called as each protocol's table is finished."""
    methods = resolve(methods, METHODS, "method")
    protocols = resolve(protocols, protocols_lib.PROTOCOLS, "protocol")
    clips = np.asarray(clips, np.float32)
    n, samples = clips.shape
    sg = explainer.classifier.spec.audio.spectrogram
    frames, n_freq = sg.num_frames(samples), sg.n_freq
    events = max([len(t) for t in truth] + [1]) if truth is not None else 1
    if "speech" in protocols and speech is None:
        speech = protocols_lib.corpus_speech(n, seed, sg.sample_rate, samples)
    n_batches = -(-n // batch_size)
    ctxs = {m: _context(explainer, m, options) for m in methods}
    clf_state, dec_state = explainer.classifier.state, explainer.decoder_state
    from tqdm import tqdm
    bar = tqdm(total=len(protocols) * len(methods) * n_batches, disable=not progress, desc="lmac.evaluate",
               unit="batch", file=sys.stderr)
    results, examples = {}, None
    for p_i, protocol in enumerate(protocols):
        waves = protocols_lib.contaminate(protocol, clips, seed, speech)
        aggs = {m: metrics.Aggregator() for m in methods}
        locs = {m: {k: [] for k in metrics.LOCALIZATION_KEYS} for m in methods}
        counts = {m: {"n_truth": 0, "n_localized": 0, "n_no_match": 0, "n_degenerate": 0} for m in methods}
        for b in range(n_batches):
            idx = np.arange(b * batch_size, (b + 1) * batch_size)
            idx = np.where(idx < n, idx, -1)
            batch = np.zeros((batch_size, samples), np.float32)
            batch[idx >= 0] = waves[idx[idx >= 0]]
            t_masks, t_classes = (jnp.asarray(a) for a in _truth_arrays(truth, idx, frames, n_freq, events))
            batch, valid = jnp.asarray(batch), jnp.asarray(idx >= 0)
            key = jax.random.fold_in(jax.random.key(seed), p_i * 100003 + b)
            for name in methods:
                bar.set_postfix_str(f"{protocol}/{name}", refresh=False)
                out = _batch(ctxs[name], clf_state, dec_state, batch, valid, t_masks, t_classes, key)
                aggs[name].add(out["metrics"])
                if truth is not None:
                    flags, values = jax.device_get(({k: out[k] for k in ("has_truth", "matched", "localized")},
                                                    out["loc"]))
                    for k, v in locs[name].items():
                        v.append(np.asarray(values[k])[flags["localized"]])
                    c = counts[name]
                    c["n_truth"] += int(flags["has_truth"].sum())
                    c["n_localized"] += int(flags["localized"].sum())
                    c["n_no_match"] += int((flags["has_truth"] & ~flags["matched"]).sum())
                    c["n_degenerate"] += int((flags["matched"] & ~flags["localized"]).sum())
                if p_i == 0 and b == 0 and n_examples:
                    k = min(n_examples, n)
                    examples = examples or {"protocol": protocol, "maps": {}, "truth": {}, "prediction": {},
                                            "labels": explainer.labels,
                                            "spectrogram": np.log1p(np.asarray(_magnitude(ctxs[name], batch[:k])))}
                    examples["maps"][name] = np.asarray(out["map"][:k])
                    examples["prediction"][name] = np.asarray(out["prediction"][:k])
                    if truth is not None:
                        examples["truth"][name] = np.where(np.asarray(out["matched"][:k])[:, None, None],
                                                           np.asarray(out["truth"][:k]), False)
                bar.update()
        results[protocol] = {}
        for name in methods:
            row = {k: _finite(v) if isinstance(v, float) else v for k, v in aggs[name].result().items()}
            if truth is not None:
                for k, v in locs[name].items():
                    v = np.concatenate(v)
                    row[k] = _finite(float(np.nanmean(v))) if len(v) and np.isfinite(v).any() else None
                row.update(counts[name])
            results[protocol][name] = row
        if on_protocol:
            on_protocol(results)
    bar.close()
    return {"results": results, "examples": examples}


@functools.partial(jax.jit, static_argnums=0)
def _prediction(ctx: _Ctx, clf_state, waves):
    with jax.default_matmul_precision("highest"):
        feats = masking.features(_magnitude(ctx, waves), ctx.spectrogram)
        return jnp.argmax(nnx.merge(ctx.clf_graph, clf_state)(feats)["logits"], -1)


@functools.partial(jax.jit, static_argnums=0)
def _sanity_map(ctx: _Ctx, clf_state, dec_state, waves, target, key):
    with jax.default_matmul_precision("highest"):
        return METHODS[ctx.method](ctx, clf_state, dec_state, _magnitude(ctx, waves), key, target)["map"]


def sanity_check(explainer, clips: np.ndarray, methods=SANITY_METHODS, *, seed: int = 0,
                 options: Options = Options()) -> dict:
    """Cascading randomisation (:func:`lmac.sanity.cascading_randomization`: the head, then
    conv_block6 .. conv_block1 re-initialised cumulatively) of each method's map on ``clips``
    (B, samples), targets fixed to the original prediction; L-MAC's decoder stays trained and reads
    the randomised classifier. Returns ``steps`` and per method ``ssim`` (steps, B), its mean and std,
    and the unrelated-map level (:func:`lmac.sanity.summary`)."""
    methods = resolve(methods, METHODS, "method")
    clf = explainer.classifier
    waves = jnp.asarray(clips, jnp.float32)
    key = jax.random.key(seed)
    device = jax.devices()[0]
    out = {"steps": None, "n_clips": int(len(clips)), "methods": {}}
    for name in methods:
        ctx = _context(explainer, name, options)
        target = _prediction(ctx, clf.state, waves)
        # commit every leaf to one device: re-initialised leaves are uncommitted, and jit's cache
        # key includes that (one compile per step otherwise)
        explain = lambda state: _sanity_map(ctx, jax.device_put(state, device), explainer.decoder_state, waves,
                                            target, key)
        res = sanity.cascading_randomization(clf.graphdef, clf.state, explain, seed=seed)
        out["steps"] = list(res["steps"])
        out["methods"][name] = sanity.summary(res["ssim"], res["unrelated"])
    return out


# ------------------------------------------------------------------ command line

def _define_flags():
    from absl import flags
    flags.DEFINE_string("explainer", "soundscapes-lmac", "Explainer directory or bundled name (lmac.load).")
    flags.DEFINE_enum("dataset", "soundscapes", protocols_lib.DATASETS, "Evaluation clips.")
    flags.DEFINE_string("root", None, "Dataset root (esc50, urbansound8k, folder).")
    flags.DEFINE_list("folds", [], "ESC-50 / UrbanSound8K folds to draw from (default: all).")
    from lmac import evaluate_zs
    flags.DEFINE_list("methods", list(DEFAULT_METHODS), f"Methods, from: {', '.join(METHODS)} (--zero_shot: "
                      f"{', '.join(evaluate_zs.METHODS)}; default all but ig_signed, optimized and truth).")
    flags.DEFINE_list("protocols", list(DEFAULT_PROTOCOLS), f"Protocols, from: {', '.join(protocols_lib.PROTOCOLS)}.")
    flags.DEFINE_string("speech_dir", None, "Folder of speech audio for --protocols=speech (default: the "
                        "soundscapes corpus' voice-like source).")
    flags.DEFINE_integer("clips", 500, "Clips to evaluate (<= 0: the whole dataset, not for soundscapes).")
    flags.DEFINE_integer("seed", EVAL_SEED, "Evaluation seed. Soundscapes clips are generate_clip(seed, i): 50000 "
                         "is held out (training uses 0, validation/test 10000-30000). Also seeds the partner "
                         "clips, noise and speech draws.")
    flags.DEFINE_integer("batch_size", 16, "Clips per batch (the last batch is padded).")
    flags.DEFINE_integer("sanity_clips", 4, "Clips of the randomisation check (0: skip it).")
    flags.DEFINE_integer("figure_clips", 3, "Clips in maps.png.")
    flags.DEFINE_integer("ig_steps", Options.ig_steps, "Integrated gradients steps.")
    flags.DEFINE_integer("smoothgrad_samples", Options.smoothgrad_samples, "SmoothGrad noisy copies.")
    flags.DEFINE_float("smoothgrad_noise", Options.smoothgrad_noise, "SmoothGrad noise std / magnitude range.")
    flags.DEFINE_integer("optimized_steps", evaluate_zs.zs_optimized.STEPS,
                         "--zero_shot --methods=optimized: Adam steps per row (lmac.zs_optimized).")
    flags.DEFINE_float("optimized_lr", evaluate_zs.zs_optimized.LR,
                       "--zero_shot --methods=optimized: Adam learning rate on the mask logits.")
    flags.DEFINE_float("optimized_l1", None, "--methods=optimized: λ1 (default: the explainer's loss).")
    flags.DEFINE_float("optimized_l1_rejected", None, "--methods=optimized: l1_rejected (default: the explainer's).")
    flags.DEFINE_string("out", "eval", "Output folder.")
    flags.DEFINE_bool("strict", False, "Stop at the first bad audio file instead of skipping it.")
    flags.DEFINE_bool("zero_shot", False, "Evaluate an LMAC-ZS explainer (lmac.evaluate_zs): CLAP's zero-shot "
                      "decisions, present / absent prompts, ground-truth localisation; 3 dB SNR OOD protocols.")
    flags.DEFINE_string("prompts", "this is the sound of {label}", "--zero_shot: the class prompt template.")
    flags.DEFINE_string("model", None, "--zero_shot: the CLAP directory, if not the one the explainer names.")


@cli_errors.guard("lmac.evaluate")
def main(argv):
    """Exit status (``clap_jax.cli_errors``): 0 every clip evaluated, 3 some files skipped (listed
    in run.json), 1 a user error or nothing readable, one line on stderr."""
    from absl import flags
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {argv[1:]}")
    f = flags.FLAGS
    methods = [] if f.zero_shot else resolve(f.methods, METHODS, "method")
    protocols = resolve(f.protocols, protocols_lib.PROTOCOLS, "protocol")
    import lmac
    if f.zero_shot:
        from lmac import evaluate_zs
        evaluate_zs.run_from_flags(f, protocols)
        return cli_errors.OK
    explainer = lmac.load(f.explainer)
    folds = tuple(int(x) for x in f.folds) or None
    skips = cli_errors.Skips("lmac.evaluate", f.strict)
    data = protocols_lib.load_eval_set(explainer.classifier, f.dataset, f.clips, f.seed, f.root, folds, skips)
    sg = explainer.classifier.spec.audio.spectrogram
    speech = (protocols_lib.folder_speech(f.speech_dir, len(data.waves), f.seed, sg.sample_rate, data.waves.shape[1])
              if "speech" in protocols and f.speech_dir else None)
    options = Options(f.ig_steps, f.smoothgrad_samples, f.smoothgrad_noise)
    partial = lambda results: atomic.write_json(os.path.join(f.out, "results.json"), results, allow_nan=False)
    result = evaluate(explainer, data.waves, data.truth, methods, protocols, batch_size=f.batch_size, seed=f.seed,
                      speech=speech, n_examples=f.figure_clips, options=options, on_protocol=partial)
    sanity_methods = [m for m in SANITY_METHODS if m in methods] or list(SANITY_METHODS)
    sanity_result = (sanity_check(explainer, data.waves[:f.sanity_clips], sanity_methods, seed=f.seed, options=options)
                     if f.sanity_clips > 0 else None)
    run = {"explainer": f.explainer, "dataset": f.dataset, "root": f.root, "clips": len(data.waves), "seed": f.seed,
           "methods": methods, "protocols": protocols, "speech": f.speech_dir or "soundscapes corpus speech",
           "options": dataclasses.asdict(options), "keys": data.keys, "skipped": data.skipped}
    paths = write_outputs(f.out, result, sanity_result, run)
    print(markdown(result["results"], sanity_result))
    print("wrote " + ", ".join(paths))
    if skips:
        print(skips.summary(len(data.keys), "clips") + f" (listed in {f.out}/run.json)", file=sys.stderr)
    return skips.exit_code(len(data.keys))


if __name__ == "__main__":
    from clap_jax import runtime
    _define_flags()
    runtime.run(main)
