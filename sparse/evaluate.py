r"""The paper's evaluation of concept-based vs dense CLAP embeddings (arXiv 2504.14076, methods.md A.5).

    # zero-shot classification on held-out soundscapes clips with the bundled model
    python -m sparse.evaluate --dataset=soundscapes --clips=300 --out=runs/concepts/soundscapes
    # text<->audio retrieval on multi-event soundscapes clips (their captions)
    python -m sparse.evaluate --dataset=soundscapes --single_event=false --out=runs/concepts/retrieval
    # embeddings extracted ahead (python -m clap_jax.extract --text ...): labels and captions from its index
    python -m sparse.evaluate --embeddings=emb/ --out=runs/concepts/extracted
    # a real dataset with a converted model and another vocabulary
    python -m sparse.evaluate --model=converted/msclap-2023 --vocabulary=audioset --dataset=esc50 \
        --root=ESC-50-master --out=runs/concepts/esc50

What is computed, on the audio embeddings z of the dataset's clips:

* zero-shot classification (records with a label): the class of a clip is the prompt
  "This is a sound of {label}." (``--prompt``) with the largest cosine, for the dense z and
  for the concept representation (the SpLiCE recomposition z_hat of the decomposition, which is
  in the model's audio space). Accuracy, with the bootstrap standard deviation (1,000 resamples
  of the clips) as "±", as the paper reports;
* text<->audio retrieval (records with captions): R@1 and mAP@10 in both directions, ranking by
  cosine with the caption embeddings (text->audio: one relevant clip per caption; audio->text:
  all of the clip's captions are relevant, AP@10 divided by min(#relevant, 10));
* a lambda sweep (``--lams``): lambda, mean L0, mean cosine(z_hat, z), accuracy / R@1 per lambda,
  as ``sweep.csv``, a Markdown table and a plot ``sweep.png`` (mean L0, and accuracy / R@1 and
  cosine against lambda on a log scale, the dense value dashed; :mod:`clap_jax.plots`);
* the main table at ``--lam`` (the paper's 0.05) and, with ``--l0_fraction`` (default 0.0475 =
  95 / 2000, the paper's sparsity as a fraction of its vocabulary), at the lambda whose mean
  L0 is that fraction of this vocabulary (found by ``sparse.lambda_for_l0``);
* class-level concept profiles: the mean weights of each class's clips at ``--lam``, top
  ``--top_k`` concepts per class (``profiles.md``/``profiles.json``).

The audio mean of the SpLiCE centring is ``--audio_mean=dataset`` by default: the mean of the
evaluated clips' embeddings (no labels used), like SpLiCE's dataset means. Dataset embeddings
are cached (``--cache_dir``) by model, dataset and clip keys. Outputs go to ``--out``:
``results.json``, ``sweep.csv``, ``sweep.png``, ``profiles.md``, ``profiles.json``, ``report.md``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import textwrap

import numpy as np

from clap_jax import atomic, cli_errors, streaming
from clap_jax.data import datasets
from clap_jax.linalg import l2_normalize
from sparse import dictionary as dictionary_lib
from sparse.decompose import decompose
from sparse.dictionary import ConceptDictionary
from sparse.sparsity import lambda_for_l0

PROMPT = "This is a sound of {}."
PAPER_LAMBDA = 0.05
PAPER_L0_FRACTION = 95 / 2000      # methods.md A.4: lambda = 0.05 gives 90-100 of 2,000 concepts
DEFAULT_LAMS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)


# ----------------------------------------------------------------------------------------
# Metrics (pure NumPy, batched over clips)
# ----------------------------------------------------------------------------------------


def zero_shot_predictions(audio: np.ndarray, prompts: np.ndarray) -> np.ndarray:
    """Argmax over prompts of cosine(audio (n, d), prompts (k, d)) -> (n,) class indices."""
    return np.argmax(l2_normalize(audio) @ l2_normalize(prompts).T, axis=1)


def bootstrap_std(values: np.ndarray, resamples: int = 1000, seed: int = 0) -> float:
    """Standard deviation of the mean of ``values`` (n,) over bootstrap resamples of the clips."""
    values = np.asarray(values, np.float64)
    idx = np.random.default_rng(seed).integers(0, len(values), (resamples, len(values)))
    return float(values[idx].mean(axis=1).std())


def accuracy(audio: np.ndarray, prompts: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Zero-shot accuracy and its bootstrap standard deviation."""
    correct = zero_shot_predictions(audio, prompts) == labels
    return float(correct.mean()), bootstrap_std(correct)


def retrieval(audio: np.ndarray, text: np.ndarray, owner: np.ndarray, k: int = 10) -> dict[str, float]:
    """Text<->audio retrieval metrics by cosine.

    audio: (n_a, d); text: (n_t, d) captions; owner: (n_t,) the clip each caption describes.
    Returns t2a_R1, t2a_mAP10 (one relevant clip per caption: AP@k = 1/rank if rank <= k),
    a2t_R1, a2t_mAP10 (relevant = the clip's captions; AP@k = sum_{j<=k} P@j rel_j / min(R, k)).
    """
    sim = l2_normalize(text) @ l2_normalize(audio).T                          # (n_t, n_a)
    n_t, n_a = sim.shape
    true = sim[np.arange(n_t), owner]
    rank = 1 + (sim > true[:, None]).sum(axis=1)                        # (n_t,)
    t2a_r1 = float((rank == 1).mean())
    t2a_map = float(np.where(rank <= k, 1.0 / rank, 0.0).mean())
    kk = min(k, n_t)
    top = np.argsort(-sim.T, axis=1, kind="stable")[:, :kk]             # (n_a, kk) caption indices
    rel = owner[top] == np.arange(n_a)[:, None]
    precision = np.cumsum(rel, axis=1) / np.arange(1, kk + 1)
    n_rel = np.bincount(owner, minlength=n_a)
    ap = (precision * rel).sum(axis=1) / np.maximum(np.minimum(n_rel, kk), 1)
    has = n_rel > 0
    return {"t2a_R1": t2a_r1, "t2a_mAP10": t2a_map, "a2t_R1": float(rel[has, 0].mean()),
            "a2t_mAP10": float(ap[has].mean())}


def class_profiles(weights: np.ndarray, labels: np.ndarray, classes, names, k: int = 5) -> dict[str, list]:
    """Mean concept weights of each class's clips: {class: [(concept, mean weight), ...top k]}."""
    n_classes = len(classes)
    onehot = np.eye(n_classes, dtype=np.float32)[labels]                # (n, K)
    count = onehot.sum(axis=0)
    mean = (onehot.T @ weights) / np.maximum(count, 1)[:, None]         # (K, c)
    idx = np.argsort(-mean, axis=1, kind="stable")[:, :k]
    return {classes[i]: [(names[j], float(mean[i, j])) for j in idx[i] if mean[i, j] > 0]
            for i in range(n_classes) if count[i] > 0}


# ----------------------------------------------------------------------------------------
# The evaluation
# ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class Row:
    """One line of the tables: a representation (dense, or concepts at a lambda)."""
    name: str
    lam: float | None
    l0: float | None
    cosine: float | None
    accuracy: float | None = None
    accuracy_std: float | None = None
    retrieval: dict[str, float] | None = None


def _row(name, lam, dec, audio, prompts, labels, captions) -> Row:
    rep = audio if dec is None else dec.recomposed
    row = Row(name, lam, None if dec is None else float(dec.l0.mean()),
              None if dec is None else float(dec.cosine.mean()))
    if labels is not None:
        row.accuracy, row.accuracy_std = accuracy(rep, prompts, labels)
    if captions is not None:
        row.retrieval = retrieval(rep, captions[0], captions[1])
    return row


def evaluate_embeddings(concepts: ConceptDictionary, audio: np.ndarray, *, prompts: np.ndarray | None = None,
                        labels: np.ndarray | None = None, captions: tuple[np.ndarray, np.ndarray] | None = None,
                        lam: float = PAPER_LAMBDA, lams=DEFAULT_LAMS, l0_fraction: float | None = PAPER_L0_FRACTION,
                        classes=None, top_k: int = 5, method: str = "working_set") -> dict:
    """All metrics from precomputed embeddings.

    audio: (n, d) dataset embeddings. prompts: (K, d) class-prompt text embeddings and labels
    (n,) for classification; captions: (caption embeddings (m, d), owner (m,)) for retrieval.
    Returns {"main": [Row...], "sweep": [Row...], "profiles": {...}, "lambda_l0": ...}.
    """
    if labels is None and captions is None:
        raise ValueError("nothing to evaluate: the dataset has neither labels nor captions")
    dense = _row("dense", None, None, audio, prompts, labels, captions)
    sweep = []
    for x in sorted(set(lams) | {lam}):
        dec = decompose(concepts, audio, x, method=method)
        sweep.append(_row(f"concepts λ={x:g}", x, dec, audio, prompts, labels, captions))
        if x == lam:
            main_dec = dec
    main = [dense, next(r for r in sweep if r.lam == lam)]
    lam_l0 = None
    if l0_fraction:
        target = l0_fraction * len(concepts)
        lam_l0, _ = lambda_for_l0(concepts.concepts, concepts.prepare(audio), target, method=method)
        dec = decompose(concepts, audio, lam_l0, method=method)
        main.append(_row(f"concepts λ={lam_l0:.3g} (L0 ≈ {l0_fraction:.2%} of {len(concepts)})", lam_l0, dec,
                         audio, prompts, labels, captions))
    profiles = None
    if labels is not None and classes is not None:
        profiles = class_profiles(main_dec.weights, labels, classes, concepts.names, top_k)
    return {"main": main, "sweep": sweep, "profiles": profiles, "lambda_l0": lam_l0}


def dataset_embeddings(model, data: datasets.Dataset, cache_dir=None, batch_size: int = 32,
                       progress: bool = True, skips=None) -> tuple[datasets.Dataset, np.ndarray]:
    """The dataset's usable records and their (n, d) audio embeddings, cached by model, dataset
    name and clip keys. A record whose audio cannot be used goes to ``skips`` (a
    ``clap_jax.cli_errors.Skips``; None: it raises) and is left out of the returned dataset."""
    keys = "\n".join(r.key for r in data.records)
    path = dictionary_lib.cache_path(cache_dir, "audio-kept", model.fingerprint, data.name, keys)
    if path and os.path.exists(path):
        with np.load(path) as f:
            kept, z, skipped = f["kept"], f["embeddings"], [json.loads(str(x)) for x in f["skipped"]]
        for name, why in skipped:                              # named again, as on the first run
            if skips is None:
                raise ValueError(f"{name}: {why}")
            skips(name, why)
    else:
        got = list(streaming.iter_records(model, data.records, batch_size, skips, progress))
        if not got:
            raise ValueError(f"{data.name}: no clip could be embedded")
        kept = np.concatenate([idx for idx, _, _ in got])
        z = np.concatenate([e for _, e, _ in got])
        if path:
            skipped = [json.dumps([n, r]) for n, r in (skips.items if skips is not None else [])]
            dictionary_lib.save_npz(path, embeddings=z, kept=kept, skipped=np.asarray(skipped, dtype=str))
    if len(kept) < len(data):
        data = dataclasses.replace(data, records=[data.records[i] for i in kept])
    return data, z


def evaluate_dataset(model, data: datasets.Dataset, vocabulary, *, prompt: str = PROMPT, audio_mean: str = "dataset",
                     center: bool = True, cache_dir=None, batch_size: int = 32, progress: bool = True,
                     model_name: str | None = None, audio: np.ndarray | None = None, skips=None,
                     **kwargs) -> dict:
    """Embeds the dataset (unless its ``audio`` embeddings (n, d) are given) and its prompts /
    captions with ``model`` and runs :func:`evaluate_embeddings` (kwargs) with the vocabulary's
    concept dictionary. Clips that cannot be used go to ``skips`` (:func:`dataset_embeddings`)
    and are listed in the result's ``skipped``."""
    from sparse import embed
    if audio is None:
        data, audio = dataset_embeddings(model, data, cache_dir, batch_size, progress, skips)
    labels = data.labels()
    prompts = None
    if labels is not None:
        if not data.classes:
            raise ValueError(f"{data.name}: labelled records but no class names")
        prompts = model.embed_text([prompt.format(datasets.label_text(c)) for c in data.classes])
    captions = data.captions()
    if captions is not None:
        captions = (dictionary_lib.encode_texts(model, captions[0], cache_dir=cache_dir, progress=progress),
                    captions[1])
    mean = None
    if center:
        mean = (dictionary_lib.audio_mean(audio) if audio_mean == "dataset"
                else embed.resolve_audio_mean(audio_mean, model, audio, cache_dir, batch_size, progress))
    concepts = dictionary_lib.build(model, vocabulary, center=center, audio_mean=mean, cache_dir=cache_dir,
                                    progress=progress, model_name=model_name)
    out = evaluate_embeddings(concepts, audio, prompts=prompts, labels=labels, captions=captions,
                              classes=data.classes, **kwargs)
    out.update(dataset=data.name, clips=len(data), concepts=len(concepts), source=concepts.source,
               center=center, audio_mean=audio_mean if center else None,
               skipped=[{"clip": n, "reason": r} for n, r in (skips.items if skips is not None else [])])
    return out


# ----------------------------------------------------------------------------------------
# Reports
# ----------------------------------------------------------------------------------------


def _fmt(x, spec=".3f"):
    return "" if x is None else format(x, spec)


def table(rows: list[Row]) -> str:
    """Markdown table of rows: representation, lambda, mean L0, cosine, accuracy, retrieval."""
    has_acc = any(r.accuracy is not None for r in rows)
    has_ret = any(r.retrieval for r in rows)
    head = ["representation", "λ", "mean L0", "cos(ẑ, z)"]
    head += ["accuracy"] if has_acc else []
    head += ["T→A R@1", "T→A mAP@10", "A→T R@1", "A→T mAP@10"] if has_ret else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.name, _fmt(r.lam, "g"), _fmt(r.l0, ".1f"), _fmt(r.cosine)]
        if has_acc:
            cells.append(f"{r.accuracy:.3f} ± {r.accuracy_std:.3f}" if r.accuracy is not None else "")
        if has_ret:
            m = r.retrieval or {}
            cells += [_fmt(m.get(k)) for k in ("t2a_R1", "t2a_mAP10", "a2t_R1", "a2t_mAP10")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def profiles_table(profiles: dict[str, list]) -> str:
    lines = ["| class | top concepts (mean weight) |", "|---|---|"]
    for cls, top in profiles.items():
        lines.append(f"| {cls} | " + ", ".join(f"{n} {w:.3f}" for n, w in top) + " |")
    return "\n".join(lines)


def sweep_plot(path: str, sweep: list[Row], dense: Row, title: str = "") -> str:
    """Writes the λ sweep as a PNG (λ on a log scale): mean L0 against λ, and the concepts'
    accuracy and/or T→A R@1 and cos(ẑ, z) against λ with the dense value of each metric as a dashed
    line; returns ``path``."""
    from clap_jax import plots
    lams = [r.lam for r in sweep]
    series, baselines = {}, {}
    for label, get in (("zero-shot accuracy", lambda r: r.accuracy),
                       ("T→A R@1", lambda r: (r.retrieval or {}).get("t2a_R1"))):
        if get(dense) is not None:
            series[f"concepts: {label}"] = [get(r) for r in sweep]
            baselines[f"concepts: {label}"] = (f"dense: {label}", get(dense))
    series["cos(ẑ, z)"] = [r.cosine for r in sweep]
    fig, [[ax_l0, ax_m]] = plots.figure(1, 2, size=(11, 4.2))
    plots.lines(ax_l0, lams, {"mean L0": [r.l0 for r in sweep]}, logx=True, xlabel="λ (L1 penalty)",
                ylabel="mean L0 (concepts per clip)", title="sparsity", legend=False)
    plots.lines(ax_m, lams, series, baselines=baselines, logx=True, xlabel="λ (L1 penalty)", ylabel="score",
                title="concepts vs dense")
    fig.suptitle("\n".join(textwrap.wrap(title, 110)[:2]), fontsize=10)
    return plots.save(fig, path)


def _as_json(result: dict) -> dict:
    conv = lambda rows: [dataclasses.asdict(r) for r in rows]
    return {**{k: v for k, v in result.items() if k not in ("main", "sweep")},
            "main": conv(result["main"]), "sweep": conv(result["sweep"])}


def report(result: dict, title: str) -> str:
    """The Markdown report: main table, sweep table, class profiles."""
    parts = [f"# {title}", "",
             f"{result.get('dataset', '')}: {result.get('clips', '?')} clips; {result.get('source', '')}; "
             f"centring {'on, audio mean: ' + str(result.get('audio_mean')) if result.get('center', True) else 'off'}.",
             "", "## Dense vs concept-based", "", table(result["main"]), "", "## λ sweep", "", table(result["sweep"])]
    if result.get("profiles"):
        parts += ["", "## Class-level concept profiles (mean weights)", "", profiles_table(result["profiles"])]
    return "\n".join(parts) + "\n"


def write_outputs(result: dict, out_dir: str, title: str) -> None:
    """results.json, sweep.csv, sweep.png, profiles.json / .md and report.md, each written whole
    (:mod:`clap_jax.atomic`)."""
    os.makedirs(out_dir, exist_ok=True)
    at = lambda name: os.path.join(out_dir, name)
    atomic.write_json(at("results.json"), _as_json(result), indent=1, ensure_ascii=False)
    rows = ["lambda,mean_l0,cosine,accuracy,accuracy_std,t2a_R1,t2a_mAP10,a2t_R1,a2t_mAP10"]
    for r in result["sweep"]:
        m = r.retrieval or {}
        rows.append(",".join(_fmt(v, ".6g") for v in (r.lam, r.l0, r.cosine, r.accuracy, r.accuracy_std,
                                                      m.get("t2a_R1"), m.get("t2a_mAP10"), m.get("a2t_R1"),
                                                      m.get("a2t_mAP10"))))
    atomic.write_text(at("sweep.csv"), "\n".join(rows) + "\n")
    sweep_plot(at("sweep.png"), result["sweep"], result["main"][0], title)
    if result.get("profiles"):
        atomic.write_json(at("profiles.json"), result["profiles"], indent=1, ensure_ascii=False)
        atomic.write_text(at("profiles.md"), profiles_table(result["profiles"]) + "\n")
    atomic.write_text(at("report.md"), report(result, title))


# ----------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------


def _define_flags():
    from absl import flags
    flags.DEFINE_string("model", "soundscapes-small", "Converted model directory or bundled name.")
    flags.DEFINE_string("vocabulary", "soundscapes", "Shipped vocabulary name or vocabulary file.")
    flags.DEFINE_integer("vocabulary_size", None, "Keep the first N concepts.")
    datasets.define_flags()
    flags.DEFINE_string("embeddings", None, "A clap_jax.extract folder of the dataset (its index gives the labels "
                        "and captions) instead of --dataset and its flags.")
    flags.DEFINE_string("prompt", PROMPT, "Zero-shot prompt; {} is the class label.")
    flags.DEFINE_float("lam", PAPER_LAMBDA, "λ of the main table (the paper's 0.05).")
    flags.DEFINE_list("lams", [str(x) for x in DEFAULT_LAMS], "λ values of the sweep.")
    flags.DEFINE_float("l0_fraction", PAPER_L0_FRACTION, "Also report the λ whose mean L0 is this fraction of "
                       "the vocabulary (0: off).")
    flags.DEFINE_string("audio_mean", "dataset", "dataset | reference | a .npy file | an audio folder.")
    flags.DEFINE_boolean("center", True, "SpLiCE mean-centring.")
    flags.DEFINE_string("method", "working_set", "Solver (sparse.METHODS).")
    flags.DEFINE_integer("top_k", 5, "Concepts per class profile.")
    flags.DEFINE_integer("batch_size", 32, "Clips per audio-encoder batch.")
    flags.DEFINE_string("cache_dir", None, "Cache of embeddings (default: see sparse.dictionary).")
    flags.DEFINE_string("out", None, "Output folder (results.json, sweep.csv, sweep.png, profiles, report.md).")
    flags.DEFINE_boolean("strict", False, "Stop at the first clip that cannot be used instead of skipping it.")


@cli_errors.guard("sparse.evaluate")
def main(argv):
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {argv[1:]}")
    from absl import flags

    import clap_jax
    from sparse.vocabulary import load as load_vocabulary
    F = flags.FLAGS
    model = clap_jax.load(F.model)
    rate = model.spec.audio.spectrogram.sample_rate
    audio = None
    if F.embeddings:
        data, audio = datasets.extracted_dataset(F.embeddings, model)
    else:
        data = datasets.from_flags(rate)
    vocab = load_vocabulary(F.vocabulary, F.vocabulary_size)
    skips = cli_errors.Skips("sparse.evaluate", F.strict)
    result = evaluate_dataset(model, data, vocab, prompt=F.prompt, audio_mean=F.audio_mean, center=F.center,
                              cache_dir=F.cache_dir, batch_size=F.batch_size, model_name=F.model, lam=F.lam,
                              lams=[float(x) for x in F.lams], l0_fraction=F.l0_fraction or None,
                              top_k=F.top_k, method=F.method, audio=audio, skips=skips)
    title = f"Concept decomposition: {F.model} on {data.name}, vocabulary {vocab.name}"
    if F.out:
        write_outputs(result, F.out, title)
    sys.stdout.write(report(result, title))
    print(skips.summary(result["clips"], "clips"), file=sys.stderr)
    return skips.exit_code(result["clips"])


if __name__ == "__main__":
    from clap_jax import runtime
    _define_flags()
    runtime.run(main)
