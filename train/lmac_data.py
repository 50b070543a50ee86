"""Training and validation data of ``train.lmac``: clips, noise for augmentation, host preparation.

    cfg.data.dataset = "soundscapes": mixtures of 1-3 events over a background (seed ``data.seed``;
        validation clips of ``data.eval_seed``), so "which event made the decision" is a real question;
    cfg.data.dataset = "esc50": ``data.root`` folds ``train_folds`` / ``valid_folds``.
    cfg.data.noise = "backgrounds" (the corpus' own background beds, the default), "dir"
        (``data.noise_dir``: any folder of audio, e.g. WHAM!'s ``tr``), or "none".

Every clip is resampled to the classifier's rate, fitted to its window and peak-normalised by
its maximum sample, as the recipe's data pipeline does; noise is cut to the same length.
"""
from __future__ import annotations

import dataclasses

import ml_collections
import numpy as np

from clap_jax import audio
from clap_jax.data import readers, soundscapes
from clap_jax.spec import AudioConfig


class SoundscapesClips:
    """Random access to generated multi-event clips (index -> :class:`soundscapes.Clip`)."""

    def __init__(self, seed: int, size: int, sample_rate: int, duration: float, min_events: int = 1,
                 max_events: int = 3):
        self.seed, self.size = seed, size
        self.config = soundscapes.SoundscapeConfig(sample_rate=sample_rate, duration=duration, stft=None,
                                                   min_events=min_events, max_events=max_events)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> soundscapes.Clip:
        return soundscapes.generate_clip(self.seed, int(index), self.config)


def sources(d: ml_collections.ConfigDict):
    """(training source, validation source) for ``cfg.data``."""
    if d.dataset == "soundscapes":
        make = lambda seed, n: SoundscapesClips(seed, n, d.sample_rate, d.duration, d.min_events, d.max_events)
        return make(d.seed, d.train_clips), make(d.eval_seed, d.eval_clips)
    if d.dataset == "esc50":
        if not d.root:
            raise ValueError("data.root: the ESC-50 folder (with meta/esc50.csv) is required for dataset=esc50")
        return readers.Esc50(d.root, tuple(d.train_folds)), readers.Esc50(d.root, tuple(d.valid_folds))
    raise ValueError(f"data.dataset: unknown {d.dataset!r} (soundscapes, esc50)")


@dataclasses.dataclass
class Prepare:
    """Clip or record -> float32 (samples,) on the classifier's grid, peak-normalised."""
    audio_cfg: AudioConfig
    data: ml_collections.ConfigDict

    @property
    def length(self) -> int:
        return self.audio_cfg.clip_samples

    @property
    def rate(self) -> int:
        return self.audio_cfg.spectrogram.sample_rate

    def __call__(self, item) -> np.ndarray:
        if isinstance(item, soundscapes.Clip):
            x, rate = audio.check_waveform(item.audio, item.clip_id), item.sample_rate
        else:
            x, rate = readers.load_audio(item, self.rate)
        x = audio.fit_length(audio.resample(x, rate, self.rate), self.length, self.audio_cfg.pad, "center")
        return audio.normalize(x, "max").astype(np.float32)


def waves(source, prepare: Prepare) -> np.ndarray:
    """Every clip of a (validation) source, prepared: (N, samples)."""
    return np.stack([prepare(source[i]) for i in range(len(source))])


def background_noise(rng: np.random.Generator, n: int, rate: int) -> np.ndarray:
    """A random background bed of the soundscapes corpus (room, traffic, outdoors, ventilation),
    (n,) float32 at unit RMS: WHAM!-like ambient noise from the corpus itself."""
    bed = soundscapes.BACKGROUNDS[int(rng.integers(len(soundscapes.BACKGROUNDS)))]
    return soundscapes._normalise(soundscapes._SYNTHS[bed.synth](rng, n, rate))


def noise_source(d: ml_collections.ConfigDict, prepare: Prepare):
    """``noise(rng) -> (samples,)`` for augmentation, or None (``data.noise="none"``)."""
    n, rate = prepare.length, prepare.rate
    if d.noise == "none":
        return None
    if d.noise == "backgrounds":
        return lambda rng: background_noise(rng, n, rate)
    if d.noise == "dir":
        if not d.noise_dir:
            raise ValueError("data.noise_dir: a folder of noise audio is required for data.noise=dir")
        folder = readers.AudioFolder(d.noise_dir)
        if not len(folder):
            raise ValueError(f"{d.noise_dir}: no audio files")

        def from_folder(rng):
            x, _ = readers.load_audio(folder[int(rng.integers(len(folder)))], rate)
            return audio.fit_length(x, n, "zeros", "random", rng).astype(np.float32)
        return from_folder
    raise ValueError(f"data.noise: unknown {d.noise!r} (backgrounds, dir, none)")


def make_decode(prepare: Prepare, noise):
    """``decode(item, rng)`` for :class:`train.data.Loader`: ``waves`` and, with noise, ``noise``."""
    def decode(item, rng):
        out = {"waves": prepare(item)}
        if noise is not None:
            out["noise"] = noise(rng)
        return out
    return decode
