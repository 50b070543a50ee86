r"""Concept decomposition of CLAP audio embeddings: decompose, recompose, top concepts, interventions.

API (``d`` = embedding dimension, ``c`` = concepts, ``n`` = clips)::

    import clap_jax, sparse
    from sparse import dictionary, decompose
    model = clap_jax.load("soundscapes-small")
    concepts = dictionary.build(model, "soundscapes", audio_mean=...)      # ConceptDictionary
    z = model.embed_audio(waves, sample_rate)                             # (n, d)
    dec = decompose.decompose(concepts, z, l1=0.05)                       # Decomposition
    dec.top(5)              # [[("rain", 0.41), ("beep", 0.22), ...], ...]
    dec.recomposed          # (n, d) SpLiCE recomposition; dec.cosine (n,): cosine with z
    edit = decompose.intervene(concepts, dec.weights, remove=["rain"], original=z)

Objective (per clip, ``sparse.nonneg_lasso``): ``min_{w>=0} ||C^T w - z_c||^2 + l1 ||w||_1`` with
``C`` and ``z_c`` SpLiCE-preprocessed (``sparse.dictionary``). ``l0=N`` instead of ``l1``
bisects one l1 shared by all clips so that the mean number of concepts is N
(``sparse.lambda_for_l0``).

CLI::

    python -m sparse.decompose --audio=clip.wav,more_clips/ [--model=soundscapes-small] \
        [--vocabulary=soundscapes] [--lam=0.05 | --l0=10] [--top_k=5] [--out=concepts.jsonl|.csv] \
        [--audio_mean=reference|inputs|none|mean.npy|FOLDER] [--center=false] \
        [--remove=rain] [--scale="beep=0.5"] [--save_weights=weights.npz]
    python -m sparse.decompose --embeddings=emb.npz ...     # precomputed (n, d): .npy, or .npz
                                                            # with 'embeddings' [+ 'keys']

Writes one JSON object per clip (JSONL; default: standard output) or one CSV row per clip:
key, number of concepts, l1, cosine with the original, the top-k concepts and weights, and with
interventions the edited top-k and the edited recomposition's cosine with the original.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import sys

import numpy as np

from sparse import dictionary as dictionary_lib
from sparse.dictionary import ConceptDictionary, normalize
from sparse.solvers import nonneg_lasso
from sparse.sparsity import lambda_for_l0


@dataclasses.dataclass(frozen=True)
class Decomposition:
    """Concept weights of n clips over c concepts, and their recomposition.

    names: (c,) concepts. weights: (n, c) >= 0. recomposed: (n, d) SpLiCE recomposition.
    cosine: (n,) cos(recomposed, original embedding). l0: (n,) non-zero weights.
    l1: (n,) the penalty used. converged: (n,) solver KKT check passed.
    """
    names: tuple[str, ...]
    weights: np.ndarray
    recomposed: np.ndarray
    cosine: np.ndarray
    l0: np.ndarray
    l1: np.ndarray
    converged: np.ndarray

    def top(self, k: int = 5) -> list[list[tuple[str, float]]]:
        """Per clip, up to ``k`` (concept, weight) pairs with weight > 0, largest first."""
        return top_concepts(self.weights, self.names, k)


def top_concepts(weights, names, k: int = 5) -> list[list[tuple[str, float]]]:
    """Per row of ``weights`` (n, c): up to ``k`` (name, weight) with weight > 0, largest first."""
    w = np.asarray(weights)
    if w.ndim != 2 or w.shape[1] != len(names):
        raise ValueError(f"weights must have shape (n, {len(names)}), got {w.shape}")
    k = min(k, w.shape[1])
    idx = np.argsort(-w, axis=1, kind="stable")[:, :k]            # (n, k)
    vals = np.take_along_axis(w, idx, axis=1)
    return [[(names[j], float(v)) for j, v in zip(row_i, row_v) if v > 0] for row_i, row_v in zip(idx, vals)]


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(normalize(a) * normalize(b), axis=-1)


def _check_l1(l1, n: int) -> np.ndarray:
    lam = np.asarray(l1, np.float64)
    if lam.ndim == 0:
        lam = np.full((n,), float(lam))
    if lam.shape != (n,):
        raise ValueError(f"l1 must be a number or have shape ({n},), got shape {lam.shape}")
    if not np.isfinite(lam).all():
        raise ValueError("l1 (lambda) contains NaN or inf")
    if (lam < 0).any():
        raise ValueError(f"l1 (lambda) must be >= 0, got {lam.min():g}")
    return lam


def decompose(dictionary: ConceptDictionary, embeddings, l1=0.05, *, l0: float | None = None,
              method: str = "working_set", tol: float = 1e-6, chunk_size: int = 1024,
              progress: bool = False) -> Decomposition:
    """Decomposes audio embeddings (n, d) (or one (d,)) into concept weights (n, c).

    ``l1``: the penalty (a number or (n,)); ``l0``: instead, a wanted mean number of concepts
    (one l1 for all clips, bisected). Bad input raises ValueError naming it: NaN/inf or zero
    rows, a dimension other than the dictionary's, l1 < 0.
    """
    z = dictionary.prepare(embeddings)                             # (n, d), validates
    n = z.shape[0]
    if l0 is not None:
        if not 0 <= l0 <= len(dictionary):
            raise ValueError(f"l0 must be between 0 and the number of concepts {len(dictionary)}, got {l0}")
        lam, res = lambda_for_l0(dictionary.concepts, z, l0, method=method, tol=tol)
        weights, converged, lam = res.weights, res.converged, np.full((n,), lam)
    else:
        lam = _check_l1(l1, n)
        starts = range(0, n, chunk_size)
        if progress:
            import tqdm
            starts = tqdm.tqdm(starts, desc="decompose", unit="chunk")
        parts = [nonneg_lasso(dictionary.concepts, z[s:s + chunk_size], lam[s:s + chunk_size], method=method,
                              tol=tol) for s in starts]
        weights = np.concatenate([p.weights for p in parts])
        converged = np.concatenate([p.converged for p in parts])
    weights = np.asarray(weights, np.float32)
    recomposed = dictionary.recompose(weights)
    original = np.asarray(embeddings, np.float32).reshape(n, -1)
    return Decomposition(dictionary.names, weights, recomposed, _cosine(recomposed, original),
                         (weights > 0).sum(axis=1), lam, np.asarray(converged))


def recompose(dictionary: ConceptDictionary, weights, original=None) -> tuple[np.ndarray, np.ndarray | None]:
    """SpLiCE recomposition (n, d) of weights (n, c), and its cosine (n,) with ``original``
    embeddings (n, d) when given."""
    rec = dictionary.recompose(weights)
    return rec, None if original is None else _cosine(rec, np.asarray(original, np.float32).reshape(rec.shape))


def intervene(dictionary: ConceptDictionary, weights, *, remove=(), scale: dict[str, float] | None = None,
              original=None) -> Decomposition:
    """Edits concept weights and recomposes: concepts in ``remove`` are set to 0, those in
    ``scale`` multiplied by their factor (>= 0). Unknown names raise KeyError. ``cosine`` is
    with ``original`` (n, d) when given, else with the unedited recomposition."""
    w = np.array(weights, np.float32, copy=True)
    if w.ndim == 1:
        w = w[None]
    scale = dict(scale or {})
    if any(f < 0 or not np.isfinite(f) for f in scale.values()):
        raise ValueError(f"scale factors must be finite and >= 0, got {scale}")
    w[:, dictionary.indices(list(remove))] = 0
    if scale:
        w[:, dictionary.indices(list(scale))] *= np.asarray(list(scale.values()), np.float32)
    rec = dictionary.recompose(w)
    ref = dictionary.recompose(np.asarray(weights, np.float32).reshape(w.shape)) if original is None \
        else np.asarray(original, np.float32).reshape(rec.shape)
    n = w.shape[0]
    return Decomposition(dictionary.names, w, rec, _cosine(rec, ref), (w > 0).sum(axis=1),
                         np.full((n,), np.nan), np.ones((n,), bool))


# ----------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------


def read_embeddings(path: str) -> tuple[np.ndarray, list[str]]:
    """(n, d) embeddings and keys from ``.npy`` or ``.npz`` ('embeddings' [+ 'keys'])."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such embeddings file")
    if path.endswith(".npz"):
        with np.load(path) as f:
            if "embeddings" not in f:
                raise ValueError(f"{path}: no 'embeddings' array (has {', '.join(f.files)})")
            emb = f["embeddings"]
            keys = [str(k) for k in f["keys"]] if "keys" in f else None
    else:
        emb, keys = np.load(path), None
    emb = np.asarray(emb)
    if emb.ndim == 1:
        emb = emb[None]
    if emb.ndim != 2:
        raise ValueError(f"{path}: embeddings must have shape (n, d), got {emb.shape}")
    keys = keys or [str(i) for i in range(emb.shape[0])]
    if len(keys) != emb.shape[0]:
        raise ValueError(f"{path}: {len(keys)} keys for {emb.shape[0]} embeddings")
    return emb, keys


def parse_scale(items) -> dict[str, float]:
    """``["beep=0.5", "rain=2"]`` -> {"beep": 0.5, "rain": 2.0}."""
    out = {}
    for item in items or ():
        name, sep, factor = item.rpartition("=")
        try:
            out[name.strip()] = float(factor)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise ValueError(f"--scale: expected NAME=FACTOR, got {item!r}")
    return out


def rows(keys, dec: Decomposition, k: int, edited: Decomposition | None = None) -> list[dict]:
    """The output records of the CLI."""
    top = dec.top(k)
    etop = edited.top(k) if edited is not None else None
    out = []
    for i, key in enumerate(keys):
        r = {"key": key, "l0": int(dec.l0[i]), "l1": float(dec.l1[i]), "cosine": round(float(dec.cosine[i]), 6),
             "top": [[name, round(w, 6)] for name, w in top[i]]}
        if edited is not None:
            r["edited"] = {"cosine": round(float(edited.cosine[i]), 6),
                           "top": [[name, round(w, 6)] for name, w in etop[i]]}
        out.append(r)
    return out


def write_rows(records: list[dict], path: str | None, k: int) -> None:
    """JSONL (``.jsonl``/``.json`` or standard output) or CSV (``.csv``)."""
    if path and path.endswith(".csv"):
        tmp = f"{path}.tmp"
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            head = ["key", "l0", "l1", "cosine"] + [f"{p}_{j}" for j in range(1, k + 1) for p in ("concept", "weight")]
            edited = records and "edited" in records[0]
            if edited:
                head += ["edited_cosine"] + [f"edited_{p}_{j}" for j in range(1, k + 1) for p in ("concept", "weight")]
            w.writerow(head)
            for r in records:
                def flat(top):
                    cells = [x for pair in top for x in pair]
                    return cells + [""] * (2 * k - len(cells))
                row = [r["key"], r["l0"], r["l1"], r["cosine"]] + flat(r["top"])
                if edited:
                    row += [r["edited"]["cosine"]] + flat(r["edited"]["top"])
                w.writerow(row)
        os.replace(tmp, path)
        return
    lines = "".join(json.dumps(r) + "\n" for r in records)
    if path:
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            f.write(lines)
        os.replace(tmp, path)
    else:
        sys.stdout.write(lines)


def audio_paths(entries) -> list[str]:
    """Audio files from a list of files and folders (folders: every audio file below, sorted)."""
    from clap_jax.data import readers
    paths = []
    for entry in entries:
        if os.path.isdir(entry):
            paths += [r.path for r in readers.AudioFolder(entry)]
        elif os.path.exists(entry):
            paths.append(entry)
        else:
            raise FileNotFoundError(f"{entry}: no such audio file or folder")
    if not paths:
        raise FileNotFoundError(f"no audio files in {', '.join(entries)}")
    return paths


def run(model, *, audio=(), embeddings=None, vocabulary="soundscapes", vocabulary_size=None, lam=0.05, l0=None,
        top_k=5, out=None, audio_mean="reference", center=True, remove=(), scale=(), save_weights=None,
        method="working_set", batch_size=32, cache_dir=None, progress=True) -> list[dict]:
    """What ``python -m sparse.decompose`` does (flags of the same names); ``model`` is a
    ``clap_jax.Clap`` or a model directory / bundled name. Returns the output records."""
    import clap_jax
    from sparse import embed
    from sparse.vocabulary import load as load_vocabulary
    if bool(audio) == bool(embeddings):
        raise ValueError("give either audio files/folders or an embeddings file")
    model_name = model if isinstance(model, str) else None
    if isinstance(model, str):
        model = clap_jax.load(model)
    if embeddings:
        z, keys = read_embeddings(embeddings)
    else:
        keys = audio_paths(audio)
        z = embed.embed_files(model, keys, batch_size, progress=progress)
    vocab = load_vocabulary(vocabulary, vocabulary_size)
    concepts = dictionary_lib.build(model, vocab, center=center, cache_dir=cache_dir, progress=progress,
                                    model_name=model_name)
    concepts.check(z)                                        # NaN / dimension errors before any mean
    if center:
        if audio_mean == "none":
            raise ValueError("audio_mean=none needs center=False")
        concepts = concepts.with_audio_mean(
            embed.resolve_audio_mean(audio_mean, model, z, cache_dir, batch_size, progress))
    dec = decompose(concepts, z, lam, l0=l0, method=method, progress=progress)
    edited = None
    if remove or scale:
        edited = intervene(concepts, dec.weights, remove=remove, scale=parse_scale(scale), original=z)
    records = rows(keys, dec, top_k, edited)
    if out is not False:
        write_rows(records, out, top_k)
    if save_weights:
        dictionary_lib.save_npz(save_weights, weights=dec.weights, names=np.asarray(dec.names),
                                keys=np.asarray(keys), recomposed=dec.recomposed, l1=dec.l1)
    if progress:
        print(f"{len(keys)} clips, {len(concepts)} concepts ({concepts.source}): mean L0 {dec.l0.mean():.1f}, "
              f"mean cosine {dec.cosine.mean():.3f}" + (f", written to {out}" if out else ""), file=sys.stderr)
    return records


def _define_flags():
    from absl import flags
    flags.DEFINE_list("audio", [], "Audio files and/or folders (comma-separated).")
    flags.DEFINE_string("embeddings", None, "Precomputed audio embeddings: .npy (n, d) or .npz "
                        "('embeddings', optional 'keys').")
    flags.DEFINE_string("model", "soundscapes-small", "Converted model directory or bundled name (its text "
                        "encoder embeds the vocabulary; its audio encoder the --audio files).")
    flags.DEFINE_string("vocabulary", "soundscapes", "Shipped vocabulary name or vocabulary file.")
    flags.DEFINE_integer("vocabulary_size", None, "Keep the first N concepts of the vocabulary.")
    flags.DEFINE_float("lam", 0.05, "l1 penalty lambda (the paper's 0.05 by default).")
    flags.DEFINE_float("l0", None, "Instead of --lam: the wanted mean number of concepts.")
    flags.DEFINE_integer("top_k", 5, "Concepts listed per clip.")
    flags.DEFINE_string("out", None, "Output .jsonl or .csv (default: JSONL on standard output).")
    flags.DEFINE_string("audio_mean", "reference", "reference | inputs | none | a .npy file | an audio folder "
                        "(see sparse.embed.resolve_audio_mean).")
    flags.DEFINE_boolean("center", True, "SpLiCE mean-centring of concepts and audio.")
    flags.DEFINE_list("remove", [], "Intervention: concepts to remove before recomposing.")
    flags.DEFINE_list("scale", [], "Intervention: NAME=FACTOR concept weight scalings.")
    flags.DEFINE_string("save_weights", None, "Also write an .npz with weights (n, c), names, keys, "
                        "recomposed (n, d), l1 (n,).")
    flags.DEFINE_string("method", "working_set", "Solver (sparse.METHODS).")
    flags.DEFINE_integer("batch_size", 32, "Clips per audio-encoder batch.")
    flags.DEFINE_string("cache_dir", None, "Cache of concept embeddings and audio means.")


def main(argv):
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {argv[1:]}")
    from absl import flags
    F = flags.FLAGS
    run(F.model, audio=F.audio, embeddings=F.embeddings, vocabulary=F.vocabulary, vocabulary_size=F.vocabulary_size,
        lam=F.lam, l0=F.l0, top_k=F.top_k, out=F.out, audio_mean=F.audio_mean, center=F.center, remove=F.remove,
        scale=F.scale, save_weights=F.save_weights, method=F.method, batch_size=F.batch_size, cache_dir=F.cache_dir)


if __name__ == "__main__":
    from absl import app
    _define_flags()
    app.run(main)
