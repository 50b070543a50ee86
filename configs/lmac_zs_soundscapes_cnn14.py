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
CLAP's 32 its two coarsest inputs are one band wide and its output one frequency bin, so the
bundled decoder's masks are time-only (``decoder.freq_repeat = 1``, what it was trained with;
the README's "LMAC-ZS in the paper's setting" has its numbers). ``--config.decoder.freq_repeat=0``
repeats each block map's mel bands to 64 first (time x frequency masks); trained here for 600
steps of 4 x 4 (~60 min on 2 cores, ``--config.batch_size=4 --config.steps=600``) its masks did
not depend on the prompt and did not localise (the README has the numbers).
"""
import ml_collections

from configs import lmac_zs_soundscapes


def get_config() -> ml_collections.ConfigDict:
    c = lmac_zs_soundscapes.get_config()
    c.model = "soundscapes-small-cnn14"
    c.decoder.dim = 0                       # 0: the CNN14's last block width
    c.decoder.conditioning.heads = 8
    c.decoder.freq_repeat = 1               # time-only masks at 32 mels (the bundled decoder); 0: repeat to 64
    return c
