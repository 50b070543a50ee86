r"""A self-contained HTML page of listenable explanations: players, pictures and scores per clip.

    clips [ClipReport(name, audio, targets [TargetReport(name, score, ..., image, masked_in, masked_out)],
                      concepts [(concept, weight)])]  ->  write_report(out_dir, title, clips)  ->  out_dir/report.html

Data layout (one :class:`ClipReport` per analysed clip, one :class:`TargetReport` per explained
target of it: a prompt for LMAC-ZS, a class for L-MAC):

- ``ClipReport.audio``: the clip as analysed (WAV); ``concepts`` (optional): its top concepts from
  a sparse decomposition, drawn as CSS bars sorted by weight (largest first; bar length ∝ |weight|
  re the largest); ``note`` (optional): one line of text under the clip's name.
- ``TargetReport.score`` with ``score_name`` ("similarity", "probability", ...), ``mask_mean`` in
  [0, 1], ``image``: a PNG of the spectrogram with the mask (:mod:`lmac.figures`), ``masked_in`` /
  ``masked_out``: WAVs of what the mask keeps / removes, ``extra`` (optional): further numbers
  shown as small text (e.g. ``{"probability in": 0.91, "probability out": 0.08}``).

Files are referenced, not embedded: every path is written relative to ``out_dir``
(``os.path.relpath``, so files elsewhere work too as long as the page and they move together) and
URL-quoted. All text is HTML-escaped. The page has its CSS in a ``<style>`` block, no JavaScript,
no timestamps: the same inputs give the same bytes. Audio players use ``preload="metadata"`` so a
browser shows durations without loading whole files.
"""
from __future__ import annotations

import dataclasses
import html
import os
import urllib.parse

REPORT_NAME = "report.html"

EXPLANATION = (
    "Each explanation is a mask over the clip's spectrogram (time × frequency, values in [0, 1]). "
    "<b>Masked-in</b> is the clip with the mask applied: the part of the sound the explanation says the "
    "model relied on for that target. <b>Masked-out</b> is the rest (the clip times one minus the mask). "
    "A faithful explanation keeps the target recognisable in the masked-in audio and removes it from the "
    "masked-out audio. The mask mean is the fraction of the spectrogram kept.")

CSS = """
:root { --fg: #1d232b; --muted: #5b6673; --line: #d9dee4; --card: #ffffff; --bg: #f3f5f7; --bar: #3a78c2; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto,
       "DejaVu Sans", sans-serif; color: var(--fg); background: var(--bg); }
header { max-width: 1400px; margin: 0 auto 20px; }
h1 { font-size: 26px; margin: 0 0 8px; }
header p { margin: 0; max-width: 900px; color: var(--muted); }
section.clip { max-width: 1400px; margin: 0 auto 28px; padding: 18px 20px; background: #e9edf1;
               border: 1px solid var(--line); border-radius: 10px; }
h2 { font-size: 19px; margin: 0 0 6px; word-break: break-all; }
.note { margin: 0 0 8px; color: var(--muted); }
.original { display: flex; align-items: center; gap: 12px; margin: 6px 0 12px; }
.label { font-size: 13px; color: var(--muted); min-width: 78px; }
audio { height: 36px; width: 100%; max-width: 420px; }
.concepts { margin: 0 0 14px; padding: 10px 14px; background: var(--card); border: 1px solid var(--line);
            border-radius: 8px; max-width: 640px; }
.concepts h3 { font-size: 14px; margin: 0 0 6px; }
.concept { display: grid; grid-template-columns: 180px 1fr 56px; align-items: center; gap: 8px; font-size: 13px;
           margin: 3px 0; }
.concept .name { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.concept .track { background: #e6eaee; border-radius: 3px; height: 12px; }
.concept .fill { background: var(--bar); border-radius: 3px; height: 12px; }
.concept .fill.negative { background: #c2553a; }
.concept .value { text-align: right; font-variant-numeric: tabular-nums; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 16px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.card h3 { font-size: 16px; margin: 0 0 4px; word-break: break-word; }
.scores { font-size: 14px; margin: 0 0 4px; font-variant-numeric: tabular-nums; }
.extra { font-size: 12px; color: var(--muted); margin: 0 0 6px; font-variant-numeric: tabular-nums; }
.card img { display: block; width: 100%; height: auto; margin: 6px 0 8px; border: 1px solid var(--line);
            background: #fafafa; }
.player { display: flex; align-items: center; gap: 10px; margin: 4px 0; }
"""


@dataclasses.dataclass
class TargetReport:
    """One explained target of a clip (a prompt or a class) and the files written for it."""
    name: str
    score: float
    score_name: str
    mask_mean: float
    image: str
    masked_in: str
    masked_out: str
    extra: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ClipReport:
    """One analysed clip: its audio, its explained targets, optionally its top concepts and a note."""
    name: str
    audio: str
    targets: list[TargetReport]
    concepts: list[tuple[str, float]] | None = None
    note: str | None = None


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _num(x: float) -> str:
    return f"{float(x):.3f}"


def _src(path: str, out_dir: str) -> str:
    """``path`` relative to ``out_dir`` as an escaped, URL-quoted attribute value."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(out_dir)).replace(os.sep, "/")
    return _e(urllib.parse.quote(rel))


def _player(label: str, path: str, out_dir: str, cls: str = "player") -> str:
    return (f'<div class="{cls}"><span class="label">{_e(label)}</span>'
            f'<audio controls preload="metadata" src="{_src(path, out_dir)}"></audio></div>')


def _concepts(concepts: list[tuple[str, float]]) -> list[str]:
    """Horizontal CSS bars, largest weight first (ties by name); lengths ∝ |weight| re the largest."""
    ordered = sorted(((str(n), float(w)) for n, w in concepts), key=lambda nw: (-nw[1], nw[0]))
    top = max((abs(w) for _, w in ordered), default=0.0) or 1.0
    lines = ['<div class="concepts"><h3>Top concepts</h3>']
    for name, w in ordered:
        neg = " negative" if w < 0 else ""
        lines.append(f'<div class="concept"><span class="name" title="{_e(name)}">{_e(name)}</span>'
                     f'<span class="track"><span class="fill{neg}" style="display:block;width:'
                     f'{100.0 * abs(w) / top:.1f}%"></span></span><span class="value">{_num(w)}</span></div>')
    lines.append("</div>")
    return lines


def _card(t: TargetReport, clip: str, out_dir: str) -> list[str]:
    lines = ['<div class="card">', f"<h3>{_e(t.name)}</h3>",
             f'<p class="scores">{_e(t.score_name)} <b>{_num(t.score)}</b> · mask mean '
             f"<b>{_num(t.mask_mean)}</b></p>"]
    if t.extra:
        lines.append('<p class="extra">' + " · ".join(f"{_e(k)} {_num(v)}" for k, v in t.extra.items()) + "</p>")
    image = _src(t.image, out_dir)
    lines += [f'<a href="{image}" title="full size"><img src="{image}" '
              f'alt="{_e(f"{clip}: spectrogram and mask for {t.name}")}" loading="eager"></a>',
              _player("masked-in", t.masked_in, out_dir), _player("masked-out", t.masked_out, out_dir), "</div>"]
    return lines


def _clip(c: ClipReport, out_dir: str) -> list[str]:
    lines = ['<section class="clip">', f"<h2>{_e(c.name)}</h2>"]
    if c.note:
        lines.append(f'<p class="note">{_e(c.note)}</p>')
    lines.append(_player("original", c.audio, out_dir, cls="original"))
    if c.concepts:
        lines += _concepts(c.concepts)
    lines.append('<div class="cards">')
    for t in c.targets:
        lines += _card(t, c.name, out_dir)
    lines += ["</div>", "</section>"]
    return lines


def render(out_dir: str, title: str, clips: list[ClipReport]) -> str:
    """The page's HTML text, paths relative to ``out_dir`` (nothing is written)."""
    lines = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{_e(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
             f"<header><h1>{_e(title)}</h1><p>{EXPLANATION}</p></header>", "<main>"]
    for c in clips:
        lines += _clip(c, out_dir)
    lines += ["</main>", "</body>", "</html>"]
    return "\n".join(lines) + "\n"


def write_report(out_dir: str, title: str, clips: list[ClipReport]) -> str:
    """Writes ``out_dir/report.html`` (see the module docstring) and returns its path."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, REPORT_NAME)
    with open(path, "w", encoding="utf-8") as f:
        f.write(render(out_dir, title, clips))
    return path
