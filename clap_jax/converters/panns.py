"""PANNs ``Cnn14`` AudioSet taggers (audioset_tagging_cnn, panns_inference; ``Cnn14*.pth``).

    Cnn14_mAP=0.431.pth ["model"] --panns_spec--> ClassifierSpec (rate from the STFT size, sigmoid)
"""
from __future__ import annotations

from clap_jax import weights
from clap_jax.converters.base import Source, State, check_mel_bank, cnn14_config, shapes_of, stft_size
from clap_jax.frontend import SpectrogramConfig
from clap_jax.spec import AudioConfig, ClassifierSpec

# Our names are PANNs' except the head.
PANNS_RULES = [(r"^head\.", "fc_audioset.")]
PANNS_IGNORE = [r"^(spectrogram_extractor|logmel_extractor)\.", r"\.num_batches_tracked$"]

# PANNs checkpoints do not store their rate or hop; the STFT size tells the published variants
# apart (Cnn14*.pth: 32 kHz; Cnn14_16k*: 16 kHz; Cnn14_8k*: 8 kHz), checked against the stored bank.
PANNS_FRONTENDS = {1024: (32000, 320, 14000.0), 512: (16000, 160, 8000.0), 256: (8000, 80, 4000.0)}


def panns_spec(state: State) -> ClassifierSpec:
    """A PANNs Cnn14 (AudioSet tagging): torchlibrosa Slaney log-mel (64 mels from 50 Hz), 10 s
    windows, short clips zero-padded (PANNs' ``pad_or_truncate``), long ones cropped at the centre.
    Logits go through a sigmoid (527 independent AudioSet labels)."""
    with shapes_of("panns"):
        model = cnn14_config(state, "", "bn0", "fc_audioset")
    n_fft = stft_size(state, "spectrogram_extractor.stft.conv_real.weight")
    if n_fft not in PANNS_FRONTENDS:
        raise ValueError(f"spectrogram_extractor.stft.conv_real.weight: n_fft {n_fft} is not a published PANNs "
                         f"front end ({sorted(PANNS_FRONTENDS)})")
    sr, hop, fmax = PANNS_FRONTENDS[n_fft]
    spec = SpectrogramConfig(sample_rate=sr, n_fft=n_fft, win_length=n_fft, hop_length=hop, n_mels=model.n_mels,
                             fmin=50.0, fmax=fmax)
    check_mel_bank(state, "logmel_extractor.melW", spec)
    return ClassifierSpec(model=model, audio=AudioConfig(spectrogram=spec, clip_samples=10 * sr, pad="zeros",
                                                         quantize_int16=False),
                          source="panns", activation="sigmoid")


def read(path: str, allow_unsafe_pickle: bool) -> tuple[State, ClassifierSpec]:
    """A ``Cnn14*.pth`` file (the state dict under ``"model"``) and its spec."""
    state = weights.read_state_dict(path, allow_unsafe_pickle, entry="model")
    return state, panns_spec(state)


SOURCE = Source(name="panns", checkpoint="PANNs Cnn14*.pth", read=read, rules={"panns": PANNS_RULES},
                ignore=PANNS_IGNORE, classifier=True)
