"""Trained LMAC-ZS explainers: a CLAP and its text-conditioned mask decoder, explaining clips for prompts.

    explainer = lmac.load("soundscapes-small-lmac-zs")          # or a trained directory
    for e in explainer.explain(waves, 16000, prompts=["a beep", "rain"]):
        e.masks            # (prompts, frames, n_freq) in [0, 1] on the STFT grid of the model's rate
        e.mask_mean        # (prompts,) the mean of the mask the decoder made (on its own grid)
        e.similarity       # (prompts,) the model's zero-shot logits s·cos(t, a) on the clip
        e.similarity_in, e.similarity_out     # the same on the masked-in / masked-out clip
        e.probabilities    # (prompts,) softmax over the given prompts (clean; _in, _out likewise)
        e.masked_in, e.masked_out              # (prompts, samples) at the model's rate
        e["rain"]          # one prompt's view: mask, mask_mean, similarity, masked_in, masked_out

Directory format (``clap-jax-zs-explainer/1``): ``spec.json`` (:class:`ZsExplainerSpec`) and orbax
``params/`` (the decoder). The CLAP is referenced, not copied (a real CLAP is hundreds of MB):
``model`` is a bundled name or the directory given at training time, and ``lmac.load(dir,
model=...)`` points elsewhere; the CLAP's spec is stored and checked on load. Mel-domain masks are
resynthesised through the mel bank's normalised transpose (each STFT bin takes the weighted mean
of its bands' mask values): an approximation, the mel mask itself is what the encoder saw.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from clap_jax import api, checkpoint, frontend
from clap_jax.spec import ClapSpec, from_dict
from lmac import masking, text_decoders, zero_shot
from lmac.text_decoders import ZsDecoderConfig
from lmac.zero_shot import ZsLossConfig

FORMAT = "clap-jax-zs-explainer/1"


@dataclasses.dataclass(frozen=True)
class ZsExplainerSpec:
    decoder: ZsDecoderConfig
    loss: ZsLossConfig
    model: str
    model_spec: dict
    source: str = "clap-jax"

    def to_json(self) -> str:
        d = {"format": FORMAT, "decoder": self.decoder.to_dict(), "loss": dataclasses.asdict(self.loss),
             "model": self.model, "model_spec": self.model_spec, "source": self.source}
        return json.dumps(d, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ZsExplainerSpec":
        data = json.loads(text)
        if data.pop("format", None) != FORMAT:
            raise ValueError(f"spec.json is not an LMAC-ZS explainer ({FORMAT})")
        return cls(decoder=ZsDecoderConfig.from_dict(data["decoder"]), loss=from_dict(ZsLossConfig, data["loss"]),
                   model=data["model"], model_spec=data["model_spec"], source=data.get("source", "clap-jax"))


@dataclasses.dataclass
class PromptView:
    prompt: str
    mask: np.ndarray
    mask_mean: float
    similarity: float
    similarity_in: float
    similarity_out: float
    masked_in: np.ndarray
    masked_out: np.ndarray


@dataclasses.dataclass
class ZsExplanation:
    """One clip explained for every prompt (arrays with a leading prompt axis)."""
    prompts: tuple[str, ...]
    waveform: np.ndarray
    masks: np.ndarray
    mask_mean: np.ndarray
    similarity: np.ndarray
    similarity_in: np.ndarray
    similarity_out: np.ndarray
    probabilities: np.ndarray
    probabilities_in: np.ndarray
    probabilities_out: np.ndarray
    masked_in: np.ndarray
    masked_out: np.ndarray

    @property
    def prediction(self) -> int:
        return int(np.argmax(self.similarity))

    def __getitem__(self, prompt: str) -> PromptView:
        i = self.prompts.index(prompt)
        return PromptView(prompt, self.masks[i], float(self.mask_mean[i]), float(self.similarity[i]),
                          float(self.similarity_in[i]), float(self.similarity_out[i]), self.masked_in[i],
                          self.masked_out[i])


def mel_to_stft_mask(mask: jnp.ndarray, spectrogram) -> jnp.ndarray:
    """(..., T, n_mels) mel mask -> (..., T, n_freq): each bin the weighted mean of its bands' values."""
    fb = np.asarray(frontend.mel_filterbank(spectrogram), np.float64)        # (n_freq, n_mels)
    weights = fb / np.maximum(fb.sum(axis=1, keepdims=True), 1e-12)
    return jnp.matmul(mask, jnp.asarray(weights.T, jnp.float32), precision="highest")


@functools.partial(jax.jit, static_argnums=0)
def _explain(graphs, states, waves, text):
    """Prepared clips (B, samples) and prompt embeddings (P, D) -> masks and scores for every pair."""
    (clap_graph, spectrogram), dec_graph, cfg = graphs
    normalize = zero_shot.normalizes(cfg)
    clap_model, dec = nnx.merge(clap_graph, states[0]), nnx.merge(dec_graph, states[1])
    scale = clap_model.logit_scales()[0] if cfg.logit_scale is None else cfg.logit_scale
    with jax.default_matmul_precision("highest"):
        spec = frontend.stft(waves, spectrogram)
        mag = frontend.magnitude(spec, spectrogram.magnitude_eps)
        out = zero_shot.forward(clap_model, dec, mag, text, spectrogram, cfg, normalize, scale)
        p, b = out["sim"].shape
        inverse = jnp.tile(mag, (p, 1, 1))
        masks = out["mask"].reshape((p * b,) + out["mask"].shape[2:])
        masked_out, _ = zero_shot._embed(clap_model, zero_shot.encoder_input(inverse, 1.0 - masks, spectrogram, cfg),
                                         normalize)
        sim_out = scale * jnp.einsum("pd,pbd->pb", out["text"], masked_out.reshape(p, b, -1))
        grid = masks if cfg.domain == "stft" else mel_to_stft_mask(masks, spectrogram)
        stft_domain = cfg.stft_mask if cfg.domain == "stft" else "linear"
        wave_in, wave_out = masking.resynthesize(jnp.tile(spec, (p, 1, 1)), masking.full_grid(grid, spec.shape[1]),
                                                 spectrogram, waves.shape[-1], stft_domain)
    soft = lambda z: jax.nn.softmax(z, axis=0)                              # over prompts
    swap = lambda x: jnp.swapaxes(x, 0, 1)                                 # (P, B, ...) -> (B, P, ...)
    per_pair = lambda x: swap(x.reshape((p, b) + x.shape[1:]))
    return {"masks": per_pair(masking.full_grid(grid, spec.shape[1])), "mask_mean": swap(out["mask"].mean(axis=(-2, -1))),
            "similarity": swap(out["sim"]), "similarity_in": swap(out["sim_masked"]), "similarity_out": swap(sim_out),
            "probabilities": swap(soft(out["sim"])), "probabilities_in": swap(soft(out["sim_masked"])),
            "probabilities_out": swap(soft(sim_out)), "masked_in": per_pair(wave_in), "masked_out": per_pair(wave_out)}


class ZsExplainer:
    """A CLAP and its LMAC-ZS decoder."""

    def __init__(self, spec: ZsExplainerSpec, clap: api.Clap, decoder: nnx.Module):
        self.spec, self.clap = spec, clap
        self.decoder_graph, self.decoder_state = nnx.split(decoder)

    @property
    def sample_rate(self) -> int:
        return self.clap.spec.audio.spectrogram.sample_rate

    def decoder(self) -> nnx.Module:
        return nnx.merge(self.decoder_graph, self.decoder_state)

    def explain_prepared(self, waves: np.ndarray, text: np.ndarray) -> dict[str, np.ndarray]:
        """Batched arrays for prepared clips (B, samples) and prompt embeddings (P, D): (B, P, ...)."""
        clap = self.clap
        graphs = ((clap.graphdef, clap.spec.audio.spectrogram), self.decoder_graph, self.spec.loss)
        out = _explain(graphs, (clap.state, self.decoder_state), jnp.asarray(waves, jnp.float32),
                       jnp.asarray(text, jnp.float32))
        return jax.tree.map(np.asarray, out)

    def explain(self, waveforms, sample_rate, *, prompts: list[str], crop: str | None = None,
                seed: int | None = None) -> list[ZsExplanation]:
        """Explanations of clips of any lengths and rates for every prompt."""
        if not prompts:
            raise ValueError("LMAC-ZS explains a clip for text prompts: pass prompts=[...]")
        batch = self.clap.prepare_audio(waveforms, sample_rate, crop, seed)
        out = self.explain_prepared(batch.waves, self.clap.embed_text(list(prompts)))
        return [ZsExplanation(prompts=tuple(prompts), waveform=batch.waves[i], **{k: v[i] for k, v in out.items()})
                for i in range(len(batch.waves))]

    def save(self, out: str, overwrite: bool = False) -> None:
        with checkpoint.atomic_directory(out, overwrite) as tmp:
            with open(os.path.join(tmp, checkpoint.SPEC_FILE), "w") as f:
                f.write(self.spec.to_json())
            checkpoint.save_params(os.path.join(tmp, checkpoint.PARAMS_DIR), self.decoder())


def model_spec_dict(spec: ClapSpec) -> dict:
    return json.loads(spec.to_json())


def load(directory: str, model: str | None = None, dtype=jnp.float32) -> ZsExplainer:
    """Loads an LMAC-ZS explainer directory; ``model`` overrides the CLAP it names."""
    with open(os.path.join(directory, checkpoint.SPEC_FILE)) as f:
        try:
            spec = ZsExplainerSpec.from_json(f.read())
        except (ValueError, KeyError) as err:
            raise ValueError(f"{directory}/{checkpoint.SPEC_FILE}: {err}") from err
    clap = api.load(model or spec.model, dtype)
    if model_spec_dict(clap.spec) != spec.model_spec:
        raise ValueError(f"{directory}: its decoder was trained for another CLAP than {model or spec.model!r} "
                         f"(the model specs differ)")
    abstract = nnx.eval_shape(lambda: text_decoders.build(spec.decoder, rngs=nnx.Rngs(0), dtype=dtype))
    decoder = checkpoint.restore_params(os.path.join(directory, checkpoint.PARAMS_DIR), abstract)
    return ZsExplainer(spec, clap, decoder)
