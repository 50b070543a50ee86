"""Trains the bundled ``soundscapes-small-cnn14`` CLAP: Microsoft CLAP 2022's shape (CNN14 audio
encoder, BERT text encoder with its [CLS] state, Microsoft's ``Projection`` heads, one logit
scale), narrow, on the synthetic soundscapes clips.

    python -m train.clap --config=configs/clap_soundscapes_cnn14.py --workdir=runs/soundscapes-small-cnn14 \
        --export=clap_jax/bundled/soundscapes-small-cnn14

What differs from the published 2022 model is size only: CNN14 channels 8..256 instead of
64..2048 (``fc1`` 256 wide), 32 mels at 16 kHz (the corpus's rate, the front end of
``soundscapes-small``), a 2-layer BERT of width 128 (head width 64, as BERT's) with a WordPiece
vocabulary trained on the corpus captions, a 256-d joint space. ``model.audio.num_classes`` is
the width of the tagging head (``fc_audioset``) Microsoft's CNN14 always carries and CLAP never
uses; it is kept (14 units, never trained: no loss reads it) so the model writes and reads the
2022 checkpoint layout key for key (``python -m clap_jax.export``).
"""
import ml_collections

from configs import clap_soundscapes


def get_config() -> ml_collections.ConfigDict:
    c = clap_soundscapes.get_config()
    c.steps = 2000
    c.eval_every = 250
    # One stage where soundscapes-small had two: tag-list texts and hard negatives from the start.
    c.data.tag_caption_prob = 0.3
    c.data.hard_negatives = True
    c.model = ml_collections.ConfigDict(dict(
        audio=dict(kind="cnn14", channels=(8, 16, 32, 64, 128, 256), embed_dim=256, num_classes=14),
        text=dict(hidden_size=128, num_layers=2, num_heads=2, intermediate_size=512),
        joint_dim=256, projection="msclap", shared_logit_scale=True))
    c.tokenizer = ml_collections.ConfigDict(dict(family="bert", vocab_size=2000, max_length=64, train_clips=3000))
    return c
