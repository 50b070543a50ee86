"""Trains the bundled LMAC-ZS decoder ``soundscapes-small-lmac-zs`` for the bundled CLAP ``soundscapes-small``.

    python -m train.lmac_zs --config=configs/lmac_zs_soundscapes.py --workdir=runs/soundscapes-small-lmac-zs \
        --export=clap_jax/bundled/soundscapes-small-lmac-zs

The paper's loss (methods.md C.3) on soundscapes clips of 1-3 events over a background; each
clip brings one text (a caption, or the prompt of one of its events), and every clip is paired
with every text of the batch. Validation clips: seed 25000; held-out evaluation
(``lmac.evaluate --zero_shot``): seed 70000, used by nothing in training or selection. The paper
trains with Adam at 1e-5 for 2 epochs at batch 2 on a GPU; on a 2-core CPU this config uses a
larger rate (1e-3) and batch 8 (64 prompt-clip pairs per step) for 1,200 steps. λ1 = 2 and
λ2 = 0.1 (D at the logit scale, i.e. 2.2 in cosine units) were set by 120-step trial runs on the
training stream (fidelity, D and the matched / mismatched mask means of the training log), never
on evaluation clips.
"""
import ml_collections
from ml_collections import config_dict

from train.loop import NO_DECAY


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 1234
    c.model = "soundscapes-small"         # a converted CLAP directory or a bundled name
    c.distributed = False
    c.steps = 1200
    c.batch_size = 8
    c.log_every = 25
    c.eval_every = 200
    c.checkpoint_every = 200
    c.keep_checkpoints = 2
    c.optim = ml_collections.ConfigDict(dict(
        name="adam", learning_rate=1e-3, warmup_steps=50, schedule="constant", weight_decay=0.0, no_decay=NO_DECAY,
        grad_clip=1.0))
    # Open choices of the paper (lmac/zero_shot.py): weights, mask domain, similarity normalisation and scale.
    c.loss = ml_collections.ConfigDict(dict(
        l1=2.0, l1_rejected=0.0, own_preference=0.0, diversity=0.1, diversity_scale="logit",
        domain="stft", stft_mask="log1p", normalize=None, logit_scale=None))
    # The text-conditioned HTSAT-grid decoder (lmac/text_decoders.py, lmac/conditioning.py).
    c.decoder = ml_collections.ConfigDict(dict(
        dim=32, conditioning=dict(           # lmac.conditioning.ConditioningConfig (text_dim: the model's)
            kind="cross_attention", levels=config_dict.placeholder(tuple),   # None: every level
            heads=4, text_tokens=8, similarity_map=True)))
    c.data = ml_collections.ConfigDict(dict(
        dataset="soundscapes", seed=1, train_clips=200_000, eval_seed=25_000, eval_clips=32,
        sample_rate=16000, duration=5.0, min_events=1, max_events=3,
        label_prompt_prob=0.5, prompt="this is the sound of {label}", text_length=32, twin_prompts=False,
        csv="", root="", random_crop=False, workers=2))
    return c
