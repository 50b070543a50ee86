"""Fine-tunes the d x d concept head H on the bundled model's soundscapes embeddings.

    python -m train.concept_head --config=configs/concept_head.py --workdir=runs/concept_head

For ESC-50 with a converted model (folds 1-4 train, 5 evaluation)::

    python -m train.concept_head --config=configs/concept_head.py --workdir=runs/concept_head_esc50 \
        --config.model=converted/msclap-2023 --config.vocabulary=audioset --config.data.kind=esc50 \
        --config.data.root=ESC-50-master --config.data.train_folds=1,2,3,4 --config.data.eval_folds=5
"""
import ml_collections

from train.loop import NO_DECAY


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.steps = 600
    c.batch_size = 64
    c.log_every = 50
    c.eval_every = 200
    c.checkpoint_every = 600
    c.keep_checkpoints = 1
    # The paper gives no optimiser settings (methods.md A.7); these are ours.
    c.optim = ml_collections.ConfigDict(dict(
        name="adam", learning_rate=1e-3, warmup_steps=30, schedule="cosine", weight_decay=0.0, no_decay=NO_DECAY,
        grad_clip=0.0))
    c.model = "soundscapes-small"          # converted directory or bundled name
    c.vocabulary = "soundscapes"           # shipped name or vocabulary file
    c.prompt = "This is a sound of {}."
    c.lam = 0.05                           # decomposition of H z at evaluation (the paper's lambda)
    c.method = "working_set"
    c.cache_dir = ""                       # embeddings cache ("" = the default cache folder)
    c.data = ml_collections.ConfigDict(dict(
        kind="soundscapes",                # soundscapes | esc50 | urbansound8k | folder | tfds (clap_jax.data.datasets)
        root="", train_folds=(1, 2, 3, 4), eval_folds=(5,),      # esc50 / urbansound8k / folder
        train_seed=30000, train_clips=2000, eval_seed=10000, eval_clips=300, duration=5.0,   # soundscapes
        tfds_name="", train_split="train", eval_split="test",   # tfds
        embeddings="",                     # or an .npz with train_embeddings, train_labels, eval_embeddings,
                                           # eval_labels, classes (skips the audio encoder)
        workers=2))
    return c
