"""LMAC-ZS on the bundled CLAP with sparsity where the CLAP rejects the prompt (``l1_rejected``):
``configs/lmac_zs_soundscapes.py`` otherwise (same data, decoder, λ1 = 2, λ2 = 0.1, 1,200 steps).

    python -m train.lmac_zs --config=configs/lmac_zs_soundscapes_rejected.py \
        --workdir=runs/soundscapes-small-lmac-zs-rejected --export=runs/soundscapes-small-lmac-zs-rejected/export

λ1_ij = λ1 + l1_rejected · σ(m_j − C_ij) (``lmac.zero_shot.l1_weights``; m_j: clip j's mean logit
over the batch's texts): a matched prompt, scored well above the clip's mean, pays the bundled
decoder's λ1 = 2 and keeps what keeps the decision; a mismatched one, below the mean, pays up to
λ1 + l1_rejected and goes dark. Ours, not the paper's: its uniform λ1 (the ``_prompt`` config
raises it to 12) darkens absent prompts only by thinning the present ones too.
"""
import ml_collections

from configs import lmac_zs_soundscapes


def get_config() -> ml_collections.ConfigDict:
    c = lmac_zs_soundscapes.get_config()
    c.loss.l1_rejected = 10.0
    return c
