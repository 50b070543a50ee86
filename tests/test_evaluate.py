"""``python -m lmac.evaluate`` end to end on a tiny explainer and a handful of soundscapes clips
(every output file, every protocol x method x metric, finite numbers, readable figures, SSIM 1
before randomisation), its one-line error for unknown methods, and the OOD protocols' arithmetic.
No torch needed."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from flax import nnx

from clap_jax.data import soundscapes
from clap_jax.frontend import SpectrogramConfig
from clap_jax.models.cnn14 import Cnn14, Cnn14Config
from lmac import evaluate as ev
from lmac import protocols

SB = SpectrogramConfig(sample_rate=16000, n_fft=1024, win_length=372, hop_length=186, n_mels=80, fmin=0,
                       fmax=8000, mel_scale="speechbrain", mel_norm=None, pad_mode="constant",
                       window="hamming", mel_exponent=1.0, compression="log1p", magnitude_eps=1e-14)
# three corpus classes by label: the evaluation clips are drawn from the classes the classifier knows,
# so with 2-3 events per clip the prediction names an event of most clips (localisation is exercised)
CLASSES = ("siren_yelp", "rain", "cat_meow")
LOC_KEYS = ("relevance_mass", "relevance_rank", "roc_auc", "iou")
CLIPS, BATCH = 6, 4       # two batches, the last one padded


def _tiny_explainer(directory):
    from clap_jax import checkpoint
    from clap_jax.classifier import Classifier
    from clap_jax.spec import AudioConfig, ClassifierSpec
    from lmac import decoders, explainer
    labels = tuple(soundscapes.get_class(c).label for c in CLASSES)
    spec = ClassifierSpec(model=Cnn14Config(n_mels=80, channels=(4, 4, 4, 8, 16, 32), embed_dim=0, num_classes=3),
                          audio=AudioConfig(spectrogram=SB, clip_samples=37200, normalize="max"),
                          source="speechbrain", activation="softmax", labels=labels)
    clf_dir = os.path.join(directory, "clf")
    checkpoint.save_converted(clf_dir, spec, Cnn14(spec.model, rngs=nnx.Rngs(0)), None)
    cfg = decoders.DecoderConfig(kind="cnn14_psi", dim=32)
    clf = Classifier(spec, Cnn14(spec.model, rngs=nnx.Rngs(0)))
    exp = explainer.Explainer(explainer.ExplainerSpec(decoder=cfg), clf, decoders.build_decoder(cfg, rngs=nnx.Rngs(1)))
    exp.save(os.path.join(directory, "exp"), clf_dir)
    return os.path.join(directory, "exp")


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    exp_dir = _tiny_explainer(str(root))
    out = root / "out"
    cmd = [sys.executable, "-m", "lmac.evaluate", f"--explainer={exp_dir}", "--dataset=soundscapes",
           f"--clips={CLIPS}", f"--batch_size={BATCH}", "--seed=50000", "--ig_steps=2", "--smoothgrad_samples=2",
           "--sanity_clips=2", "--figure_clips=2", "--nocompilation_cache", f"--out={out}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, proc


def test_evaluate_writes_every_file_and_its_numbers_are_finite(evaluated):
    out, proc = evaluated
    for name in ("results.json", "results.md", "maps.png", "sanity.json", "sanity.png", "run.json"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    assert list(results) == list(ev.DEFAULT_PROTOCOLS)
    for protocol, rows in results.items():
        assert list(rows) == list(ev.DEFAULT_METHODS), protocol
        for method, row in rows.items():
            where = f"{protocol}/{method}"
            assert row["n_samples"] == CLIPS and row["n_batches"] == 2, where
            for k in ev.METRIC_KEYS:
                assert row[k] is not None and math.isfinite(row[k]), (where, k, row[k])
            # soundscapes has ground truth: every clip is localised, or excluded and counted
            assert row["n_truth"] == CLIPS, where
            assert row["n_localized"] + row["n_no_match"] + row["n_degenerate"] == CLIPS, where
            for k in LOC_KEYS:
                if row["n_localized"]:
                    assert row[k] is not None and math.isfinite(row[k]), (where, k)
                else:
                    assert row[k] is None, (where, k)
            assert 0 <= row["Fid-In"] <= 1 and 0 <= row["MM"] <= 1 and 0 <= row["AI"] <= 100, where
    assert any(r["n_localized"] for rows in results.values() for r in rows.values())
    md = (out / "results.md").read_text()
    for protocol in ev.DEFAULT_PROTOCOLS:
        assert f"### {protocol}" in md
    assert "| gradcam++ |" in md and "AUC" in md and "cascading randomisation" in md
    assert "### in_domain" in proc.stdout                                   # the table is printed


def test_evaluate_figures_are_images(evaluated):
    from PIL import Image
    out, _ = evaluated
    for name in ("maps.png", "sanity.png"):
        with Image.open(out / name) as im:
            im.verify()
        with Image.open(out / name) as im:
            assert im.format == "PNG" and min(im.size) > 100, name


def test_sanity_ssim_is_one_before_randomisation(evaluated):
    out, _ = evaluated
    s = json.loads((out / "sanity.json").read_text())
    assert s["steps"][0] == "original" and s["steps"][1] == "head" and s["steps"][-1] == "block1"
    assert list(s["methods"]) == ["lmac", "gradcam"] and s["n_clips"] == 2
    for name, r in s["methods"].items():
        assert len(r["ssim_mean"]) == len(s["steps"]) and len(r["ssim"]) == len(s["steps"])
        np.testing.assert_allclose(r["ssim_mean"][0], 1.0, atol=1e-6, err_msg=name)
        assert all(v is not None and math.isfinite(v) for v in r["ssim_mean"]), name
        assert -1.0 <= r["unrelated_mean"] <= 1.0 and r["unrelated_std"] >= 0.0, name
    assert "unrelated maps" in (out / "results.md").read_text()
    # GradCAM's map changes once the head that defines its target gradient is re-drawn
    assert s["methods"]["gradcam"]["ssim_mean"][-1] < 0.999


def test_unknown_method_fails_with_one_line_listing_the_known_ones():
    proc = subprocess.run([sys.executable, "-m", "lmac.evaluate", "--methods=lmac,nope", "--out=/nonexistent"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.strip().splitlines() if "unknown method" in line]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert "'nope'" in lines[0] and all(m in lines[0] for m in ev.DEFAULT_METHODS)
    with pytest.raises(ValueError, match=r"unknown method 'x'; known: lmac, saliency"):
        ev.resolve(["lmac", "x"], ev.METHODS, "method")
    from absl import flags
    assert "sanity_clips" not in flags.FLAGS          # importing lmac.evaluate defines no flags


def test_protocols_mix_as_the_recipe():
    rng = np.random.default_rng(0)
    s, n = rng.standard_normal((3, 400)).astype(np.float32), rng.standard_normal((3, 400)).astype(np.float32)
    raw = 0.8 * s / np.linalg.norm(s, axis=1, keepdims=True) + 0.2 * n / np.linalg.norm(n, axis=1, keepdims=True)
    np.testing.assert_allclose(protocols.mix(s, n, 0.8, 0.2), raw / raw.max(1, keepdims=True), rtol=1e-5)
    for name in protocols.PROTOCOLS:
        y = protocols.contaminate(name, s, seed=50000, speech=n)
        assert y.shape == s.shape and y.dtype == np.float32
        if name != "in_domain":
            np.testing.assert_allclose(y.max(1), 1.0, rtol=1e-6)                 # signed peak after mixing
    p = protocols.partners(7, seed=3)
    assert sorted(p) == list(range(7)) and np.all(p != np.arange(7))
    np.testing.assert_array_equal(p, protocols.partners(7, seed=3))
    speech = protocols.corpus_speech(2, 50000, 16000, 8000)
    assert speech.shape == (2, 8000) and np.abs(speech).max() > 0
    with pytest.raises(ValueError, match="unknown protocol"):
        protocols.contaminate("reverb", s, 0)
