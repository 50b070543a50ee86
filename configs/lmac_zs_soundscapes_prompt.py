"""LMAC-ZS on the bundled CLAP with the loss weighted for prompt dependence (λ1 = 12, λ2 = 0.5):
``configs/lmac_zs_soundscapes.py`` otherwise (same data, decoder, 1,200 steps).

    python -m train.lmac_zs --config=configs/lmac_zs_soundscapes_prompt.py \
        --workdir=runs/soundscapes-small-lmac-zs-prompt --export=runs/soundscapes-small-lmac-zs-prompt/export
    python -m train.lmac_zs --config=configs/lmac_zs_soundscapes_prompt.py --config.loss.domain=mel \
        --config.steps=800 --workdir=runs/soundscapes-small-lmac-zs-mel --export=runs/soundscapes-small-lmac-zs-mel/export

Not the bundled decoder: on the held-out clips (README, "LMAC-ZS on the soundscapes") it meets
ρ(mask mean, similarity) >= 0.7 in-domain where the bundled one does not, but its masks are so
small (mean 0.03) that faithfulness and localisation fall far below the bundled decoder's.

λ1 = 12 and λ2 = 0.5 (D at the logit scale) were chosen among five 300-step runs on validation
clips only (seed 25000, never evaluation clips): 24 clips of 2-3 events, each explained for all
56 corpus prompts (present: its events'; absent: the rest). The training log reports the same
quantities on its own validation clips (``train.lmac_zs.make_prompt_probe``).

    λ1, λ2 (other)               absent / present   ρ(mask mean, sim)   present: sim masked-in / clean
    2, 0.1 (1,200 steps)         0.77               0.13                8.8 / 8.7   (the first decoder)
    12, 0.1                      0.48               0.58                9.2 / 8.7
    12, 0.5                      0.28               0.89                6.5 / 8.7   <- this config
    12, 0.1 (label prompts only) 0.40               0.69                8.3 / 8.7
    4, 1.0                       0.27               0.79                4.1 / 8.7
    8, 1.0 (label prompts only)  0.28               0.59                6.8 / 8.7

Why λ1 must be large here: a fully kept clip reproduces an absent prompt's low similarity
exactly, while silence (an empty mask) scores -0.6 ± 4 logits against the corpus prompts, so
with a small λ1 the cheapest mask for an absent prompt keeps the clip. λ2 trades fidelity for
prompt dependence: D asks the clip masked for two prompts to be as (dis)similar as the prompts.
"""
import ml_collections

from configs import lmac_zs_soundscapes


def get_config() -> ml_collections.ConfigDict:
    c = lmac_zs_soundscapes.get_config()
    c.loss.l1, c.loss.diversity = 12.0, 0.5
    return c
