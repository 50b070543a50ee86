"""The architecture spec of a converted model: data only, saved as ``spec.json``.

A spec says everything needed to rebuild a model and reproduce its source's pipeline: the
network sizes, the audio front end (rates, STFT, mel bank, length policy, quantisation) and the
tokenizer's context length. ``ClapSpec`` describes a CLAP model, ``ClassifierSpec`` a CNN14
audio classifier (PANNs, SpeechBrain); they are told apart by the ``format`` field.
"""
from __future__ import annotations

import dataclasses
import json

from clap_jax.configs import from_config as from_dict  # spec.json dicts rebuild as configs do
from clap_jax.frontend import SpectrogramConfig
from clap_jax.models.clap import ClapConfig
from clap_jax.models.cnn14 import Cnn14Config

FORMAT = "clap-jax/1"
CLASSIFIER_FORMAT = "clap-jax-classifier/1"


@dataclasses.dataclass(frozen=True)
class AudioConfig:
    """How raw audio becomes model input.

    ``clip_samples`` at ``spectrogram.sample_rate``; ``pad`` fills short clips (repeatpad,
    repeat, zeros); ``crop`` picks the window of long clips (center and start are deterministic,
    random needs a seed). ``quantize_int16`` is LAION's int16 round trip. ``fusion`` builds the
    4-channel mel of the fusion models, whose whole-clip channel is shrunk with ``fusion_shrink``
    (``bilinear_antialias``: LAION through torchvision Resize; ``bilinear``: Hugging Face).
    ``force_longer`` is Hugging Face's rule that a fusion batch without a long clip marks a
    random clip as long; off unless asked for, since it makes embeddings depend on the batch.
    ``normalize="max"`` divides each clip by its largest sample (not the largest magnitude), as
    SpeechBrain's ESC-50 recipes do after resampling (``sig / sig.max()``).
    """
    spectrogram: SpectrogramConfig = SpectrogramConfig()
    clip_samples: int = 480000
    pad: str = "repeatpad"
    crop: str = "center"
    quantize_int16: bool = True
    fusion: bool = False
    fusion_shrink: str = "bilinear_antialias"
    force_longer: bool = False
    normalize: str | None = None


@dataclasses.dataclass(frozen=True)
class TokenizerConfig:
    """``max_length``: context in tokens, specials included. ``family`` says how tokenizer files
    without a ``tokenizer.json`` are assembled: ``roberta`` (byte-level BPE in ``<s> ... </s>``),
    ``gpt2`` (byte-level BPE, no special tokens added), ``bert`` (WordPiece ``vocab.txt``,
    lower-cased, ``[CLS] ... [SEP]``). ``suffix`` is appended to every text (Microsoft CLAP 2023:
    ``" <|endoftext|>"``). ``pad_token`` replaces the pad token and is registered as a special
    token (Microsoft CLAP 2023: ``"!"``, id 0; as in the reference, a ``!`` in a text is then split
    off as its own token).
    """
    max_length: int = 77
    family: str = "roberta"
    suffix: str = ""
    pad_token: str | None = None


@dataclasses.dataclass(frozen=True)
class ClapSpec:
    """A converted model: ``source`` is where it came from (laion, hf, ...)."""
    model: ClapConfig = ClapConfig()
    audio: AudioConfig = AudioConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    source: str = "laion"
    normalize_embeddings: bool = True

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **dataclasses.asdict(self)}, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ClapSpec":
        return _from_json(cls, text, FORMAT)


@dataclasses.dataclass(frozen=True)
class ClassifierSpec:
    """A converted CNN14 classifier (``source``: panns, speechbrain, or clap-jax for one trained
    here). ``activation`` turns logits into probabilities: ``sigmoid`` (PANNs' multi-label AudioSet
    tagging) or ``softmax`` (SpeechBrain's ESC-50 classifier, the bundled soundscapes-cnn14). ``labels`` are the class names when the checkpoint came
    with them."""
    model: Cnn14Config = Cnn14Config()
    audio: AudioConfig = AudioConfig()
    source: str = "panns"
    activation: str = "sigmoid"
    labels: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps({"format": CLASSIFIER_FORMAT, **dataclasses.asdict(self)}, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ClassifierSpec":
        return _from_json(cls, text, CLASSIFIER_FORMAT)


def spec_format(text: str) -> str | None:
    """The ``format`` field of a ``spec.json`` text."""
    return json.loads(text).get("format")


def _from_json(cls, text: str, fmt_expected: str):
    data = json.loads(text)
    fmt = data.pop("format", None)
    if fmt != fmt_expected:
        hint = {FORMAT: " (a CLAP model: use clap_jax.load)",
                CLASSIFIER_FORMAT: " (a classifier: use clap_jax.load_classifier)"}.get(fmt, "")
        raise ValueError(f"spec.json: format {fmt!r} is not {fmt_expected!r}{hint}")
    return from_dict(cls, data)
