"""The L-MAC recipe's settings (SpeechBrain ``recipes/ESC50/interpret/hparams/lmac_cnn14.yaml``) on
ESC-50 with the recipe's classifier, converted (``python -m clap_jax.convert --source=speechbrain``):

    python -m train.lmac --config=configs/lmac_cnn14_esc50.py --workdir=runs/lmac-esc50 \
        --config.classifier=converted/sb-cnn14-esc50 --config.data.root=ESC-50-master \
        --config.data.noise_dir=wham_noise/tr --export=converted/lmac-esc50

Adam lr 2e-4, weight decay 2e-6 on every parameter (torch.optim.Adam's coupled L2; hence
``no_decay=()``), batch 16, 200 epochs of folds 1-3 (1,200 clips = 75 steps an epoch),
ReduceLROnPlateau on validation (fold 4) −Fid-In: factor 0.5, patience 3, not before epoch 100;
seed 1234; WHAM! noise at 0 dB (``data.noise_dir``), signed-max normalisation. Fold 5 is the
test fold (``lmac.evaluate --dataset=esc50``; note the recipe's own eval.py reports fold 4).
"""
import ml_collections

from configs import lmac_soundscapes


def get_config() -> ml_collections.ConfigDict:
    c = lmac_soundscapes.get_config()
    c.classifier = "converted/sb-cnn14-esc50"
    c.steps = 200 * 75
    c.eval_every = 75
    c.checkpoint_every = 750
    c.optim.no_decay = ()
    c.optim.plateau.start = 100
    c.data.dataset = "esc50"
    c.data.noise = "dir"
    return c
