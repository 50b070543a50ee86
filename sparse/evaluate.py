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
  as ``sweep.csv``, a Markdown table and a plot ``sweep.svg`` (accuracy and cosine against
  lambda, the dense accuracy dashed);
* the main table at ``--lam`` (the paper's 0.05) and, with ``--l0_fraction`` (default 0.0475 =
  95 / 2000, the paper's sparsity as a fraction of its vocabulary), at the lambda whose mean
  L0 is that fraction of this vocabulary (found by ``sparse.lambda_for_l0``);
* class-level concept profiles: the mean weights of each class's clips at ``--lam``, top
  ``--top_k`` concepts per class (``profiles.md``/``profiles.json``).

The audio mean of the SpLiCE centring is ``--audio_mean=dataset`` by default: the mean of the
evaluated clips' embeddings (no labels used), like SpLiCE's dataset means. Dataset embeddings
are cached (``--cache_dir``) by model, dataset and clip keys. Outputs go to ``--out``:
``results.json``, ``sweep.csv``, ``sweep.svg``, ``profiles.md``, ``profiles.json``, ``report.md``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import textwrap

import numpy as np

from clap_jax.linalg import l2_normalize
from clap_jax.data import datasets
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
                       progress: bool = True) -> np.ndarray:
    """(n, d) audio embeddings of a dataset, cached by model, dataset name and clip keys."""
    from sparse import embed
    keys = "\n".join(r.key for r in data.records)
    path = dictionary_lib.cache_path(cache_dir, "audio", model.fingerprint, data.name, keys)
    if path and os.path.exists(path):
        with np.load(path) as f:
            return f["embeddings"]
    z = embed.embed_records(model, data.records, batch_size, progress)
    if path:
        dictionary_lib.save_npz(path, embeddings=z)
    return z


def extracted_dataset(directory: str, model) -> tuple[datasets.Dataset, np.ndarray]:
    """A ``clap_jax.extract`` folder -> its dataset (records with labels and captions from the
    index) and audio embeddings (n, d); refused if another model extracted it."""
    from clap_jax import shards
    from clap_jax.data import readers
    ids, emb, rows = shards.read(directory)
    job = shards.read_json(os.path.join(directory, "job.json"))
    if job["model_fingerprint"] != model.fingerprint:
        raise ValueError(f"--embeddings={directory}: extracted with model {job['model']!r}, not the model given")
    classes = job.get("classes", [])
    index = {c: i for i, c in enumerate(classes)}
    records = [readers.Record(key=r["id"], path=r["path"], label=index.get(r["label"]), labels=tuple(r["labels"]),
                              captions=tuple(r["captions"])) for r in rows]
    return datasets.Dataset(records, classes, f"{job['dataset']} (extracted to {directory})"), np.asarray(emb)


def evaluate_dataset(model, data: datasets.Dataset, vocabulary, *, prompt: str = PROMPT, audio_mean: str = "dataset",
                     center: bool = True, cache_dir=None, batch_size: int = 32, progress: bool = True,
                     model_name: str | None = None, audio: np.ndarray | None = None, **kwargs) -> dict:
    """Embeds the dataset (unless its ``audio`` embeddings (n, d) are given) and its prompts /
    captions with ``model`` and runs :func:`evaluate_embeddings` (kwargs) with the vocabulary's
    concept dictionary."""
    from sparse import embed
    if audio is None:
        audio = dataset_embeddings(model, data, cache_dir, batch_size, progress)
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
               center=center, audio_mean=audio_mean if center else None)
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


def sweep_svg(sweep: list[Row], dense: Row, title: str = "") -> str:
    """A small SVG line plot against lambda (log scale): concept accuracy (or T→A R@1),
    cos(ẑ, z), and the dense accuracy (dashed); mean L0 written at each point. The y axis spans
    [lo, 1] with lo a multiple of 0.1 below every value."""
    metric = "accuracy" if sweep[0].accuracy is not None else "t2a_R1"
    value = (lambda r: r.accuracy) if metric == "accuracy" else (lambda r: r.retrieval["t2a_R1"])
    dense_v = dense.accuracy if metric == "accuracy" else dense.retrieval["t2a_R1"]
    W, H, L, R, T, B = 600, 400, 60, 20, 50, 100          # plot area: x in [L, W - R], y in [T, H - B]
    lams = np.array([r.lam for r in sweep])
    lx = np.log10(lams)
    x0, x1 = lx.min(), (lx.max() if lx.max() > lx.min() else lx.min() + 1)
    values = [value(r) for r in sweep] + [r.cosine for r in sweep] + [dense_v]
    lo = max(0.0, np.floor(min(values) * 10 - 1e-9) / 10 - 0.1)
    px = lambda v: L + (np.log10(v) - x0) / (x1 - x0) * (W - L - R)
    py = lambda v: T + (1 - v) / (1 - lo) * (H - T - B)
    lines = textwrap.wrap(title, 90)[:2]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white"/>']
    out += [f'<text x="{W / 2}" y="{16 + 14 * i}" text-anchor="middle" font-size="12">{_xml(t)}</text>'
            for i, t in enumerate(lines)]
    for v in np.linspace(lo, 1, int(round((1 - lo) / 0.1)) + 1):             # y grid and labels
        out.append(f'<line x1="{L}" x2="{W - R}" y1="{py(v):.1f}" y2="{py(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L - 6}" y="{py(v) + 4:.1f}" text-anchor="end">{v:.1f}</text>')
    for lam in lams:                                                          # x ticks
        out.append(f'<text x="{px(lam):.1f}" y="{H - B + 16}" text-anchor="middle">{lam:g}</text>')
    out.append(f'<text x="{(L + W - R) / 2}" y="{H - B + 34}" text-anchor="middle">λ (L1 penalty, log scale); '
               f'grey numbers: mean L0</text>')
    out.append(f'<line x1="{L}" x2="{W - R}" y1="{H - B}" y2="{H - B}" stroke="black"/>')
    out.append(f'<line x1="{L}" x2="{L}" y1="{T}" y2="{H - B}" stroke="black"/>')
    out.append(f'<line x1="{L}" x2="{W - R}" y1="{py(dense_v):.1f}" y2="{py(dense_v):.1f}" stroke="#1f77b4" '
               f'stroke-dasharray="5,4"/>')
    for ys, color in (([value(r) for r in sweep], "#1f77b4"), ([r.cosine for r in sweep], "#d62728")):
        pts = " ".join(f"{px(lam):.1f},{py(v):.1f}" for lam, v in zip(lams, ys))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
        out += [f'<circle cx="{px(lam):.1f}" cy="{py(v):.1f}" r="3" fill="{color}"/>' for lam, v in zip(lams, ys)]
    out += [f'<text x="{px(r.lam):.1f}" y="{py(value(r)) - 8:.1f}" text-anchor="middle" fill="#777">{r.l0:.0f}</text>'
            for r in sweep]
    label = "zero-shot accuracy" if metric == "accuracy" else "T→A R@1"
    legend = [(f"concepts: {label}", "#1f77b4", ""), (f"dense: {label}", "#1f77b4", ' stroke-dasharray="5,4"'),
              ("cos(ẑ, z)", "#d62728", "")]
    for i, (text, color, dash) in enumerate(legend):                         # one row under the axis label
        x = L + i * (W - L - R) / 3
        y = H - 24
        out.append(f'<line x1="{x:.1f}" x2="{x + 24:.1f}" y1="{y}" y2="{y}" stroke="{color}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{x + 30:.1f}" y="{y + 4}">{_xml(text)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _xml(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


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
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(_as_json(result), f, indent=1, ensure_ascii=False)
    with open(os.path.join(out_dir, "sweep.csv"), "w") as f:
        f.write("lambda,mean_l0,cosine,accuracy,accuracy_std,t2a_R1,t2a_mAP10,a2t_R1,a2t_mAP10\n")
        for r in result["sweep"]:
            m = r.retrieval or {}
            f.write(",".join(_fmt(v, ".6g") for v in (r.lam, r.l0, r.cosine, r.accuracy, r.accuracy_std,
                                                      m.get("t2a_R1"), m.get("t2a_mAP10"), m.get("a2t_R1"),
                                                      m.get("a2t_mAP10"))) + "\n")
    with open(os.path.join(out_dir, "sweep.svg"), "w") as f:
        f.write(sweep_svg(result["sweep"], result["main"][0], title))
    if result.get("profiles"):
        with open(os.path.join(out_dir, "profiles.json"), "w") as f:
            json.dump(result["profiles"], f, indent=1, ensure_ascii=False)
        with open(os.path.join(out_dir, "profiles.md"), "w") as f:
            f.write(profiles_table(result["profiles"]) + "\n")
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(report(result, title))


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
    flags.DEFINE_string("out", None, "Output folder (results.json, sweep.csv, sweep.svg, profiles, report.md).")


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
        data, audio = extracted_dataset(F.embeddings, model)
    else:
        data = datasets.from_flags(rate)
    vocab = load_vocabulary(F.vocabulary, F.vocabulary_size)
    result = evaluate_dataset(model, data, vocab, prompt=F.prompt, audio_mean=F.audio_mean, center=F.center,
                              cache_dir=F.cache_dir, batch_size=F.batch_size, model_name=F.model, lam=F.lam,
                              lams=[float(x) for x in F.lams], l0_fraction=F.l0_fraction or None,
                              top_k=F.top_k, method=F.method, audio=audio)
    title = f"Concept decomposition: {F.model} on {data.name}, vocabulary {vocab.name}"
    if F.out:
        write_outputs(result, F.out, title)
    sys.stdout.write(report(result, title))


if __name__ == "__main__":
    from clap_jax import runtime
    _define_flags()
    runtime.run(main)
