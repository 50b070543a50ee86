"""The user-facing model object: ``clap_jax.load(spec)`` -> :class:`Clap`."""
from __future__ import annotations

import functools
import hashlib
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from clap_jax import audio, batching, checkpoint, frontend, pipeline
from clap_jax.linalg import l2_normalize
from clap_jax.models.clap import ClapModel
from clap_jax.spec import AudioConfig, ClapSpec
from clap_jax.tokenizer import Tokenizer

BUNDLED_DIR = os.path.join(os.path.dirname(__file__), "bundled")
REFERENCE_AUDIO_MEAN = "audio_mean.npy"     # a bundled model's SpLiCE audio mean (Clap.reference_audio_mean)


@functools.partial(jax.jit, static_argnames=("graphdef", "cfg", "normalize"))
def audio_embeddings(graphdef, cfg: AudioConfig, normalize: bool, state, batch: dict) -> jnp.ndarray:
    """Prepared batch (:meth:`pipeline.Batch.arrays`) -> audio embeddings (B, joint_dim) float32.
    One program per (architecture, pipeline, batch shape, sharding), shared by every :class:`Clap`
    over the same architecture: the graph definition and configs are static, the weights are not."""
    with jax.default_matmul_precision("highest"):
        model = nnx.merge(graphdef, state)
        mel, longer = pipeline.features(batch, cfg, cfg.spectrogram.num_frames(cfg.clip_samples))
        emb = model.encode_audio(mel, longer if cfg.fusion else None)["embedding"].astype(jnp.float32)
        return l2_normalize(emb) if normalize else emb


@functools.partial(jax.jit, static_argnames=("graphdef", "normalize"))
def text_embeddings(graphdef, normalize: bool, state, ids: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """Token ids and attention mask (B, L) int32 -> text embeddings (B, joint_dim) float32."""
    with jax.default_matmul_precision("highest"):
        emb = nnx.merge(graphdef, state).encode_text(ids, mask)["embedding"].astype(jnp.float32)
        return l2_normalize(emb) if normalize else emb


class Clap:
    """A CLAP model with its source's audio pipeline and tokenizer.

    Embeddings are float32 numpy arrays (B, joint_dim), L2-normalised when the source's
    embedding API normalises (LAION, Hugging Face) and unnormalised where it does not (Microsoft
    CLAP). ``dtype=jnp.bfloat16`` computes the encoders in bfloat16 (parameters, front end and
    outputs stay float32). Inputs are streamed ``batch_size`` clips (texts) at a time, each batch
    padded to a bucket (:mod:`clap_jax.batching`): memory stays flat in the number of inputs and
    the encoders compile once per bucket, shared by every object over the same architecture.
    """

    def __init__(self, spec: ClapSpec, model: ClapModel, tokenizer: Tokenizer | None,
                 reference_audio_mean: np.ndarray | None = None):
        self.spec, self.tokenizer = spec, tokenizer
        # (joint_dim,) SpLiCE audio mean shipped with a bundled model (``audio_mean.npy`` beside
        # spec.json): the mean over the data it was trained on; None for every other model, whose
        # mean must come from the user's own audio (``sparse.embed.resolve_audio_mean``).
        self.reference_audio_mean = reference_audio_mean
        self.graphdef, self.state = nnx.split(model)
        self.logit_scale = float(model.logit_scales()[0])      # exp of the audio -> text scale

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 (hex) of the spec and every parameter: names a model in caches and manifests."""
        h = hashlib.sha256(self.spec.to_json().encode())
        for path, leaf in jax.tree_util.tree_leaves_with_path(self.state):
            h.update(jax.tree_util.keystr(path).encode())
            h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
        return h.hexdigest()

    def audio_features_from_magnitude(self, mag: jnp.ndarray) -> jnp.ndarray:
        """Pure: linear STFT magnitude (B, frames, n_freq) of prepared clips -> the audio encoder's
        input (B, 1, frames, n_mels) (dB log-mel with the model's bank). Fusion models (whose
        input mixes whole-clip and cropped mels) are refused: explain their unfused siblings."""
        if self.spec.audio.fusion:
            raise ValueError("fusion CLAP models have no single-spectrogram input to mask; "
                             "use an unfused checkpoint (630k-audioset-best.pt, clap-htsat-unfused)")
        return frontend.log_mel_from_magnitude(mag, self.spec.audio.spectrogram)[:, None]

    def apply_audio(self, state, features: jnp.ndarray) -> dict:
        """Pure: parameters + encoder input (B, C, frames, n_mels) -> ``embedding`` (B, joint_dim),
        normalised as :meth:`embed_audio` returns it, ``features`` (the encoder's pooled output) and
        its intermediate representations: CNN14 ``blocks`` (six NHWC maps) for Microsoft CLAP 2022,
        HTSAT ``tokens`` and ``stages`` (four NHWC token grids) for the others."""
        out = dict(nnx.merge(self.graphdef, state).encode_audio(features, None))
        if self.spec.normalize_embeddings:
            out["embedding"] = l2_normalize(out["embedding"])
        return out

    def magnitude(self, waves: jnp.ndarray) -> jnp.ndarray:
        """Pure: prepared clips (B, clip_samples) -> linear STFT magnitude (B, frames, n_freq)."""
        cfg = self.spec.audio.spectrogram
        return frontend.magnitude(frontend.stft(waves, cfg), cfg.magnitude_eps)

    def prepare_audio(self, waveforms, sample_rate, crop: str | None = None, seed=None) -> pipeline.Batch:
        """Host preparation of a batch: see :func:`clap_jax.pipeline.prepare`."""
        clips = audio.as_waveform_list(waveforms, sample_rate)
        return pipeline.prepare(clips, self.spec.audio, crop, seed)

    def embed_prepared(self, batch: pipeline.Batch, sharding=None, multiple: int = 1,
                       batch_size: int = batching.DEFAULT_BATCH) -> np.ndarray:
        """Embeddings (B, joint_dim) of a prepared batch of at most ``batch_size`` clips, padded
        to its bucket (a multiple of ``multiple``) and placed with ``sharding`` (e.g. the batch
        axis over a device mesh; the weights are replicated to match) if given."""
        arrays, valid = batching.pad_rows(batch.arrays(), batching.bucket(len(batch), batch_size, multiple))
        state = self.state
        if sharding is not None:
            arrays = jax.device_put(arrays, sharding)
            state = self._replicated(sharding)
        out = audio_embeddings(self.graphdef, self.spec.audio, self.spec.normalize_embeddings, state, arrays)
        return np.asarray(out)[valid]

    def _replicated(self, sharding):
        mesh = sharding.mesh
        if getattr(self, "_state_mesh", None) is not mesh:
            rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
            self._state_on_mesh, self._state_mesh = jax.device_put(self.state, rep), mesh
        return self._state_on_mesh

    def embed_audio(self, waveforms, sample_rate, *, crop: str | None = None, seed=None,
                    batch_size: int = batching.DEFAULT_BATCH) -> np.ndarray:
        """Audio embeddings (B, joint_dim).

        ``waveforms``: an array (B, T) or (T,), or a list of clips of any lengths, each (T,),
        (channels, T) or (T, channels <= 8) as ``soundfile.read`` returns it (mixed to mono); a
        bare (T, channels <= 8) array is one clip. ``sample_rate``: one rate (Hz, >= 1000) or one
        per clip; clips are resampled to the model's rate. Integer PCM is scaled (uint8 centred).
        Bad clips raise :class:`clap_jax.audio.AudioError` naming the clip (NaN/inf, |x| >= 1e6,
        empty, ambiguous shapes, bad rates); near-silent ones warn (``audio.NearSilentWarning``).
        Long clips are cropped deterministically (``crop='center'`` unless the spec or the call
        says otherwise; ``crop='random'`` with ``seed`` reproduces the references' random crop).
        Clips are checked, prepared and embedded ``batch_size`` at a time.
        """
        pairs = audio.split_clips(waveforms, sample_rate)
        rng = np.random.default_rng(seed) if isinstance(seed, (int, np.integer)) else seed
        out = []
        for start, stop in batching.spans(len(pairs), batch_size):
            clips = audio.check_clips(pairs[start:stop], first=start)
            seeds = rng[start:stop] if isinstance(rng, (list, tuple, np.ndarray)) else rng
            emb = self.embed_prepared(pipeline.prepare(clips, self.spec.audio, crop, seeds), batch_size=batch_size)
            bad = np.flatnonzero(~np.isfinite(emb).all(axis=1))
            if bad.size:                   # validation should make this impossible; never return NaN
                raise audio.AudioError(f"waveform {', '.join(str(start + b) for b in bad[:5])}: "
                                       "the embedding is not finite")
            out.append(emb)
        return np.concatenate(out)

    def embed_text(self, texts: list[str], batch_size: int = batching.DEFAULT_BATCH) -> np.ndarray:
        """Text embeddings (B, joint_dim), ``batch_size`` texts at a time. Texts longer than the
        context (``spec.tokenizer.max_length`` tokens, specials included) are truncated, as the
        references do."""
        if self.tokenizer is None:
            raise ValueError("this model has no tokenizer files; convert it with --tokenizer=DIR")
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            raise ValueError("texts: empty list")
        out = []
        for start, stop in batching.spans(len(texts), batch_size):
            ids, mask = self.tokenizer(texts[start:stop])
            arrays, valid = batching.pad_rows({"ids": ids, "mask": mask}, batching.bucket(stop - start, batch_size))
            emb = text_embeddings(self.graphdef, self.spec.normalize_embeddings, self.state,
                                  arrays["ids"], arrays["mask"])
            out.append(np.asarray(emb)[valid])
        return np.concatenate(out)

    def similarity(self, audio_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
        """Logits (n_audio, n_text) = exp(logit_scale_a) * cos(audio, text). Microsoft CLAP's
        ``compute_similarity`` is the same: (exp(logit_scale) t̂ âᵀ)ᵀ with its single scale."""
        a, t = l2_normalize(jnp.asarray(audio_emb)), l2_normalize(jnp.asarray(text_emb))
        return np.asarray(self.logit_scale * a @ t.T)

    def zero_shot(self, waveforms, sample_rate, prompts: list[str], **kw) -> np.ndarray:
        """Class probabilities (B, n_prompts): softmax over prompts of :meth:`similarity`."""
        logits = self.similarity(self.embed_audio(waveforms, sample_rate, **kw), self.embed_text(prompts))
        return np.asarray(jax.nn.softmax(logits, axis=-1))


def from_model(spec: ClapSpec, model: ClapModel, tokenizer_dir: str | None = None,
               reference_audio_mean: np.ndarray | None = None) -> Clap:
    t = spec.tokenizer
    tok = Tokenizer.load(tokenizer_dir, t.max_length, t.family, t.suffix, t.pad_token) if tokenizer_dir else None
    return Clap(spec, model, tok, reference_audio_mean)


def model_dir(name_or_dir: str) -> str:
    """The directory of a converted model: ``name_or_dir`` itself, or the bundled model of that name."""
    if not os.path.isdir(name_or_dir) and os.path.isdir(os.path.join(BUNDLED_DIR, name_or_dir)):
        return os.path.join(BUNDLED_DIR, name_or_dir)
    return name_or_dir


def load(name_or_dir: str, dtype=jnp.float32) -> Clap:
    """Loads a converted directory (or the name of a bundled model) without torch."""
    directory = model_dir(name_or_dir)
    spec = checkpoint.read_spec(directory)
    model = checkpoint.restore_params(os.path.join(directory, checkpoint.PARAMS_DIR),
                                      checkpoint.abstract_model(spec, dtype))
    tok_dir = os.path.join(directory, checkpoint.TOKENIZER_DIR)
    mean_path = os.path.join(directory, REFERENCE_AUDIO_MEAN)
    mean = np.load(mean_path).astype(np.float32) if os.path.exists(mean_path) else None
    if mean is not None and mean.shape != (spec.model.joint_dim,):
        raise ValueError(f"{mean_path}: shape {mean.shape}, expected ({spec.model.joint_dim},)")
    return from_model(spec, model, tok_dir if os.path.isdir(tok_dir) else None, mean)
