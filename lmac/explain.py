r"""Listenable explanations of a classifier's decisions: the main job.

    python -m lmac.explain                                     # bundled examples, bundled explainer
    python -m lmac.explain --explainer=converted/sb-lmac-esc50 --audio=clips/,dog.flac --out=expl/ --top_k=5

Classifies every clip with the explainer's classifier and explains the predicted class with its
L-MAC decoder. Per clip (``<stem>`` = the file name without its extension) it writes into
``--out``:

- ``<stem>.wav``: the clip as the classifier heard it (resampled, normalised, padded or cropped
  to the classifier's window);
- ``<stem>.in.wav``: masked-in, what the explanation says the classifier used;
- ``<stem>.out.wav``: masked-out, the rest;
- ``<stem>.png``: spectrogram | mask | masked-in spectrogram (:mod:`lmac.figures`);

plus ``index.md`` (a table and the pictures) and ``explanations.json``
(``{clip: {explained class: {probability, mask_mean, probability_in, probability_out, top,
files}}}``). It prints one line per clip: predicted label and probability, the top-k, the
mask's mean and the predicted class's probability on the masked-in and masked-out input (a quick
faithfulness read: high in, low out), then where the files are.

``--audio`` takes files and folders (comma-separated; folders are searched recursively for
audio files); anything soundfile reads. A file that cannot be used (unreadable, empty, NaN) is
skipped with a one-line warning naming it; the exit status is non-zero only when no clip could
be explained. Clips go through the explainer in batches of one shape (the last batch is padded),
so the explanation is compiled once.

The LMAC-ZS extension (prompts for CLAP's zero-shot decisions, ``report.html``) reuses this
command: an explained *target* is the predicted class here and a prompt there, which is why
``explanations.json`` is keyed ``{clip: {target: ...}}`` and files are written per target.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from typing import Callable, Iterator

import numpy as np

from clap_jax import audio as audio_lib
from clap_jax.data import readers
from lmac import explainer as explainer_lib

DEFAULT_EXPLAINER = "soundscapes-lmac"
EXAMPLES = os.path.join(explainer_lib.BUNDLED_DIR, "examples")
# Python loggers of dependencies that log INFO lines while loading checkpoints.
QUIET_LOGGERS = ("absl", "orbax", "jax", "flax", "etils", "tensorstore", "matplotlib", "PIL")


@dataclasses.dataclass
class Skipped:
    path: str
    reason: str


@dataclasses.dataclass
class ClipResult:
    """One clip's explanation summary (what is printed and indexed) and the files written for it."""
    path: str
    stem: str
    label: str
    probability: float
    top: list[tuple[str, float]]
    mask_mean: float
    probability_in: float
    probability_out: float
    files: dict[str, str]

    def line(self) -> str:
        top = ", ".join(f"{name} {p:.2f}" for name, p in self.top)
        return (f"{os.path.basename(self.path)}: {self.label} {self.probability:.2f} | top: {top} | "
                f"mask mean {self.mask_mean:.3f} | {self.label} masked-in {self.probability_in:.2f}, "
                f"masked-out {self.probability_out:.2f}")


def quiet_logs(verbose: bool = False) -> None:
    """WARNING and above only from absl and the Python loggers of dependencies (orbax, jax, ...);
    with ``verbose`` INFO as well."""
    from absl import logging as absl_logging
    level = logging.INFO if verbose else logging.WARNING
    if not verbose:
        absl_logging.set_verbosity(absl_logging.WARNING)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(level)


def audio_paths(entries: list[str]) -> list[str]:
    """Files as given, folders expanded (recursively, sorted) to the audio files they hold."""
    paths = []
    for entry in entries:
        paths += [r.path for r in readers.AudioFolder(entry)] if os.path.isdir(entry) else [entry]
    return paths


def unique_stems(paths: list[str]) -> list[str]:
    """File names without extension; a repeated name gets ``-2``, ``-3``, ... so no output is overwritten."""
    seen: dict[str, int] = {}
    stems = []
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0] or "clip"
        n = seen.get(stem, 0) + 1
        seen[stem] = n
        stems.append(stem if n == 1 else f"{stem}-{n}")
    return stems


def _batches(paths: list[str], stems: list[str], batch_size: int,
             warn: Callable[[str], None]) -> Iterator[tuple[list, list[Skipped]]]:
    """Yields ``(good clips [(path, stem, wave, rate)], skipped)`` with at most ``batch_size`` clips."""
    batch, skipped = [], []
    for path, stem in zip(paths, stems):
        try:
            wave, rate = audio_lib.read_audio(path)
        except Exception as err:  # noqa: BLE001 - any unusable file is reported and skipped
            reason = str(err) if path in str(err) else f"{path}: {err}"
            warn(f"warning: skipped {reason}")
            skipped.append(Skipped(path, reason))
            continue
        batch.append((path, stem, wave, rate))
        if len(batch) == batch_size:
            yield batch, skipped
            batch, skipped = [], []
    if batch or skipped:
        yield batch, skipped


def explain_files(explainer: explainer_lib.Explainer, paths: list[str], out: str, *, top_k: int = 3,
                  batch_size: int = 8, figures: bool = True, log: Callable[[str], None] = print,
                  warn: Callable[[str], None] | None = None) -> tuple[list[ClipResult], list[Skipped]]:
    """Explains ``paths`` in batches of one shape, writes every clip's files into ``out`` as its
    batch finishes and logs its line; returns the results and the skipped files."""
    from lmac import figures as figures_lib
    warn = warn or (lambda msg: print(msg, file=sys.stderr, flush=True))
    os.makedirs(out, exist_ok=True)
    labels = list(explainer.labels)
    name = lambda k: labels[k] if k < len(labels) else f"class {k}"
    cfg = explainer.classifier.spec.audio.spectrogram
    rate = explainer.sample_rate
    size = max(1, min(batch_size, len(paths)))
    results, skipped = [], []
    for batch, bad in _batches(paths, unique_stems(paths), size, warn):
        skipped += bad
        if not batch:
            continue
        waves = [w for _, _, w, _ in batch]
        rates = [r for _, _, _, r in batch]
        pad = size - len(batch)                                 # one batch shape: no recompilation
        explanations = explainer.explain(waves + [waves[-1]] * pad, rates + [rates[-1]] * pad)[:len(batch)]
        for (path, stem, _, _), e in zip(batch, explanations):
            k = int(e.prediction)
            wav, wav_in, wav_out = explainer_lib.write_wavs(out, stem, e, rate)
            files = {"wav": wav, "masked_in": wav_in, "masked_out": wav_out}
            order = np.argsort(-e.probabilities)[:max(1, top_k)]
            result = ClipResult(path=path, stem=stem, label=name(k), probability=float(e.probabilities[k]),
                                top=[(name(int(j)), float(e.probabilities[j])) for j in order],
                                mask_mean=float(np.mean(e.mask)), probability_in=float(e.probabilities_in[k]),
                                probability_out=float(e.probabilities_out[k]), files=files)
            if figures:
                fig = figures_lib.mask_figure(e, cfg, f"{os.path.basename(path)}: predicted "
                                                      f"{result.label} ({result.probability:.2f})")
                files["png"] = figures_lib.save_figure(fig, os.path.join(out, f"{stem}.png"))
            results.append(result)
            log(result.line())
    return results, skipped


def write_index(out: str, results: list[ClipResult], skipped: list[Skipped], explainer_name: str) -> list[str]:
    """Writes ``index.md`` (table, pictures, skipped files) and ``explanations.json``; returns their paths."""
    rel = lambda p: os.path.relpath(p, out)
    lines = [f"# Explanations by `{explainer_name}`", "",
             "`.in.wav`: masked-in, what the explanation says the classifier used; `.out.wav`: masked-out, "
             "the rest. p in / p out: the predicted class's probability on the masked-in / masked-out input.", "",
             "| clip | predicted | p | mask mean | p in | p out | listen |", "|---|---|---|---|---|---|---|"]
    for r in results:
        listen = " · ".join(f"[{k}]({rel(r.files[f])})" for k, f in
                            (("clip", "wav"), ("in", "masked_in"), ("out", "masked_out")))
        lines.append(f"| {os.path.basename(r.path)} | {r.label} | {r.probability:.2f} | {r.mask_mean:.3f} | "
                     f"{r.probability_in:.2f} | {r.probability_out:.2f} | {listen} |")
    for r in results:
        if "png" in r.files:
            lines += ["", f"## {os.path.basename(r.path)}", "", f"![{r.stem}]({rel(r.files['png'])})"]
    if skipped:
        lines += ["", f"## Skipped ({len(skipped)})", ""] + [f"- {s.reason}" for s in skipped]
    index = os.path.join(out, "index.md")
    with open(index, "w") as f:
        f.write("\n".join(lines) + "\n")
    data = {r.stem: {r.label: {"path": r.path, "probability": r.probability, "mask_mean": r.mask_mean,
                               "probability_in": r.probability_in, "probability_out": r.probability_out,
                               "top": dict(r.top), "files": {k: rel(v) for k, v in r.files.items()}}}
            for r in results}
    data_path = os.path.join(out, "explanations.json")
    with open(data_path, "w") as f:
        json.dump({"explainer": explainer_name, "clips": data,
                   "skipped": {s.path: s.reason for s in skipped}}, f, indent=2)
    return [index, data_path]


def main(argv) -> int:
    from absl import flags
    FLAGS = flags.FLAGS
    if len(argv) > 1:
        print(f"unexpected arguments: {' '.join(argv[1:])}", file=sys.stderr)
        return 2
    quiet_logs(verbose=FLAGS["verbosity"].present)
    try:
        explainer = explainer_lib.load(FLAGS.explainer)
    except (FileNotFoundError, ValueError) as err:
        if not os.path.exists(FLAGS.explainer) and os.sep not in FLAGS.explainer:
            here = explainer_lib.BUNDLED_DIR
            bundled = sorted(d for d in os.listdir(here) if os.path.exists(os.path.join(here, d, "spec.json"))
                             and os.path.isdir(os.path.join(here, d, explainer_lib.CLASSIFIER_DIR)))
            err = (f"no such directory and no bundled explainer of that name "
                   f"(bundled explainers: {', '.join(bundled) or 'none'})")
        print(f"error: cannot load explainer {FLAGS.explainer!r}: {err}", file=sys.stderr)
        return 2
    paths = audio_paths(FLAGS.audio)
    if not paths:
        print(f"error: no audio files in {', '.join(FLAGS.audio)}", file=sys.stderr)
        return 1
    results, skipped = explain_files(explainer, paths, FLAGS.out, top_k=FLAGS.top_k,
                                     batch_size=FLAGS.batch_size, log=lambda s: print(s, flush=True))
    if results:
        write_index(FLAGS.out, results, skipped, FLAGS.explainer)
    note = f", {len(skipped)} skipped" if skipped else ""
    print(f"{len(results)} of {len(paths)} clips explained{note}.")
    if not results:
        return 1
    print(f"Files in {FLAGS.out.rstrip(os.sep) + os.sep}: index.md (table and pictures), per clip <stem>.wav "
          f"(as classified), <stem>.in.wav (what the classifier used), <stem>.out.wav (the rest), <stem>.png.")
    return 0


def _define_flags() -> None:
    from absl import flags
    flags.DEFINE_string("explainer", DEFAULT_EXPLAINER, "Explainer directory or bundled name.")
    flags.DEFINE_list("audio", [EXAMPLES], "Audio files and/or folders (searched recursively), comma-separated.")
    flags.DEFINE_string("out", "explanations", "Output folder.")
    flags.DEFINE_integer("top_k", 3, "Classes to print per clip.")
    flags.DEFINE_integer("batch_size", 8, "Clips per explanation batch (one compiled shape).")


if __name__ == "__main__":
    from absl import app
    _define_flags()
    app.run(main)
