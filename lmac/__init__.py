"""lmac: listenable maps for audio classifiers (L-MAC) and, next, for CLAP's zero-shot decisions (LMAC-ZS).

    import lmac
    explainer = lmac.load("converted/sb-lmac-esc50")       # or a bundled name
    [e] = explainer.explain([wave], sample_rate)            # e.mask, e.masked_in, e.prediction, ...
    lmac.metrics.faithfulness(p_clean, p_in, p_out)         # AI, AD, AG, FF, Fid-In

Modules: ``masking`` (the forward pass shared by training and explanation), ``decoders``,
``losses``, ``metrics``, ``baselines`` (gradient maps), ``sanity`` (cascading randomisation,
SSIM), ``explainer`` (directories, batched explanation, WAV output), ``convert`` (the
SpeechBrain recipe's decoder). Nothing here imports ``train``.
"""
from lmac import metrics
from lmac.explainer import Explainer, Explanation, ExplainerSpec, load, write_wavs

__all__ = ["Explainer", "ExplainerSpec", "Explanation", "load", "metrics", "write_wavs"]
