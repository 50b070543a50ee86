r"""LMAC-ZS: masks that explain CLAP's zero-shot text-audio similarity (Paissan et al., NeurIPS 2024).

For prompts t_i (P of them) and clips X_j (B), with a_j = f_audio(X_j) and the decoder's mask
M_ij = σ(M_θ(t_i, h_j)) from the clip's encoder representations h_j:

    C_ij  = s · t̂_iᵀ â_j                       the model's zero-shot logits (clean)
    C'_ij = s · t̂_iᵀ f̂_audio(M_ij ⊙ X_j)          the same on clip j masked for prompt i
    L_ZS  = Σ_ij |C_ij − C'_ij| + λ1 Σ_ij mean|M_ij| + λ2 s Σ_i D_i                   (Eq. 6)
    D_i   = Σ_{j≠i} |t̂_iᵀ t̂_j − f̂(X_i ⊙ M_ii)ᵀ f̂(X_i ⊙ M_ji)|                          (Eq. 7)

over every pair of a batch, matched and mismatched (P = B in training: each clip brings its
caption), so a prompt for an absent sound must keep only what keeps its (low) similarity. The
P·B masked encodings are one batched encoder call; D reuses them.

Choices the paper leaves open, each a :class:`ZsLossConfig` field (defaults in brackets):
``normalize`` [None: as every model's own zero-shot (``Clap.similarity``), cosines of
L2-normalised embeddings, Microsoft CLAP included], ``logit_scale``
[None: the model's exp(logit_scale); 1.0 gives the paper's bare dot product]; D compares cosines
at the similarity's scale (``diversity_scale`` [``logit``]: both cosines times s, so D is in the
units of the first term and λ2 weighs it against that; ``cosine``: bare cosines); ‖M‖₁ is taken as the mean over the mask's bins (so λ1 does not depend on the grid);
``domain`` [``stft``: the mask on the linear-frequency STFT of the model's own rate, applied in
``stft_mask`` = ``log1p`` (L-MAC's recipe) or ``linear``, then the model's mel bank: listenable;
``mel``: the mask on the encoder's mel power, before the dB].

Ours, not the paper's (off by default): ``l1_rejected`` [0] adds sparsity where the CLAP itself
rejects the prompt, λ1_ij = λ1 + l1_rejected · σ(m_j − C_ij) with m_j the mean of clip j's
logits over the batch's prompts (no gradient through C): a prompt scored well below the clip's
average pays up to λ1 + l1_rejected for every kept bin, one well above it only λ1. The paper's
uniform λ1 cannot darken an absent prompt's mask without also thinning the present ones (a kept
clip reproduces a low similarity as exactly as a kept sound does). ``own_preference`` [0], for
batches whose rows come in twins (two prompts a, b for two different sounds of one clip:
``train.lmac_zs``'s ``data.twin_prompts``), adds λ3 Σ_pairs [softplus(C'_a|b − C'_a|a) +
softplus(C'_b|a − C'_b|b)] with C'_a|b = s · t̂_aᵀ f̂(M_b ⊙ X) the clip's logit for a when kept by b's
mask: each prompt's logit should be higher on the clip kept by its own mask than by the other
sound's, which a single mask per clip (what the uniform loss settles on) never gives.

Shapes: magnitudes (B, T, F); text embeddings (P, D); masks (P, B, T, F') with F' = F (stft) or
n_mels (mel).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from clap_jax import frontend
from clap_jax.frontend import SpectrogramConfig
from clap_jax.linalg import l2_normalize

DOMAINS = ("stft", "mel")


@dataclasses.dataclass(frozen=True)
class ZsLossConfig:
    """Loss weights and the open choices of the paper (see the module docstring)."""
    l1: float = 1.0
    l1_rejected: float = 0.0
    own_preference: float = 0.0
    diversity: float = 1.0
    diversity_scale: str = "logit"
    domain: str = "stft"
    stft_mask: str = "log1p"
    normalize: bool | None = None
    logit_scale: float | None = None

    def __post_init__(self):
        if min(self.l1, self.l1_rejected, self.own_preference) < 0:
            raise ValueError(f"l1 ({self.l1}), l1_rejected ({self.l1_rejected}) and own_preference "
                             f"({self.own_preference}) must be >= 0")
        if self.domain not in DOMAINS:
            raise ValueError(f"mask domain must be one of {DOMAINS}, got {self.domain!r}")
        if self.diversity_scale not in ("logit", "cosine"):
            raise ValueError(f"diversity_scale must be 'logit' or 'cosine', got {self.diversity_scale!r}")
        if self.stft_mask not in frontend.MASK_DOMAINS:
            raise ValueError(f"stft_mask must be one of {frontend.MASK_DOMAINS}, got {self.stft_mask!r}")


def normalizes(cfg: ZsLossConfig) -> bool:
    """Whether similarities use L2-normalised embeddings: ``cfg.normalize``, or (None) as every
    model's own zero-shot (``Clap.similarity``) does, cosines."""
    return True if cfg.normalize is None else bool(cfg.normalize)


def mask_grid(domain: str, spectrogram: SpectrogramConfig, frames: int) -> tuple[int, int]:
    """(frames, bins) of a mask in ``domain`` for clips of ``frames`` STFT frames."""
    return (frames, spectrogram.n_fft // 2 + 1) if domain == "stft" else (frames, spectrogram.n_mels)


def encoder_input(mag: jnp.ndarray, mask: jnp.ndarray | None, spectrogram: SpectrogramConfig,
                  cfg: ZsLossConfig) -> jnp.ndarray:
    """Linear magnitude (N, T, F) [masked by (N, T, F') in ``cfg.domain``] -> encoder input (N, 1, T, n_mels)."""
    if mask is None:
        return frontend.log_mel_from_magnitude(mag, spectrogram)[:, None]
    if cfg.domain == "stft":
        return frontend.log_mel_from_magnitude(frontend.apply_mask(mag, mask, cfg.stft_mask), spectrogram)[:, None]
    mel = mask * frontend.mel_power(mag, spectrogram)
    if spectrogram.compression == "db":
        return frontend.power_to_db(mel, spectrogram)[:, None]
    return jnp.log1p(mel)[:, None]


def _embed(clap_model, features: jnp.ndarray, normalize: bool) -> tuple[jnp.ndarray, dict]:
    out = clap_model.encode_audio(features, None)
    emb = out["embedding"]
    return (l2_normalize(emb) if normalize else emb), out


def dense_similarity(clap_model, encoded: dict, text: jnp.ndarray) -> jnp.ndarray:
    """Cosine of each prompt (N, D) to each position of its clip's last encoder features mapped by the
    model's own audio projection: (N, T', F') on the (time, mel) grid of HTSAT's last stage (unfolded)
    or of CNN14's last block. ``encoded``: ``encode_audio``'s output for the N rows."""
    audio = clap_model.audio_branch
    if "tokens" in encoded:
        from lmac.decoders import unfold_tokens
        dense = unfold_tokens(encoded["tokens"], audio.cfg.freq_ratio)
    else:
        dense = encoded["blocks"][-1]
        if audio.fc1 is not None:
            dense = jax.nn.relu(audio.fc1(dense))
    emb = l2_normalize(clap_model.audio_projection(dense).astype(jnp.float32))
    return jnp.einsum("ntfd,nd->ntf", emb, l2_normalize(text))


def forward(clap_model, decoder, mag: jnp.ndarray, text: jnp.ndarray, spectrogram: SpectrogramConfig,
            cfg: ZsLossConfig, normalize: bool, scale: jnp.ndarray) -> dict[str, jnp.ndarray]:
    """Every (prompt, clip) pair at once.

    ``clap_model``: a :class:`clap_jax.models.clap.ClapModel` (frozen); ``decoder``: a
    :class:`lmac.text_decoders.TextConditionedDecoder`; ``mag`` (B, T, F); ``text`` (P, D) the prompts'
    embeddings as the model returns them; ``normalize`` and ``scale``: the similarity's L2
    normalisation and logit scale. Returns ``mask`` (P, B, T, F'), ``mask_logits``, ``text`` (P, D)
    and ``audio`` (B, D) (normalised when ``normalize``), ``masked_audio`` (P, B, D), ``sim`` (P, B)
    = C and ``sim_masked`` (P, B) = C'.
    """
    b, p = mag.shape[0], text.shape[0]
    t = l2_normalize(text) if normalize else text
    audio, clean = _embed(clap_model, encoder_input(mag, None, spectrogram, cfg), normalize)
    feats = {k: clean[k] for k in ("stages", "blocks", "tokens") if k in clean}
    tiled = jax.tree.map(lambda f: jnp.tile(f, (p,) + (1,) * (f.ndim - 1)), feats)     # row i B + j: clip j
    t_rep = jnp.repeat(t, b, axis=0)                                                      # row i B + j: prompt i
    tiled["similarity"] = dense_similarity(clap_model, tiled, t_rep)
    logits = decoder(tiled, t_rep)                                                        # (P B, T, F')
    mask = jax.nn.sigmoid(logits)
    frames = min(mask.shape[1], mag.shape[1])
    mag_rep = jnp.tile(mag[:, :frames], (p, 1, 1))
    masked, _ = _embed(clap_model, encoder_input(mag_rep, mask[:, :frames], spectrogram, cfg), normalize)
    masked = masked.reshape(p, b, -1)
    sim = scale * t @ audio.T
    sim_masked = scale * jnp.einsum("pd,pbd->pb", t, masked)
    shape = (p, b) + mask.shape[1:]
    return {"mask": mask.reshape(shape), "mask_logits": logits.reshape(shape), "text": t, "audio": audio,
            "masked_audio": masked, "sim": sim, "sim_masked": sim_masked, "scale": scale}


def forward_pairs(clap_model, decoder, mag: jnp.ndarray, text: jnp.ndarray, spectrogram: SpectrogramConfig,
                  cfg: ZsLossConfig, normalize: bool) -> dict[str, jnp.ndarray]:
    """N given (prompt, clip) pairs, row by row: ``mag`` (N, T, F), ``text`` (N, D). Returns ``mask``
    (N, T, F'), ``text``, ``audio``, ``masked_in`` and ``masked_out`` (N, D) embeddings (normalised
    when ``normalize``), for metrics that score the masked clips against other prompts too."""
    t = l2_normalize(text) if normalize else text
    audio, clean = _embed(clap_model, encoder_input(mag, None, spectrogram, cfg), normalize)
    feats = {k: clean[k] for k in ("stages", "blocks", "tokens") if k in clean}
    feats["similarity"] = dense_similarity(clap_model, feats, t)
    mask = jax.nn.sigmoid(decoder(feats, t))
    frames = min(mask.shape[1], mag.shape[1])
    both = jnp.concatenate([mask[:, :frames], 1.0 - mask[:, :frames]])
    masked, _ = _embed(clap_model, encoder_input(jnp.tile(mag[:, :frames], (2, 1, 1)), both, spectrogram, cfg),
                       normalize)
    masked_in, masked_out = jnp.split(masked, 2)
    return {"mask": mask, "text": t, "audio": audio, "masked_in": masked_in, "masked_out": masked_out}


def diversity(text: jnp.ndarray, masked_audio: jnp.ndarray) -> jnp.ndarray:
    """D_i (Eq. 7) for a square batch: ``text`` (B, D) normalised prompts, ``masked_audio`` (B, B, D)
    [prompt i, clip j] normalised masked encodings. Returns (B,):
    Σ_{j≠i} |t_iᵀ t_j − f(X_i ⊙ M_ii)ᵀ f(X_i ⊙ M_ji)|."""
    b = text.shape[0]
    own = masked_audio[jnp.arange(b), jnp.arange(b)]                   # (B, D): clip i masked for prompt i
    masked_sim = jnp.einsum("id,jid->ij", own, masked_audio)           # [i, j]: clip i for prompt i vs prompt j
    gap = jnp.abs(text @ text.T - masked_sim) * (1.0 - jnp.eye(b, dtype=text.dtype))
    return gap.sum(axis=1)


def l1_weights(sim: jnp.ndarray, cfg: ZsLossConfig, clip_mean: jnp.ndarray | None = None) -> jnp.ndarray:
    """(P, B) sparsity weight per pair from the clean logits ``sim`` (P, B): ``cfg.l1``, plus
    ``cfg.l1_rejected`` · σ(m_j − C_ij) where m_j is clip j's mean logit over the P prompts
    (``clip_mean``, broadcast against ``sim``, when the clip's prompts are not ``sim``'s rows)."""
    sim = jax.lax.stop_gradient(sim)
    m = sim.mean(axis=0, keepdims=True) if clip_mean is None else jax.lax.stop_gradient(clip_mean)
    return cfg.l1 + cfg.l1_rejected * jax.nn.sigmoid(m - sim)


def own_preference(out: dict[str, jnp.ndarray], twins: jnp.ndarray) -> jnp.ndarray:
    """Σ over twin pairs of softplus(C'_a|b − C'_a|a) + softplus(C'_b|a − C'_b|b) (the module docstring)
    from :func:`forward`'s output on a square batch whose rows 2k and 2k + 1 are one clip with two
    prompts; ``twins`` (B/2,) is 1 where the two prompts name different sounds of the clip, else 0."""
    t, masked = out["text"], out["masked_audio"]                      # (B, D), (B, B, D) [prompt, clip]
    a, b = jnp.arange(0, t.shape[0], 2), jnp.arange(1, t.shape[0], 2)
    logit = lambda prompt, by: out["scale"] * jnp.sum(t[prompt] * masked[by, prompt], axis=-1)   # clip in row `prompt`
    gap = jax.nn.softplus(logit(a, b) - logit(a, a)) + jax.nn.softplus(logit(b, a) - logit(b, b))
    return jnp.sum(twins * gap)


def loss(out: dict[str, jnp.ndarray], cfg: ZsLossConfig,
         twins: jnp.ndarray | None = None) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    """L_ZS (Eq. 6) from :func:`forward`'s output on a square batch (P = B); returns it and its parts.
    ``twins`` (B/2,): the batch's rows come in twin pairs (:func:`own_preference`), weighed by
    ``cfg.own_preference``."""
    p, b = out["sim"].shape
    fidelity = jnp.abs(jax.lax.stop_gradient(out["sim"]) - out["sim_masked"]).sum()
    l1 = (l1_weights(out["sim"], cfg) * jnp.abs(out["mask"]).mean(axis=(-2, -1))).sum()
    div = jnp.zeros(())
    if cfg.diversity:
        scale = out["scale"] if cfg.diversity_scale == "logit" else 1.0
        div = cfg.diversity * scale * diversity(out["text"], out["masked_audio"]).sum()
    own = jnp.zeros(())
    if cfg.own_preference and twins is not None:
        own = cfg.own_preference * own_preference(out, twins)
    matched = jnp.eye(p, b, dtype=bool)
    mask_means = out["mask"].mean(axis=(-2, -1))
    parts = {"fidelity": fidelity, "l1": l1, "diversity": div, "own_preference": own,
             "mask_mean_matched": jnp.sum(jnp.where(matched, mask_means, 0)) / p,
             "mask_mean_mismatched": jnp.sum(jnp.where(matched, 0, mask_means)) / max(p * b - p, 1),
             "sim_gap": jnp.abs(out["sim"] - out["sim_masked"]).mean()}
    return fidelity + l1 + div + own, parts
