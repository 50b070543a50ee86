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
        [--audio_mean=auto|reference|inputs|none|mean.npy|FOLDER] [--center=false] \
        [--remove=rain] [--scale="beep=0.5"] [--save_weights=weights.npz] [--strict]
    python -m sparse.decompose --embeddings=emb.npz ...     # precomputed (n, d): .npy, or .npz
                                                            # with 'embeddings' [+ 'keys']
    python -m sparse.decompose --embeddings=emb/ ...        # a clap_jax.extract folder, shard by shard

Writes one JSON object per clip (JSONL; default: standard output) or one CSV row per clip:
key, number of concepts, l1, cosine with the original, ``converged`` (the solver's KKT check),
``near_silent`` (audio input), the top-k concepts and weights, and with interventions the edited
top-k and the edited recomposition's cosine with the original. Records are written and flushed
as each batch of clips is decomposed (``sparse.records``): a killed run keeps its finished ones.

Bad inputs (``clap_jax.cli_errors``): an audio file that does not decode, is empty or holds
NaN/inf or huge samples, and an embedding row with NaN/inf or zeros, are skipped with one line on
stderr naming them and counted in the summary line; ``--strict`` stops at the first. Flags and
``--out`` are checked before any work. Exit status 0 (all decomposed), 3 (some skipped), 1 (none,
or a user error: one line, the traceback with ``--verbosity=1``). One module of ~400 lines: the
command is the API run over files (its flags are the API's arguments), so they stay together.
"""
from __future__ import annotations

import dataclasses
import os
import sys

import numpy as np

from clap_jax import cli_errors, streaming
from clap_jax.linalg import l2_normalize
from sparse import checks
from sparse import dictionary as dictionary_lib
from sparse.dictionary import ConceptDictionary
from sparse.records import RecordWriter, read_embeddings, write_rows  # noqa: F401 (public names)
from sparse.lasso import METHODS, nonneg_lasso
from sparse.sparsity import lambda_for_l0


@dataclasses.dataclass(frozen=True)
class Decomposition:
    """Concept weights of n clips over c concepts, and their recomposition.

    names: (c,) concepts. weights: (n, c) >= 0. recomposed: (n, d) SpLiCE recomposition.
    cosine: (n,) cos(recomposed, original embedding). l0: (n,) non-zero weights.
    l1: (n,) the penalty used. converged: (n,) solver KKT check passed. kkt: (n,) the solver's
    scaled KKT residual (``sparse.lasso.problem``; None for interventions).
    """
    names: tuple[str, ...]
    weights: np.ndarray
    recomposed: np.ndarray
    cosine: np.ndarray
    l0: np.ndarray
    l1: np.ndarray
    converged: np.ndarray
    kkt: np.ndarray | None = None

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
    return np.sum(l2_normalize(a) * l2_normalize(b), axis=-1)


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
              progress: bool = False, report: bool = True) -> Decomposition:
    """Decomposes audio embeddings (n, d) (or one (d,)) into concept weights (n, c).

    ``l1``: the penalty (a number or (n,)); ``l0``: instead, a wanted mean number of concepts
    (one l1 for all clips, bisected). Bad input raises ValueError naming it: NaN/inf, huge
    (>= 1e15) or zero rows, a dimension other than the dictionary's, l1 < 0. Rows the solver
    did not converge on are logged once (``sparse.checks.report_convergence``) and flagged in
    ``converged``; ``report=False`` leaves the logging to the caller.
    """
    shape = dictionary.check(embeddings).shape                     # NaN/inf, zero rows, dimension
    checks.check_array("embeddings", np.asarray(embeddings).reshape(shape))      # |x| >= 1e15
    z = dictionary.prepare(embeddings)                             # (n, d)
    n = z.shape[0]
    with checks.quiet():                                           # one report below, not one per solve
        if l0 is not None:
            if not 0 <= l0 <= len(dictionary):
                raise ValueError(f"l0 must be between 0 and the number of concepts {len(dictionary)}, got {l0}")
            solver = dictionary.for_solver(method)                 # prepared once, kept with the dictionary
            lam, res = lambda_for_l0(solver, z, l0, tol=tol)
            weights, converged, kkt, lam = res.weights, res.converged, res.kkt, np.full((n,), lam)
        else:
            lam = _check_l1(l1, n)
            solver = dictionary.for_solver(method)
            starts = range(0, n, chunk_size)
            if progress:
                import tqdm
                starts = tqdm.tqdm(starts, desc="decompose", unit="chunk")
            parts = [nonneg_lasso(solver, z[s:s + chunk_size], lam[s:s + chunk_size], tol=tol) for s in starts]
            weights = np.concatenate([p.weights for p in parts])
            converged = np.concatenate([p.converged for p in parts])
            kkt = np.concatenate([p.kkt for p in parts])
    if report:
        checks.report_convergence(converged, kkt, tol, "sparse.decompose")
    weights = np.asarray(weights, np.float32)
    recomposed = dictionary.recompose(weights)
    original = np.asarray(embeddings, np.float32).reshape(n, -1)
    return Decomposition(dictionary.names, weights, recomposed, _cosine(recomposed, original),
                         (weights > 0).sum(axis=1), lam, np.asarray(converged), np.asarray(kkt))


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


def rows(keys, dec: Decomposition, k: int, edited: Decomposition | None = None, near_silent=None) -> list[dict]:
    """The output records of the CLI (``sparse.records``); ``near_silent`` (n,) for audio input."""
    top = dec.top(k)
    etop = edited.top(k) if edited is not None else None
    out = []
    for i, key in enumerate(keys):
        r = {"key": key, "l0": int(dec.l0[i]), "l1": float(dec.l1[i]), "cosine": round(float(dec.cosine[i]), 6),
             "converged": bool(dec.converged[i]), "top": [[name, round(w, 6)] for name, w in top[i]]}
        if near_silent is not None:
            r["near_silent"] = bool(near_silent[i])
        if edited is not None:
            r["edited"] = {"cosine": round(float(edited.cosine[i]), 6),
                           "top": [[name, round(w, 6)] for name, w in etop[i]]}
        out.append(r)
    return out


def _check_args(*, lam, l0, top_k, batch_size, method, out, save_weights, audio_mean, center) -> None:
    """Flag values that would fail later, refused before any work."""
    if top_k < 1 or batch_size < 1:
        raise ValueError(f"--top_k and --batch_size must be >= 1, got {top_k} and {batch_size}")
    if l0 is None and not (np.isfinite(lam) and lam >= 0):
        raise ValueError(f"--lam must be a number >= 0, got {lam}")
    if l0 is not None and not (np.isfinite(l0) and l0 >= 0):
        raise ValueError(f"--l0 must be a number >= 0, got {l0}")
    if method not in METHODS:
        raise ValueError(f"--method={method}: expected one of {', '.join(METHODS)}")
    if out is not False:
        cli_errors.check_output_file(out, "--out")
    cli_errors.check_output_file(save_weights, "--save_weights")
    if center:
        if audio_mean == "none":
            raise ValueError("audio_mean=none needs center=False")
        if audio_mean.endswith(".npy") and not os.path.exists(audio_mean):
            raise FileNotFoundError(f"--audio_mean={audio_mean}: no such audio-mean file")
        if audio_mean not in ("auto", "reference", "inputs") and not audio_mean.endswith(".npy") \
                and not os.path.isdir(audio_mean):
            raise ValueError(f"--audio_mean={audio_mean!r}: expected auto, reference, inputs, none, a .npy file "
                             "or a folder")


def _embedding_batches(z_in, keys, skips):
    """Yields ``(keys, embeddings, None)`` of the good rows, a shard (or the whole array) at a time;
    NaN/inf, zero or huge rows are named through ``skips``."""
    parts = z_in.chunks() if hasattr(z_in, "chunks") else [z_in]
    offset = 0
    for part in parts:
        part = np.asarray(part)
        problems = checks.row_problems(part)
        for i in np.flatnonzero(problems):
            skips(keys[offset + i], problems[i])
        good = np.flatnonzero(~problems.astype(bool))
        if good.size:
            yield [keys[offset + i] for i in good], part[good], None
        offset += len(part)


def run(model, *, audio=(), embeddings=None, vocabulary="soundscapes", vocabulary_size=None, lam=0.05, l0=None,
        top_k=5, out=None, audio_mean="auto", center=True, remove=(), scale=(), save_weights=None,
        method="working_set", batch_size=32, cache_dir=None, progress=True, strict=False, skips=None) -> list[dict]:
    """What ``python -m sparse.decompose`` does (flags of the same names); ``model`` is a
    ``clap_jax.Clap`` or a model directory / bundled name. Returns the output records.

    Flag values, inputs and outputs are checked before any work. A bad input (an audio file that
    does not decode, is empty, holds NaN/inf or huge samples; an embedding row with NaN/inf or
    zeros) is skipped and named through ``skips`` (a ``clap_jax.cli_errors.Skips``; by default
    one line on stderr each), or stops the run with ``strict``. Records are written as they are
    produced, a batch of clips at a time (``sparse.records``); with ``l0`` or
    ``audio_mean='inputs'`` every embedding is needed first, so records come after the last one.
    """
    import clap_jax
    from sparse import embed
    from sparse.vocabulary import load as load_vocabulary
    if bool(audio) == bool(embeddings):
        raise ValueError("give either audio files/folders or an embeddings file")
    _check_args(lam=lam, l0=l0, top_k=top_k, batch_size=batch_size, method=method, out=out,
                save_weights=save_weights, audio_mean=audio_mean, center=center)
    scale = parse_scale(scale)
    summary, progress = progress, progress and sys.stderr.isatty()      # bars only on a terminal
    skips = skips if skips is not None else cli_errors.Skips("sparse.decompose", strict)
    paths = cli_errors.audio_paths(audio) if audio else None
    z_in, keys_in = read_embeddings(embeddings) if embeddings else (None, None)
    vocab = load_vocabulary(vocabulary, vocabulary_size)
    model_name = model if isinstance(model, str) else None
    if isinstance(model, str):
        model = clap_jax.load(model)
    concepts = dictionary_lib.build(model, vocab, center=center, cache_dir=cache_dir, progress=progress,
                                    model_name=model_name)
    concepts.indices(list(remove) + list(scale))                 # unknown concept names: KeyError now
    if l0 is not None and l0 > len(concepts):
        raise ValueError(f"--l0 must be between 0 and the number of concepts {len(concepts)}, got {l0}")
    if z_in is not None:
        if z_in.shape[1] != concepts.dim:                        # dimension errors before any mean
            raise ValueError(f"{embeddings}: embeddings have dimension {z_in.shape[1]} but the concept "
                             f"dictionary has dimension {concepts.dim}")
        batches = _embedding_batches(z_in, keys_in, skips)
    else:
        batches = ((([paths[i] for i in idx]), z, silent)
                   for idx, z, silent in streaming.iter_files(model, paths, batch_size, skips, progress))
    whole = l0 is not None or (center and embed.uses_inputs(audio_mean, model))
    if center and not whole:
        concepts = concepts.with_audio_mean(
            embed.resolve_audio_mean(audio_mean, model, None, cache_dir, batch_size, progress))
    writer = None if out is False else RecordWriter(out, top_k, edited=bool(remove or scale),
                                                    near_silent=paths is not None)
    records, kept = [], {"keys": [], "weights": [], "recomposed": [], "l1": [], "converged": [], "kkt": []}

    def emit(keys, z, silent, concepts):
        dec = decompose(concepts, z, lam, l0=l0, method=method, report=False)
        edited = intervene(concepts, dec.weights, remove=remove, scale=scale, original=z) if remove or scale \
            else None
        recs = rows(keys, dec, top_k, edited, silent)
        if writer is not None:
            writer.write(recs)
        records.extend(recs)
        for name, value in (("keys", keys), ("weights", dec.weights), ("recomposed", dec.recomposed),
                            ("l1", dec.l1), ("converged", dec.converged), ("kkt", dec.kkt)):
            kept[name].append(np.asarray(value))

    try:
        if not whole:
            for keys, z, silent in batches:
                emit(keys, z, silent, concepts)
        else:
            got = list(batches)
            if got:
                keys = [k for b in got for k in b[0]]
                z = np.concatenate([b[1] for b in got])
                silent = None if paths is None else np.concatenate([b[2] for b in got])
                if center:
                    concepts = concepts.with_audio_mean(
                        embed.resolve_audio_mean(audio_mean, model, z, cache_dir, batch_size, progress))
                emit(keys, z, silent, concepts)
    finally:
        if writer is not None:
            writer.close()
    if records:
        cat = {k: np.concatenate(v) for k, v in kept.items()}
        checks.report_convergence(cat["converged"], cat["kkt"], 1e-6, "sparse.decompose", names=cat["keys"])
        if save_weights:
            dictionary_lib.save_npz(save_weights, weights=cat["weights"], names=np.asarray(concepts.names),
                                    keys=cat["keys"], recomposed=cat["recomposed"], l1=cat["l1"])
        if summary:
            l0s = np.array([r["l0"] for r in records])
            cos = np.array([r["cosine"] for r in records])
            print(f"{len(records)} clips, {len(concepts)} concepts ({concepts.source}): mean L0 {l0s.mean():.1f}, "
                  f"mean cosine {cos.mean():.3f}" + (f", written to {out}" if out else ""), file=sys.stderr)
    return records


def _define_flags():
    from absl import flags
    flags.DEFINE_multi_string("audio", [], "Audio files and/or folders: comma-separated or the flag repeated (a "
                              "value naming an existing file or folder is taken whole, commas and all).")
    flags.DEFINE_string("embeddings", None, "Precomputed audio embeddings: .npy (n, d), .npz "
                        "('embeddings', optional 'keys') or a clap_jax.extract folder (read shard by shard).")
    flags.DEFINE_string("model", "soundscapes-small", "Converted model directory or bundled name (its text "
                        "encoder embeds the vocabulary; its audio encoder the --audio files).")
    flags.DEFINE_string("vocabulary", "soundscapes", "Shipped vocabulary name or vocabulary file.")
    flags.DEFINE_integer("vocabulary_size", None, "Keep the first N concepts of the vocabulary.")
    flags.DEFINE_float("lam", 0.05, "l1 penalty lambda (the paper's 0.05 by default).")
    flags.DEFINE_float("l0", None, "Instead of --lam: the wanted mean number of concepts.")
    flags.DEFINE_integer("top_k", 5, "Concepts listed per clip.")
    flags.DEFINE_string("out", None, "Output .jsonl or .csv (default: JSONL on standard output), one record per "
                        "clip, each flushed as written.")
    flags.DEFINE_string("audio_mean", "auto", "auto (a bundled model's shipped mean, else the inputs' own) | "
                        "reference | inputs | none | a .npy file | an audio folder | an extraction folder "
                        "(see sparse.embed.resolve_audio_mean).")
    flags.DEFINE_boolean("center", True, "SpLiCE mean-centring of concepts and audio.")
    flags.DEFINE_list("remove", [], "Intervention: concepts to remove before recomposing.")
    flags.DEFINE_list("scale", [], "Intervention: NAME=FACTOR concept weight scalings.")
    flags.DEFINE_string("save_weights", None, "Also write an .npz with weights (n, c), names, keys, "
                        "recomposed (n, d), l1 (n,).")
    flags.DEFINE_string("method", "working_set", "Solver (sparse.METHODS).")
    flags.DEFINE_integer("batch_size", 32, "Clips per audio-encoder batch.")
    flags.DEFINE_string("cache_dir", None, "Cache of concept embeddings and audio means.")
    flags.DEFINE_boolean("strict", False, "Stop at the first bad input instead of skipping it.")


@cli_errors.guard("sparse.decompose")
def main(argv):
    """Exit status (``clap_jax.cli_errors``): 0 every clip decomposed; 3 some skipped; 1 nothing
    decomposed (every input skipped) or a user error, one line on stderr."""
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {argv[1:]}")
    from absl import flags
    F = flags.FLAGS
    skips = cli_errors.Skips("sparse.decompose", F.strict)
    records = run(F.model, audio=F.audio, embeddings=F.embeddings, vocabulary=F.vocabulary,
                  vocabulary_size=F.vocabulary_size, lam=F.lam, l0=F.l0, top_k=F.top_k, out=F.out,
                  audio_mean=F.audio_mean, center=F.center, remove=F.remove, scale=F.scale,
                  save_weights=F.save_weights, method=F.method, batch_size=F.batch_size, cache_dir=F.cache_dir,
                  skips=skips)
    print(skips.summary(len(records), "clips"), file=sys.stderr)
    return skips.exit_code(len(records))


if __name__ == "__main__":
    from clap_jax import runtime
    _define_flags()
    runtime.run(main)
