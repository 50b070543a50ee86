r"""Fine-tuned concept head (arXiv 2504.14076, methods.md A.7): a d x d linear layer H on frozen
CLAP audio embeddings, trained so that H z points at the true class's prompt, then decomposed.

    python -m train.concept_head --config=configs/concept_head.py --workdir=runs/concept_head

Loss: mean over the batch of 1 - cos(H z, t_y), with z the L2-normalised audio embedding and
t_y the text embedding of "This is a sound of {label}." of the true class (the paper's cosine
objective). H is randomly initialised (Lecun normal), without bias, as the paper's "single
linear layer, randomly initialised" (whether it had a bias is not said). Training runs through
the shared loop (``train.loop``: mesh data parallel, orbax resume, JSONL metrics) over
precomputed embeddings fed by ``train.data.Loader``.

Evaluation (every ``eval_every`` steps: dense accuracy of H z; at the end: the full table) on
the held-out split: zero-shot accuracy of z (no head), of H z (the paper's "fine-tuned CLAP
embedding, no decomposition"), and of the SpLiCE recomposition of decompose(H z) at
``config.lam`` (the paper's "fine-tuned concept-based"), with the audio mean of the centring
taken over H z of the training split. Results go to ``workdir/results.json`` and standard output.
"""
from __future__ import annotations

import json
import logging
import os
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import flags
from flax import nnx

from clap_jax import cli_errors
from clap_jax.linalg import l2_normalize
from train import cli, loop
from train.data import Loader


class ConceptHead(nnx.Module):
    """H: (..., d) -> (..., d), a linear map without bias."""

    def __init__(self, dim: int, *, rngs: nnx.Rngs):
        self.linear = nnx.Linear(dim, dim, use_bias=False, rngs=rngs)

    def __call__(self, z: jax.Array) -> jax.Array:
        return self.linear(z)


def cosine_loss(prompts: np.ndarray):
    """loss(model, batch {"z": (B, d), "y": (B,)}, rng) = mean(1 - cos(H z, t_y)); prompts (K, d)."""
    t = l2_normalize(jnp.asarray(prompts, jnp.float32))

    def loss(model: ConceptHead, batch, rng):
        del rng
        h = l2_normalize(model(batch["z"]))
        cos = jnp.sum(h * t[batch["y"]], axis=-1)
        acc = jnp.mean(jnp.argmax(h @ t.T, axis=-1) == batch["y"])
        return jnp.mean(1.0 - cos), {"cosine": jnp.mean(cos), "batch_accuracy": acc}
    return loss


class EmbeddingSource:
    """Random access over precomputed (z, y) pairs for ``train.data.Loader``."""

    def __init__(self, embeddings: np.ndarray, labels: np.ndarray):
        if len(embeddings) != len(labels):
            raise ValueError(f"{len(embeddings)} embeddings but {len(labels)} labels")
        self.z = l2_normalize(np.asarray(embeddings, np.float32), axis=1)
        self.y = np.asarray(labels, np.int32)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> int:
        return int(i)

    def decode(self, i: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        del rng
        return {"z": self.z[i], "y": self.y[i]}


def apply_head(model: ConceptHead, z: np.ndarray) -> np.ndarray:
    """H z (n, d) for the L2-normalised rows of z (n, d): one host matmul."""
    z = l2_normalize(np.asarray(z, np.float32), axis=1)
    return z @ np.asarray(model.linear.kernel[...], np.float32)


def load_embeddings(cfg: ml_collections.ConfigDict):
    """(train_z, train_y, eval_z, eval_y, classes, clap model or None) from ``cfg.data``."""
    d = cfg.data
    if d.embeddings:
        with np.load(d.embeddings) as f:
            missing = {"train_embeddings", "train_labels", "eval_embeddings", "eval_labels", "classes"} - set(f.files)
            if missing:
                raise ValueError(f"{d.embeddings}: missing arrays {sorted(missing)}")
            return (f["train_embeddings"], f["train_labels"], f["eval_embeddings"], f["eval_labels"],
                    [str(c) for c in f["classes"]], None)
    import clap_jax
    from clap_jax.data import datasets
    from sparse.evaluate import dataset_embeddings
    model = clap_jax.load(cfg.model)
    rate = model.spec.audio.spectrogram.sample_rate
    common = dict(root=d.root or None, sample_rate=rate, duration=d.duration, name=d.tfds_name or None)
    train = datasets.open_dataset(d.kind, folds=d.train_folds, seed=d.train_seed, clips=d.train_clips,
                                  split=d.train_split, **common)
    held = datasets.open_dataset(d.kind, folds=d.eval_folds, seed=d.eval_seed, clips=d.eval_clips,
                                 split=d.eval_split, **common)
    for part in (train, held):
        if part.labels() is None:
            raise ValueError(f"{part.name}: every clip needs a single class label to train a concept head")
    cache = cfg.cache_dir or None
    skips = cli_errors.Skips("train.concept_head")       # a bad clip: named, left out, counted
    train, train_z = dataset_embeddings(model, train, cache, skips=skips)
    held, held_z = dataset_embeddings(model, held, cache, skips=skips)
    if len(skips):
        print(skips.summary(len(train) + len(held), "clips"), file=sys.stderr)
    return train_z, train.labels(), held_z, held.labels(), train.classes, model


def run(cfg: ml_collections.ConfigDict, workdir: str, data=None, clap=None, text=None) -> dict:
    """Trains H and evaluates. ``data``: optionally (train_z, train_y, eval_z, eval_y, classes)
    instead of :func:`load_embeddings`; ``clap``/``text``: the CLAP model, or for precomputed
    embeddings ``text(list of str) -> (n, d)`` embeddings of prompts and concepts."""
    from clap_jax.data import datasets
    from sparse import dictionary
    from sparse.decompose import decompose
    from sparse.evaluate import accuracy
    from sparse.vocabulary import load as load_vocabulary

    if data is None:
        *data, loaded = load_embeddings(cfg)
        clap = clap or loaded
    train_z, train_y, eval_z, eval_y, classes = data
    if clap is None and text is None:
        import clap_jax
        clap = clap_jax.load(cfg.model)
    encode = text or (lambda texts: dictionary.encode_texts(clap, texts, cache_dir=cfg.cache_dir or None))
    prompts = np.asarray(encode([cfg.prompt.format(datasets.label_text(c)) for c in classes]), np.float32)

    source = EmbeddingSource(train_z, train_y)
    loader = Loader(source, source.decode, cfg.batch_size, seed=cfg.seed, process_index=jax.process_index(),
                    process_count=jax.process_count(), workers=cfg.data.workers)
    head = ConceptHead(source.z.shape[1], rngs=nnx.Rngs(cfg.seed))

    def evaluate(model):
        acc, _ = accuracy(apply_head(model, eval_z), prompts, eval_y)
        return {"eval_accuracy_head_dense": acc}

    trained = loop.train(cfg, loop.Task(model=head, loss=cosine_loss(prompts), evaluate=evaluate), loader, workdir)

    vocab = load_vocabulary(cfg.vocabulary)
    concepts = dictionary.from_embeddings(vocab.concepts, encode(list(vocab.concepts)),
                                          source=f"{vocab.name} @ {cfg.model}")
    h_train, h_eval = apply_head(trained, train_z), apply_head(trained, eval_z)
    base_concepts = concepts.with_audio_mean(dictionary.audio_mean(train_z))
    head_concepts = concepts.with_audio_mean(dictionary.audio_mean(h_train))
    base_dec = decompose(base_concepts, eval_z, cfg.lam, method=cfg.method)
    head_dec = decompose(head_concepts, h_eval, cfg.lam, method=cfg.method)
    rows = {"CLAP embedding (zero-shot)": (eval_z, None),
            "CLAP concept-based (zero-shot)": (base_dec.recomposed, base_dec),
            "fine-tuned H z, no decomposition": (h_eval, None),
            "fine-tuned concept-based": (head_dec.recomposed, head_dec)}
    results = {}
    for name, (rep, dec) in rows.items():
        acc, std = accuracy(rep, prompts, eval_y)
        results[name] = {"accuracy": acc, "accuracy_std": std,
                         "mean_l0": None if dec is None else float(dec.l0.mean()),
                         "cosine": None if dec is None else float(dec.cosine.mean())}
    out = {"lam": cfg.lam, "concepts": len(concepts), "train_clips": len(train_y), "eval_clips": len(eval_y),
           "results": results}
    if jax.process_index() == 0:
        with open(os.path.join(workdir, "results.json"), "w") as f:
            json.dump(out, f, indent=1)
    return out


def table(out: dict) -> str:
    lines = [f"λ = {out['lam']:g}, {out['concepts']} concepts, {out['train_clips']} training / "
             f"{out['eval_clips']} evaluation clips", "",
             "| representation | accuracy | mean L0 | cos(ẑ, input) |", "|---|---|---|---|"]
    for name, r in out["results"].items():
        l0 = "" if r["mean_l0"] is None else f"{r['mean_l0']:.1f}"
        cos = "" if r["cosine"] is None else f"{r['cosine']:.3f}"
        lines.append(f"| {name} | {r['accuracy']:.3f} ± {r['accuracy_std']:.3f} | {l0} | {cos} |")
    return "\n".join(lines)


def _define_flags() -> None:
    """The command's flags, defined only when it runs (importers do not claim them)."""
    cli.define_config_flag("Training config: configs/concept_head.py, or its shipped name concept_head.")
    flags.DEFINE_string("workdir", None, "Checkpoints, metrics.jsonl and results.json go here; rerun to resume.")
    flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    logging.getLogger().setLevel(logging.INFO)
    print(table(run(flags.FLAGS.config, flags.FLAGS.workdir)))


if __name__ == "__main__":
    from clap_jax import runtime
    _define_flags()
    runtime.run(main)
