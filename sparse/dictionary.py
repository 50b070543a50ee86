"""Concept dictionaries: a vocabulary encoded by a CLAP text encoder, SpLiCE-preprocessed.

SpLiCE preprocessing (Bhalla et al. 2024, ``splice/model.py``; methods.md A.8), with
``normalize(x) = x / ||x||`` on the last axis (``clap_jax.linalg.l2_normalize``):

* concepts: ``e_i = normalize(text(concept_i))``, ``mu_c = mean_i e_i``,
  ``C_i = normalize(e_i - mu_c)``;   (c, d)
* audio: ``z_c = normalize(normalize(z) - mu_a)`` with ``mu_a`` the mean of normalised audio
  embeddings of a dataset (computed with :func:`audio_mean`, or given);   (n, d)
* recomposition of weights ``w`` (n, c): ``z_hat = normalize(normalize(w C) + mu_a)``, back in
  the model's audio space (cosine with ``normalize(z)`` is "the CLAP-SpLiCE cosine").

With ``center=False`` both means are zero: ``C_i = e_i``, ``z_c = normalize(z)`` and
``z_hat = normalize(w C)``. Concepts are embedded raw (no prompt template), as in SpLiCE and,
as far as the text says, in arXiv 2504.14076; ``template="This is a sound of {}."`` is available.

Text embeddings are computed in batches (the last batch padded to the batch size, so the text
encoder compiles once per token-length bucket) and cached in ``cache_dir`` (default
``$CLAP_JAX_CACHE/concepts`` or ``~/.cache/clap_jax/concepts``) as ``<sha256>.npz``, the key
hashing the model (its ``spec.json`` and every parameter) and the exact texts.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os

import numpy as np

from clap_jax import atomic
from clap_jax.linalg import l2_normalize
from sparse.vocabulary import Vocabulary, as_vocabulary

CACHE_FORMAT = "clap-jax-concepts/1"


def default_cache_dir() -> str:
    from clap_jax.runtime import cache_root
    return os.path.join(cache_root(), "concepts")


def cache_path(cache_dir, kind: str, *parts: str) -> str | None:
    """``<cache_dir>/<kind>-<sha256 of parts>.npz``; None when ``cache_dir is False`` (no cache)."""
    if cache_dir is False:
        return None
    h = hashlib.sha256("\n".join((CACHE_FORMAT, kind) + parts).encode("utf-8")).hexdigest()
    return os.path.join(cache_dir or default_cache_dir(), f"{kind}-{h[:32]}.npz")


def save_npz(path: str, **arrays) -> None:
    """Writes an .npz atomically (:mod:`clap_jax.atomic`)."""
    with atomic.path(path) as tmp, open(tmp, "wb") as f:    # a file object: np.savez adds no ".npz"
        np.savez(f, **arrays)


def encode_texts(model, texts, batch_size: int = 256, cache_dir: str | None = None,
                 progress: bool = False) -> np.ndarray:
    """Text embeddings (n, d) float32 as ``model.embed_text`` returns them, in batches of
    ``batch_size``; cached on disk (``cache_dir=False``: no cache)."""
    texts = list(texts)
    if not texts:
        raise ValueError("encode_texts: no texts")
    path = cache_path(cache_dir, "texts", model.fingerprint, *texts)
    if path and os.path.exists(path):
        with np.load(path) as f:
            return f["embeddings"]
    batches = range(0, len(texts), batch_size)
    if progress:
        import tqdm
        batches = tqdm.tqdm(batches, desc="text embeddings", unit="batch")
    emb = np.concatenate([model.embed_text(texts[i:i + batch_size], batch_size=batch_size) for i in batches])
    if path:
        save_npz(path, embeddings=emb)
    return emb


def audio_mean(embeddings) -> np.ndarray:
    """The SpLiCE audio mean: the mean of L2-normalised audio embeddings (n, d) -> (d,)."""
    z = _check_embeddings(embeddings, None, "audio_mean")
    if z.shape[0] < 2:
        raise ValueError(f"audio_mean: needs at least 2 embeddings, got {z.shape[0]}")
    return l2_normalize(z).mean(axis=0)


def _check_embeddings(embeddings, dim: int | None, what: str) -> np.ndarray:
    z = np.asarray(embeddings)
    if z.ndim == 1:
        z = z[None]
    if z.ndim != 2:
        raise ValueError(f"{what}: embeddings must have shape (n, d), got {z.shape}")
    if not np.issubdtype(z.dtype, np.number):
        raise ValueError(f"{what}: embeddings must be numeric, got dtype {z.dtype}")
    if dim is not None and z.shape[1] != dim:
        raise ValueError(f"{what}: embeddings have dimension {z.shape[1]} but the concept dictionary "
                         f"has dimension {dim}")
    bad = np.flatnonzero(~np.isfinite(z).all(axis=1))
    if bad.size:
        rows = ", ".join(map(str, bad[:5])) + (f", ... ({bad.size} rows)" if bad.size > 5 else "")
        raise ValueError(f"{what}: embedding row(s) {rows} contain NaN or inf")
    zero = np.flatnonzero(np.linalg.norm(z, axis=1) == 0)
    if zero.size:
        raise ValueError(f"{what}: embedding row(s) {', '.join(map(str, zero[:5]))} are all zeros")
    return z.astype(np.float32)


@dataclasses.dataclass(frozen=True, eq=False)
class ConceptDictionary:
    """A vocabulary's concepts in a CLAP space, ready for decomposition.

    names: (c,) concept strings. embeddings: (c, d) L2-normalised text embeddings.
    concepts: (c, d) the decomposition dictionary C (centred and renormalised when ``center``).
    concept_mean: (d,) mean of ``embeddings`` (zeros when not centred).
    audio_mean: (d,) SpLiCE audio mean, or None (needed when ``center``; see
    :meth:`with_audio_mean`). source: "vocabulary @ model" for messages.
    """
    names: tuple[str, ...]
    embeddings: np.ndarray
    concepts: np.ndarray
    concept_mean: np.ndarray
    audio_mean: np.ndarray | None = None
    center: bool = True
    source: str = "concepts"
    _solvers: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def dim(self) -> int:
        return self.concepts.shape[1]

    def __len__(self) -> int:
        return len(self.names)

    def with_audio_mean(self, mean) -> "ConceptDictionary":
        """A copy with the audio mean ``mean`` (d,); see :func:`audio_mean`."""
        mean = np.asarray(mean, np.float32).reshape(-1)
        if mean.shape != (self.dim,):
            raise ValueError(f"{self.source}: audio mean has dimension {mean.shape[0]}, the dictionary {self.dim}")
        if not np.isfinite(mean).all():
            raise ValueError(f"{self.source}: audio mean contains NaN or inf")
        return dataclasses.replace(self, audio_mean=mean)

    def _mean(self) -> np.ndarray:
        if not self.center:
            return np.zeros((self.dim,), np.float32)
        if self.audio_mean is None:
            raise ValueError(f"{self.source}: centring needs an audio mean; build the dictionary with "
                             "audio_mean=... (sparse.dictionary.audio_mean(embeddings) of a dataset) or center=False")
        return self.audio_mean

    def check(self, embeddings) -> np.ndarray:
        """Validated audio embeddings (n, d) float32: ValueError for NaN/inf or zero rows (named)
        or a dimension other than the dictionary's."""
        return _check_embeddings(embeddings, self.dim, self.source)

    def prepare(self, embeddings) -> np.ndarray:
        """SpLiCE audio preprocessing: (n, d) or (d,) -> (n, d) ``normalize(normalize(z) - mu_a)``.
        Raises ValueError naming the rows that are NaN/inf/zero or of the wrong dimension."""
        z = l2_normalize(self.check(embeddings)) - self._mean()
        same = np.flatnonzero(np.linalg.norm(z, axis=1) < 1e-6)
        if same.size:
            raise ValueError(f"{self.source}: embedding row(s) {', '.join(map(str, same[:5]))} equal the audio "
                             "mean, nothing is left after centring (is the mean computed from these clips alone?)")
        return l2_normalize(z)

    def for_solver(self, method: str = "working_set"):
        """``concepts`` prepared for ``sparse.nonneg_lasso`` with ``method``
        (``sparse.lasso.prepare``: on the devices, with the method's precomputation), made on
        the first call and kept with this dictionary, so repeated decompositions reuse it."""
        if method not in self._solvers:
            from sparse.lasso import prepare
            self._solvers[method] = prepare(self.concepts, method)
        return self._solvers[method]

    def recompose(self, weights) -> np.ndarray:
        """Weights (n, c) -> embeddings (n, d) in the model's audio space (module docstring)."""
        w = np.asarray(weights, np.float32)
        if w.ndim != 2 or w.shape[1] != len(self):
            raise ValueError(f"{self.source}: weights must have shape (n, {len(self)}), got {w.shape}")
        return l2_normalize(l2_normalize(w @ self.concepts) + self._mean())

    def indices(self, names) -> np.ndarray:
        """Positions of concept names; unknown names raise KeyError with suggestions."""
        import difflib
        where = {n: i for i, n in enumerate(self.names)}
        out = []
        for n in names:
            if n not in where:
                near = difflib.get_close_matches(n, self.names, n=3)
                raise KeyError(f"{self.source}: unknown concept {n!r}"
                               + (f" (did you mean {', '.join(map(repr, near))}?)" if near else ""))
            out.append(where[n])
        return np.asarray(out, np.int64)


def from_embeddings(names, text_embeddings, *, center: bool = True, audio_mean=None,
                    source: str = "concepts") -> ConceptDictionary:
    """A dictionary from precomputed concept text embeddings (c, d)."""
    names = tuple(Vocabulary(tuple(names), None, source).concepts)     # non-empty, unique
    e = _check_embeddings(text_embeddings, None, source)
    if e.shape[0] != len(names):
        raise ValueError(f"{source}: {e.shape[0]} embeddings for {len(names)} concepts")
    e = l2_normalize(e)
    if center:
        if len(names) < 2:
            raise ValueError(f"{source}: centring needs at least 2 concepts (or center=False)")
        mu = e.mean(axis=0)
        concepts = l2_normalize(e - mu)
    else:
        mu = np.zeros((e.shape[1],), np.float32)
        concepts = e
    d = ConceptDictionary(names, e, concepts, mu.astype(np.float32), None, center, source)
    return d if audio_mean is None else d.with_audio_mean(audio_mean)


def build(model, vocabulary, *, center: bool = True, audio_mean=None, template: str = "{}",
          cache_dir: str | None = None, batch_size: int = 256, progress: bool = False,
          model_name: str | None = None) -> ConceptDictionary:
    """Encodes ``vocabulary`` (a Vocabulary, shipped name, path, or list of strings) with the
    text encoder of ``model`` (a ``clap_jax.Clap``), cached; see the module docstring."""
    vocab = as_vocabulary(vocabulary)
    texts = [template.format(c) for c in vocab.concepts]
    emb = encode_texts(model, texts, batch_size, cache_dir, progress)
    source = f"{vocab.name} ({len(vocab)} concepts) @ {model_name or model.spec.source or 'model'}"
    return from_embeddings(vocab.concepts, emb, center=center, audio_mean=audio_mean, source=source)
