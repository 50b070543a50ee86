"""The bundled model loads by name, offline, and hears the bundled example clips correctly."""
from __future__ import annotations

import clap_jax
from clap_jax import classify


def test_bundled_model_classifies_the_examples():
    model = clap_jax.load("soundscapes-small")
    assert model.spec.source == "soundscapes"
    paths = classify.audio_paths([classify.EXAMPLES])
    labels = list(classify.EVERYDAY_LABELS)
    probs = classify.classify(model, paths, labels, "This is a sound of {}.")
    top3 = {p.rsplit("/", 1)[-1]: [labels[int(i)] for i in row] for p, row in zip(paths, (-probs).argsort(axis=1)[:, :3])}
    assert top3["siren.wav"][0] == "siren wailing"
    assert top3["dog_bark.wav"][0] == "dog barking"
    assert top3["clock_ticking.wav"][0] == "clock ticking"
    # A mixture: both of its sounds among the top 3 of the 14 labels (the model ranks applause,
    # a rain-like texture, first for this clip; README "Install and run").
    assert {"rain", "high beep"} <= set(top3["beep_and_rain.wav"]), top3["beep_and_rain.wav"]
