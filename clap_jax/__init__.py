"""clap_jax: CLAP models in JAX/Flax, loaded from the published PyTorch checkpoints.

    import clap_jax
    model = clap_jax.load("converted/laion-tiny")      # or a bundled name
    audio_emb = model.embed_audio(waveforms, sample_rate=44100)
    text_emb = model.embed_text(["a dog barks", "rain"])
    logits = model.similarity(audio_emb, text_emb)

    clf = clap_jax.load_classifier("converted/sb-cnn14-esc50")   # CNN14 classifiers
    probs = clf.probabilities(waveforms, sample_rate=16000)
"""
from clap_jax import audio
from clap_jax.api import Clap, load
from clap_jax.classifier import Classifier, load_classifier

__all__ = ["Clap", "Classifier", "audio", "load", "load_classifier"]
