"""Trains the bundled ``soundscapes-cnn14`` classifier (the model L-MAC explains) on synthetic clips.

    python -m train.classifier --config=configs/classifier_soundscapes.py \
        --workdir=runs/soundscapes-cnn14 --export=clap_jax/bundled/soundscapes-cnn14

CNN14 at 1/8 of the recipe's widths (8..256 channels: the L-MAC decoder on it is 256 wide),
SpeechBrain-style (``embed_dim=0``: no fc1, the embedding is the pooled last block), a linear
head over the 56 soundscapes classes. Front end: the SpeechBrain L-MAC recipe's
(``clap_jax.convert.speechbrain_spec``): 16 kHz, n_fft 1024, Hamming window of 372 samples
(23.2199 ms), hop 186 (11.6099 ms), zero padding, SpeechBrain's 80-band triangular bank on the
magnitude (0-8000 Hz), log1p, magnitude eps 1e-14; clips of 5 s (80,000 samples, 431 frames: a
length the recipe's decoder fits exactly) divided by their largest sample (``normalize="max"``).

Seeds of the corpus (disjoint; ``run`` refuses equal ones):
  data.seed = 0          training clips (indices 0 .. train_clips - 1, reshuffled per epoch)
  data.eval_seed = 20000 validation: accuracy every ``eval_every`` steps (model selection only)
  data.test_seed = 30000 test: used once, after training, for the reported accuracy
(seed 10000 is the CLAP jobs' held-out seed; not used here.)
"""
import ml_collections

from train.loop import NO_DECAY


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0                     # initialisation and the loop's rng
    c.steps = 800                  # ~2.1 s per step on the 2 shared CPU cores: ~30 min
    c.batch_size = 32
    c.log_every = 25
    c.eval_every = 200
    c.checkpoint_every = 250
    c.keep_checkpoints = 2
    c.distributed = False          # True: jax.distributed.initialize() (multi-host; arguments from the cluster)
    c.optim = ml_collections.ConfigDict(dict(
        name="adamw", learning_rate=1e-3, warmup_steps=50, schedule="cosine", weight_decay=1e-4, no_decay=NO_DECAY,
        grad_clip=5.0))
    c.data = ml_collections.ConfigDict(dict(
        seed=0, train_clips=200_000, eval_seed=20_000, eval_clips=500, test_seed=30_000, test_clips=1000,
        duration=5.0, workers=2))
    c.frontend = ml_collections.ConfigDict(dict(   # clap_jax.frontend.SpectrogramConfig
        sample_rate=16000, n_fft=1024, win_length=372, hop_length=186, n_mels=80, fmin=0.0, fmax=8000.0,
        mel_scale="speechbrain", mel_norm=None, pad_mode="constant", window="hamming", mel_exponent=1.0,
        compression="log1p", magnitude_eps=1e-14))
    # AudioConfig (clip_samples follows from data.duration): zero padding, no int16 round trip,
    # each clip divided by its largest sample.
    c.audio = ml_collections.ConfigDict(dict(pad="zeros", quantize_int16=False, normalize="max"))
    # Cnn14Config (n_mels from frontend, num_classes: the corpus' classes)
    c.model = ml_collections.ConfigDict(dict(channels=(8, 16, 32, 64, 128, 256), embed_dim=0))
    return c
