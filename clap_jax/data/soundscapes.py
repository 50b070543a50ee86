"""Soundscapes: a synthetic, labelled, captioned sound corpus with ground truth.

Real datasets cannot be downloaded here, so the project makes its own.  Every clip is a
mixture of 1-3 synthesised *sound events* (beeps, sirens, bells, rain, a dog-like bark,
...) at random times, levels and pitches over an optional quiet background.  A clip comes
with

* ``labels``: the class ids of its events, in onset order;
* ``captions``: several everyday-language captions that follow the events' order in time
  and their overlap ("a high beep, then rain", "rain falling while something beeps",
  "a siren wails over distant traffic");
* per event: class id, onset/offset (seconds), level (dB), a representative pitch (Hz),
  and a ground-truth time-frequency mask over the STFT grid (see below).

Everything is numpy (plus ``scipy.fft`` and ``scipy.signal.lfilter``), vectorised over
samples, and deterministic: clip ``i`` of seed ``s`` is drawn from
``np.random.default_rng([s, i])`` only, so clips can be generated in parallel, resumed, or
generated one at a time with :func:`generate_clip`.

API
---
* :data:`CLASSES` (tuple of :class:`SoundClass`: id, label, family, caption phrases,
  synthesis parameters; the class table is data), :data:`FAMILIES`, :data:`BACKGROUNDS`.
* :func:`generate` (list), :func:`iter_clips` (generator), :func:`generate_clip` (one clip)
  with settings from :class:`SoundscapeConfig` -> :class:`Clip` with :class:`Event` s.
* :func:`fold_for` (1..5) and :func:`split_for` (development / validation / evaluation).
* :func:`stft`: the STFT convention of the masks; :func:`ground_truth` /
  :meth:`Clip.event_masks`: the masks on any :class:`clap_jax.frontend.SpectrogramConfig`.
* ``clap_jax.data.export``: ESC-50 and Clotho folder layouts.

Speed: synthesis is a few numpy passes per event (wavetables, FFT-shaped noise, grains
overlap-added with ``bincount``, decaying partials as one small matrix product), the masks
one jitted :func:`clap_jax.frontend.stft` over the components.  ``python -m
clap_jax.data.soundscapes --n 200`` prints the throughput.  The matrix product may use several
BLAS threads; set ``OPENBLAS_NUM_THREADS=1`` when generating in parallel processes.

STFT / mask convention
----------------------
Masks live on an STFT grid, ``SoundscapeConfig.stft``, and are computed with the project's
one STFT, :func:`clap_jax.frontend.stft`, so they sit on exactly the (frame, bin) grid of the
classifier being explained.  The grid is a ``frontend.SpectrogramConfig`` (its window,
``win_length``, hop, padding and ``n_fft``: e.g. SpeechBrain's Hamming 372 / hop 186 / zero
padding / 1024) or a tuple ``(n_fft, hop)``, the corpus' default convention: frames are
*centred* (frame ``k`` centred on sample ``k * hop``), the signal reflect-padded by ``n_fft //
2`` on both sides, so there are ``1 + n_samples // hop`` frames; each frame is multiplied by a
periodic Hann window of length ``n_fft`` and transformed with ``rfft`` (``n_fft // 2 + 1``
bins, bin ``j`` at ``j * sample_rate / n_fft`` Hz), which is ``librosa.stft(center=True,
pad_mode="reflect", window="hann")``.  The grid changes only the masks: audio, events and
captions of a (seed, index) are bit-identical on every grid.

An event's mask is ``True`` at ``(frame, bin)`` where the event *dominates* the mixture:
its magnitude is larger than the sum of the magnitudes of all other components (other
events and the background) and at least ``mask_floor_db`` (default -30 dB) relative to the
event's own peak magnitude.  Components (as mixed, after the clip's gain) are transformed
separately on the grid.  Because frames are centred and ``n_fft`` spans several hops, a mask
can reach ``n_fft / (2 hop)`` frames beyond the event's samples (1.6 frames for ``n_fft=1024,
hop=320``): at most the frames whose window overlaps the event, see :meth:`Event.frame_span`.

Levels
------
``Event.level_db`` is the event's RMS over its own span ``[onset, offset)`` in dB re full
scale (a full-scale sine is -3 dB), after the clip's peak normalisation.  Clips are scaled
down (never up) so that ``max |audio| <= 0.98``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import random
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import jax
import numpy as np
import scipy.fft as sfft
from scipy.fft import next_fast_len
from scipy.signal import lfilter

from clap_jax import frontend
from clap_jax.frontend import SpectrogramConfig

__all__ = [
    "BACKGROUNDS",
    "CLASSES",
    "CLASS_IDS",
    "FAMILIES",
    "N_FOLDS",
    "SPLITS",
    "Background",
    "Clip",
    "Event",
    "SoundClass",
    "SoundscapeConfig",
    "caption_for",
    "class_index",
    "clip_id_for",
    "fold_for",
    "generate",
    "generate_clip",
    "get_class",
    "ground_truth",
    "iter_clips",
    "mask_grid",
    "split_for",
    "stft",
    "tag_caption",
]

F32 = np.float32
TWO_PI = np.float32(2.0 * np.pi)
_WT = 2048  # wavetable length (samples per cycle)
PEAK_MAX = 0.98  # clips are scaled down to at most this peak


# ----------------------------------------------------------------------------------------
# Class table
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SoundClass:
    """One sound-event class.

    Attributes:
      id: snake_case label, used as ``Event.class_id`` and ESC-50 ``category``.
      label: short human label ("high beep").
      family: coarse group ("tones", "animals", ...), one of :data:`FAMILIES`.
      nouns: noun phrases for captions ("a high-pitched beep"); all lower case.
      clauses: short clauses for captions ("something beeps"); all lower case.
      duration: (min, max) event duration in seconds.
      synth: name of the synthesis function in ``_SYNTHS``.
      params: synthesis parameters (frequency ranges in Hz, rates in Hz, times in s).
      tonal: True when the event is (close to) a pure tone at ``Event.pitch_hz``.
    """

    id: str
    label: str
    family: str
    nouns: tuple[str, ...]
    clauses: tuple[str, ...]
    duration: tuple[float, float]
    synth: str
    params: Mapping[str, object] = field(default_factory=dict)
    tonal: bool = False

    @property
    def phrases(self) -> tuple[str, ...]:
        """Every phrase a caption may use for this class (nouns and clauses)."""
        return self.nouns + self.clauses

    @property
    def index(self) -> int:
        """Position in :data:`CLASSES` (the ESC-50 style ``target``)."""
        return class_index(self.id)

    @property
    def tags(self) -> tuple[str, ...]:
        """Tag-style names: the label, then the caption nouns without articles ("high beep",
        "high-pitched beep", ...); the class's part of the soundscapes concept vocabulary."""
        return tuple(dict.fromkeys((self.label,) + tuple(_strip_article(n) for n in self.nouns)))


def _strip_article(phrase: str) -> str:
    for a in ("a ", "an ", "the "):
        if phrase.startswith(a):
            return phrase[len(a):]
    return phrase


def _c(id, label, family, duration, synth, nouns, clauses, tonal=False, **params):
    return SoundClass(id, label, family, tuple(nouns), tuple(clauses), duration, synth,
                      dict(params), tonal)


CLASSES: tuple[SoundClass, ...] = (
    # --- tones -----------------------------------------------------------------------
    _c("low_beep", "low beep", "tones", (0.15, 0.8), "beep",
       ["a low beep", "a low-pitched beep", "a deep beep", "a low tone", "a low electronic beep"],
       ["something gives a low beep", "a low beep sounds", "a device beeps low"],
       tonal=True, f=(220.0, 440.0)),
    _c("mid_beep", "beep", "tones", (0.15, 0.8), "beep",
       ["a beep", "a medium-pitched beep", "a short electronic beep", "a beep tone",
        "a mid-range beep"],
       ["something beeps", "a beep sounds", "a machine beeps"],
       tonal=True, f=(700.0, 1200.0)),
    _c("high_beep", "high beep", "tones", (0.15, 0.8), "beep",
       ["a high beep", "a high-pitched beep", "a shrill beep", "a high tone",
        "a piercing electronic tone"],
       ["something beeps shrilly", "a high beep sounds", "a high-pitched tone sounds"],
       tonal=True, f=(2000.0, 3800.0)),
    _c("alarm_beeping", "alarm beeping", "tones", (0.8, 3.0), "alarm",
       ["an alarm beeping", "repeated beeping", "a beeping alarm", "an alarm clock going off",
        "rapid electronic beeps"],
       ["an alarm beeps", "an alarm goes off", "something beeps repeatedly"],
       f=(1500.0, 3000.0), on=(0.06, 0.15), off=(0.05, 0.15)),
    _c("phone_ringing", "phone ringing", "tones", (1.0, 3.0), "phone",
       ["a phone ringing", "a telephone ringing", "an old telephone bell", "a ringing phone"],
       ["a phone rings", "the telephone rings"],
       f=(380.0, 520.0), on=(0.35, 0.9), off=(0.2, 0.4)),
    # --- sweeps ----------------------------------------------------------------------
    _c("rising_chirp", "rising chirp", "sweeps", (0.2, 1.5), "chirp",
       ["a rising chirp", "an upward sweep", "a rising tone", "a tone sweeping upwards",
        "an ascending chirp"],
       ["a tone sweeps upward", "the pitch rises", "a chirp rises"],
       f0=(200.0, 800.0), f1=(1500.0, 5000.0), direction=1),
    _c("falling_chirp", "falling chirp", "sweeps", (0.2, 1.5), "chirp",
       ["a falling chirp", "a downward sweep", "a falling tone", "a tone sweeping downwards",
        "a descending chirp"],
       ["a tone sweeps downward", "the pitch falls", "a chirp falls"],
       f0=(200.0, 800.0), f1=(1500.0, 5000.0), direction=-1),
    _c("siren_wail", "siren wailing", "sweeps", (2.0, 5.0), "siren",
       ["a siren wailing", "a wailing siren", "an emergency siren", "a police siren",
        "an ambulance siren"],
       ["a siren wails", "a siren goes off", "an emergency vehicle's siren wails"],
       f=(650.0, 1000.0), depth=(0.3, 0.45), rate=(0.15, 0.4)),
    _c("siren_yelp", "yelping siren", "sweeps", (1.0, 4.0), "siren",
       ["a yelping siren", "a fast siren", "a rapid warbling siren", "a police car siren yelping"],
       ["a siren yelps", "a siren warbles rapidly"],
       f=(650.0, 1000.0), depth=(0.25, 0.4), rate=(2.5, 5.0)),
    # --- bells and other inharmonic decays -------------------------------------------
    _c("bell", "bell", "bells", (1.5, 4.5), "bell",
       ["a bell ringing", "a ringing bell", "a church bell", "a large bell", "a bell tolling"],
       ["a bell rings", "a bell tolls", "a bell is struck"],
       f=(250.0, 800.0), tau=(0.8, 2.0)),
    _c("gong", "gong", "bells", (2.5, 5.0), "gong",
       ["a gong", "a gong being struck", "a resonant gong", "a deep metallic gong"],
       ["a gong sounds", "someone strikes a gong", "a gong reverberates"],
       f=(70.0, 160.0), tau=(1.5, 3.5)),
    _c("glass_clink", "glass clink", "bells", (0.25, 0.8), "glass",
       ["glasses clinking", "a glass clink", "a clink of glass", "two glasses touching",
        "a toast with glasses"],
       ["glasses clink", "a glass clinks", "someone taps a glass"],
       f=(1800.0, 3500.0), tau=(0.12, 0.35)),
    _c("doorbell", "doorbell", "bells", (1.2, 2.5), "doorbell",
       ["a doorbell", "a ding-dong doorbell", "a doorbell chime", "a two-tone chime"],
       ["the doorbell rings", "a doorbell chimes", "someone rings the doorbell"],
       f=(550.0, 900.0), tau=(0.5, 1.0)),
    _c("wind_chimes", "wind chimes", "bells", (1.5, 4.5), "chimes",
       ["wind chimes", "tinkling chimes", "chimes jingling", "metal chimes tinkling"],
       ["wind chimes tinkle", "chimes jingle in the breeze"],
       f=(700.0, 1400.0), rate=(2.0, 5.0), tau=(0.5, 1.2)),
    # --- harmonic instrument notes -----------------------------------------------------
    _c("plucked_string", "plucked string", "instruments", (0.5, 2.0), "pluck",
       ["a plucked string", "a guitar note", "a plucked guitar string", "a single plucked note",
        "a harp-like pluck"],
       ["a string is plucked", "someone plucks a guitar string", "a guitar note rings out"],
       f=(110.0, 660.0), tau=(0.4, 1.5)),
    _c("organ_chord", "organ chord", "instruments", (1.0, 3.5), "organ",
       ["an organ chord", "a chord on an organ", "a sustained organ chord",
        "an electric organ playing a chord", "an organ"],
       ["an organ plays a chord", "someone holds a chord on an organ"],
       f=(130.0, 350.0)),
    _c("violin_note", "violin note", "instruments", (0.8, 3.0), "bowed",
       ["a violin note", "a bowed string", "a violin playing", "a sustained violin tone",
        "a bowed violin note"],
       ["a violin plays a note", "a string is bowed", "someone bows a violin"],
       f=(196.0, 880.0)),
    _c("flute_note", "flute note", "instruments", (0.5, 2.5), "flute",
       ["a flute note", "a flute playing", "a soft flute tone", "a breathy flute",
        "a recorder note"],
       ["a flute plays", "someone plays a flute note"],
       f=(350.0, 1400.0)),
    _c("marimba", "marimba note", "instruments", (0.3, 1.0), "marimba",
       ["a marimba note", "a xylophone note", "a wooden mallet note", "a marimba being struck"],
       ["a marimba is struck", "someone hits a xylophone key"],
       f=(260.0, 1050.0), tau=(0.25, 0.6)),
    # --- drums -----------------------------------------------------------------------
    _c("kick_drum", "kick drum", "drums", (0.25, 0.6), "kick",
       ["a kick drum", "a bass drum", "a deep drum hit", "a thumping kick drum",
        "a low drum thump"],
       ["a kick drum thumps", "a bass drum is hit", "a drum thumps"],
       f_hi=(120.0, 180.0), f_lo=(40.0, 60.0), tau=(0.12, 0.3)),
    _c("snare_drum", "snare drum", "drums", (0.2, 0.45), "snare",
       ["a snare drum", "a snare hit", "a sharp drum crack", "a snare drum being hit"],
       ["a snare drum cracks", "someone hits a snare drum"],
       f=(180.0, 250.0), tau=(0.06, 0.15)),
    _c("hand_clap", "hand clap", "drums", (0.15, 0.35), "clap",
       ["a hand clap", "a single clap", "someone clapping once", "a sharp clap"],
       ["someone claps", "hands clap once"],
       lo=(600.0, 1000.0), tail=(0.03, 0.08)),
    _c("hi_hat", "hi-hat", "drums", (0.8, 2.5), "hihat",
       ["a hi-hat", "hi-hat cymbals", "a ticking hi-hat rhythm", "cymbal taps", "a hi-hat pattern"],
       ["a hi-hat ticks", "someone taps a hi-hat", "cymbals tick in rhythm"],
       period=(0.12, 0.25)),
    # --- clicks, ticks and knocks --------------------------------------------------------
    _c("clock_ticking", "clock ticking", "clicks", (1.5, 4.5), "clock",
       ["a clock ticking", "a ticking clock", "clock ticks", "the tick-tock of a clock",
        "steady ticking"],
       ["a clock ticks", "a clock is ticking"],
       f=(2500.0, 4500.0), period=(0.5, 1.0)),
    _c("single_click", "click", "clicks", (0.02, 0.06), "click",
       ["a click", "a single click", "a sharp click", "a mouse click", "a switch clicking"],
       ["something clicks", "a switch clicks", "a button clicks"],
       f=(1500.0, 5000.0)),
    _c("typing", "typing", "clicks", (1.0, 3.5), "typing",
       ["typing on a keyboard", "keyboard typing", "keys clacking", "someone typing",
        "computer keys being pressed"],
       ["someone types on a keyboard", "keys clack", "a person types"],
       gap=(0.06, 0.25)),
    _c("knocking", "knocking", "clicks", (0.4, 1.2), "knock",
       ["knocking on a door", "a knock at the door", "door knocks", "someone knocking",
        "knocking on wood"],
       ["someone knocks on a door", "someone knocks", "there is a knock at the door"],
       f=(120.0, 250.0), period=(0.14, 0.28)),
    _c("footsteps", "footsteps", "clicks", (1.5, 4.5), "footsteps",
       ["footsteps", "someone walking", "steps on a hard floor", "walking footsteps",
        "a person walking"],
       ["someone walks by", "footsteps approach", "a person walks"],
       period=(0.45, 0.65)),
    # --- noise -------------------------------------------------------------------------
    _c("white_noise", "white noise", "noise", (0.5, 3.0), "noise",
       ["white noise", "a hissing sound", "broadband hiss", "a steady hiss", "hissing white noise"],
       ["white noise hisses", "a steady hiss plays"],
       exponent=0.0),
    _c("pink_noise", "pink noise", "noise", (0.5, 3.0), "noise",
       ["pink noise", "a soft rushing noise", "a steady rushing sound", "rushing pink noise"],
       ["pink noise plays", "a soft rushing noise continues"],
       exponent=-0.5),
    _c("brown_noise", "brown noise", "noise", (0.5, 3.0), "noise",
       ["brown noise", "a deep rumbling noise", "a low rumble", "muffled rumbling noise",
        "a steady low roar"],
       ["a low rumble continues", "brown noise plays"],
       exponent=-1.0),
    _c("radio_static", "radio static", "noise", (1.0, 3.5), "static",
       ["radio static", "a crackling radio", "a detuned radio", "static from a radio",
        "crackly static"],
       ["a radio crackles with static", "static crackles"]),
    # --- nature ------------------------------------------------------------------------
    _c("rain", "rain", "nature", (1.5, 5.0), "rain",
       ["rain", "rain falling", "raindrops", "heavy rain", "a rain shower", "rain pattering"],
       ["rain falls", "it is raining", "rain patters down"],
       rate=(200.0, 800.0)),
    _c("wind", "wind", "nature", (2.0, 5.0), "wind",
       ["wind", "wind blowing", "a gust of wind", "howling wind", "a strong breeze"],
       ["the wind blows", "wind gusts", "the wind howls"],
       f=(150.0, 1200.0), rate=(0.3, 1.0)),
    _c("ocean_waves", "ocean waves", "nature", (2.5, 5.0), "waves",
       ["ocean waves", "waves crashing", "surf on a beach", "waves breaking on the shore",
        "the sea"],
       ["waves crash", "waves wash onto the shore"],
       period=(2.0, 4.0)),
    _c("thunder", "thunder", "nature", (2.0, 5.0), "thunder",
       ["thunder", "a thunderclap", "rolling thunder", "thunder rumbling", "a thunderstorm"],
       ["thunder rumbles", "thunder cracks", "thunder rolls in the distance"],
       tau=(1.0, 2.5)),
    _c("water_bubbling", "water bubbling", "nature", (1.0, 4.0), "bubbles",
       ["water bubbling", "a bubbling stream", "bubbles", "a babbling brook", "water gurgling"],
       ["water bubbles", "a stream babbles", "water gurgles"],
       f=(400.0, 1600.0), rate=(15.0, 50.0)),
    _c("fire_crackling", "fire crackling", "nature", (1.5, 5.0), "fire",
       ["a fire crackling", "a crackling fire", "a campfire", "burning wood crackling",
        "a fireplace"],
       ["a fire crackles", "wood crackles in a fire"],
       rate=(8.0, 30.0)),
    # --- machines ----------------------------------------------------------------------
    _c("engine_idling", "engine idling", "machines", (1.5, 5.0), "engine",
       ["an engine idling", "a car engine", "an idling motor", "a running engine",
        "the rumble of an engine"],
       ["an engine idles", "a car engine runs", "a motor rumbles"],
       f=(25.0, 60.0)),
    _c("electric_hum", "electrical hum", "machines", (1.0, 4.0), "mains",
       ["an electrical hum", "mains hum", "a humming transformer", "a low electrical drone",
        "a fluorescent light humming"],
       ["a transformer hums", "an appliance hums", "the power line hums"]),
    _c("power_drill", "power drill", "machines", (0.8, 3.0), "drill",
       ["a power drill", "an electric drill", "a drill whirring", "a drill spinning up",
        "a power tool"],
       ["a drill whirs", "someone uses a power drill", "a drill spins up"],
       f=(150.0, 350.0)),
    _c("helicopter", "helicopter", "machines", (2.0, 5.0), "helicopter",
       ["a helicopter", "helicopter blades", "a helicopter flying", "rotor blades chopping",
        "a helicopter overhead"],
       ["a helicopter flies over", "helicopter blades chop"],
       rate=(4.0, 7.0)),
    _c("car_horn", "car horn", "machines", (0.3, 1.5), "horn",
       ["a car horn", "a car honking", "a honking horn", "a vehicle horn", "a loud honk"],
       ["a car honks", "someone honks a car horn", "a horn blares"],
       f=(330.0, 450.0)),
    _c("jackhammer", "jackhammer", "machines", (1.0, 4.0), "jackhammer",
       ["a jackhammer", "a pneumatic drill", "a jackhammer pounding", "construction hammering",
        "a road drill"],
       ["a jackhammer pounds", "a jackhammer rattles", "someone uses a jackhammer"],
       rate=(12.0, 25.0)),
    # --- animals -----------------------------------------------------------------------
    _c("bird_chirp", "bird chirping", "animals", (0.5, 2.0), "bird",
       ["a bird chirping", "birds chirping", "birdsong", "a chirping bird", "a songbird"],
       ["a bird chirps", "a bird sings", "a bird tweets"],
       f=(2500.0, 6000.0), period=(0.12, 0.3)),
    _c("cuckoo", "cuckoo", "animals", (0.6, 3.0), "cuckoo",
       ["a cuckoo", "a cuckoo calling", "a cuckoo bird", "the call of a cuckoo"],
       ["a cuckoo calls", "a cuckoo sings"],
       f=(550.0, 800.0), period=(0.7, 1.0)),
    _c("crickets", "crickets", "animals", (1.5, 5.0), "crickets",
       ["crickets chirping", "crickets", "chirping insects", "a cricket", "crickets at night"],
       ["crickets chirp", "a cricket chirps"],
       f=(3500.0, 5500.0), rate=(25.0, 45.0), period=(0.35, 0.8)),
    _c("dog_bark", "dog barking", "animals", (0.3, 1.3), "bark",
       ["a dog barking", "a dog bark", "barking", "a barking dog", "a dog-like bark"],
       ["a dog barks", "a dog starts barking"],
       f=(350.0, 650.0), period=(0.25, 0.45)),
    _c("cat_meow", "cat meowing", "animals", (0.5, 1.3), "meow",
       ["a cat meowing", "a meow", "a cat", "a meowing cat", "a kitten meowing"],
       ["a cat meows", "a kitten mews"],
       f=(500.0, 800.0)),
    _c("frog_croak", "frog croaking", "animals", (0.3, 2.0), "frog",
       ["a frog croaking", "a croaking frog", "frogs", "a toad croaking", "croaking"],
       ["a frog croaks", "frogs croak"],
       f=(150.0, 320.0), period=(0.35, 0.6)),
    _c("bee_buzz", "bee buzzing", "animals", (1.0, 4.0), "buzz",
       ["a bee buzzing", "a buzzing insect", "a fly buzzing", "a buzzing bee",
        "an insect flying around"],
       ["a bee buzzes", "a fly buzzes around", "an insect buzzes"],
       f=(170.0, 260.0)),
    # --- human ---------------------------------------------------------------------------
    _c("speech_babble", "speech", "human", (1.0, 4.0), "speech",
       ["someone talking", "a person speaking", "speech", "muffled talking", "indistinct speech",
        "a voice"],
       ["someone talks", "a person speaks", "a voice murmurs", "someone is speaking"],
       f=(100.0, 230.0), rate=(3.5, 5.5)),
    _c("humming", "humming", "human", (1.0, 4.0), "hum",
       ["someone humming", "a person humming a tune", "humming", "a humming voice"],
       ["someone hums", "a person hums a tune"],
       f=(110.0, 260.0)),
    _c("whistling", "whistling", "human", (1.0, 3.5), "whistle",
       ["someone whistling", "a whistled tune", "a person whistling", "whistling"],
       ["someone whistles", "a person whistles a tune"],
       f=(900.0, 2000.0)),
    _c("laughter", "laughter", "human", (0.6, 2.0), "laugh",
       ["laughter", "someone laughing", "a person laughing", "a laugh", "giggling"],
       ["someone laughs", "a person laughs"],
       f=(220.0, 380.0), rate=(4.0, 6.0)),
    _c("applause", "applause", "human", (2.0, 5.0), "applause",
       ["applause", "people clapping", "a crowd applauding", "clapping hands",
        "an audience clapping"],
       ["people clap", "the audience applauds", "a crowd claps"],
       rate=(50.0, 150.0)),
)

FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(c.family for c in CLASSES))
CLASS_IDS: tuple[str, ...] = tuple(c.id for c in CLASSES)
_CLASS_INDEX = {c.id: i for i, c in enumerate(CLASSES)}
assert len(_CLASS_INDEX) == len(CLASSES), "duplicate class ids"


def class_index(class_id: str) -> int:
    """Index of ``class_id`` in :data:`CLASSES` (raises KeyError for unknown ids)."""
    return _CLASS_INDEX[class_id]


def get_class(class_id: str) -> SoundClass:
    """The :class:`SoundClass` with id ``class_id``."""
    return CLASSES[_CLASS_INDEX[class_id]]


@dataclass(frozen=True)
class Background:
    """An unlabelled background bed; ``suffixes`` may end a caption (" in a quiet room")."""

    id: str
    suffixes: tuple[str, ...]
    synth: str


BACKGROUNDS: tuple[Background, ...] = (
    Background("room", (" in a quiet room", " with faint room noise in the background",
                        " indoors"), "bg_room"),
    Background("traffic", (" over distant traffic", " with traffic noise in the distance",
                           " with distant traffic in the background"), "bg_traffic"),
    Background("outdoors", (" outdoors", " in an open outdoor space",
                            " with quiet outdoor ambience"), "bg_outdoors"),
    Background("ventilation", (" with air conditioning noise in the background",
                               " over the noise of a ventilation system"), "bg_ventilation"),
)
_BACKGROUND_INDEX = {b.id: b for b in BACKGROUNDS}


# ----------------------------------------------------------------------------------------
# Folds and splits
# ----------------------------------------------------------------------------------------

N_FOLDS = 5
SPLITS = ("development", "validation", "evaluation")


def fold_for(clip_id: str) -> int:
    """Deterministic fold in ``1..N_FOLDS`` of a clip id (CRC32 of the id, stable across runs)."""
    return 1 + zlib.crc32(clip_id.encode("utf-8")) % N_FOLDS


def split_for(clip_id: str) -> str:
    """Clotho-style split: folds 1-3 'development', fold 4 'validation', fold 5 'evaluation'."""
    fold = fold_for(clip_id)
    return SPLITS[0] if fold <= 3 else SPLITS[fold - 3]


# ----------------------------------------------------------------------------------------
# Clips and events
# ----------------------------------------------------------------------------------------


@dataclass
class Event:
    """One sound event of a clip.

    Attributes:
      class_id: id of its :class:`SoundClass`.
      onset, offset: start and end in seconds, ``0 <= onset < offset <= duration``.
      level_db: RMS over ``[onset, offset)`` in dB re full scale.
      pitch_hz: representative frequency in Hz (fundamental, centre of a sweep, carrier),
        None for noise-like events.
      mask_frames: ``(start, stop)`` frame range the mask can be non-zero in (the frames
        whose window overlaps the event), or None when no STFT was requested.
      mask_crop: bool ``(stop - start, n_fft // 2 + 1)``: the mask on those frames.  It
        is empty only if other components hide the event everywhere (not seen with the
        default levels, but possible with custom ``event_level_db``/``background_level_db``).
      n_frames: number of STFT frames of the clip.
    """

    class_id: str
    onset: float
    offset: float
    level_db: float
    pitch_hz: float | None = None
    mask_frames: tuple[int, int] | None = None
    mask_crop: np.ndarray | None = field(default=None, repr=False)
    n_frames: int = 0

    @property
    def target(self) -> int:
        """Class index in :data:`CLASSES`."""
        return class_index(self.class_id)

    @property
    def mask(self) -> np.ndarray | None:
        """Ground-truth mask, bool ``(n_frames, n_fft // 2 + 1)`` (frames x frequency bins)."""
        if self.mask_crop is None:
            return None
        full = np.zeros((self.n_frames, self.mask_crop.shape[1]), dtype=bool)
        full[self.mask_frames[0]:self.mask_frames[1]] = self.mask_crop
        return full

    @staticmethod
    def frame_span(onset_sample: int, offset_sample: int, n_samples: int, n_fft: int,
                   hop: int) -> tuple[int, int]:
        """Frames ``[start, stop)`` whose centred window overlaps samples ``[onset, offset)``.

        Frame ``k`` covers samples ``(k*hop - n_fft//2, k*hop + n_fft//2)``.
        """
        half = n_fft // 2
        n_frames = 1 + n_samples // hop
        start = max(0, (onset_sample - half) // hop + 1)
        stop = min(n_frames, -(-(offset_sample + half) // hop))
        return start, stop


@dataclass
class Clip:
    """One generated clip.

    Attributes:
      clip_id: stable id ``s{seed}_{index:06d}`` (no '-', so it fits ESC-50 file names).
      seed, index: what it was generated from (``np.random.default_rng([seed, index])``).
      audio: float32 ``(n_samples,)``, ``max |audio| <= 0.98``.
      sample_rate: Hz.
      labels: event class ids in onset order.
      captions: ``n_captions`` captions (distinct where the templates allow).
      events: :class:`Event` list in onset order.
      background: :class:`Background` id or None; background_level_db its RMS in dBFS.
      stft: ``(n_fft, hop)`` the masks are on, or None.
      grid: the full STFT grid of the masks (:func:`mask_grid`: window, win_length, hop,
        padding, n_fft), or None.
      config: the :class:`SoundscapeConfig` it was generated with (:func:`ground_truth`
        regenerates the clip from it to put the masks on another grid).
    """

    clip_id: str
    seed: int
    index: int
    audio: np.ndarray = field(repr=False)
    sample_rate: int
    labels: list[str]
    captions: list[str]
    events: list[Event]
    background: str | None = None
    background_level_db: float | None = None
    stft: tuple[int, int] | None = None
    grid: SpectrogramConfig | None = field(default=None, repr=False)
    config: "SoundscapeConfig | None" = field(default=None, repr=False)

    def event_masks(self, spectrogram: "SpectrogramConfig | tuple[int, int] | None" = None) -> np.ndarray:
        """Ground-truth masks bool ``(events, frames, n_freq)`` on ``spectrogram``'s grid (None:
        the clip's own); see :func:`ground_truth`."""
        return ground_truth(self, spectrogram)

    @property
    def duration(self) -> float:
        """Seconds."""
        return len(self.audio) / self.sample_rate

    @property
    def fold(self) -> int:
        return fold_for(self.clip_id)

    @property
    def split(self) -> str:
        return split_for(self.clip_id)

    @property
    def target(self) -> int:
        """Single-label target: class index of the first event (ESC-50 style)."""
        return self.events[0].target


@dataclass(frozen=True)
class SoundscapeConfig:
    """Generator settings (all times in seconds, levels in dB re full scale).

    ``classes`` restricts the classes events are drawn from (ids); ``stft=None`` skips the
    masks; ``stft`` is the grid of the masks: ``(n_fft, hop)`` (the corpus' Hann/reflect
    convention) or a :class:`clap_jax.frontend.SpectrogramConfig` at ``sample_rate`` (any
    window, hop, padding, n_fft; see :func:`mask_grid`).  The audio, events and captions do not
    depend on ``stft``.  ``single_event=True`` forces exactly one event per clip.
    """

    sample_rate: int = 16000
    duration: float = 5.0
    max_events: int = 3
    min_events: int = 1
    single_event: bool = False
    background: bool = True
    classes: tuple[str, ...] | None = None
    stft: tuple[int, int] | SpectrogramConfig | None = (1024, 320)
    n_captions: int = 5
    event_level_db: tuple[float, float] = (-32.0, -14.0)
    background_level_db: tuple[float, float] = (-55.0, -40.0)
    mask_floor_db: float = -30.0
    background_caption_prob: float = 0.4

    def __post_init__(self):
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(self.classes))
            unknown = [c for c in self.classes if c not in _CLASS_INDEX]
            if unknown or not self.classes:
                raise ValueError(f"unknown or empty classes: {unknown}")
        if self.stft is not None:
            if isinstance(self.stft, SpectrogramConfig):
                n_fft, hop = self.stft.n_fft, self.stft.hop_length
                if self.stft.sample_rate != self.sample_rate:
                    raise ValueError(f"stft grid at {self.stft.sample_rate} Hz for clips at {self.sample_rate} Hz")
                if not 0 < self.stft.win_length <= n_fft:
                    raise ValueError(f"bad stft win_length {self.stft.win_length} for n_fft {n_fft}")
            else:
                object.__setattr__(self, "stft", tuple(int(v) for v in self.stft))
                n_fft, hop = self.stft
            if hop <= 0 or n_fft <= 1:
                raise ValueError(f"bad stft {self.stft}")
            if n_fft // 2 >= round(self.duration * self.sample_rate):
                raise ValueError("clip shorter than n_fft // 2: reflect padding impossible")
        if not 1 <= self.min_events <= self.max_events:
            raise ValueError("need 1 <= min_events <= max_events")
        if self.n_captions < 1:
            raise ValueError("need n_captions >= 1")
        if self.duration <= 0:
            raise ValueError("duration must be positive")
        if self.sample_rate < 16000:
            raise ValueError("sample_rate must be >= 16000 Hz (classes reach up to ~7 kHz)")


# ----------------------------------------------------------------------------------------
# Signal primitives (all float32 (n,) unless said otherwise; t in seconds, f in Hz)
# ----------------------------------------------------------------------------------------


def _u(rng, lo_hi) -> float:
    return float(rng.uniform(lo_hi[0], lo_hi[1]))


def _lu(rng, lo_hi) -> float:
    """Log-uniform draw (for frequencies and rates)."""
    return float(math.exp(rng.uniform(math.log(lo_hi[0]), math.log(lo_hi[1]))))


def _time(n: int, sr: int) -> np.ndarray:
    """float64 ``(n,)`` sample times in seconds."""
    return np.arange(n, dtype=np.float64) / sr


def _frac(x: np.ndarray) -> np.ndarray:
    return x - np.floor(x)


def _cycles_const(f: float, n: int, sr: int, block: int = 256) -> np.ndarray:
    """Phase in cycles, wrapped to [0, 1), float32 ``(n,)``, of a constant frequency ``f``.

    Sample ``q * block + r`` has phase ``frac(q * block * f / sr) + frac(r * f / sr)``
    (both terms exact in float64, summed in float32), so precision does not degrade with n.
    """
    coarse = _frac(np.arange(-(-n // block)) * (block * f / sr)).astype(F32)
    fine = _frac(np.arange(block) * (f / sr)).astype(F32)
    ph = (coarse[:, None] + fine[None, :]).ravel()[:n]
    return ph - np.floor(ph)


def _cycles(f: np.ndarray, sr: int) -> np.ndarray:
    """Phase in cycles, wrapped to [0, 1), of an instantaneous-frequency track ``f`` (Hz)."""
    return _frac(np.cumsum(f, dtype=np.float64) / sr)


def _sin(cycles: np.ndarray) -> np.ndarray:
    return np.sin(TWO_PI * cycles.astype(F32))


def _band_limit(amps, f_max: float, sr: int) -> np.ndarray:
    """Drop harmonics ``k * f_max`` above 0.45 * sr (``amps[k-1]`` is harmonic k)."""
    amps = np.asarray(amps, dtype=np.float64)
    k_max = max(1, int(0.45 * sr / max(f_max, 1.0)))
    return amps[:k_max]


def _table(amps) -> np.ndarray:
    """One cycle of ``sum_k amps[k-1] sin(2 pi k x)``, float32 ``(_WT + 1,)`` (wraps)."""
    amps = np.asarray(amps, dtype=np.float64)[: _WT // 2 - 1]
    spec = np.zeros(_WT // 2 + 1, dtype=np.complex128)
    spec[1 : len(amps) + 1] = -0.5j * _WT * amps
    tab = np.fft.irfft(spec, _WT).astype(F32)
    return np.concatenate([tab, tab[:1]])


def _harmonic(cycles: np.ndarray, amps, f_max: float, sr: int) -> np.ndarray:
    """Band-limited harmonic tone by wavetable lookup (linear interpolation).

    cycles: phase in cycles in [0, 1), ``(n,)``; amps: harmonic amplitudes (1, 2, ...);
    f_max: highest fundamental the phase reaches (Hz), for band limiting.
    """
    tab = _table(_band_limit(amps, f_max, sr))
    pos = cycles * _WT
    i = pos.astype(np.intp)
    fr = (pos - i).astype(F32)
    i &= _WT - 1  # pos == _WT (rounding) wraps to 0 with fr == 0
    lo = tab[i]
    return lo + fr * (tab[i + 1] - lo)


def _partials(n: int, sr: int, freqs, amps, taus, phases=None, block: int = 256) -> np.ndarray:
    """Sum of exponentially decaying sines: ``sum_k a_k exp(-t/tau_k) sin(2 pi f_k t + p_k)``.

    freqs (Hz), amps, taus (s), phases (rad): ``(K,)``; partials above 0.45 * sr are
    dropped.  Writing ``t = t_coarse + t_fine`` (blocks of ``block`` samples) turns the sum
    into one ``(Q, 2K) @ (2K, block)`` matrix product (angle-addition formula), so the cost
    per sample is ~4K multiply-adds instead of K sines and K exponentials.
    """
    freqs, amps, taus = (np.asarray(v, dtype=np.float64) for v in (freqs, amps, taus))
    keep = freqs < 0.45 * sr
    freqs, amps, taus = freqs[keep], amps[keep], taus[keep]
    phases = np.zeros_like(freqs) if phases is None else np.asarray(phases, np.float64)[keep]
    if len(freqs) == 0:
        return np.zeros(n, F32)
    w = 2 * np.pi * freqs[:, None]
    tq = np.arange(-(-n // block))[None, :] * (block / sr)  # (1, Q) block start times
    tr = np.arange(block)[None, :] / sr  # (1, block)
    eq = amps[:, None] * np.exp(-tq / taus[:, None])
    eq[eq < 1e-20] = 0.0  # keep float32 away from denormals
    er = np.exp(-tr / taus[:, None])
    arg = w * tq + phases[:, None]
    left = np.concatenate([eq * np.sin(arg), eq * np.cos(arg)])
    right = np.concatenate([er * np.cos(w * tr), er * np.sin(w * tr)])
    return (left.T.astype(F32) @ right.astype(F32)).ravel()[:n]


_WHITE_STD = float(np.sqrt((256.0**2 - 1.0) / 12.0))


def _white(rng, shape) -> np.ndarray:
    """Zero-mean, unit-variance white noise, float32 ``shape``.

    Uniform on 256 levels from ``rng.bytes`` (several times faster than
    ``standard_normal``); sums of many of them (any filtering) are Gaussian.
    """
    size = int(np.prod(shape))
    b = np.frombuffer(rng.bytes(size), dtype=np.int8).astype(F32)
    return ((b + F32(0.5)) * F32(1.0 / _WHITE_STD)).reshape(shape)


def _burst(rng, n: int, sr: int, tau: float) -> np.ndarray:
    """A short noise burst ``exp(-t/tau)``, float32 of length ``min(n, 8 tau sr)``."""
    L = max(1, min(n, int(8 * tau * sr)))
    return _white(rng, L) * _decay_env(L, sr, [tau])[0]


def _add(x: np.ndarray, y: np.ndarray, gain: float = 1.0) -> np.ndarray:
    """``x[:len(y)] += gain * y`` in place; returns x."""
    x[: len(y)] += F32(gain) * y
    return x


@functools.lru_cache(maxsize=64)
def _rfftfreq(m: int, sr: int) -> np.ndarray:
    return np.fft.rfftfreq(m, 1.0 / sr).astype(F32)


def _fast_len(n: int) -> int:
    return next_fast_len(max(n, 2), real=True)


def _rms(x: np.ndarray) -> float:
    """Root mean square of a 1-D array."""
    return math.sqrt(max(float(np.dot(x, x)), 0.0) / len(x)) if len(x) else 0.0


def _normalise(x: np.ndarray) -> np.ndarray:
    rms = _rms(x)
    return (x * F32(1.0 / rms)).astype(F32, copy=False) if rms > 0 else x.astype(F32, copy=False)


def _colored(rng, n: int, sr: int, gain=None) -> np.ndarray:
    """Gaussian noise with magnitude response ``gain(f)`` (f in Hz), unit RMS, ``(n,)``."""
    m = _fast_len(n)
    nf = m // 2 + 1
    re_im = _white(rng, (2, nf))
    spec = re_im[0] + 1j * re_im[1]
    spec[0] = 0.0
    if gain is not None:
        spec *= gain(_rfftfreq(m, sr))
    return _normalise(sfft.irfft(spec, m)[:n])


def _filter(x: np.ndarray, sr: int, gain) -> np.ndarray:
    """Zero-phase filter ``x`` (..., n) with magnitude response ``gain(f)`` via FFT."""
    n = x.shape[-1]
    m = _fast_len(n + min(n, 1024))
    spec = sfft.rfft(x, m, axis=-1)
    spec *= gain(_rfftfreq(m, sr))
    return sfft.irfft(spec, m, axis=-1)[..., :n].astype(F32, copy=False)


def _bp(lo=None, hi=None, order=2):
    """Butterworth-like magnitude response: high-pass at ``lo`` and/or low-pass at ``hi`` Hz."""

    def gain(f):
        g = np.ones_like(f)
        if lo is not None:
            g /= np.sqrt(1.0 + (lo / np.maximum(f, 1.0)) ** (2 * order))
        if hi is not None:
            g /= np.sqrt(1.0 + (f / hi) ** (2 * order))
        return g

    return gain


def _power(exponent: float, lo: float = 20.0):
    """``f ** exponent`` above ``lo`` Hz (exponent -0.5: pink, -1: brown), flat below."""
    return lambda f: np.maximum(f, lo) ** exponent


def _peak(f, fc: float, bw: float):
    """Resonance (Lorentzian) magnitude at ``f`` for centre ``fc`` and bandwidth ``bw`` Hz."""
    return 1.0 / (1.0 + ((f - fc) / (0.5 * bw)) ** 2)


def _formant_amps(f0: float, formants, n_harm: int, tilt: float = 1.0) -> np.ndarray:
    """Harmonic amplitudes of a voice: source ``1/k**tilt`` times formant resonances.

    formants: ((frequency Hz, bandwidth Hz, gain), ...).
    """
    fk = f0 * np.arange(1, n_harm + 1)
    g = sum(a * _peak(fk, fc, bw) for fc, bw, a in formants) + 0.02
    return g / np.arange(1, n_harm + 1) ** tilt


def _ramp(x: np.ndarray, sr: int, attack: float, release: float) -> np.ndarray:
    """Raised-cosine fade in/out of ``attack``/``release`` seconds, in place; returns x."""
    n = len(x)
    for length, sl in ((attack, slice(None)), (release, slice(None, None, -1))):
        m = min(int(length * sr), n // 2)
        if m > 0:
            w = (0.5 - 0.5 * np.cos(np.pi * (np.arange(m, dtype=F32) + 0.5) / m)).astype(F32)
            x[sl][:m] *= w
    return x


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _gate(t: np.ndarray, period: float, on: float, edge: float = 0.004) -> np.ndarray:
    """Periodic on/off gate (1 for ``on`` s of every ``period`` s) with smooth edges."""
    tp = np.mod(t, period)
    return _smoothstep(np.minimum(tp, on - tp) / edge).astype(F32)


def _slow(rng, n: int, sr: int, rate: float, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    """Smooth random curve in [lo, hi]: cosine interpolation of knots ``rate`` per second."""
    k = int(n / sr * rate) + 2
    knots = rng.uniform(lo, hi, k)
    fine = np.linspace(0.0, k - 1, 16 * (k - 1) + 1)  # 16 cosine-interpolated points per knot
    i = np.minimum(fine.astype(np.intp), k - 2)
    w = 0.5 - 0.5 * np.cos(np.pi * (fine - i))
    curve = knots[i] * (1 - w) + knots[i + 1] * w
    return np.interp(np.arange(n) * (rate / sr), fine, curve).astype(F32)


def _place(n: int, starts, grains: np.ndarray) -> np.ndarray:
    """Overlap-add grains ``(G, L)`` at sample offsets ``starts (G,)`` into ``(n,)``."""
    starts = np.asarray(starts, dtype=np.intp)
    if grains.size == 0:
        return np.zeros(n, F32)
    idx = starts[:, None] + np.arange(grains.shape[1])
    ok = (idx >= 0) & (idx < n)
    return np.bincount(idx[ok], weights=grains[ok], minlength=n)[:n].astype(F32)


def _decay_env(L: int, sr: int, taus, attack: float = 0.0005) -> np.ndarray:
    """``(G, L)`` envelopes: linear attack of ``attack`` s then ``exp(-t/tau)``."""
    t = (np.arange(L, dtype=F32) / sr)[None, :]
    taus = np.asarray(taus, dtype=F32)[:, None]
    return np.minimum(t / attack, 1.0) * np.exp(-t / taus)


def _ring_grains(rng, L: int, sr: int, freqs, taus, noise_mix: float = 0.5) -> np.ndarray:
    """Click/knock grains ``(G, L)``: decaying sine at ``freqs`` plus a shorter noise burst."""
    freqs = np.asarray(freqs, dtype=np.float64)
    taus = np.asarray(taus, dtype=np.float64)
    t = np.arange(L, dtype=np.float64) / sr
    ph = rng.uniform(0, 1, (len(freqs), 1))
    tone = np.sin(TWO_PI * _frac(np.outer(freqs, t) + ph).astype(F32))
    noise = _white(rng, (len(freqs), L))
    noise *= _decay_env(L, sr, taus / 3)
    return (tone * _decay_env(L, sr, taus) + noise_mix * noise).astype(F32)


def _env_train(n: int, sr: int, times, amps, taus, attack: float = 0.0005) -> np.ndarray:
    """Sum of attack/decay envelopes starting at ``times`` (s) with heights ``amps``."""
    taus = np.broadcast_to(np.asarray(taus, dtype=F32), np.shape(times))
    L = min(n, int(5 * float(np.max(taus)) * sr) + 2)
    env = _decay_env(L, sr, taus, attack) * np.asarray(amps, dtype=F32)[:, None]
    return _place(n, np.round(np.asarray(times) * sr), env)


def _poisson_env(rng, n: int, sr: int, rate: float, tau: float, sigma: float = 0.8) -> np.ndarray:
    """Random impulses (``rate`` per s, log-normal heights) through a one-pole decay ``tau`` s."""
    k = int(rng.poisson(rate * n / sr))
    imp = np.bincount(rng.integers(0, n, k), weights=rng.lognormal(0.0, sigma, k), minlength=n)
    return lfilter([1.0], [1.0, -math.exp(-1.0 / (tau * sr))], imp).astype(F32)


def _pattern(dur: float, period: float, call: float, jitter: float, rng) -> np.ndarray:
    """Start times (s) of calls of length ``call`` repeated every ~``period`` s within ``dur``.

    The first call starts at 0 and the last one ends at ``dur`` (when more than one fits).
    """
    count = max(1, 1 + int((dur - call) / period))
    if count == 1:
        return np.zeros(1)
    times = np.linspace(0.0, dur - call, count)
    times[1:-1] += rng.uniform(-jitter, jitter, count - 2) * (dur - call) / (count - 1)
    return times


# ----------------------------------------------------------------------------------------
# Synthesis functions: (rng, n samples, sample_rate, params) -> (signal (<= n,), pitch Hz)
# ----------------------------------------------------------------------------------------


def _s_beep(rng, n, sr, p):
    f = _lu(rng, p["f"])
    return _ramp(_sin(_cycles_const(f, n, sr)), sr, 0.012, 0.012), f


def _s_alarm(rng, n, sr, p):
    f = _lu(rng, p["f"])
    on, off = _u(rng, p["on"]), _u(rng, p["off"])
    x = _harmonic(_cycles_const(f, n, sr), [1, 0, 1 / 3, 0, 1 / 5, 0, 1 / 7], f, sr)
    return x * _gate(_time(n, sr), on + off, on), f


def _s_phone(rng, n, sr, p):
    f1 = _lu(rng, p["f"])
    f2 = f1 * _u(rng, (1.08, 1.2))
    t = _time(n, sr)
    on, off = _u(rng, p["on"]), _u(rng, p["off"])
    tone = _harmonic(_cycles_const(f1, n, sr), [1, 0.3, 0.1], f1, sr) + _harmonic(
        _cycles_const(f2, n, sr), [1, 0.3, 0.1], f2, sr)
    clapper = (0.6 + 0.4 * np.sin(TWO_PI * F32(20.0) * t.astype(F32))).astype(F32)
    return tone * clapper * _gate(t, on + off, on, 0.01), f1


def _s_chirp(rng, n, sr, p):
    f0, f1 = _lu(rng, p["f0"]), _lu(rng, p["f1"])
    if p["direction"] < 0:
        f0, f1 = f1, f0
    T = n / sr
    k = f1 / f0
    t = _time(n, sr)
    cyc = _frac(f0 * T / math.log(k) * (np.power(k, t / T) - 1.0))
    return _ramp(_sin(cyc), sr, 0.01, 0.03), math.sqrt(f0 * f1)


def _s_siren(rng, n, sr, p):
    fc, depth, rate = _lu(rng, p["f"]), _u(rng, p["depth"]), _lu(rng, p["rate"])
    t = _time(n, sr)
    f = fc * (1.0 + depth * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)))
    x = _harmonic(_cycles(f, sr), [1, 0.4, 0.2, 0.1, 0.05], fc * (1 + depth), sr)
    return _ramp(x, sr, 0.05, 0.1), fc


_BELL_RATIOS = np.array([0.5, 1.0, 1.19, 1.5, 2.0, 2.5, 2.66, 3.01, 4.17, 5.43])
_BELL_AMPS = np.array([0.6, 1.0, 0.8, 0.5, 0.9, 0.4, 0.35, 0.3, 0.2, 0.15])
_BELL_TAUS = np.array([1.6, 1.0, 0.9, 0.7, 0.6, 0.5, 0.45, 0.4, 0.3, 0.25])


def _s_bell(rng, n, sr, p):
    f = _lu(rng, p["f"])
    freqs = f * _BELL_RATIOS * (1 + rng.uniform(-0.005, 0.005, len(_BELL_RATIOS)))
    x = _partials(n, sr, freqs, _BELL_AMPS, _u(rng, p["tau"]) * _BELL_TAUS,
                  rng.uniform(0, 2 * np.pi, len(freqs)))
    return _add(x, _burst(rng, n, sr, 0.003), 0.3), f


def _s_gong(rng, n, sr, p):
    f = _lu(rng, p["f"])
    ratios = np.concatenate([[1.0], np.sort(rng.uniform(1.1, 8.0, 13))])
    amps = rng.uniform(0.4, 1.0, len(ratios)) / ratios ** 0.6
    taus = _u(rng, p["tau"]) / ratios ** 0.4
    x = _partials(n, sr, f * ratios, amps, taus, rng.uniform(0, 2 * np.pi, len(ratios)))
    swell = _smoothstep(_time(n, sr) / _u(rng, (0.03, 0.08))).astype(F32)
    return x * swell, f


def _s_glass(rng, n, sr, p):
    f, tau = _lu(rng, p["f"]), _u(rng, p["tau"])
    ratios, amps = np.array([1.0, 2.32, 4.25]), np.array([1.0, 0.5, 0.25])
    taus = tau * np.array([1.0, 0.5, 0.25])
    x = _partials(n, sr, f * ratios, amps, taus)
    if rng.random() < 0.5:  # a second glass answers
        d = int(_u(rng, (0.06, 0.2)) * sr)
        if d < n:
            x[d:] += 0.6 * _partials(n - d, sr, f * 1.03 * ratios, amps, taus)
    return x, f


def _s_doorbell(rng, n, sr, p):
    f, tau = _lu(rng, p["f"]), _u(rng, p["tau"])
    ratios, amps = np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.2, 0.08])
    taus = tau * np.array([1.0, 0.5, 0.3])
    x = _partials(n, sr, f * ratios, amps, taus)
    d = min(int(_u(rng, (0.45, 0.7)) * sr), int(0.6 * n))
    x[d:] += _partials(n - d, sr, 0.8 * f * ratios, amps, taus)
    return x, f


_PENTATONIC = np.array([1.0, 9 / 8, 5 / 4, 3 / 2, 5 / 3, 2.0])


def _s_chimes(rng, n, sr, p):
    base, rate, tau = _lu(rng, p["f"]), _u(rng, p["rate"]), _u(rng, p["tau"])
    m = max(3, int(rate * n / sr))
    starts = np.sort(rng.integers(0, max(1, n - int(0.1 * sr)), m))
    starts[0] = 0
    notes = base * _PENTATONIC[rng.integers(0, len(_PENTATONIC), m)]
    amps = rng.uniform(0.4, 1.0, m)
    x = np.zeros(n, F32)
    for s, f, a in zip(starts, notes, amps):
        L = min(n - s, int(4 * tau * sr))
        x[s:s + L] += a * _partials(L, sr, f * np.array([1.0, 2.756, 5.404]),
                                    [1.0, 0.4, 0.15], tau * np.array([1.0, 0.4, 0.15]))
    return x, base


def _s_pluck(rng, n, sr, p):
    f, tau = _lu(rng, p["f"]), _u(rng, p["tau"])
    k = np.arange(1, 13)
    pos = _u(rng, (0.1, 0.3))
    amps = np.abs(np.sin(np.pi * k * pos)) / k
    freqs = f * k * np.sqrt(1 + 1e-4 * k ** 2)
    x = _partials(n, sr, freqs, amps, tau / (1 + 0.35 * (k - 1)), rng.uniform(0, 2 * np.pi, 12))
    return x, f


_DRAWBARS = [1.0, 0.6, 0.4, 0.3, 0.2, 0.12, 0.08, 0.05]


def _s_organ(rng, n, sr, p):
    f = _lu(rng, p["f"])
    third = 1.25 if rng.random() < 0.6 else 1.2
    x = np.zeros(n, F32)
    for r in (1.0, third, 1.5):
        fr = f * r * (1 + rng.uniform(-0.002, 0.002))
        x += _harmonic(_frac(_cycles_const(fr, n, sr) + rng.random()), _DRAWBARS, fr, sr)
    trem = 1 + 0.08 * np.sin(TWO_PI * F32(_u(rng, (5.5, 7.0))) * _time(n, sr).astype(F32))
    return _ramp(x * trem, sr, 0.03, 0.08), f


def _s_bowed(rng, n, sr, p):
    f = _lu(rng, p["f"])
    t = _time(n, sr)
    depth, rate = _u(rng, (0.003, 0.008)), _u(rng, (5.0, 6.5))
    vib = depth * np.sin(2 * np.pi * rate * t) * np.minimum(t / 0.3, 1)
    k = np.arange(1, 41)
    body = 0.25 + _peak(k * f, 450, 300) + 0.8 * _peak(k * f, 3000, 1500)
    x = _harmonic(_cycles(f * (1 + vib), sr), body / k, f * 1.01, sr)
    bow = _colored(rng, n, sr, _bp(2000, None, 1))
    return _ramp(x + 0.05 * _rms(x) * bow, sr, _u(rng, (0.08, 0.2)), 0.15), f


def _s_flute(rng, n, sr, p):
    f = _lu(rng, p["f"])
    t = _time(n, sr)
    vib = 0.004 * np.sin(2 * np.pi * _u(rng, (4.5, 5.5)) * t) * np.minimum(t / 0.25, 1)
    x = _harmonic(_cycles(f * (1 + vib), sr), [1, 0.3, 0.1, 0.04], f * 1.01, sr)
    breath = _colored(rng, n, sr, _bp(f, 6 * f, 2))
    return _ramp(x + 0.06 * breath, sr, _u(rng, (0.05, 0.09)), 0.08), f


def _s_marimba(rng, n, sr, p):
    f, tau = _lu(rng, p["f"]), _u(rng, p["tau"])
    x = _partials(n, sr, f * np.array([1.0, 3.93, 9.2]), [1.0, 0.25, 0.06],
                  [tau, 0.06, 0.02])
    return _add(x, _burst(rng, n, sr, 0.002), 0.1), f


def _s_kick(rng, n, sr, p):
    f_hi, f_lo, tau = _u(rng, p["f_hi"]), _u(rng, p["f_lo"]), _u(rng, p["tau"])
    t = _time(n, sr)
    f = f_lo + (f_hi - f_lo) * np.exp(-t / _u(rng, (0.02, 0.04)))
    x = _sin(_cycles(f, sr)) * _decay_env(n, sr, [tau], 0.001)[0]
    return _add(x, _burst(rng, n, sr, 0.001), 0.3), f_lo


def _s_snare(rng, n, sr, p):
    f, tau = _u(rng, p["f"]), _u(rng, p["tau"])
    noise = _colored(rng, n, sr, _bp(800, min(9000, 0.45 * sr), 2)) * _decay_env(n, sr, [tau])[0]
    tone = _partials(n, sr, [f, 1.6 * f], [1.0, 0.5], [0.05, 0.03])
    return 0.7 * noise + tone, None


def _s_clap(rng, n, sr, p):
    lo = _u(rng, p["lo"])
    k = int(rng.integers(3, 5))
    times = np.cumsum(np.concatenate([[0.0], rng.uniform(0.006, 0.012, k - 1)]))
    env = _env_train(n, sr, times, np.linspace(1.0, 0.7, k), 0.003)
    env += _env_train(n, sr, times[-1:], [0.7], _u(rng, p["tail"]))
    return _colored(rng, n, sr, _bp(lo, lo * _u(rng, (3.0, 5.0)), 2)) * env, None


def _s_hihat(rng, n, sr, p):
    dur = n / sr
    times = _pattern(dur, _u(rng, p["period"]), 0.05, 0.0, rng)
    m = len(times)
    taus = np.where(rng.random(m) < 0.15, 0.15, rng.uniform(0.02, 0.05, m))
    amps = np.where(np.arange(m) % 2 == 0, 1.0, 0.6) * rng.uniform(0.8, 1.0, m)
    env = _env_train(n, sr, times, amps, taus)
    return _colored(rng, n, sr, _bp(min(6500.0, 0.35 * sr), None, 4)) * env, None


def _s_clock(rng, n, sr, p):
    f = _lu(rng, p["f"])
    period = (0.5, 1.0)[int(rng.integers(0, 2))]
    times = _pattern(n / sr, period, 0.03, 0.0, rng)
    freqs = np.where(np.arange(len(times)) % 2 == 0, f, 0.75 * f)
    L = int(0.03 * sr)
    g = _ring_grains(rng, L, sr, freqs, np.full(len(times), _u(rng, (0.002, 0.004))), 0.6)
    return _place(n, np.round(times * sr), g), None


def _s_click(rng, n, sr, p):
    g = _ring_grains(rng, n, sr, [_lu(rng, p["f"])], [_u(rng, (0.001, 0.003))], 0.7)[0]
    return g, None


def _s_typing(rng, n, sr, p):
    gaps = p["gap"][0] + rng.exponential(0.5 * (p["gap"][1] - p["gap"][0]), int(n / sr / 0.05) + 2)
    times = np.concatenate([[0.0], np.cumsum(gaps)])
    times = times[times < n / sr - 0.03]
    m = len(times)
    L = int(0.04 * sr)
    amps = rng.lognormal(0.0, 0.3, m).astype(F32)[:, None]
    hi = _ring_grains(rng, L, sr, rng.uniform(2000, 5000, m), rng.uniform(0.001, 0.002, m), 1.0)
    lo = _ring_grains(rng, L, sr, rng.uniform(300, 700, m), rng.uniform(0.006, 0.01, m), 0.2)
    return _place(n, np.round(times * sr), amps * (hi + 0.7 * lo)), None


def _s_knock(rng, n, sr, p):
    f = _u(rng, p["f"])
    times = _pattern(n / sr, _u(rng, p["period"]), 0.08, 0.1, rng)[:6]
    m = len(times)
    L = int(0.1 * sr)
    g = _ring_grains(rng, L, sr, f * rng.uniform(0.95, 1.05, m), np.full(m, 0.03), 0.8)
    g += 0.4 * _ring_grains(rng, L, sr, rng.uniform(500, 900, m), np.full(m, 0.01), 0.5)
    x = _place(n, np.round(times * sr), g)
    return x[: int((times[-1] + 0.1) * sr)], f


def _s_footsteps(rng, n, sr, p):
    times = _pattern(n / sr, _u(rng, p["period"]), 0.12, 0.05, rng)
    m = len(times)
    amps = np.where(np.arange(m) % 2 == 0, 1.0, 0.75) * rng.uniform(0.8, 1.0, m)
    thud = _colored(rng, n, sr, _bp(60, 600, 2)) * _env_train(n, sr, times, amps, 0.035, 0.004)
    heel = _ring_grains(rng, int(0.03 * sr), sr, rng.uniform(1000, 3000, m), np.full(m, 0.004), 1.0)
    return thud + 0.15 * _place(n, np.round((times + 0.01) * sr), heel), None


def _s_noise(rng, n, sr, p):
    e = p["exponent"]
    x = _colored(rng, n, sr, None if e == 0 else _power(e))
    return _ramp(x, sr, 0.02, 0.02), None


def _s_static(rng, n, sr, p):
    hiss = _colored(rng, n, sr, _bp(300, min(3400, 0.45 * sr), 2))
    hiss *= 0.6 + 0.4 * _slow(rng, n, sr, 12)
    crackle = _white(rng, n) * _poisson_env(rng, n, sr, _u(rng, (30, 80)), 0.001, 1.0)
    tone_f = _u(rng, (1000, 3000)) * (1 + 0.05 * _slow(rng, n, sr, 1.0, -1, 1))
    whistle = 0.15 * _sin(_cycles(tone_f, sr))
    return _ramp(hiss + 0.5 * crackle + whistle, sr, 0.02, 0.02), None


def _s_rain(rng, n, sr, p):
    hiss = _colored(rng, n, sr, lambda f: _bp(400, None, 1)(f) * _power(-0.3, 400)(f))
    drops = _poisson_env(rng, n, sr, _u(rng, p["rate"]), _u(rng, (0.002, 0.005)), 0.8)
    carrier = _colored(rng, n, sr, _bp(1500, min(8000, 0.45 * sr), 1))
    x = (0.5 * hiss + _normalise(drops) * carrier) * (0.8 + 0.2 * _slow(rng, n, sr, 0.5))
    return _ramp(x, sr, 0.2, 0.3), None


def _s_wind(rng, n, sr, p):
    rate = _u(rng, p["rate"])
    x = 0.3 * _colored(rng, n, sr, _bp(None, 150, 2))
    for _ in range(3):
        fc = _lu(rng, p["f"])
        band = _colored(rng, n, sr, lambda f, fc=fc: _peak(f, fc, 0.6 * fc))
        x += band * _slow(rng, n, sr, rate, 0.1, 1.0) ** 2
    return _ramp(x, sr, 0.3, 0.4), None


def _s_waves(rng, n, sr, p):
    t = _time(n, sr)
    period, phase = _u(rng, p["period"]), rng.uniform(0, 2 * np.pi)
    swell = (0.5 - 0.5 * np.cos(2 * np.pi * t / period + phase)).astype(F32)
    wash = _colored(rng, n, sr, _bp(None, _u(rng, (600, 2000)), 1)) * (0.15 + swell ** 2)
    crest = _colored(rng, n, sr, _bp(1500, None, 2)) * swell ** 4
    return _ramp(wash + 0.5 * crest, sr, 0.3, 0.4), None


def _s_thunder(rng, n, sr, p):
    t = _time(n, sr).astype(F32)
    t0 = _u(rng, (0.0, 0.2))
    crack = _colored(rng, n, sr, _bp(200, 5000, 1)) * _env_train(n, sr, [t0], [1.0], 0.03)
    env = (1 - np.exp(-t / 0.15)) * np.exp(-t / _u(rng, p["tau"]))
    env *= _slow(rng, n, sr, 3.0, 0.3, 1.0)
    rumble = _colored(rng, n, sr, lambda f: _power(-1.0)(f) * _bp(20, 300, 2)(f)) * env
    return _ramp(0.7 * crack + rumble, sr, 0.001, 0.3), None


def _s_bubbles(rng, n, sr, p):
    m = max(1, int(rng.poisson(_u(rng, p["rate"]) * n / sr)))
    L = min(n, int(0.06 * sr))
    f0 = np.exp(rng.uniform(*np.log(p["f"]), m))[:, None]
    xi = rng.uniform(10, 30, m)[:, None]
    t = (np.arange(L) / sr)[None, :]
    g = np.sin(TWO_PI * _frac(f0 * (t + 0.5 * xi * t * t)).astype(F32))
    g *= _decay_env(L, sr, rng.uniform(0.005, 0.02, m), 0.001)
    g *= rng.lognormal(0, 0.5, m).astype(F32)[:, None]
    x = _place(n, rng.integers(0, max(1, n - L), m), g)
    flow = _colored(rng, n, sr, _bp(None, 800, 1))
    return _ramp(x + 0.1 * _rms(x) * flow, sr, 0.05, 0.1), None


def _s_fire(rng, n, sr, p):
    rate = _u(rng, p["rate"])
    pops = _white(rng, n) * _poisson_env(rng, n, sr, rate, _u(rng, (0.0005, 0.0015)), 1.0)
    pops = _filter(pops, sr, _bp(500, None, 1))
    bed = _colored(rng, n, sr, _bp(None, 800, 1)) * (0.5 + 0.5 * _slow(rng, n, sr, 2.0))
    return _ramp(_normalise(pops) + 0.3 * bed, sr, 0.1, 0.2), None


def _s_engine(rng, n, sr, p):
    f = _lu(rng, p["f"])
    ft = f * (1 + 0.01 * _slow(rng, n, sr, 2.0, -1, 1))
    k = np.arange(1, 61)
    amps = rng.uniform(0.6, 1.0, 60) / k ** 0.8
    x = _harmonic(_cycles(ft, sr), amps, 1.01 * f, sr)
    x += 0.3 * _harmonic(_cycles(0.5 * ft, sr), amps[:20], 0.51 * f, sr)
    x += 0.15 * _rms(x) * _colored(rng, n, sr, _bp(None, 500, 2))
    return _ramp(x, sr, 0.1, 0.15), f


def _s_mains(rng, n, sr, p):
    f = (50.0, 60.0)[int(rng.integers(0, 2))] * (1 + rng.uniform(-0.002, 0.002))
    k = np.arange(1, 31)
    amps = np.where(k % 2 == 1, 0.4, 0.15) / k
    amps[:4] = [0.4, 1.0, 0.35, 0.3]
    return _ramp(_harmonic(_cycles_const(f, n, sr), amps, f, sr), sr, 0.05, 0.05), f


def _s_drill(rng, n, sr, p):
    f = _lu(rng, p["f"])
    t = _time(n, sr)
    spin = 0.25 + 0.75 * (1 - np.exp(-t / _u(rng, (0.15, 0.4))))
    spin *= np.clip((t[-1] - t) / 0.15, 0.3, 1.0)  # spins down at the end
    k = np.arange(1, 41)
    amps = 1 / k + 0.8 * ((k >= 3) & (k <= 5))
    x = _harmonic(_cycles(f * spin, sr), amps, f, sr)
    noise = _colored(rng, n, sr, _bp(1000, min(5000, 0.45 * sr), 2))
    x += 0.15 * _rms(x) * noise * spin.astype(F32)
    return _ramp(x, sr, 0.01, 0.05), f


def _s_helicopter(rng, n, sr, p):
    rate = _u(rng, p["rate"])
    times = np.arange(0.0, n / sr, 1 / rate) + rng.uniform(0, 1 / rate)
    slaps = _colored(rng, n, sr, _bp(None, 800, 2))
    slaps *= _env_train(n, sr, times, np.ones(len(times)), 0.02, 0.003)
    bed = _colored(rng, n, sr, _bp(None, 2000, 1))
    whine = _sin(_cycles_const(_u(rng, (1500, 3000)), n, sr))
    flyover = 0.6 + 0.4 * np.sin(np.pi * _time(n, sr) / (n / sr)).astype(F32)
    return _ramp((slaps + 0.2 * bed + 0.05 * whine) * flyover, sr, 0.3, 0.3), None


def _s_horn(rng, n, sr, p):
    f1 = _lu(rng, p["f"])
    k = np.arange(1, 31)
    x = (_harmonic(_cycles_const(f1, n, sr), 1 / k, f1, sr)
         + _harmonic(_cycles_const(1.26 * f1, n, sr), 1 / k, 1.26 * f1, sr))
    return _ramp(np.tanh(1.5 * x).astype(F32), sr, 0.01, 0.03), f1


def _s_jackhammer(rng, n, sr, p):
    rate = _u(rng, p["rate"])
    times = np.arange(0.0, n / sr - 0.02, 1 / rate)
    m = len(times)
    thump = _colored(rng, n, sr, _bp(150, 1500, 2))
    thump *= _env_train(n, sr, times, rng.uniform(0.8, 1.0, m), 0.012)
    ring = _ring_grains(rng, int(0.02 * sr), sr, rng.uniform(1500, 3000, m), np.full(m, 0.003), 1.5)
    hiss = _colored(rng, n, sr, _bp(2000, None, 1))
    x = thump + 0.2 * _place(n, np.round(times * sr), ring) + 0.05 * hiss
    return _ramp(x, sr, 0.01, 0.05), None


def _s_bird(rng, n, sr, p):
    fs = _lu(rng, p["f"])
    fe = fs * (_u(rng, (0.5, 0.8)) if rng.random() < 0.7 else _u(rng, (1.2, 1.5)))
    fe = min(fe, 0.45 * sr)
    T = _u(rng, (0.04, 0.12))
    times = _pattern(n / sr, max(_u(rng, p["period"]), T + 0.03), T, 0.2, rng)
    m = len(times)
    L = int(T * sr)
    t = (np.arange(L) / sr)[None, :]
    jit = rng.uniform(0.9, 1.1, m)[:, None]
    k = fe / fs
    cyc = _frac(jit * fs * T / math.log(k) * (np.power(k, t / T) - 1.0))
    env = (np.sin(np.pi * t / T) ** 2).astype(F32)
    g = env * (_sin(cyc) + 0.1 * _sin(_frac(2 * cyc)))
    return _place(n, np.round(times * sr), g), math.sqrt(fs * fe)


def _s_cuckoo(rng, n, sr, p):
    f1 = _lu(rng, p["f"])
    f2 = f1 * _u(rng, (0.78, 0.84))
    note, gap = _u(rng, (0.12, 0.2)), _u(rng, (0.05, 0.12))
    calls = _pattern(n / sr, _u(rng, p["period"]), 2 * note + gap, 0.05, rng)
    L = int(note * sr)
    t = (np.arange(L) / sr)[None, :]
    freqs = np.tile([f1, f2], len(calls))[:, None]
    cyc = _frac(freqs * (t - 0.015 * t * t / note))
    g = _sin(cyc) + 0.05 * _sin(_frac(2 * cyc))
    g *= (np.sin(np.pi * t / note) ** 0.5).astype(F32)
    starts = np.stack([calls, calls + note + gap], 1).ravel()
    x = _place(n, np.round(starts * sr), g)
    return x[: int((calls[-1] + 2 * note + gap) * sr)], f1


def _s_crickets(rng, n, sr, p):
    f = min(_lu(rng, p["f"]), 0.4 * sr)
    rate, period = _u(rng, p["rate"]), _u(rng, p["period"])
    pulses = int(rng.integers(3, 6))
    t = _time(n, sr)
    tc = np.mod(t + rng.uniform(0, period), period)
    idx = np.floor(tc * rate)
    fr = tc * rate - idx
    gate = ((idx < pulses) & (fr < 0.5)) * np.sin(2 * np.pi * fr) ** 2
    return _ramp(_sin(_cycles_const(f, n, sr)) * gate.astype(F32), sr, 0.01, 0.01), f


def _voice(cyc: np.ndarray, f0: float, formants, sr: int, tilt: float = 1.0) -> np.ndarray:
    """Voiced sound: harmonic wavetable with formant-shaped amplitudes (``f0`` Hz)."""
    n_harm = max(1, int(0.45 * sr / f0))
    return _harmonic(cyc, _formant_amps(f0, formants, n_harm, tilt), f0 * 1.1, sr)


def _s_bark(rng, n, sr, p):
    L_s = _u(rng, (0.1, 0.2))
    times = _pattern(n / sr, max(_u(rng, p["period"]), L_s + 0.08), L_s, 0.1, rng)
    f0 = _lu(rng, p["f"])
    t = _time(n, sr)
    k = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 1)
    tb = t - times[k]
    u = np.clip(tb / L_s, 0, 1)
    barkf = f0 * rng.uniform(0.9, 1.1, len(times))[k]
    f = barkf * (0.8 + 0.4 * np.exp(-(((u - 0.25) / 0.3) ** 2)))
    a = 0.015
    env = (tb / a) * np.exp(1 - tb / a) * 0.5 + 0.5 * np.exp(-tb / 0.06)
    env *= (tb < L_s) * np.minimum(tb / 0.003, 1)
    env = env.astype(F32) * np.minimum(1.0, (L_s - tb) / 0.01).clip(0).astype(F32)
    x = _voice(_cycles(f, sr), f0, ((900, 500, 1.0), (1800, 800, 0.7), (3200, 1200, 0.3)), sr, 0.7)
    rough = _colored(rng, n, sr, _bp(500, min(4000, 0.45 * sr), 2))
    x = (x / max(_rms(x), 1e-6) + 0.3 * rough) * env
    return x[: int((times[-1] + L_s) * sr)], f0


def _s_meow(rng, n, sr, p):
    fp = _lu(rng, p["f"])
    u = (_time(n, sr) / (n / sr))
    w = (np.sin(np.pi * u) ** 1.5).astype(F32)
    f = fp * (0.65 + 0.35 * np.sin(np.pi * u) ** 0.7)
    cyc = _cycles(f, sr)
    bright = _voice(cyc, fp, ((900, 300, 1.0), (1600, 400, 0.8), (3000, 600, 0.3)), sr)
    dark = _voice(cyc, fp, ((400, 200, 1.0), (900, 300, 0.5), (2500, 600, 0.1)), sr)
    x = (w * bright / _rms(bright) + (1 - w) * dark / _rms(dark)) * (0.4 + 0.6 * w)
    return _ramp(x, sr, 0.06, 0.15), float(np.mean(f))


def _s_frog(rng, n, sr, p):
    f0 = _lu(rng, p["f"])
    L_s = _u(rng, (0.12, 0.3))
    times = _pattern(n / sr, max(_u(rng, p["period"]), L_s + 0.1), L_s, 0.1, rng)
    t = _time(n, sr)
    k = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 1)
    u = (t - times[k]) / L_s
    env = np.where((u >= 0) & (u < 1), np.sin(np.pi * np.clip(u, 0, 1)) ** 0.5, 0.0).astype(F32)
    am = ((0.5 + 0.5 * np.sin(2 * np.pi * _u(rng, (25, 60)) * t)) ** 3).astype(F32)
    fc = _u(rng, (500, 1200))
    x = _voice(_cycles_const(f0, n, sr), f0, ((fc, 400, 1.0), (2.2 * fc, 800, 0.3)), sr, 0.5)
    return (x * am * env)[: int((times[-1] + L_s) * sr)], f0


def _s_buzz(rng, n, sr, p):
    f0 = _lu(rng, p["f"])
    f = f0 * (1 + 0.06 * _slow(rng, n, sr, 1.5, -1, 1))
    k = np.arange(1, 41)
    x = _harmonic(_cycles(f, sr), 1 / k, 1.07 * f0, sr)
    x *= 0.3 + 0.7 * _slow(rng, n, sr, _u(rng, (0.3, 1.0)), 0.2, 1.0) ** 2
    return _ramp(x, sr, 0.1, 0.1), f0


# Vowel formants (F1, F2, F3) in Hz of an adult voice.
_VOWELS = np.array([(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480),
                    (570, 840, 2410), (660, 1720, 2410), (490, 1350, 1690)], dtype=np.float64)


def _formants_of(vowel, scale: float):
    f1, f2, f3 = vowel * scale
    return ((f1, 90, 1.0), (f2, 120, 0.6), (f3, 200, 0.3))


def _s_speech(rng, n, sr, p):
    f0 = _lu(rng, p["f"])
    scale = 1.0 if f0 < 160 else 1.15
    dur = n / sr
    t = _time(n, sr)
    f = f0 * (1.1 - 0.2 * t / dur) * (1 + 0.08 * _slow(rng, n, sr, 3.0, -1, 1))
    cyc = _cycles(f, sr)
    period = 1 / _u(rng, p["rate"])
    x = np.zeros(n, F32)
    starts = np.arange(0.0, dur - 0.1, period)
    for s in starts:
        if rng.random() < 0.15 and s > 0:  # a pause between words
            continue
        a, L = int(s * sr), int(min(period * _u(rng, (0.6, 0.9)), dur - s) * sr)
        if L < 16:
            continue
        vowel = _VOWELS[rng.integers(0, len(_VOWELS))]
        seg = _voice(cyc[a:a + L], f0, _formants_of(vowel, scale), sr, 1.2)
        x[a:a + L] += seg * (np.sin(np.pi * (np.arange(L) + 0.5) / L) ** 0.8).astype(F32)
        if rng.random() < 0.4:  # a fricative before the vowel
            c = min(L, int(0.05 * sr))
            hiss = _colored(rng, c, sr, _bp(min(2500, 0.3 * sr), None, 2))
            x[a:a + c] += 0.3 * _rms(seg) * hiss * _hann(c)
    return _ramp(x, sr, 0.01, 0.02), f0


_SEMITONES = np.array([0, 2, 4, 5, 7, 9])


def _melody(rng, n: int, sr: int, f0: float, notes: int, glide: float = 0.04) -> np.ndarray:
    """Instantaneous frequency (Hz, ``(n,)``) of a short tune around ``f0`` with glides."""
    steps = _SEMITONES[rng.integers(0, len(_SEMITONES), notes)]
    freqs = f0 * 2.0 ** (steps / 12.0)
    i = np.minimum((np.arange(n) * notes) // n, notes - 1)
    f = freqs[i]
    w = max(1, int(glide * sr))
    c = np.cumsum(np.concatenate([np.full(w, f[0]), f, np.full(w, f[-1])]))  # moving average
    return (c[2 * w:] - c[:-2 * w])[:n] / (2 * w)


def _s_hum(rng, n, sr, p):
    f0 = _lu(rng, p["f"])
    f = _melody(rng, n, sr, f0, int(rng.integers(3, 7)))
    x = _voice(_cycles(f, sr), f0, ((250, 100, 1.0), (2500, 400, 0.05)), sr, 2.0)
    return _ramp(x, sr, 0.08, 0.12), float(np.median(f))


def _s_whistle(rng, n, sr, p):
    f0 = _lu(rng, p["f"])
    t = _time(n, sr)
    f = _melody(rng, n, sr, f0, int(rng.integers(3, 9)), 0.03)
    f = f * (1 + 0.01 * np.sin(2 * np.pi * _u(rng, (5, 6)) * t))
    x = _harmonic(_cycles(f, sr), [1.0, 0.05], 2 * f0, sr)
    breath = _colored(rng, n, sr, _bp(0.8 * f0, min(2.5 * f0, 0.45 * sr), 3))
    return _ramp(x + 0.03 * breath, sr, 0.04, 0.08), float(np.median(f))


def _s_laugh(rng, n, sr, p):
    f0 = _lu(rng, p["f"])
    period = 1 / _u(rng, p["rate"])
    starts = np.arange(0.0, n / sr - 0.5 * period, period)
    formants = ((800, 150, 1.0), (1200, 200, 0.6), (2500, 300, 0.3))
    t = _time(n, sr)
    k = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(starts) - 1)
    f = f0 * 0.96 ** k * (1 - 0.1 * np.clip((t - starts[k]) / period, 0, 1))
    x = _voice(_cycles(f, sr), f0, formants, sr, 1.0)
    breath = _colored(rng, n, sr, _bp(600, min(3000, 0.45 * sr), 2))
    x = x / max(_rms(x), 1e-6) + 0.35 * breath
    env = _env_train(n, sr, starts + 0.03, np.linspace(1.0, 0.6, len(starts)), 0.06, 0.01)
    h = _env_train(n, sr, starts, np.full(len(starts), 0.4), 0.01, 0.005)
    asp = _colored(rng, n, sr, _bp(1000, None, 1))
    return _ramp(x * env + asp * h, sr, 0.001, 0.05), f0


def _s_applause(rng, n, sr, p):
    env = _poisson_env(rng, n, sr, _u(rng, p["rate"]), _u(rng, (0.004, 0.012)), 0.5)
    lo, hi = _u(rng, (600, 1000)), min(_u(rng, (3000, 6000)), 0.45 * sr)
    carrier = _colored(rng, n, sr, _bp(lo, hi, 2))
    return _ramp(_normalise(env) * carrier, sr, 0.3, 0.4), None


# Backgrounds ----------------------------------------------------------------------------


def _s_bg_room(rng, n, sr):
    return _colored(rng, n, sr, lambda f: _power(-0.5)(f) * _bp(None, 3000, 1)(f))


def _s_bg_traffic(rng, n, sr):
    x = _colored(rng, n, sr, _power(-1.0))
    x += _colored(rng, n, sr, _bp(50, 400, 2)) * _slow(rng, n, sr, _u(rng, (0.1, 0.3)), 0.2, 1.0)
    return x


def _s_bg_outdoors(rng, n, sr):
    x = _colored(rng, n, sr, lambda f: _power(-0.5)(f) * _bp(100, 6000, 1)(f))
    return x * _slow(rng, n, sr, 0.3, 0.6, 1.0)


def _s_bg_ventilation(rng, n, sr):
    return _colored(rng, n, sr, lambda f: _bp(None, 1500, 1)(f) * (1 + 2 * _peak(f, 300, 200)))


_SYNTHS = {name[3:]: fn for name, fn in globals().items() if name.startswith("_s_")}
for _cls in CLASSES:
    assert _cls.synth in _SYNTHS, _cls.synth
for _bg in BACKGROUNDS:
    assert _bg.synth in _SYNTHS, _bg.synth


# ----------------------------------------------------------------------------------------
# STFT and ground-truth masks
# ----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    """Periodic Hann window, float32 ``(n_fft,)`` (a synthesis primitive; the masks use
    :func:`clap_jax.frontend.window`)."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(F32)


def mask_grid(stft: "tuple[int, int] | SpectrogramConfig", sample_rate: int) -> SpectrogramConfig:
    """The STFT grid masks are computed on, as a :class:`clap_jax.frontend.SpectrogramConfig`.

    A ``SpectrogramConfig`` is used as given (its window, ``win_length``, hop, padding and
    ``n_fft``: the grid of the classifier being explained; mel fields are ignored). A tuple
    ``(n_fft, hop)`` is the corpus' own convention: periodic Hann of ``n_fft`` samples,
    reflect padding (``librosa.stft`` defaults).
    """
    if isinstance(stft, SpectrogramConfig):
        return stft
    n_fft, hop = (int(v) for v in stft)
    return SpectrogramConfig(sample_rate=sample_rate, n_fft=n_fft, win_length=n_fft, hop_length=hop,
                             window="hann", pad_mode="reflect")


@functools.partial(jax.jit, static_argnums=1)
def _magnitudes(x, grid: SpectrogramConfig):
    """|frontend.stft| of signals (C, n) -> (C, frames, n_freq) float32 (no magnitude eps)."""
    return frontend.magnitude(frontend.stft(x, grid))


def stft(x: np.ndarray, n_fft: int = 1024, hop: int = 320) -> np.ndarray:
    """STFT with the corpus convention, complex ``(..., 1 + n // hop, n_fft // 2 + 1)``.

    :func:`clap_jax.frontend.stft` on :func:`mask_grid` ``((n_fft, hop))``: centred frames (frame
    k centred on sample k * hop), reflect padding of n_fft // 2, periodic Hann window, rfft (no
    scaling).  ``x``: float ``(..., n)``.
    """
    x = np.asarray(x, dtype=F32)
    grid = mask_grid((n_fft, hop), 16000)      # the rate does not enter the STFT
    out = frontend.stft(x.reshape(-1, x.shape[-1]), grid)
    return np.asarray(out).reshape(*x.shape[:-1], *out.shape[1:])


def _event_masks(components: np.ndarray, spans, n_events: int, grid: SpectrogramConfig,
                 floor_db: float):
    """Ground-truth masks of the first ``n_events`` rows of ``components`` on ``grid``.

    components: float32 ``(C, n)`` separate signals (events first, then the background), as
    mixed (their sum is the clip).  spans: ``[(onset_sample, offset_sample)]`` of the events.
    Returns ``[(start, stop, crop bool (stop - start, n_freq))]`` per event, ``[start, stop)``
    being :meth:`Event.frame_span` (the mask is False outside it).

    Every component goes through the same STFT as the classifier (:func:`_magnitudes`:
    ``frontend.stft`` with ``grid``'s window, hop, padding and ``n_fft``); the mixture's
    magnitude budget ``tot`` sums their magnitudes.  Event ``i`` is True where
    ``|X_i| > tot - |X_i|`` (it dominates everything else) and ``|X_i| >= floor * max |X_i|``.
    """
    n = components.shape[1]
    mags = np.asarray(_magnitudes(components, grid))          # (C, frames, n_freq)
    tot = mags.sum(axis=0)
    floor = F32(10.0 ** (floor_db / 20.0))
    out = []
    for i, (a, b) in enumerate(spans[:n_events]):
        s, e = Event.frame_span(a, b, n, grid.n_fft, grid.hop_length)
        if e <= s:
            out.append((s, s, np.zeros((0, grid.n_freq), dtype=bool)))
            continue
        m = mags[i]
        peak = m.max()
        full = (m > tot - m) & (m >= floor * peak) & (peak > 0)
        out.append((s, e, full[s:e].copy()))
    return out


def ground_truth(clip: Clip, spectrogram: "SpectrogramConfig | tuple[int, int] | None" = None) -> np.ndarray:
    """The clip's ground-truth masks on any STFT grid: bool ``(events, frames, n_freq)``, events
    in onset order (``clip.events``), ``frames = spectrogram.num_frames(len(clip.audio))``.

    ``spectrogram``: the explained classifier's :class:`~clap_jax.frontend.SpectrogramConfig`
    (e.g. ``classifier.spec.audio.spectrogram``), a corpus ``(n_fft, hop)``, or None for the
    grid the clip was generated with.  Another grid regenerates the clip from ``(seed, index,
    config)`` with masks on that grid (the audio does not depend on the grid; checked).
    """
    if spectrogram is not None and mask_grid(spectrogram, clip.sample_rate) != clip.grid:
        if clip.config is None:
            raise ValueError(f"{clip.clip_id}: no generation config recorded; cannot recompute its masks")
        other = generate_clip(clip.seed, clip.index, dataclasses.replace(clip.config, stft=spectrogram))
        if not np.array_equal(other.audio, clip.audio):
            raise ValueError(f"{clip.clip_id}: regenerated audio differs; was the clip modified?")
        clip = other
    if clip.grid is None:
        raise ValueError(f"{clip.clip_id}: generated with stft=None; pass a spectrogram config")
    n_frames = clip.grid.num_frames(len(clip.audio))
    if not clip.events:
        return np.zeros((0, n_frames, clip.grid.n_freq), dtype=bool)
    return np.stack([e.mask for e in clip.events])


# ----------------------------------------------------------------------------------------
# Captions
# ----------------------------------------------------------------------------------------

_SINGLE = ("{n}", "the sound of {n}", "{n} can be heard", "{c}", "a recording of {n}",
           "you can hear {n}")
_SEQ_NOUN = ("{a}, then {b}", "{a} followed by {b}", "{a} and then {b}", "first {a}, then {b}",
             "{b} after {a}")
_SEQ_CLAUSE = ("{a}, then {b}", "{a} and then {b}", "{a} before {b}", "after {a}, {b}",
               "first {a}, and then {b}")
_OVERLAP = ("{a} and {b} at the same time", "{a} together with {b}", "{a} with {b}",
            "{a} mixed with {b}", "{a} as {bc}")
_INSIDE = ("{s} over {l}", "{l} while {sc}", "{sc} while {lc}", "{sc} over {l}",
           "{l}, interrupted by {s}")
_MANY = ("{x} and {y} at the same time", "{x} together with {y}", "a mix of {x} and {y}",
         "{x} and {y} all at once")
_CHAIN = ("{0}, then {1}, then {2}", "first {0}, then {1}, and finally {2}",
          "{0}, followed by {1} and then {2}")

_OVERLAP_TOL = 0.1  # s: events overlapping less than this count as consecutive


def _pick(r: random.Random, seq):
    """Choose with ``Random.random()`` only (its sequence is stable across Python versions)."""
    return seq[int(r.random() * len(seq))]


def _groups(events: list[Event]) -> list[list[Event]]:
    """Split onset-sorted events into groups of (transitively) overlapping events."""
    groups: list[list[Event]] = []
    end = -1.0
    for ev in events:
        if groups and ev.onset < end - _OVERLAP_TOL:
            groups[-1].append(ev)
            end = max(end, ev.offset)
        else:
            groups.append([ev])
            end = ev.offset
    return groups


def _describe(r: random.Random, group: list[Event]) -> tuple[str, str | None]:
    """(noun phrase, clause or None) describing one group of simultaneous events."""
    cls = [get_class(e.class_id) for e in group]
    if len(group) == 1:
        return _pick(r, cls[0].nouns), _pick(r, cls[0].clauses)
    if len(group) == 2:
        a, b = group
        long_, short = (a, b) if (a.offset - a.onset) >= (b.offset - b.onset) else (b, a)
        inside = short.onset >= long_.onset - 0.05 and short.offset <= long_.offset + 0.05
        ca, cb = cls
        cl, cs = get_class(long_.class_id), get_class(short.class_id)
        words = dict(a=_pick(r, ca.nouns), b=_pick(r, cb.nouns), bc=_pick(r, cb.clauses),
                     l=_pick(r, cl.nouns), s=_pick(r, cs.nouns), lc=_pick(r, cl.clauses),
                     sc=_pick(r, cs.clauses))
        tpl = _pick(r, _INSIDE) if inside and r.random() < 0.6 else _pick(r, _OVERLAP)
        return tpl.format(**words), None
    nouns = [_pick(r, c.nouns) for c in cls]
    return _pick(r, _MANY).format(x=", ".join(nouns[:-1]), y=nouns[-1]), None


def _caption(r: random.Random, groups, background: Background | None, bg_prob: float) -> str:
    descs = [_describe(r, g) for g in groups]
    if len(descs) == 1:
        noun, clause = descs[0]
        if clause is None:
            text = noun if r.random() < 0.7 else "the sound of " + noun
        else:
            text = _pick(r, _SINGLE).format(n=noun, c=clause)
    elif len(descs) == 2:
        (na, ca), (nb, cb) = descs
        if ca is not None and cb is not None and r.random() < 0.4:
            text = _pick(r, _SEQ_CLAUSE).format(a=ca, b=cb)
        else:
            text = _pick(r, _SEQ_NOUN).format(a=na, b=nb)
    else:
        nouns = [d[0] for d in descs]
        if len(nouns) == 3:
            text = _pick(r, _CHAIN).format(*nouns)
        else:
            text = ", then ".join(nouns)
    if background is not None and r.random() < bg_prob:
        text += _pick(r, background.suffixes)
    text = text[0].upper() + text[1:]
    return text + "." if r.random() < 0.5 else text


def caption_for(r: random.Random, events: Sequence[Event], background: str | None = None,
                bg_prob: float = 0.0) -> str:
    """One everyday-language caption of ``events`` (any events, e.g. a subset of a clip's),
    drawn with ``r`` like a clip's own captions; ``background`` (an id of
    :data:`BACKGROUNDS`) is mentioned with probability ``bg_prob``."""
    known = {b.id: b for b in BACKGROUNDS}
    if background is not None and background not in known:
        raise ValueError(f"unknown background {background!r}; expected one of {sorted(known)}")
    bg = None if background is None else known[background]
    return _caption(r, _groups(sorted(events, key=lambda e: (e.onset, e.offset))), bg, bg_prob)


def tag_caption(r: random.Random, class_ids: Sequence[str]) -> str:
    """A tag-list text for ``class_ids``: one of each class's :attr:`SoundClass.tags`,
    shuffled, comma-separated ("rain, short electronic beep")."""
    tags = [_pick(r, get_class(c).tags) for c in class_ids]
    r.shuffle(tags)
    return ", ".join(tags)


def _captions(r: random.Random, events: list[Event], background: Background | None,
              n: int, bg_prob: float) -> list[str]:
    """``n`` captions, distinct where possible (repeats only if the templates run out)."""
    groups = _groups(events)
    out: list[str] = []
    seen: set[str] = set()
    for _ in range(12 * n):
        c = _caption(r, groups, background, bg_prob)
        key = c.lower().rstrip(".")  # "A beep." and "a beep" are the same caption
        if key not in seen:
            seen.add(key)
            out.append(c)
            if len(out) == n:
                break
    while len(out) < n:
        out.append(out[len(out) % max(1, len(out))])
    return out


# ----------------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------------


def _db(x: float) -> float:
    return 20.0 * math.log10(max(x, 1e-12))




def clip_id_for(seed: int, index: int) -> str:
    """The stable id of clip ``index`` of ``seed``: ``s{seed}_{index:06d}``."""
    return f"s{seed}_{index:06d}"


def _synth_events(rng, cfg: SoundscapeConfig, n: int):
    """Draw and synthesise the events of a clip.

    Returns (class ids, signals float32 at their drawn RMS level, spans ``(onset, offset)``
    in samples, pitches in Hz or None), in drawing order.
    """
    sr = cfg.sample_rate
    pool = cfg.classes or CLASS_IDS
    k = 1 if cfg.single_event else int(rng.integers(cfg.min_events, cfg.max_events + 1))
    chosen = [pool[i] for i in rng.choice(len(pool), size=min(k, len(pool)), replace=False)]
    signals, spans, pitches = [], [], []
    for cid in chosen:
        sc = get_class(cid)
        dur = min(_u(rng, sc.duration), cfg.duration)
        L = max(16, min(n, int(dur * sr)))
        x, pitch = _SYNTHS[sc.synth](rng, L, sr, sc.params)  # may come back shorter than L
        x = _ramp(np.array(x[:L], dtype=F32), sr, 0.001, 0.005)
        level = _u(rng, cfg.event_level_db)
        start = int(rng.integers(0, n - len(x) + 1))
        signals.append(_normalise(x) * F32(10.0 ** (level / 20.0)))
        spans.append((start, start + len(x)))
        pitches.append(None if pitch is None else float(pitch))
    return chosen, signals, spans, pitches


def _mix(signals, spans, bg: np.ndarray | None, n: int):
    """Place the components in one buffer and peak-normalise the mixture.

    Returns (audio ``(n,)``, buffer ``(C, n)`` of the scaled components with the background
    last, gain applied; their sum is the audio), gain.
    """
    buf = np.zeros((len(signals) + (bg is not None), n), dtype=F32)
    components = buf
    for i, (x, (a, b)) in enumerate(zip(signals, spans)):
        components[i, a:b] = x
    if bg is not None:
        components[-1] = bg
    audio = components.sum(axis=0)
    peak = float(np.max(np.abs(audio)))
    gain = min(1.0, PEAK_MAX / peak) if peak > 0 else 1.0
    if gain < 1.0:
        audio *= F32(gain)
        buf *= F32(gain)
    return audio, buf, gain


def generate_clip(seed: int, index: int, config: SoundscapeConfig | None = None, **kwargs) -> Clip:
    """Generate clip ``index`` of ``seed``; depends only on (seed, index, config).

    kwargs override fields of ``config`` (see :class:`SoundscapeConfig`).
    """
    cfg = config or SoundscapeConfig()
    if kwargs:
        cfg = dataclasses.replace(cfg, **kwargs)
    if seed < 0 or index < 0:
        raise ValueError("seed and index must be >= 0")
    rng = np.random.default_rng([seed, index])
    sr = cfg.sample_rate
    n = int(round(cfg.duration * sr))
    chosen, signals, spans, pitches = _synth_events(rng, cfg, n)

    background, bg, bg_level = None, None, None
    if cfg.background:
        background = BACKGROUNDS[int(rng.integers(0, len(BACKGROUNDS)))]
        bg_level = _u(rng, cfg.background_level_db)
        bg = _normalise(_SYNTHS[background.synth](rng, n, sr)) * F32(10.0 ** (bg_level / 20.0))

    audio, buf, gain = _mix(signals, spans, bg, n)
    grid = None if cfg.stft is None else mask_grid(cfg.stft, sr)
    masks = None if grid is None else _event_masks(buf, spans, len(chosen), grid, cfg.mask_floor_db)

    events = []
    for i, (cid, (a, b)) in enumerate(zip(chosen, spans)):
        level = _db(_rms(buf[i, a:b]))
        ev = Event(cid, a / sr, b / sr, level, pitches[i])
        if masks is not None:
            start, stop, crop = masks[i]
            ev.mask_frames, ev.mask_crop, ev.n_frames = (start, stop), crop, grid.num_frames(n)
        events.append(ev)
    events.sort(key=lambda e: (e.onset, e.offset))
    r = random.Random(int(rng.integers(0, 2**63)))
    return Clip(
        clip_id=clip_id_for(seed, index),
        seed=seed,
        index=index,
        audio=audio,
        sample_rate=sr,
        labels=[e.class_id for e in events],
        captions=_captions(r, events, background, cfg.n_captions, cfg.background_caption_prob),
        events=events,
        background=None if background is None else background.id,
        background_level_db=None if bg_level is None else bg_level + _db(gain),
        stft=None if grid is None else (grid.n_fft, grid.hop_length),
        grid=grid,
        config=cfg,
    )


def iter_clips(seed: int, n_clips: int, start: int = 0, config: SoundscapeConfig | None = None,
               **kwargs) -> Iterator[Clip]:
    """Yield clips ``start .. start + n_clips - 1`` of ``seed`` (resumable, parallelisable)."""
    cfg = dataclasses.replace(config or SoundscapeConfig(), **kwargs)
    for i in range(start, start + n_clips):
        yield generate_clip(seed, i, cfg)


def generate(seed: int, n_clips: int, *, sample_rate: int = 16000, duration: float = 5.0,
             max_events: int = 3, single_event: bool = False, background: bool = True,
             classes: Sequence[str] | None = None, stft: tuple[int, int] | None = (1024, 320),
             start: int = 0, **kwargs) -> list[Clip]:
    """Generate ``n_clips`` clips of ``seed`` as a list (see :class:`SoundscapeConfig`)."""
    cfg = SoundscapeConfig(sample_rate=sample_rate, duration=duration, max_events=max_events,
                           single_event=single_event, background=background,
                           classes=None if classes is None else tuple(classes), stft=stft, **kwargs)
    return list(iter_clips(seed, n_clips, start, cfg))


def _main(argv=None):
    """``python -m clap_jax.data.soundscapes [--n N] [--duration S]``: print throughput."""
    import argparse
    import time

    ap = argparse.ArgumentParser(description=_main.__doc__)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--sample-rate", type=int, default=16000)
    ap.add_argument("--no-masks", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    clips = generate(args.seed, args.n, sample_rate=args.sample_rate, duration=args.duration,
                     stft=None if args.no_masks else (1024, 320))
    dt = time.perf_counter() - t0
    secs = sum(c.duration for c in clips)
    print(f"{args.n} clips in {dt:.2f} s: {args.n / dt:.1f} clips/s, {secs / dt:.0f} audio-s/s")
    for c in clips[:3]:
        print(c.clip_id, c.labels, c.captions[0])


if __name__ == "__main__":
    _main()
