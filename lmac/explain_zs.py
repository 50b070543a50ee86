"""``lmac.explain`` for LMAC-ZS explainers: a clip explained for text prompts, listenable per prompt.

Per clip (``<stem>``) and explained prompt (``<slug>``, the prompt made file-safe) it writes
``<stem>.<slug>.in.wav`` / ``.out.wav`` (masked-in / masked-out) and ``<stem>.<slug>.png``
(spectrogram, mask, masked-in spectrogram), beside ``<stem>.wav`` (the clip as CLAP heard it).
Prompts, per ``--prompts``:

- ``labels`` (default): ``--template`` over the labels (the bundled everyday labels unless
  ``--labels``); each clip gets its ``top_k`` labels by zero-shot similarity plus the least similar
  one, an absent sound whose mask should stay dark;
- ``concepts``: each clip's ``top_k`` concepts from ``sparse.decompose``, so every concept the
  decomposition names gets its own listenable map;
- a comma-separated list: every prompt for every clip.
"""
from __future__ import annotations

import dataclasses
import os
import re
from types import SimpleNamespace
from typing import Callable

import numpy as np
import soundfile as sf

from clap_jax import plots
from lmac import figures as figures_lib

DEFAULT_TEMPLATE = "this is the sound of {}"


@dataclasses.dataclass
class PromptResult:
    prompt: str
    similarity: float
    probability: float
    similarity_in: float
    similarity_out: float
    mask_mean: float
    files: dict[str, str]


@dataclasses.dataclass
class ZsClipResult:
    path: str
    stem: str
    wav: str
    prompts: list[PromptResult]
    concepts: list[tuple[str, float]] | None = None

    def line(self) -> str:
        parts = ", ".join(f"{p.prompt!r} sim {p.similarity:.2f} mask {p.mask_mean:.3f}" for p in self.prompts)
        return f"{os.path.basename(self.path)}: {parts}"


def slug(text: str, limit: int = 40) -> str:
    """A file-name-safe form of a prompt: lower case, runs of other characters as ``-``."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return (s[:limit].rstrip("-") or "prompt")


def select(similarity: np.ndarray, top_k: int, absent: bool = True) -> list[int]:
    """Indices of the ``top_k`` most similar prompts (descending), plus the least similar one."""
    order = [int(i) for i in np.argsort(-similarity, kind="stable")]
    chosen = order[:top_k]
    if absent and len(order) > top_k:
        chosen.append(order[-1])
    return chosen


def clip_concepts(explainer, paths: list[str], k: int) -> dict[str, list[tuple[str, float]]]:
    """Top-``k`` concepts of each clip from ``sparse.decompose`` (the explainer's CLAP, defaults)."""
    from sparse import decompose
    records = decompose.run(explainer.clap, audio=paths, top_k=k, out=False, progress=False)
    return {r["key"]: [(name, float(w)) for name, w in r["top"]] for r in records}


def explain_clips(explainer, batch: list[tuple[str, str, np.ndarray, int]], out: str, *, prompts, top_k: int,
                  concepts: dict | None, size: int, figures: bool = True) -> list[ZsClipResult]:
    """One batch of read clips ``(path, stem, wave, rate)`` -> results, files written into ``out``.

    ``prompts``: a list of texts explained for every clip, or ``("labels", texts)`` (per-clip
    selection, see the module docstring), or ``("concepts", k)``. Batches are padded to ``size``
    clips and concept prompts to ``top_k``, so each mode compiles once.
    """
    rate = explainer.sample_rate
    cfg = explainer.clap.spec.audio.spectrogram
    waves, rates = [w for _, _, w, _ in batch], [r for _, _, _, r in batch]
    if isinstance(prompts, tuple) and prompts[0] == "concepts":
        per_clip = [[name for name, _ in concepts[path]][:top_k] or ["sound"] for path, *_ in batch]
        explained = [explainer.explain([w], r, prompts=(p + p[-1:] * (top_k - len(p))))[0]
                     for w, r, p in zip(waves, rates, per_clip)]
        chosen = [list(range(len(p))) for p in per_clip]
    else:
        texts = prompts[1] if isinstance(prompts, tuple) else list(prompts)
        pad = size - len(waves)
        explained = explainer.explain(waves + waves[-1:] * pad, rates + rates[-1:] * pad, prompts=texts)[:len(waves)]
        chosen = [select(e.similarity, top_k) if isinstance(prompts, tuple) else list(range(len(texts)))
                  for e in explained]
    results = []
    for (path, stem, _, _), e, idx in zip(batch, explained, chosen):
        wav = os.path.join(out, f"{stem}.wav")
        sf.write(wav, np.asarray(e.waveform, np.float32), rate, subtype="FLOAT")
        rows = []
        for i in idx:
            view = e[e.prompts[i]]
            base = os.path.join(out, f"{stem}.{slug(view.prompt)}")
            files = {"masked_in": base + ".in.wav", "masked_out": base + ".out.wav"}
            sf.write(files["masked_in"], np.asarray(view.masked_in, np.float32), rate, subtype="FLOAT")
            sf.write(files["masked_out"], np.asarray(view.masked_out, np.float32), rate, subtype="FLOAT")
            if figures:
                shown = SimpleNamespace(waveform=e.waveform, masked_in=view.masked_in, mask=view.mask)
                fig = figures_lib.mask_figure(shown, cfg, f"{os.path.basename(path)}: \u201c{view.prompt}\u201d",
                                              subtitle=f"similarity {view.similarity:.2f} (masked-in "
                                                       f"{view.similarity_in:.2f}, masked-out {view.similarity_out:.2f})"
                                                       f"   ·   mask mean {view.mask_mean:.3f}", model="CLAP")
                files["png"] = plots.save(fig, base + ".png")
            rows.append(PromptResult(view.prompt, view.similarity, float(e.probabilities[i]), view.similarity_in,
                                     view.similarity_out, view.mask_mean, files))
        results.append(ZsClipResult(path, stem, wav, rows, concepts.get(path) if concepts else None))
    return results


def report_clips(results: list[ZsClipResult]):
    """:mod:`lmac.report` sections for the results (one card per explained prompt)."""
    from lmac import report
    return [report.ClipReport(
        name=os.path.basename(r.path), audio=r.wav, concepts=r.concepts,
        targets=[report.TargetReport(name=p.prompt, score=p.similarity, score_name="similarity",
                                     mask_mean=p.mask_mean, image=p.files.get("png", ""),
                                     masked_in=p.files["masked_in"], masked_out=p.files["masked_out"],
                                     extra={"similarity in": p.similarity_in, "similarity out": p.similarity_out})
                 for p in r.prompts]) for r in results]


def as_json(results: list[ZsClipResult], out: str) -> dict:
    """``{clip: {prompt: {mask_mean, similarity, ..., files}}}`` with paths relative to ``out``."""
    rel = lambda p: os.path.relpath(p, out)
    return {r.stem: {p.prompt: {"path": r.path, "similarity": p.similarity, "probability": p.probability,
                                "similarity_in": p.similarity_in, "similarity_out": p.similarity_out,
                                "mask_mean": p.mask_mean, "files": {"wav": rel(r.wav),
                                                                    **{k: rel(v) for k, v in p.files.items()}}}
                     for p in r.prompts} for r in results}


def run_batches(explainer, batches, out: str, *, prompts, top_k: int, concepts: bool, size: int,
                log: Callable[[str], None],
                on_batch: Callable[[list[ZsClipResult]], None] | None = None) -> list[ZsClipResult]:
    """Explains batches of good clips from ``lmac.explain._batches`` (which skips the bad files),
    calling ``on_batch(results so far)`` after each; returns the results."""
    results = []
    for batch in batches:
        found = clip_concepts(explainer, [p for p, *_ in batch], top_k) if concepts else None
        for r in explain_clips(explainer, batch, out, prompts=prompts, top_k=top_k, concepts=found, size=size):
            results.append(r)
            log(r.line())
        if on_batch:
            on_batch(results)
    return results
