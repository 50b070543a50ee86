r"""Listenable explanations of a classifier's or a CLAP's decisions: the main job.

    python -m lmac.explain                        # bundled examples, both bundled explainers, report.html
    python -m lmac.explain --explainer=converted/sb-lmac-esc50 --audio=clips/,dog.flac --out=expl/ --top_k=5
    python -m lmac.explain --explainer=soundscapes-small-lmac-zs --prompts="a beep,rain,a dog barking"
    python -m lmac.explain --explainer=DIR --model=converted/laion --prompts=concepts --concepts

``--explainer`` takes one or more explainers (comma-separated; with several, each writes into its
own ``--out/<name>/``). An **L-MAC** explainer classifies every clip with its classifier and
explains the predicted class; per clip (``<stem>`` = the file name without its extension):

- ``<stem>.wav``: the clip as the classifier heard it (resampled, normalised, padded or cropped);
- ``<stem>.in.wav``: masked-in, what the explanation says the classifier used;
- ``<stem>.out.wav``: masked-out, the rest;
- ``<stem>.png``: spectrogram | mask | masked-in spectrogram (:mod:`lmac.figures`);

plus ``index.md`` and ``explanations.json`` (``{clip: {explained class: {probability, mask_mean,
probability_in, probability_out, top, files}}}``). An **LMAC-ZS** explainer explains each clip for
text prompts (``--prompts``: see :mod:`lmac.explain_zs`) with the same files per prompt and
``explanations.json`` keyed ``{clip: {prompt: {mask_mean, similarity, ..., files}}}``. Then
``report.html`` (:mod:`lmac.report`) shows, per clip, every explanation's picture with players for
the clip and its masked-in and masked-out audio (with ``--concepts``, the clip's top concepts as
bars). One line is printed per clip and explainer.

``--audio`` takes files and folders (comma-separated or the flag repeated; folders are searched
recursively). A file that cannot be used (unreadable, empty, NaN) is skipped with one line
``lmac.explain: skipped <file>: <reason>`` on stderr (``clap_jax.cli_errors.Skips``; once, however
many explainers; ``--strict``: stop instead); exit status 0 when every clip was explained, 3 when
some were skipped, 1 when none could be (``clap_jax.cli_errors``). Clips go through each explainer in
batches of one shape (the last batch is padded), so each explanation compiles once.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Callable, Iterator

import numpy as np

from clap_jax import audio as audio_lib
from clap_jax import atomic, cli_errors, examples
from lmac import explainer as explainer_lib

DEFAULT_EXPLAINERS = ("soundscapes-lmac", "soundscapes-small-lmac-zs")
EXAMPLES = examples.EXAMPLES_DIR
# Python loggers of dependencies that log INFO lines while loading checkpoints.


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


def _batches(paths: list[str], stems: list[str], batch_size: int, skips: cli_errors.Skips) -> Iterator[list]:
    """Yields the good clips ``[(path, stem, wave, rate)]``, at most ``batch_size`` at a time; an
    unusable file goes to ``skips`` (named on stderr, or raised under ``--strict``)."""
    batch = []
    for path, stem in zip(paths, stems):
        try:
            wave, rate = audio_lib.read_audio(path)
        except Exception as err:  # noqa: BLE001 - any unusable file is reported and skipped
            skips(path, err)
            continue
        batch.append((path, stem, wave, rate))
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def explain_files(explainer: explainer_lib.Explainer, paths: list[str], out: str, *, top_k: int = 3,
                  batch_size: int = 8, figures: bool = True, log: Callable[[str], None] = print,
                  skips: cli_errors.Skips | None = None,
                  on_batch: Callable[[list[ClipResult]], None] | None = None) -> tuple[list[ClipResult], cli_errors.Skips]:
    """Explains ``paths`` in batches of one shape, writes every clip's files into ``out`` as its
    batch finishes, logs its line and calls ``on_batch(results so far)``; returns the results and
    ``skips`` (default: a new ``cli_errors.Skips("lmac.explain")``) with the unusable files."""
    from clap_jax import plots
    from lmac import figures as figures_lib
    skips = cli_errors.Skips("lmac.explain") if skips is None else skips
    os.makedirs(out, exist_ok=True)
    labels = list(explainer.labels)
    name = lambda k: labels[k] if k < len(labels) else f"class {k}"
    cfg = explainer.classifier.spec.audio.spectrogram
    rate = explainer.sample_rate
    size = max(1, min(batch_size, len(paths)))
    results = []
    for batch in _batches(paths, unique_stems(paths), size, skips):
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
                files["png"] = plots.save(fig, os.path.join(out, f"{stem}.png"))
            results.append(result)
            log(result.line())
        if on_batch:
            on_batch(results)
    return results, skips


def write_index(out: str, results: list[ClipResult], skipped: dict[str, str], explainer_name: str) -> list[str]:
    """Writes ``index.md`` (table, pictures, skipped files ``{path: reason}``) and ``explanations.json``;
    returns their paths."""
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
        lines += ["", f"## Skipped ({len(skipped)})", ""] + [f"- {p}: {why}" for p, why in skipped.items()]
    index = os.path.join(out, "index.md")
    atomic.write_text(index, "\n".join(lines) + "\n")
    data = {r.stem: {r.label: {"path": r.path, "probability": r.probability, "mask_mean": r.mask_mean,
                               "probability_in": r.probability_in, "probability_out": r.probability_out,
                               "top": dict(r.top), "files": {k: rel(v) for k, v in r.files.items()}}}
            for r in results}
    data_path = os.path.join(out, "explanations.json")
    atomic.write_json(data_path, {"explainer": explainer_name, "clips": data, "skipped": skipped})
    return [index, data_path]


def bundled_explainers() -> list[str]:
    """Names of the bundled explainer directories (L-MAC and LMAC-ZS)."""
    here, found = explainer_lib.BUNDLED_DIR, []
    for d in sorted(os.listdir(here)):
        path = os.path.join(here, d, "spec.json")
        if os.path.exists(path):
            with open(path) as f:
                if "explainer/" in str(json.load(f).get("format", "")):
                    found.append(d)
    return found


def default_explainers(model: str | None) -> list[str]:
    """The explainers of a bare command: :data:`DEFAULT_EXPLAINERS`, the LMAC-ZS one replaced by the
    bundled LMAC-ZS decoder trained for ``model`` (a bundled CLAP's name) when there is one."""
    names = list(DEFAULT_EXPLAINERS)
    if model is None or model == "soundscapes-small":
        return names
    for name in bundled_explainers():
        with open(os.path.join(explainer_lib.BUNDLED_DIR, name, "spec.json")) as f:
            spec = json.load(f)
        if "zs-explainer/" in spec.get("format", "") and spec.get("model") == model:
            return [names[0], name]
    return names


def load_explainers(names: list[str], model: str | None):
    """``([(name, explainer)], None)``, or ``(None, one-line error)``."""
    loaded = []
    for name in names:
        try:
            loaded.append((name, explainer_lib.load(name, model=model)))
        except (FileNotFoundError, ValueError) as err:
            if not os.path.exists(name) and os.sep not in name:
                err = (f"no such directory and no bundled explainer of that name "
                       f"(bundled explainers: {', '.join(bundled_explainers()) or 'none'})")
            return None, f"error: cannot load explainer {name!r}: {err}"
    return loaded, None


def _prompt_mode(flag: list[str], labels: list[str], template: str):
    """``--prompts`` -> what :func:`lmac.explain_zs.explain_clips` takes."""
    if flag == ["labels"]:
        return ("labels", [template.format(label) for label in labels])
    if flag == ["concepts"]:
        return ("concepts", None)
    return [p for p in flag if p.strip()]


def main(argv) -> int:
    from absl import flags
    from lmac import explain_zs, report, zs_explainer
    FLAGS = flags.FLAGS
    if len(argv) > 1:
        print(f"unexpected arguments: {' '.join(argv[1:])}", file=sys.stderr)
        return 2
    names = FLAGS.explainer if FLAGS["explainer"].present else default_explainers(FLAGS.model)
    loaded, error = load_explainers(names, FLAGS.model)
    if error:
        print(error, file=sys.stderr)
        return 2
    paths = cli_errors.audio_paths(FLAGS.audio)          # missing entries: one line, exit 1 (cli_errors.guard)
    prompts = _prompt_mode(FLAGS.prompts, FLAGS.labels, FLAGS.template)
    if not prompts:
        print("error: --prompts is empty", file=sys.stderr)
        return 2
    skips = cli_errors.Skips("lmac.explain", FLAGS.strict)    # shared: a bad file is named once
    sections, explained = {}, set()
    for name, explainer in loaded:
        out = FLAGS.out if len(loaded) == 1 else os.path.join(FLAGS.out, os.path.basename(name.rstrip(os.sep)))
        os.makedirs(out, exist_ok=True)
        size = max(1, min(FLAGS.batch_size, len(paths)))
        print(f"{name}:", flush=True)
        # explanations.json (and index.md) are rewritten, whole, after every batch: a killed run
        # leaves every finished clip listed with its files.
        if isinstance(explainer, zs_explainer.ZsExplainer):
            def save(results, out=out, name=name):
                atomic.write_json(os.path.join(out, "explanations.json"), {
                    "explainer": name, "clips": explain_zs.as_json(results, out), "skipped": skips.reasons()})
            results = explain_zs.run_batches(
                explainer, _batches(paths, unique_stems(paths), size, skips), out, prompts=prompts,
                top_k=FLAGS.top_k,
                concepts=FLAGS.concepts or prompts == ("concepts", None), size=size,
                log=lambda line: print("  " + line, flush=True), on_batch=save)
            save(results)
            cards = explain_zs.report_clips(results)
        else:
            save = lambda results, out=out, name=name: write_index(out, results, skips.reasons(), name)
            results, _ = explain_files(explainer, paths, out, top_k=FLAGS.top_k, batch_size=FLAGS.batch_size,
                                       log=lambda line: print("  " + line, flush=True), skips=skips,
                                       on_batch=save)
            save(results)
            cards = lmac_report_clips(results)
        for card in cards:
            sections.setdefault(card.name, []).append((name, card))
        explained |= {r.path for r in results}
    note = f", {len(skips)} skipped" if len(skips) else ""
    print(f"{len(explained)} of {len(paths)} clips explained{note}.")
    if not explained:
        return cli_errors.FAILED
    clips = [report.ClipReport(name=clip, audio=parts[0][1].audio, concepts=next(
                 (c.concepts for _, c in parts if c.concepts), None),
                 targets=[dataclasses.replace(t, name=f"{t.name}  [{os.path.basename(n.rstrip(os.sep))}]")
                          for n, c in parts for t in c.targets]) for clip, parts in sections.items()]
    page = report.write_report(FLAGS.out, "Listenable explanations", clips)
    print(f"Open {page}: per clip and explained class or prompt, the mask over the spectrogram and players "
          f"for the clip, the masked-in audio (what the model used) and the masked-out audio (the rest).")
    return skips.exit_code(len(explained))


def lmac_report_clips(results: list[ClipResult]):
    """:mod:`lmac.report` sections for L-MAC results (one card: the predicted class)."""
    from lmac import report
    return [report.ClipReport(name=os.path.basename(r.path), audio=r.files["wav"], targets=[report.TargetReport(
        name=r.label, score=r.probability, score_name="probability", mask_mean=r.mask_mean,
        image=r.files.get("png", ""), masked_in=r.files["masked_in"], masked_out=r.files["masked_out"],
        extra={"p masked-in": r.probability_in, "p masked-out": r.probability_out})]) for r in results]


def _define_flags() -> None:
    from absl import flags
    from clap_jax.examples import EVERYDAY_LABELS
    from lmac.explain_zs import DEFAULT_TEMPLATE
    flags.DEFINE_list("explainer", list(DEFAULT_EXPLAINERS), "Explainer directories or bundled names "
                      "(L-MAC and/or LMAC-ZS), comma-separated.")
    flags.DEFINE_string("model", None, "LMAC-ZS: the CLAP directory, if not the one the explainer names.")
    cli_errors.define_input_flags([EXAMPLES], noun="audio file")
    flags.DEFINE_list("prompts", ["labels"], "LMAC-ZS prompts: 'labels' (each clip's top_k labels and the least "
                      "similar one), 'concepts' (each clip's top_k sparse.decompose concepts) or a comma-separated list.")
    flags.DEFINE_list("labels", list(EVERYDAY_LABELS), "Labels for --prompts=labels.")
    flags.DEFINE_string("template", DEFAULT_TEMPLATE, "Prompt template for labels; {} is the label.")
    flags.DEFINE_bool("concepts", False, "LMAC-ZS: add each clip's top concepts (sparse.decompose) to the report.")
    flags.DEFINE_string("out", "explanations", "Output folder.")
    flags.DEFINE_integer("top_k", 3, "Classes to print per clip (L-MAC); prompts or concepts per clip (LMAC-ZS).")
    flags.DEFINE_integer("batch_size", 8, "Clips per explanation batch (one compiled shape).")


if __name__ == "__main__":
    from clap_jax import runtime
    _define_flags()
    runtime.run(cli_errors.guard("lmac.explain")(main))
