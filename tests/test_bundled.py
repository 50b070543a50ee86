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
    top = {p.rsplit("/", 1)[-1]: labels[int(i)] for p, i in zip(paths, probs.argmax(axis=1))}
    assert top["siren.wav"] == "siren wailing"
    assert top["dog_bark.wav"] == "dog barking"
    assert top["clock_ticking.wav"] == "clock ticking"
    assert top["beep_and_rain.wav"] in ("rain", "high beep")
