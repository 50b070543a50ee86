"""Trained L-MAC explainers: a frozen CNN14 classifier and its mask decoder, saved and loaded as one
directory, explaining clips in batches.

    explainer = lmac.load("converted/sb-lmac-esc50")          # or a bundled name
    for e in explainer.explain(waves, sample_rate=16000):      # any lengths and rates
        e.mask             # (frames, n_freq) in [0, 1] on the classifier's STFT grid
        e.prediction, e.probabilities, e.probabilities_in, e.probabilities_out
        e.masked_in, e.masked_out                                # waveforms at the classifier's rate
    lmac.write_wavs("out/", "dog", e, explainer.sample_rate)     # dog.wav, dog.in.wav, dog.out.wav

Directory format (``clap-jax-explainer/1``): ``spec.json`` (:class:`ExplainerSpec`), orbax
``params/`` (the decoder only) and ``classifier/``, the converted classifier it explains.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import soundfile as sf
from flax import nnx

from clap_jax import checkpoint, classifier as classifier_lib, frontend
from clap_jax.spec import from_dict, spec_format
from lmac import decoders, masking, zs_explainer

FORMAT = "clap-jax-explainer/1"
CLASSIFIER_DIR = "classifier"
BUNDLED_DIR = os.path.join(os.path.dirname(classifier_lib.__file__), "bundled")


@dataclasses.dataclass(frozen=True)
class ExplainerSpec:
    """What an explainer directory holds: the decoder's architecture, the mask domain (``log1p``:
    the recipe's mask on log1p|X|; ``linear``: on |X|) and where the decoder came from
    (``clap-jax`` when trained here, ``speechbrain`` when converted from the recipe's ``psi_model``)."""
    decoder: decoders.DecoderConfig
    domain: str = "log1p"
    source: str = "clap-jax"

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **dataclasses.asdict(self)}, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ExplainerSpec":
        data = json.loads(text)
        if data.pop("format", None) != FORMAT:
            raise ValueError(f"spec.json is not an explainer ({FORMAT})")
        return from_dict(cls, data)


@dataclasses.dataclass
class Explanation:
    """One clip's explanation. ``mask`` (frames, n_freq) on the classifier's STFT grid (frames past
    the decoder's reach are 0); probabilities (classes,) on the clean, masked-in and masked-out
    input; waveforms (samples,) at the classifier's rate, the clip as the classifier saw it."""
    mask: np.ndarray
    prediction: int
    probabilities: np.ndarray
    probabilities_in: np.ndarray
    probabilities_out: np.ndarray
    waveform: np.ndarray
    masked_in: np.ndarray
    masked_out: np.ndarray


@functools.partial(jax.jit, static_argnums=0)
def _explain(graphs, states, waves):
    """Pure batch explanation: prepared clips (B, samples) -> masks, probabilities, waveforms."""
    (clf_graph, spectrogram, domain), dec_graph = graphs
    clf, dec = nnx.merge(clf_graph, states[0]), nnx.merge(dec_graph, states[1])
    with jax.default_matmul_precision("highest"):
        spec = frontend.stft(waves, spectrogram)
        out = masking.forward(clf, dec, frontend.magnitude(spec, spectrogram.magnitude_eps), spectrogram, domain)
        mask = masking.full_grid(out["mask"], spec.shape[1])
        masked_in, masked_out = masking.resynthesize(spec, mask, spectrogram, waves.shape[-1], domain)
    soft = lambda z: jax.nn.softmax(z, axis=-1)
    return {"mask": mask, "prediction": jnp.argmax(out["logits_clean"], -1),
            "probabilities": soft(out["logits_clean"]), "probabilities_in": soft(out["logits_in"]),
            "probabilities_out": soft(out["logits_out"]), "masked_in": masked_in, "masked_out": masked_out}


class Explainer:
    """A classifier and its L-MAC decoder. Probabilities are the softmax of the classifier's
    logits (L-MAC's metrics are defined on the softmax, whatever the classifier's activation)."""

    def __init__(self, spec: ExplainerSpec, classifier: classifier_lib.Classifier, decoder: nnx.Module):
        if spec.domain not in frontend.MASK_DOMAINS:
            raise ValueError(f"mask domain must be one of {frontend.MASK_DOMAINS}, got {spec.domain!r}")
        self.spec, self.classifier = spec, classifier
        self.decoder_graph, self.decoder_state = nnx.split(decoder)

    @property
    def sample_rate(self) -> int:
        return self.classifier.spec.audio.spectrogram.sample_rate

    @property
    def labels(self) -> tuple[str, ...]:
        return self.classifier.spec.labels

    def decoder(self) -> nnx.Module:
        return nnx.merge(self.decoder_graph, self.decoder_state)

    def explain_prepared(self, waves: np.ndarray) -> dict[str, np.ndarray]:
        """Batched arrays for prepared clips (B, clip_samples): ``mask`` (B, frames, n_freq), ...."""
        clf = self.classifier
        graphs = ((clf.graphdef, clf.spec.audio.spectrogram, self.spec.domain), self.decoder_graph)
        out = _explain(graphs, (clf.state, self.decoder_state), jnp.asarray(waves, jnp.float32))
        return jax.tree.map(np.asarray, out)

    def explain(self, waveforms, sample_rate, *, crop: str | None = None, seed: int | None = None) -> list[Explanation]:
        """Explanations of clips of any lengths and rates (resampled, normalised and padded or
        cropped to the classifier's window as :meth:`Classifier.prepare_audio` does)."""
        waves = self.classifier.prepare_audio(waveforms, sample_rate, crop, seed)
        out = self.explain_prepared(waves)
        return [Explanation(waveform=waves[i], **{k: v[i] for k, v in out.items()}) for i in range(len(waves))]

    def save(self, out: str, classifier_dir: str, overwrite: bool = False) -> None:
        """Writes the explainer directory atomically, copying the converted classifier it explains."""
        with checkpoint.atomic_directory(out, overwrite) as tmp:
            with open(os.path.join(tmp, checkpoint.SPEC_FILE), "w") as f:
                f.write(self.spec.to_json())
            shutil.copytree(classifier_dir, os.path.join(tmp, CLASSIFIER_DIR))
            checkpoint.save_params(os.path.join(tmp, checkpoint.PARAMS_DIR), self.decoder())


def load(name_or_dir: str, dtype=jnp.float32, *, model: str | None = None):
    """Loads an explainer directory (or the name of a bundled one) without torch: an L-MAC
    :class:`Explainer`, or an LMAC-ZS :class:`lmac.zs_explainer.ZsExplainer` (``model`` overrides
    the CLAP it names)."""
    directory = name_or_dir
    if not os.path.isdir(directory) and os.path.isdir(os.path.join(BUNDLED_DIR, name_or_dir)):
        directory = os.path.join(BUNDLED_DIR, name_or_dir)
    path = os.path.join(directory, checkpoint.SPEC_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{directory}: not an explainer directory (no {checkpoint.SPEC_FILE})")
    with open(path) as f:
        text = f.read()
    if spec_format(text) == zs_explainer.FORMAT:
        return zs_explainer.load(directory, model, dtype)
    with open(path) as f:
        try:
            spec = ExplainerSpec.from_json(f.read())
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err
    clf = classifier_lib.load_classifier(os.path.join(directory, CLASSIFIER_DIR), dtype)
    abstract = nnx.eval_shape(lambda: decoders.build_decoder(spec.decoder, rngs=nnx.Rngs(0), dtype=dtype))
    decoder = checkpoint.restore_params(os.path.join(directory, checkpoint.PARAMS_DIR), abstract)
    return Explainer(spec, clf, decoder)


def write_wavs(directory: str, stem: str, explanation: Explanation, sample_rate: int) -> list[str]:
    """Writes ``stem.wav`` (the clip as classified), ``stem.in.wav`` (masked-in: what the
    explanation says the classifier used) and ``stem.out.wav`` (masked-out) as float WAV."""
    os.makedirs(directory, exist_ok=True)
    paths = []
    for suffix, wave in (("", explanation.waveform), (".in", explanation.masked_in), (".out", explanation.masked_out)):
        path = os.path.join(directory, f"{stem}{suffix}.wav")
        sf.write(path, np.asarray(wave, np.float32), sample_rate, subtype="FLOAT")
        paths.append(path)
    return paths
