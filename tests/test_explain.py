"""`python -m lmac.explain`, the main job: files per clip, bad files skipped and counted, batching,
quiet output, the figure; and the default run on the bundled explainer and examples."""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import types

import numpy as np
import pytest
import soundfile as sf
from flax import nnx
from PIL import Image

from clap_jax import audio as audio_lib
from clap_jax import cli_errors
from clap_jax.frontend import SpectrogramConfig
from clap_jax.models.cnn14 import Cnn14, Cnn14Config
from lmac import decoders, explain, explainer, figures

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SB = SpectrogramConfig(sample_rate=16000, n_fft=1024, win_length=372, hop_length=186, n_mels=80, fmin=0,
                       fmax=8000, mel_scale="speechbrain", mel_norm=None, pad_mode="constant",
                       window="hamming", mel_exponent=1.0, compression="log1p", magnitude_eps=1e-14)
CLIP_SAMPLES = 37200                      # 201 frames: what the recipe decoder maps back to 201
GOOD = ("tone.wav", "sub/chirp.flac")     # a sub-folder: folders are searched recursively


def _run(*args, cwd=ROOT, timeout=300):
    proc = subprocess.run([sys.executable, "-m", "lmac.explain", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A random-weight explainer directory (tiny CNN14 + recipe decoder) and a folder with two good
    clips (different lengths, rates and formats) and one text file named .wav."""
    from clap_jax import checkpoint
    from clap_jax.classifier import Classifier
    from clap_jax.spec import AudioConfig, ClassifierSpec
    root = tmp_path_factory.mktemp("explain")
    spec = ClassifierSpec(model=Cnn14Config(n_mels=80, channels=(4, 4, 4, 8, 16, 32), embed_dim=0, num_classes=3),
                          audio=AudioConfig(spectrogram=SB, clip_samples=CLIP_SAMPLES, normalize="max"),
                          source="speechbrain", activation="softmax", labels=("beep", "rain", "bark"))
    model = Cnn14(spec.model, rngs=nnx.Rngs(0))
    checkpoint.save_converted(str(root / "clf"), spec, model, None)
    clf = Classifier(spec, model)
    cfg = decoders.DecoderConfig(kind="cnn14_psi", dim=32)
    exp = explainer.Explainer(explainer.ExplainerSpec(decoder=cfg), clf, decoders.build_decoder(cfg, rngs=nnx.Rngs(1)))
    exp.save(str(root / "exp"), str(root / "clf"))

    audio_dir = root / "audio"
    (audio_dir / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000                                    # 1 s at 16 kHz: padded
    sf.write(audio_dir / GOOD[0], (0.3 * np.sin(2 * np.pi * 2000 * t) + 0.02 * rng.standard_normal(t.size))
             .astype(np.float32), 16000)
    t = np.arange(int(3.2 * 22050)) / 22050                         # 3.2 s at 22.05 kHz: resampled, cropped
    sf.write(audio_dir / GOOD[1], (0.4 * np.sin(2 * np.pi * (300 + 600 * t) * t)).astype(np.float32), 22050)
    (audio_dir / "bad.wav").write_text("this is not audio\n")
    out = root / "out"
    rc, stdout, stderr = _run(f"--explainer={root / 'exp'}", f"--audio={audio_dir}", f"--out={out}")
    return types.SimpleNamespace(exp=str(root / "exp"), audio=audio_dir, out=out, rc=rc, stdout=stdout, stderr=stderr)


def test_cli_writes_files_per_good_clip_and_skips_the_bad_one(tiny):
    output = tiny.stdout + tiny.stderr
    assert tiny.rc == 3, output                                      # some input was skipped
    assert "bad.wav" in tiny.stderr and "skipped" in tiny.stderr, output
    assert "2 of 3 clips explained, 1 skipped" in tiny.stdout, output
    assert str(tiny.out) in tiny.stdout                              # where the files are
    for name in GOOD:
        stem = os.path.splitext(os.path.basename(name))[0]
        [line] = [s.strip() for s in tiny.stdout.splitlines() if s.strip().startswith(os.path.basename(name) + ":")]
        assert "mask mean" in line and "masked-in" in line and "masked-out" in line and "top:" in line, line
        for suffix in ("", ".in", ".out"):
            data, rate = sf.read(tiny.out / f"{stem}{suffix}.wav")
            assert rate == 16000 and data.shape == (CLIP_SAMPLES,) and np.isfinite(data).all()
        with Image.open(tiny.out / f"{stem}.png") as img:
            img.load()
            assert img.format == "PNG" and img.width > 800 and img.height > 300
    index = (tiny.out / "index.md").read_text()
    assert "bad.wav" in index and "tone.png" in index and "chirp.in.wav" in index
    data = json.loads((tiny.out / "explanations.json").read_text())
    assert set(data["clips"]) == {"tone", "chirp"} and len(data["skipped"]) == 1


def test_cli_masked_in_wav_equals_the_explainers_masked_in(tiny):
    loaded = explainer.load(tiny.exp)
    for name in GOOD:
        stem = os.path.splitext(os.path.basename(name))[0]
        wave, rate = audio_lib.read_audio(str(tiny.audio / name))
        [e] = loaded.explain([wave], rate)
        written, _ = sf.read(tiny.out / f"{stem}.in.wav", dtype="float32")
        np.testing.assert_allclose(written, e.masked_in, atol=1e-5)
        clip, _ = sf.read(tiny.out / f"{stem}.wav", dtype="float32")
        np.testing.assert_allclose(clip, e.waveform, atol=1e-6)
        [entry] = json.loads((tiny.out / "explanations.json").read_text())["clips"][stem].values()
        np.testing.assert_allclose(entry["mask_mean"], e.mask.mean(), rtol=1e-4)
        np.testing.assert_allclose(entry["probability_in"], e.probabilities_in[e.prediction], atol=1e-5)


def test_cli_is_quiet(tiny):
    """No INFO lines from absl/orbax/jax by default: stdout is the clip lines and the summary."""
    output = tiny.stdout + tiny.stderr
    assert not re.search(r"^(I\d{4} |INFO[: ])", output, re.M), output
    assert len(tiny.stderr.strip().splitlines()) == 1, tiny.stderr        # the one warning
    assert len(tiny.stdout.strip().splitlines()) == 5, tiny.stdout         # explainer, 2 clips, count, where


def test_cli_fails_when_no_clip_can_be_explained(tiny, tmp_path):
    rc, stdout, stderr = _run(f"--explainer={tiny.exp}", f"--audio={tiny.audio / 'bad.wav'}", f"--out={tmp_path}")
    assert rc != 0 and "bad.wav" in stderr and "0 of 1 clips explained" in stdout, stdout + stderr


def test_importing_defines_no_flags():
    code = ("import lmac.explain; from absl import flags; "
            "assert not [n for n in ('explainer', 'audio', 'out', 'top_k', 'batch_size') if n in flags.FLAGS]")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def test_explain_files_makes_one_explain_call_per_batch_of_one_shape(tiny, tmp_path, monkeypatch):
    """Three good clips, batch 2: two calls of two clips each (the last one padded), bad file skipped."""
    loaded = explainer.load(tiny.exp)
    calls = []
    real = loaded.explain
    monkeypatch.setattr(loaded, "explain",
                        lambda waves, rates, **kw: calls.append(len(waves)) or real(waves, rates, **kw))
    paths = cli_errors.audio_paths([str(tiny.audio), str(tiny.audio / GOOD[0])])
    assert len(paths) == 4
    stream = io.StringIO()
    results, skips = explain.explain_files(loaded, paths, str(tmp_path), batch_size=2, figures=False,
                                           log=lambda s: None, skips=cli_errors.Skips("lmac.explain", stream=stream))
    assert calls == [2, 2]
    assert [r.stem for r in results] == ["chirp", "tone", "tone-2"]          # a repeated name is not overwritten
    assert [os.path.basename(p) for p in skips.reasons()] == ["bad.wav"]
    assert stream.getvalue().startswith(f"lmac.explain: skipped {tiny.audio / 'bad.wav'}: "), stream.getvalue()
    assert all(os.path.exists(tmp_path / f"{r.stem}.in.wav") for r in results)


def test_a_bad_file_is_named_once_however_many_explainers_read_it(tiny):
    """Each explainer reads the clips again; the shared Skips names and counts a bad file once."""
    stream = io.StringIO()
    skips = cli_errors.Skips("lmac.explain", stream=stream)
    paths = cli_errors.audio_paths([str(tiny.audio)])
    for _ in range(2):
        batches = list(explain._batches(paths, explain.unique_stems(paths), 8, skips))
        assert [len(b) for b in batches] == [2]
    assert len(skips) == 1 and stream.getvalue().count("lmac.explain: skipped ") == 1, stream.getvalue()
    assert skips.exit_code(2) == cli_errors.PARTIAL
    with pytest.raises(cli_errors.InputError, match=r"bad\.wav: .* \(stopped by --strict\)"):
        list(explain._batches(paths, explain.unique_stems(paths), 8, cli_errors.Skips("lmac.explain", True)))


def test_mask_figure_has_three_panels_and_colour_bars():
    rng = np.random.default_rng(0)
    wave = (0.3 * rng.standard_normal(CLIP_SAMPLES)).astype(np.float32)
    mask = np.zeros((SB.num_frames(CLIP_SAMPLES), SB.n_freq), np.float32)
    mask[50:120, 100:200] = 0.9
    e = types.SimpleNamespace(waveform=wave, masked_in=0.5 * wave, mask=mask, prediction=0,
                              probabilities=np.array([0.7, 0.3]), probabilities_in=np.array([0.6, 0.4]),
                              probabilities_out=np.array([0.2, 0.8]))
    fig = figures.mask_figure(e, SB, "noise: predicted beep (0.70)")
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 3 and len(fig.axes) == 3 + 3                # three panels, three colour bars
    assert "masked-in 0.60" in fig._suptitle.get_text()
    assert figures.contour_level(mask) == pytest.approx(0.45)
    assert figures.contour_level(np.full_like(mask, 0.5)) is None
    with pytest.raises(ValueError, match="grid"):
        figures.mask_figure(types.SimpleNamespace(waveform=wave, masked_in=wave, mask=mask[:10]), SB, "x")


def test_default_run_on_bundled_examples(tmp_path):
    """The README's first command: no arguments but ``--out``. The bundled L-MAC explainer classifies
    and explains every bundled example, the bundled LMAC-ZS explainer explains each for its top
    label prompts and an absent one; every WAV, picture and JSON is written, and report.html."""
    rc, stdout, stderr = _run(f"--out={tmp_path}", timeout=600)
    assert rc == 0, stdout + stderr
    names = sorted(f for f in os.listdir(explain.EXAMPLES) if f.endswith(".wav"))
    assert f"{len(names)} of {len(names)} clips explained." in stdout, stdout
    assert str(tmp_path / "report.html") in stdout
    lmac_out, zs_out = (tmp_path / name for name in explain.DEFAULT_EXPLAINERS)
    data = json.loads((lmac_out / "explanations.json").read_text())
    assert data["explainer"] == explain.DEFAULT_EXPLAINERS[0] and not data["skipped"]
    zs = json.loads((zs_out / "explanations.json").read_text())
    index = (lmac_out / "index.md").read_text()
    page = (tmp_path / "report.html").read_text()
    for name in names:
        stem = name[:-4]
        [line] = [s.strip() for s in stdout.splitlines() if s.strip().startswith(name + ":") and "top:" in s]
        [(label, entry)] = data["clips"][stem].items()
        assert line.startswith(f"{name}: {label} ") and 0.0 <= entry["mask_mean"] <= 1.0, line
        for suffix in ("", ".in", ".out"):
            wave, rate = sf.read(lmac_out / f"{stem}{suffix}.wav")
            assert rate == 16000 and wave.shape == (80000,) and np.isfinite(wave).all()
        with Image.open(lmac_out / f"{stem}.png") as img:
            assert img.format == "PNG"
        assert f"{stem}.png" in index and name in page
        prompts = zs["clips"][stem]
        assert len(prompts) == 4                                        # top 3 labels + the least similar
        sims = [p["similarity"] for p in prompts.values()]
        assert sims[:3] == sorted(sims[:3], reverse=True) and sims[3] <= sims[2]
        for prompt in prompts.values():
            assert 0.0 <= prompt["mask_mean"] <= 1.0
            for key in ("masked_in", "masked_out"):
                wave, rate = sf.read(zs_out / prompt["files"][key])
                assert rate == 16000 and wave.shape == (80000,) and np.isfinite(wave).all()
            assert prompt["files"]["png"] in page.replace("soundscapes-small-lmac-zs/", "")


def test_model_flag_picks_the_bundled_decoder_trained_for_that_clap(tmp_path):
    """``lmac.explain --model=soundscapes-small-cnn14`` on the bundled examples: the LMAC-ZS
    explainer is the bundled CNN14 decoder (the paper's architecture) on the bundled CNN14 CLAP,
    and the report shows every clip with its masks and players."""
    rc, stdout, stderr = _run(f"--out={tmp_path}", "--model=soundscapes-small-cnn14", timeout=600)
    assert rc == 0, stdout + stderr
    assert explain.default_explainers("soundscapes-small-cnn14")[1] == "soundscapes-small-cnn14-lmac-zs"
    zs_out = tmp_path / "soundscapes-small-cnn14-lmac-zs"
    zs = json.loads((zs_out / "explanations.json").read_text())
    assert zs["explainer"] == "soundscapes-small-cnn14-lmac-zs" and not zs["skipped"]
    page = (tmp_path / "report.html").read_text()
    names = sorted(f for f in os.listdir(explain.EXAMPLES) if f.endswith(".wav"))
    assert sorted(zs["clips"]) == sorted(n[:-4] for n in names)
    for stem, prompts in zs["clips"].items():
        assert len(prompts) == 4
        for prompt in prompts.values():
            assert 0.0 <= prompt["mask_mean"] <= 1.0 and np.isfinite(prompt["similarity"])
            for key in ("masked_in", "masked_out", "png"):
                assert (zs_out / prompt["files"][key]).stat().st_size > 0
            assert "soundscapes-small-cnn14-lmac-zs/" + prompt["files"]["png"] in page
