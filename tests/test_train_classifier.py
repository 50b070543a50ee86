"""train.classifier: a tiny run lowers the loss and exports a loadable classifier; the bundled
``soundscapes-cnn14`` loads by name and classifies held-out clips of its test seed."""
import json
import os

import numpy as np
from flax import nnx

import clap_jax
from clap_jax.data import soundscapes as S
from configs import classifier_soundscapes
from train import classifier as train_classifier


def _tiny_config():
    cfg = classifier_soundscapes.get_config()
    cfg.steps, cfg.batch_size, cfg.log_every, cfg.eval_every, cfg.checkpoint_every = 30, 8, 5, 30, 30
    cfg.optim.learning_rate, cfg.optim.warmup_steps = 3e-3, 5
    cfg.model.channels = (4, 4, 8, 8, 8, 8)
    cfg.data.duration, cfg.data.eval_clips, cfg.data.test_clips, cfg.data.workers = 1.0, 16, 16, 1
    return cfg


def test_spec_is_the_speechbrain_recipe_front_end():
    """The front end of clap_jax.convert.speechbrain_spec (the L-MAC recipe's), 5 s clips."""
    spec = train_classifier.build_spec(classifier_soundscapes.get_config())
    sg = spec.audio.spectrogram
    assert (sg.sample_rate, sg.n_fft, sg.win_length, sg.hop_length, sg.n_mels) == (16000, 1024, 372, 186, 80)
    assert (sg.window, sg.pad_mode, sg.mel_scale, sg.compression, sg.magnitude_eps) == \
        ("hamming", "constant", "speechbrain", "log1p", 1e-14)
    assert spec.audio.clip_samples == 80000 and sg.num_frames(80000) == 431 and spec.audio.normalize == "max"
    assert spec.model.channels == (8, 16, 32, 64, 128, 256) and spec.model.embed_dim == 0
    assert spec.labels == tuple(c.label for c in S.CLASSES) and spec.model.num_classes == 56


def test_tiny_run_lowers_loss_and_exports(tmp_path):
    cfg = _tiny_config()
    workdir, export = str(tmp_path / "run"), str(tmp_path / "export")
    model, result = train_classifier.run(cfg, workdir, export)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    losses = [r["loss"] for r in rows if r["kind"] == "train"]
    assert len(losses) == 6 and losses[-1] < losses[0] - 0.3, losses
    assert any(r["kind"] == "eval" and "val_accuracy" in r for r in rows)
    with open(os.path.join(workdir, "test.json")) as f:
        assert json.load(f) == result and result["test_clips"] == 16 and result["test_seed"] == cfg.data.test_seed
    # BatchNorm trained: the exported running averages moved away from their initial values
    stats = nnx.state(model, nnx.BatchStat)
    assert float(np.abs(np.asarray(stats["bn0"]["mean"][...])).max()) > 1e-3

    clf = clap_jax.load_classifier(export)
    assert clf.spec.source == "clap-jax" and clf.spec.activation == "softmax" and len(clf.spec.labels) == 56
    clips = S.generate(cfg.data.test_seed, 3, duration=1.0, single_event=True, stft=None)
    probs = clf.probabilities([c.audio for c in clips], 16000)
    assert probs.shape == (3, 56) and np.allclose(probs.sum(-1), 1.0, atol=1e-5)
    # the loaded classifier reproduces the trained model on the training pipeline
    waves = train_classifier.prepare(clips, clf.spec)
    np.testing.assert_array_equal(train_classifier.predict(model, clf.spec, waves), probs.argmax(-1))


def test_bundled_classifier_classifies_held_out_clips():
    cfg = classifier_soundscapes.get_config()
    clf = clap_jax.load_classifier("soundscapes-cnn14")
    assert clf.spec == train_classifier.build_spec(cfg)
    clips = S.generate(cfg.data.test_seed, 20, duration=cfg.data.duration, single_event=True, stft=None)
    out = clf([c.audio for c in clips], 16000)
    assert out["blocks"][-1].shape == (20, 13, 2, 256)      # what the L-MAC decoder consumes
    accuracy = float((out["logits"].argmax(-1) == np.array([c.target for c in clips])).mean())
    assert accuracy >= 0.8, accuracy
