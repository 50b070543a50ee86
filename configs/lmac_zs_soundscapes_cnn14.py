"""Trains the bundled LMAC-ZS decoder ``soundscapes-small-cnn14-lmac-zs`` for the bundled CNN14 CLAP
``soundscapes-small-cnn14`` (Microsoft CLAP 2022's shape, the paper's architecture).

    python -m train.lmac_zs --config=configs/lmac_zs_soundscapes_cnn14.py \
        --workdir=runs/soundscapes-small-cnn14-lmac-zs --export=clap_jax/bundled/soundscapes-small-cnn14-lmac-zs

Everything but the model and the decoder is ``configs/lmac_zs_soundscapes.py`` (the same clips,
texts, loss weights λ1 = 2 and λ2 = 0.1, optimiser and steps), so the two bundled decoders differ
by architecture only. The decoder is the paper's: L-MAC's transposed-convolution stack on CNN14
blocks 6-3 (width 256, the last block's channels) with cross-attention to the prompt after each
of its skip sums, writing onto the linear STFT of the model's 16 kHz input (257 bins, 501 frames).
The stack was laid out for 80 mels and needs at least 64 (Microsoft CLAP 2022 has 64): on this
CLAP's 32 its two coarsest inputs are one band wide and its output one bin, so each block map's
mel axis is repeated twice first (``decoder.freq_repeat``, 0: picked from the CLAP's mels).
"""
import ml_collections

from configs import lmac_zs_soundscapes


def get_config() -> ml_collections.ConfigDict:
    c = lmac_zs_soundscapes.get_config()
    c.model = "soundscapes-small-cnn14"
    c.decoder.dim = 0                       # 0: the CNN14's last block width
    c.decoder.conditioning.heads = 8
    c.decoder.freq_repeat = 0               # 0: 64 // n_mels rounded up to a power of two (here 2)
    # The stack's output at that geometry (489 x 385 before the stretch to 501 x 257) makes a step of
    # 8 clips x 8 texts ~10x dearer than the HTSAT decoder's on 2 CPU cores: 4 x 4 for 600 steps.
    c.batch_size = 4
    c.steps = 600
    c.eval_every = 300
    return c
