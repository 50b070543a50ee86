"""LMAC-ZS on the bundled CLAP, each clip seen with two of its own sounds' prompts (``data.twin_prompts``):
``configs/lmac_zs_soundscapes_rejected.py`` otherwise (λ1 = 2, l1_rejected = 10, λ2 = 0.1, 1,200
steps, 8 rows a step).

    python -m train.lmac_zs --config=configs/lmac_zs_soundscapes_twins.py \
        --workdir=runs/soundscapes-small-lmac-zs-twins --export=runs/soundscapes-small-lmac-zs-twins/export

With one text per clip, Eq. 7's diversity term compares a clip's mask for its own text with its
masks for the other clips' texts, which mostly name sounds it does not hold; nothing asks two sounds
*in* the clip for different masks, and the bundled decoder draws one mask per clip (its "high beep"
and "rain" masks on ``beep_and_rain.wav`` correlate 0.99). Here every clip takes two rows of the
batch, its first text and the prompt of another of its event classes, so D_i also compares the masks
of two present sounds and asks their masked encodings to be as alike as the two prompts are. Four
clips a step (``batch_size`` counts clips), so 8 rows and 64 pairs as the other configs. Ours, not
the paper's.
"""
import ml_collections

from configs import lmac_zs_soundscapes_rejected


def get_config() -> ml_collections.ConfigDict:
    c = lmac_zs_soundscapes_rejected.get_config()
    c.data.twin_prompts = True
    c.batch_size = 4
    return c
