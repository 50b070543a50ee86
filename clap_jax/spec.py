"""The architecture spec of a converted model: data only, saved as ``spec.json``.

A spec says everything needed to rebuild a model and reproduce its source's pipeline: the
network sizes, the audio front end (rates, STFT, mel bank, length policy, quantisation) and the
tokenizer's context length.
"""
from __future__ import annotations

import dataclasses
import json
import typing

from clap_jax.frontend import SpectrogramConfig
from clap_jax.models.clap import ClapConfig

FORMAT = "clap-jax/1"


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
    """
    spectrogram: SpectrogramConfig = SpectrogramConfig()
    clip_samples: int = 480000
    pad: str = "repeatpad"
    crop: str = "center"
    quantize_int16: bool = True
    fusion: bool = False
    fusion_shrink: str = "bilinear_antialias"
    force_longer: bool = False


@dataclasses.dataclass(frozen=True)
class TokenizerConfig:
    max_length: int = 77


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
        data = json.loads(text)
        fmt = data.pop("format", None)
        if fmt != FORMAT:
            raise ValueError(f"spec.json: format {fmt!r} is not {FORMAT!r}")
        return from_dict(cls, data)


def from_dict(cls, data):
    """Rebuilds a (nested, frozen) dataclass from ``dataclasses.asdict`` output; unknown keys are errors."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown fields {sorted(unknown)}")
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            value = from_dict(hint, value)
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)

