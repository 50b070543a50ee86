"""LMAC-ZS as the paper trains it: Microsoft CLAP 2022 (CNN14 + BERT), Adam 1e-5, batch 2, 2 epochs.

    python -m clap_jax.convert --source=msclap --checkpoint=CLAP_weights_2022.pth \
        --tokenizer=bert-base-uncased/ --out=converted/msclap-2022
    python -m train.lmac_zs --config=configs/lmac_zs_msclap2022.py --workdir=runs/lmac-zs-msclap2022 \
        --config.model=converted/msclap-2022 \
        --config.data.csv=clotho_captions_development.csv --config.data.root=clotho/development \
        --export=converted/msclap-2022-lmac-zs

The paper's "CT" variant (Clotho only): 3,839 development clips at batch 2 are 1,920 steps an
epoch, so 2 epochs are 3,840 steps; AudioCaps CSVs read the same way (``data.csv``). The decoder
is L-MAC's transposed-convolution stack on CNN14 blocks 6-3 (width = the last block's 2048
channels) with Stable-Diffusion-style cross-attention after each of its three skip sums, writing
onto the linear STFT of the model's 44.1 kHz input (513 bins, 690 frames for 5 s). What the paper
does not give (λ1, λ2, the decoder's layers, normalisation) keeps this project's defaults
(lmac/zero_shot.py, lmac/conditioning.py).
"""
import ml_collections
from ml_collections import config_dict

from train.loop import NO_DECAY


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 1234
    c.model = ""                          # the converted Microsoft CLAP 2022 directory (required)
    c.distributed = False
    c.steps = 3840
    c.batch_size = 2
    c.log_every = 50
    c.eval_every = 960
    c.checkpoint_every = 480
    c.keep_checkpoints = 2
    c.optim = ml_collections.ConfigDict(dict(
        name="adam", learning_rate=1e-5, warmup_steps=0, schedule="constant", weight_decay=0.0, no_decay=NO_DECAY,
        grad_clip=0.0))
    c.loss = ml_collections.ConfigDict(dict(
        l1=1.0, l1_rejected=0.0, own_preference=0.0, diversity=1.0, diversity_scale="logit",
        domain="stft", stft_mask="log1p", normalize=None, logit_scale=None))
    c.decoder = ml_collections.ConfigDict(dict(
        dim=0, conditioning=dict(            # dim 0: the CNN14's width
            kind="cross_attention", levels=config_dict.placeholder(tuple),   # None: every level
            heads=8, text_tokens=8, similarity_map=True)))
    c.data = ml_collections.ConfigDict(dict(
        dataset="captions", csv="", root="", eval_clips=64, text_length=100, random_crop=True, workers=4,
        seed=0, train_clips=0, eval_seed=0, sample_rate=44100, duration=5.0, min_events=1, max_events=3,
        label_prompt_prob=0.0, prompt="this is the sound of {label}", twin_prompts=False))
    return c
