"""`lmac.report`: the HTML page's references and escaping (parsed), and the page in a real browser
(headless Chromium, Debian package ``chromium``): every picture decodes, every player reads its
WAV's duration, and a screenshot is taken (``screenshot.png`` next to ``report.html``).

The browser check needs no Python packages: a copy of the page with a small script appended waits
for ``load`` / ``loadedmetadata`` on every ``<img>`` / ``<audio>`` and writes what it saw as JSON
into the DOM, which ``chromium --dump-dom`` prints. Skipped when no chromium binary is installed.
"""
from __future__ import annotations

import html
import html.parser
import json
import os
import re
import shutil
import subprocess
import urllib.parse

import numpy as np
import pytest
import soundfile as sf

from lmac import report

RATE = 16000
BAD_NAME = 'beep <&> "quoted"'
HARNESS = """<script>
(() => {
  const media = [...document.querySelectorAll("img, audio")];
  const seen = new Map();
  const report = () => {
    if (document.getElementById("harness-result")) return;
    const out = document.createElement("pre");
    out.id = "harness-result";
    out.textContent = JSON.stringify(media.map((el) => ({
      tag: el.tagName.toLowerCase(), src: el.getAttribute("src"), event: seen.get(el) || "none",
      width: el.naturalWidth || 0, duration: el.tagName === "AUDIO" ? String(el.duration) : "",
    })));
    document.body.appendChild(out);
  };
  const done = (el, event) => { seen.set(el, event); if (seen.size === media.length) report(); };
  for (const el of media) {
    if (el.tagName === "IMG") {
      if (el.complete) done(el, el.naturalWidth > 0 ? "load" : "error");
      else { el.addEventListener("load", () => done(el, "load"));
             el.addEventListener("error", () => done(el, "error")); }
    } else {
      if (el.readyState >= 1) done(el, "loadedmetadata");
      else { el.addEventListener("loadedmetadata", () => done(el, "loadedmetadata"));
             el.addEventListener("error", () => done(el, "error")); }
    }
  }
  setTimeout(report, 8000);
})();
</script>
"""


def _wav(path: str, freq: float) -> str:
    t = np.arange(RATE) / RATE
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), RATE)
    return path


def _png(path: str, seed: int) -> str:
    """A small spectrogram-with-mask-like picture (matplotlib, Agg)."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    rng = np.random.default_rng(seed)
    fig, ax = plt.subplots(figsize=(6, 2.4), dpi=80, constrained_layout=True)
    ax.imshow(rng.random((64, 100)), origin="lower", aspect="auto", cmap="magma")
    ax.contour(np.outer(np.hanning(64), np.hanning(100)), levels=[0.5], colors="cyan")
    ax.set(xlabel="time (s)", ylabel="frequency (kHz)")
    fig.savefig(path)
    plt.close(fig)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """2 clips x 2 targets; media in a sub-folder, one clip's audio outside the output folder, a file
    name with a space; the first clip has concepts. Returns (out_dir, report path, clips)."""
    root = tmp_path_factory.mktemp("report")
    out, media, elsewhere = root / "out", root / "out" / "media files", root / "clips"
    for d in (media, elsewhere):
        d.mkdir(parents=True)
    clips = []
    for i, (clip, prompts) in enumerate([("dog bark.wav", (BAD_NAME, "a dog barking")),
                                          ("siren.wav", ("a siren", "traffic noise"))]):
        audio = _wav(str((elsewhere if i == 0 else media) / clip), 300 + 200 * i)
        targets = []
        for j, prompt in enumerate(prompts):
            stem = f"{i}-{j}"
            targets.append(report.TargetReport(
                name=prompt, score=0.31 - 0.1 * j, score_name="similarity", mask_mean=0.2 + 0.1 * j,
                image=_png(str(media / f"{stem}.png"), 2 * i + j),
                masked_in=_wav(str(media / f"{stem}.in.wav"), 500 + 100 * j),
                masked_out=_wav(str(media / f"{stem}.out.wav"), 700 + 100 * j),
                extra={"probability in": 0.9 - 0.2 * j, "probability out": 0.1 + 0.05 * j}))
        concepts = [("rain", 0.12), ("dog barking", 0.61), ("a <b>bold</b> concept", 0.3)] if i == 0 else None
        clips.append(report.ClipReport(name=clip, audio=audio, targets=targets, concepts=concepts,
                                       note="zero-shot: top prompts" if i == 0 else None))
    path = report.write_report(str(out), "LMAC-ZS <explanations> & prompts", clips)
    return str(out), path, clips


class _Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.media: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("img", "audio"):
            self.media.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_report_references_and_escaping(built):
    out, path, clips = built
    assert path == os.path.join(out, "report.html")
    with open(path, encoding="utf-8") as f:
        page = f.read()
    parser = _Page()
    parser.feed(page)
    imgs = [a for t, a in parser.media if t == "img"]
    audios = [a for t, a in parser.media if t == "audio"]
    assert len(imgs) == 4 and len(audios) == 2 + 4 * 2
    for attrs in imgs + audios:
        src = attrs["src"]
        assert not os.path.isabs(src) and "://" not in src, src
        assert os.path.isfile(os.path.join(out, urllib.parse.unquote(src))), src
    assert all(a.get("alt") for a in imgs)
    assert all("controls" in a and a.get("preload") == "metadata" for a in audios)
    assert any(a["src"].startswith("../clips/") for a in audios)          # outside out_dir: relative
    # Text is escaped: the raw markup never carries it, the parsed text does.
    assert "<&>" not in page and "<explanations>" not in page and "<b>bold</b>" not in page
    text = "".join(parser.text)
    assert BAD_NAME in text and "LMAC-ZS <explanations> & prompts" in text and "a <b>bold</b> concept" in text
    assert any(BAD_NAME in a["alt"] for a in imgs)
    # Concepts sorted by weight, the largest first; the second clip has none.
    names = re.findall(r'<span class="name" title="[^"]*">([^<]*)</span>', page)
    assert names == ["dog barking", "a &lt;b&gt;bold&lt;/b&gt; concept", "rain"]
    assert page.count('class="concepts"') == 1
    assert report.render(out, "LMAC-ZS <explanations> & prompts", clips) == page      # deterministic
    assert "<script" not in page


def _chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)


def _run_chromium(binary: str, profile: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--mute-audio", "--autoplay-policy=no-user-gesture-required",
           f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_report_in_browser(built, tmp_path):
    binary = _chromium()
    if binary is None:
        pytest.skip("no chromium binary (chromium or chromium-browser) on PATH; install it with "
                    "`apt-get install -y chromium`")
    out, path, _ = built
    with open(path, encoding="utf-8") as f:
        page = f.read()
    harness = os.path.join(out, "_harness.html")             # beside the page: same relative paths
    with open(harness, "w", encoding="utf-8") as f:
        f.write(page.replace("</body>", HARNESS + "</body>"))
    proc = _run_chromium(binary, str(tmp_path / "profile-dom"), "--virtual-time-budget=10000", "--dump-dom",
                         "file://" + urllib.parse.quote(os.path.abspath(harness)))
    found = re.search(r'<pre id="harness-result">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"no harness result in the dumped DOM (rc {proc.returncode}): {proc.stderr[-2000:]}"
    results = json.loads(html.unescape(found.group(1)))
    assert len(results) == 4 + 10
    for r in results:
        if r["tag"] == "img":
            assert r["event"] == "load" and r["width"] > 0, r
        else:
            assert r["event"] == "loadedmetadata", r
            assert np.isfinite(float(r["duration"])) and float(r["duration"]) == pytest.approx(1.0, abs=0.01), r

    shot = os.path.join(out, "screenshot.png")
    proc = _run_chromium(binary, str(tmp_path / "profile-shot"), f"--screenshot={shot}", "--window-size=1280,2000",
                         "--hide-scrollbars", "--virtual-time-budget=5000", "file://" + urllib.parse.quote(path))
    assert os.path.isfile(shot), f"no screenshot (rc {proc.returncode}): {proc.stderr[-2000:]}"
    with open(shot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(shot) > 20_000
