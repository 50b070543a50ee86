"""Stage 2 of the bundled ``soundscapes-small``: fine-tune stage 1 (configs/clap_soundscapes.py)
so that every event of a mixture is encoded and bare concept names embed well.

    python -m train.clap --config=configs/clap_soundscapes_finetune.py --workdir=runs/soundscapes-small-ft \
        --export=clap_jax/bundled/soundscapes-small

Two changes to the data, none to the model: 30% of the texts are tag lists ("rain, beep"),
the form of concept vocabularies, and every clip brings a hard negative, its own description
with one event dropped or an absent one added, so that a quiet beep under rain changes the
embedding (train.clap.caption_pair).
"""
import ml_collections

from configs import clap_soundscapes


def get_config() -> ml_collections.ConfigDict:
    c = clap_soundscapes.get_config()
    c.seed = 1
    c.steps = 800
    c.eval_every = 200
    c.checkpoint_every = 100
    c.init_from = "runs/soundscapes-small-stage1"   # stage 1 exported here
    c.optim.learning_rate = 3e-4
    c.optim.warmup_steps = 50
    c.data.seed = 1                # clips the first stage did not see
    c.data.tag_caption_prob = 0.3
    c.data.hard_negatives = True
    return c
