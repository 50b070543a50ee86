"""The class table: 56 sound-event classes and 4 backgrounds, as data.

    SoundClass(id, label, family, nouns, clauses, duration, synth, params, tonal)
        -> CLASSES (tuple, the ESC-50 ``target`` is the position), FAMILIES, CLASS_IDS
    Background(id, caption suffixes, synth) -> BACKGROUNDS

``synth`` names a synthesiser of :data:`clap_jax.data.soundscapes.registry.SYNTHS` (``tonal``,
``noisy``); ``params`` are its parameters (frequency ranges in Hz, rates in Hz, times in s).
The table is one piece: it is the corpus' vocabulary, read top to bottom by family, and the
bundled models were trained on it in this order (reordering changes every ``target``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


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
      synth: name of its synthesiser in ``registry.SYNTHS``.
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
