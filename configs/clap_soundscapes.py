"""Trains the bundled ``soundscapes-small`` CLAP (HTSAT + RoBERTa, small) on synthetic clips.

    python -m train.clap --config=configs/clap_soundscapes.py --workdir=runs/soundscapes-small \
        --export=clap_jax/bundled/soundscapes-small
"""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.steps = 3000
    c.batch_size = 64
    c.log_every = 25
    c.eval_every = 500
    c.checkpoint_every = 250
    c.keep_checkpoints = 2
    c.init_from = ""               # a converted model directory to fine-tune instead of a fresh init
    c.distributed = False          # True: jax.distributed.initialize() (multi-host; arguments from the cluster)
    c.optim = ml_collections.ConfigDict(dict(
        name="adamw", learning_rate=1e-3, warmup_steps=200, schedule="cosine", weight_decay=0.01, grad_clip=1.0,
        # The bundled model was trained decaying every parameter (logit scale included); () keeps
        # that. train.loop.NO_DECAY (biases, norm scales, logit scales) is the loop's default.
        no_decay=()))
    c.data = ml_collections.ConfigDict(dict(
        seed=0, train_clips=200_000, eval_seed=10_000, eval_clips=300, duration=5.0, text_length=32, workers=2,
        tag_caption_prob=0.0,      # share of texts given as tag lists ("rain, beep") instead of sentences
        hard_negatives=False))     # add each clip's caption with one event dropped/added as a negative
    c.frontend = ml_collections.ConfigDict(dict(   # clap_jax.frontend.SpectrogramConfig (win_length = n_fft)
        sample_rate=16000, n_fft=512, hop_length=160, n_mels=32, fmin=50.0, fmax=8000.0))
    # ClapConfig: audio HTSATConfig (n_mels from frontend), text TextConfig (vocab and positions from the tokenizer)
    c.model = ml_collections.ConfigDict(dict(
        audio=dict(embed_dim=32, depths=(1, 1, 2, 1), num_heads=(2, 4, 8, 8), window_size=8, spec_size=128),
        text=dict(hidden_size=128, num_layers=2, num_heads=4, intermediate_size=512),
        joint_dim=256))
    c.tokenizer = ml_collections.ConfigDict(dict(vocab_size=2000, max_length=64, train_clips=3000))
    return c
