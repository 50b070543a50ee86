"""Commands over many inputs with a corpus of malformed audio (issue items 1, 4, 6, 9):
``clap_jax.classify``, ``sparse.decompose``, ``sparse.evaluate``, ``clap_jax.extract``,
``lmac.explain`` and ``lmac.evaluate`` skip each bad file with one line naming it, count it,
write every good file's result as it is produced (a SIGKILL in the middle leaves every
finished record readable), stop with ``--strict``, refuse user mistakes in one line before any
work, and never print a traceback. (Training readers: tests/test_train_data.py.)"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

import clap_jax

BUNDLED = os.path.join(os.path.dirname(clap_jax.__file__), "bundled", "soundscapes-small", "spec.json")
pytestmark = pytest.mark.skipif(not os.path.exists(BUNDLED), reason="bundled soundscapes-small not installed")
SR = 16000
GOOD = ["tone.wav", "noise.flac", "stereo.wav", "with, comma.wav"]
SILENT = ["silent.wav", "antiphase.wav"]                        # good, but flagged near-silent
BAD = {"empty.wav": "empty file", "header_only.wav": "zero-length", "truncated.wav": "cannot decode",
       "nan.wav": "NaN/inf", "inf.wav": "NaN/inf", "huge.wav": "samples reach 1e+18",
       "text.wav": "cannot decode", "random.wav": "cannot decode", "zero.mp3": "empty file"}


def write_corpus(root) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    tone = (0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    os.makedirs(root, exist_ok=True)
    sf.write(root / "tone.wav", tone, SR)
    sf.write(root / "noise.flac", (0.2 * rng.standard_normal(SR)).astype(np.float32), SR)
    sf.write(root / "stereo.wav", np.stack([tone, 0.5 * tone], 1), SR)
    sf.write(root / "with, comma.wav", tone[::-1].copy(), SR)
    sf.write(root / "silent.wav", np.zeros(SR, np.float32), SR)
    sf.write(root / "antiphase.wav", np.stack([tone, -tone], 1), SR, subtype="FLOAT")
    (root / "empty.wav").write_bytes(b"")
    sf.write(root / "header_only.wav", np.zeros((0, 1), np.float32), SR)
    (root / "truncated.wav").write_bytes((root / "tone.wav").read_bytes()[:30])
    sf.write(root / "nan.wav", np.full(SR, np.nan, np.float32), SR, subtype="FLOAT")
    sf.write(root / "inf.wav", np.full(SR, np.inf, np.float32), SR, subtype="FLOAT")
    sf.write(root / "huge.wav", np.full(SR, 1e18, np.float32), SR, subtype="FLOAT")
    (root / "text.wav").write_text("this is not audio\n" * 20)
    (root / "random.wav").write_bytes(rng.bytes(6000))
    (root / "zero.mp3").write_bytes(b"")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    write_corpus(root / "clips")
    return root


def run(*args, timeout=600):
    proc = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def skipped_lines(stderr: str, prog: str) -> dict[str, str]:
    out = {}
    for line in stderr.splitlines():
        if f"{prog}: skipped " in line:
            rest = line.split(f"{prog}: skipped ", 1)[1]
            path, reason = rest.split(": ", 1)
            out[os.path.basename(path)] = reason
    return out


def check_skips(stderr: str, prog: str, noun: str, done: int) -> None:
    skipped = skipped_lines(stderr, prog)
    assert set(skipped) == set(BAD), stderr
    for name, why in BAD.items():
        assert why in skipped[name], (name, skipped[name])
    assert f"{prog}: {done} of {done + len(BAD)} {noun} done, {len(BAD)} skipped" in stderr, stderr


def test_classify_skips_bad_files_and_keeps_the_good(corpus):
    extra = corpus / "clips" / "with, comma.wav"                 # a comma in a name: taken whole
    proc = run("clap_jax.classify", f"--audio={corpus / 'clips'}", f"--audio={extra}", "--top_k=2")
    assert proc.returncode == 3, proc.stderr                    # some skipped
    lines = {line.split(": ", 1)[0]: line for line in proc.stdout.splitlines()}
    assert set(lines) == set(GOOD + SILENT), proc.stdout
    assert proc.stdout.count("with, comma.wav:") == 2
    for name in SILENT:
        assert lines[name].endswith("[near-silent]")
        assert f"clap_jax.classify: warning: {corpus / 'clips' / name}: near-silent" in proc.stderr
    assert not any(lines[name].endswith("[near-silent]") for name in GOOD)
    check_skips(proc.stderr, "clap_jax.classify", "files", len(GOOD + SILENT) + 1)


def test_classify_strict_and_all_bad_and_user_errors(corpus, tmp_path):
    proc = run("clap_jax.classify", f"--audio={corpus / 'clips'}", "--strict")
    assert proc.returncode == 1 and proc.stdout == ""
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "empty.wav: empty file (0 bytes) (stopped by --strict)" in errors[0], proc.stderr
    bad = [str(corpus / "clips" / name) for name in ("text.wav", "nan.wav")]
    proc = run("clap_jax.classify", f"--audio={','.join(bad)}")
    assert proc.returncode == 1 and "0 of 2 files done, 2 skipped" in proc.stderr
    proc = run("clap_jax.classify", f"--audio={tmp_path / 'missing.wav'}")
    assert proc.returncode == 1 and f"clap_jax.classify: error: {tmp_path / 'missing.wav'}: no such audio file" \
        in proc.stderr


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in open(path)]


def test_decompose_skips_bad_files_and_streams_the_good(corpus, tmp_path):
    out = tmp_path / "concepts.jsonl"
    proc = run("sparse.decompose", f"--audio={corpus / 'clips'}", f"--out={out}", "--center=false",
               "--batch_size=4", f"--cache_dir={corpus / 'cache'}")
    assert proc.returncode == 3, proc.stderr
    recs = read_jsonl(out)
    assert sorted(os.path.basename(r["key"]) for r in recs) == sorted(GOOD + SILENT)
    assert all(isinstance(r["converged"], bool) and r["top"] for r in recs)
    assert {os.path.basename(r["key"]) for r in recs if r["near_silent"]} == set(SILENT)
    check_skips(proc.stderr, "sparse.decompose", "clips", len(GOOD + SILENT))
    assert not [p for p in os.listdir(tmp_path) if p != "concepts.jsonl"]            # no stray .tmp
    strict = run("sparse.decompose", f"--audio={corpus / 'clips'}", f"--out={tmp_path / 'strict.jsonl'}",
                 "--center=false", "--strict", f"--cache_dir={corpus / 'cache'}")
    assert strict.returncode == 1 and "(stopped by --strict)" in strict.stderr


def test_decompose_user_errors_are_one_line_before_any_work(corpus, tmp_path):
    clips = f"--audio={corpus / 'clips'}"
    for out, why in [(tmp_path / "missing" / "dir" / "x.jsonl", "does not exist"), (tmp_path, "is a directory")]:
        proc = run("sparse.decompose", clips, f"--out={out}")
        errors = [line for line in proc.stderr.splitlines() if "error:" in line]
        assert proc.returncode == 1 and len(errors) == 1 and f"--out={out}" in errors[0] and why in errors[0]
        assert "skipped" not in proc.stderr                     # nothing was read
    proc = run("sparse.decompose", clips, "--lam=-1")
    assert proc.returncode == 1 and "sparse.decompose: error: --lam must be a number >= 0" in proc.stderr
    assert os.listdir(tmp_path) == []


def many_clips(root, n=40):
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        sf.write(root / f"clip{i:02d}.wav", (0.2 * rng.standard_normal(SR)).astype(np.float32), SR)
    return root


def kill_when(args, ready, stdout=None, timeout=300):
    """Runs ``python -m args``, SIGKILLs it as soon as ``ready()`` (polled), returns once dead;
    fails if it finished on its own (then nothing was tested)."""
    proc = subprocess.Popen([sys.executable, "-m", *args], stdout=stdout or subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"{args[0]} finished before it was killed"


def finished_lines(path) -> list[str]:
    """Complete lines of a file a killed process was writing (a last partial line dropped)."""
    text = path.read_text() if path.exists() else ""
    return text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]


def test_a_killed_decomposition_keeps_every_finished_record(tmp_path, corpus):
    clips = many_clips(tmp_path / "many")
    out = tmp_path / "partial.jsonl"
    kill_when(["sparse.decompose", f"--audio={clips}", f"--out={out}", "--center=false", "--batch_size=2",
               f"--cache_dir={corpus / 'cache'}"], lambda: len(finished_lines(out)) >= 4)
    finished = finished_lines(out)
    assert 4 <= len(finished) < 40                                  # killed in the middle
    for line in finished:
        rec = json.loads(line)
        assert rec["key"].startswith(str(clips)) and rec["top"] and "converged" in rec


def test_a_killed_classification_keeps_every_printed_line(tmp_path):
    clips = many_clips(tmp_path / "many")
    out = tmp_path / "stdout.txt"
    with open(out, "w") as f:
        kill_when(["clap_jax.classify", f"--audio={clips}", "--batch_size=2"],
                  lambda: len(finished_lines(out)) >= 4, stdout=f)
    finished = finished_lines(out)
    assert 4 <= len(finished) < 40
    for line in finished:
        name, top = line.split(": ", 1)
        assert name.startswith("clip") and name.endswith(".wav") and len(top.split(", ")) == 3, line


@pytest.mark.parametrize("explainer", ["soundscapes-lmac", "soundscapes-small-lmac-zs"])
def test_a_killed_explanation_run_keeps_every_finished_clip(tmp_path, explainer):
    """explanations.json is rewritten whole after every batch: killed in the middle, it parses
    and every clip it lists has its files on disk, readable."""
    clips = many_clips(tmp_path / "many", 24)
    out = tmp_path / "explained"

    def listed():
        try:
            return len(json.loads((out / "explanations.json").read_text())["clips"])
        except (OSError, ValueError):
            return 0
    kill_when(["lmac.explain", f"--explainer={explainer}", f"--audio={clips}", f"--out={out}", "--batch_size=2",
               "--prompts=rain,a beep"], lambda: listed() >= 4)
    data = json.loads((out / "explanations.json").read_text())
    assert 4 <= len(data["clips"]) < 24
    for stem, entries in data["clips"].items():
        assert stem.startswith("clip")
        for entry in entries.values():
            for rel in entry["files"].values():
                path = out / rel
                if path.suffix == ".wav":
                    assert sf.info(str(path)).frames > 0, path
                else:
                    assert path.stat().st_size > 0, path


def test_a_killed_evaluation_keeps_every_finished_protocol(tmp_path):
    """lmac.evaluate rewrites results.json after each protocol: killed during the second, the
    first protocol's table is there, whole, for every method."""
    from test_evaluate import _tiny_explainer
    explainer = _tiny_explainer(str(tmp_path))
    clips = many_clips(tmp_path / "many", 40)
    out = tmp_path / "eval"
    kill_when(["lmac.evaluate", f"--explainer={explainer}", "--dataset=folder", f"--root={clips}", "--clips=0",
               "--methods=lmac,ig", "--protocols=in_domain,white_noise,speech", "--sanity_clips=8",
               "--batch_size=4", f"--out={out}"], lambda: (out / "results.json").exists())
    results = json.loads((out / "results.json").read_text())
    assert "in_domain" in results and "speech" not in results
    for name in ("lmac", "ig"):
        assert results["in_domain"][name]["AI"] is not None and "Fid-In" in results["in_domain"][name]


def test_sparse_evaluate_skips_bad_clips_of_a_folder_dataset(corpus, tmp_path):
    """Two class folders: the malformed corpus and two good clips. The bad clips are named,
    counted and listed in results.json, the evaluation runs on the rest; a second run (embeddings
    from the cache) names them again."""
    import shutil
    root = tmp_path / "classes"
    shutil.copytree(corpus / "clips", root / "corpus")
    os.makedirs(root / "tones")
    for name in ("tone.wav", "noise.flac"):
        shutil.copy(corpus / "clips" / name, root / "tones" / name)
    args = ("sparse.evaluate", "--dataset=folder", f"--root={root}", "--lams=0.05", "--l0_fraction=0",
            f"--cache_dir={tmp_path / 'cache'}", f"--out={tmp_path / 'out'}")
    for _ in range(2):
        proc = run(*args)
        assert proc.returncode == 3, proc.stderr
        skipped = skipped_lines(proc.stderr, "sparse.evaluate")
        assert set(skipped) == set(BAD), proc.stderr
        for name, why in BAD.items():
            assert why in skipped[name], (name, skipped[name])
        good = len(GOOD + SILENT) + 2
        assert f"sparse.evaluate: {good} of {good + len(BAD)} clips done, {len(BAD)} skipped" in proc.stderr
        result = json.loads((tmp_path / "out" / "results.json").read_text())
        assert result["clips"] == good and {os.path.basename(s["clip"]) for s in result["skipped"]} == set(BAD)
        assert "accuracy" in (tmp_path / "out" / "report.md").read_text()


def test_extract_skips_bad_files_and_lists_them_in_the_manifest(corpus, tmp_path):
    from clap_jax import extract, shards
    out = tmp_path / "emb"
    proc = run("clap_jax.extract", "--dataset=folder", f"--root={corpus / 'clips'}", f"--out={out}",
               "--shard_size=3", "--batch_size=2")
    assert proc.returncode == 3, proc.stderr
    skipped = skipped_lines(proc.stderr, "clap_jax.extract")
    assert set(skipped) == set(BAD)
    manifest = shards.read_json(str(out / "manifest.json"))
    listed = {os.path.basename(s["path"]): s["reason"] for s in manifest["skipped_files"]}
    assert listed == skipped                                     # the same one-line reasons
    for name, why in BAD.items():
        assert why in listed[name], (name, listed[name])
    ids, emb, rows = extract.read(str(out))
    assert sorted(ids) == sorted(GOOD + SILENT) and np.isfinite(np.asarray(emb)).all()
    assert {r["id"] for r in rows if r["near_silent"]} == set(SILENT)


def test_explain_skips_bad_files_and_explains_the_good(corpus, tmp_path):
    out = tmp_path / "explained"
    proc = run("lmac.explain", "--explainer=soundscapes-lmac", f"--audio={corpus / 'clips'}", f"--out={out}")
    assert proc.returncode == 3, proc.stderr
    skipped = skipped_lines(proc.stderr, "lmac.explain")
    assert set(skipped) == set(BAD), proc.stderr
    data = json.loads((out / "explanations.json").read_text())
    assert len(data["clips"]) == len(GOOD + SILENT) and len(data["skipped"]) == len(BAD)
    assert f"{len(GOOD + SILENT)} of {len(GOOD + SILENT + list(BAD))} clips explained" in proc.stdout


def test_evaluate_skips_bad_files_and_lists_them_in_run_json(corpus, tmp_path):
    from test_evaluate import _tiny_explainer
    explainer = _tiny_explainer(str(tmp_path))
    out = tmp_path / "eval"
    proc = run("lmac.evaluate", f"--explainer={explainer}", "--dataset=folder", f"--root={corpus / 'clips'}",
               "--clips=0", "--methods=lmac,saliency", "--protocols=in_domain", "--sanity_clips=0",
               "--figure_clips=1", "--batch_size=4", f"--out={out}")
    assert proc.returncode == 3, proc.stderr
    assert set(skipped_lines(proc.stderr, "lmac.evaluate")) == set(BAD)
    run_json = json.loads((out / "run.json").read_text())
    assert sorted(run_json["keys"]) == sorted(GOOD + SILENT) and run_json["clips"] == len(GOOD + SILENT)
    assert {os.path.basename(s["path"]) for s in run_json["skipped"]} == set(BAD)
    assert json.loads((out / "results.json").read_text())
    strict = run("lmac.evaluate", f"--explainer={explainer}", "--dataset=folder", f"--root={corpus / 'clips'}",
                 "--clips=0", "--methods=lmac", "--protocols=in_domain", "--sanity_clips=0", "--strict",
                 f"--out={tmp_path / 'strict'}")
    assert strict.returncode == 1 and "stopped by --strict" in strict.stderr
