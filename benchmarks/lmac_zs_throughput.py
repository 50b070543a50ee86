r"""LMAC-ZS decoder training step throughput (clips/s, prompt-clip pairs/s), ours against PyTorch.

    python benchmarks/lmac_zs_throughput.py --config=configs/lmac_zs_soundscapes.py --steps=3 --header

    waves (B, samples) + one prompt per clip (ids, mask) --frozen CLAP text side--> t (B, D)
        |STFT| (B, T, F) --frozen HTSAT (clean)--> stages, tokens, a (B, D)
        decoder(stages, dense similarity, t_i) on all B x B pairs --sigmoid--> M (B B, T, F)
        expm1(M log1p|X|) --mel bank, dB, HTSAT (one batched call of B B rows)--> L_ZS --> Adam on the decoder

Both sides run the bundled CLAP ``soundscapes-small`` with its own weights and the decoder of
``--config`` (configs/lmac_zs_soundscapes.py: HTSAT-grid decoder of width 32, cross-attention at
every level, similarity map) with the same initial weights. Ours is ``train.loop``'s jitted step
of the task ``train.lmac_zs`` builds (``ZsModel``, ``make_loss``, CLAP frozen by path, the
config's optimiser: Adam, warm-up, global-norm clip). The reference is the same step in PyTorch:
LAION-CLAP's own HTSAT (``laion_clap.clap_module.htsat.HTSAT_Swin_Transformer``, eval mode, its
bn0 / fold / Swin stages / final norm called on our log-mel, and its torchlibrosa mel bank and dB)
plus ``transformers.RobertaModel`` at the bundled text sizes, both holding the bundled model's
weights converted ours -> LAION names (the inverse of ``clap_jax.convert``'s LAION rules); the
LMAC-ZS decoder re-written in ``torch.nn`` with our architecture and widths (``lmac/text_decoders.py``,
``lmac/decoders.py``, ``lmac/conditioning.py``) holding our decoder's initial weights; the loss of
``lmac/zero_shot.py`` (Eq. 6-7: fidelity, λ1 mean|M|, λ2 diversity at the logit scale);
``torch.optim.Adam`` with the config's rate, warm-up and clip. On both sides the text side and the
clean pass run forward only (no gradient reaches them) and the backward pass goes through the
frozen encoder's masked pass into the decoder only.

Inputs are random waveforms and tokenised captions already in memory; compilation and the first
step are excluded; the median of ``--steps`` timed steps is reported. Checks printed in the row:
decoder parameter counts (must be equal: the script stops otherwise) and the first step's loss on
each side (same weights, same inputs: equal up to float32 reassociation). PyTorch gets as many
threads as XLA:CPU uses (every core). Prints one markdown table row.
"""
from __future__ import annotations

import os
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from flax import nnx
from ml_collections import config_flags

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
sys.path.insert(0, os.path.dirname(__file__))

from references import CAPTIONS  # noqa: E402
from timing import median_seconds  # noqa: E402
from lmac import text_decoders, zero_shot  # noqa: E402
from train import cli, lmac_zs, loop  # noqa: E402

FLAGS = flags.FLAGS
cli.define_config_flag("LMAC-ZS training config: configs/lmac_zs_soundscapes.py, or a shipped config's name.")
flags.DEFINE_integer("batch_size", None, "Clips (= prompts) per step; B x B pairs. Default: the config's.")
flags.DEFINE_integer("steps", 3, "Timed steps per side (after one warm-up step).")
flags.DEFINE_bool("header", False, "Print the table header first.")


# ---------------------------------------------------------------------------------------------
# Ours
# ---------------------------------------------------------------------------------------------

def _ours(cfg, clap, batch):
    """``train.lmac_zs``'s task through ``train.loop._train_step``; returns (run, task, decoder parameter
    count, holder of the first step's metrics)."""
    lcfg, dcfg = lmac_zs.loss_config(cfg.loss), lmac_zs.decoder_config(cfg, clap)
    decoder = text_decoders.init(dcfg, seed=cfg.seed)
    task = loop.Task(model=lmac_zs.ZsModel(nnx.merge(clap.graphdef, clap.state), decoder),
                     loss=lmac_zs.make_loss(clap, lcfg), frozen=nnx.PathContains("clap"))
    tx = loop.make_optimizer(cfg)
    graphdef, frozen, params, rest = nnx.split(task.model, task.frozen, task.trainable, ...)
    state = {"params": jax.tree.map(jnp.copy, params), "rest": rest, "opt_state": tx.init(params),
             "rng": jax.random.key(0), "step": jnp.zeros((), jnp.int32), "plateau": loop.plateau_init()}
    # Committed from the start, as the step's outputs are: an uncommitted first state would compile
    # the step a second time on the second call (a timed one).
    holder = {"state": jax.device_put(state, jax.devices()[0]), "first": None}
    step = jax.jit(loop._train_step(graphdef, tx, task), donate_argnums=0)
    batch = {k: jnp.asarray(v) for k, v in batch.items()}

    def run():
        holder["state"], metrics = step(holder["state"], frozen, batch)
        jax.block_until_ready(metrics["loss"])
        holder["first"] = holder["first"] or metrics
    n_params = sum(x.size for x in jax.tree.leaves(params))
    return run, task, n_params, holder


# ---------------------------------------------------------------------------------------------
# PyTorch: weights ours -> PyTorch names, the decoder in torch.nn, the step
# ---------------------------------------------------------------------------------------------

def _torch_state(model: nnx.Module, rules, reference, ignore) -> dict:
    """Our ``model``'s weights as ``reference``'s state dict: every (PyTorch key, layout transform) of
    ``clap_jax.weights.torch_names`` inverted (the transforms are axis permutations), checked both ways."""
    import re
    import torch
    from clap_jax import weights
    ref = reference.state_dict()
    table = weights.torch_names(model, rules)
    missing = sorted(k for k in table if k not in ref)
    unused = sorted(k for k in ref if k not in table and not any(re.search(p, k) for p in ignore))
    if missing or unused:
        raise ValueError(f"ours -> PyTorch names: not in PyTorch {missing[:5]}, not filled {unused[:5]}")
    out = {}
    for key, (var, fn) in table.items():
        shape = tuple(ref[key].shape)
        idx = np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape)
        where = np.asarray(fn(idx))                    # our layout, holding PyTorch flat indices
        flat = np.empty(idx.size, np.float32)
        flat[where.ravel()] = np.asarray(var.get_value(), np.float32).ravel()
        out[key] = torch.from_numpy(flat.reshape(shape)).to(ref[key].dtype)
    reference.load_state_dict(out, strict=False)
    return out


def _torch_decoder(dcfg):
    """``lmac.text_decoders.TextConditionedDecoder`` (HTSAT grid, cross-attention, similarity map) in
    torch.nn, NHWC between layers as ours is; module names are ours, so weights map by name."""
    import torch
    from torch import nn
    from lmac import decoders
    F = torch.nn.functional
    d, c = dcfg.decoder, dcfg.conditioning
    if d.kind != "htsat_grid" or c.kind != "cross_attention" or not c.similarity_map or d.outdim != 1:
        raise ValueError("the PyTorch decoder covers the soundscapes config: htsat_grid, cross_attention, "
                         "similarity_map, one mask")
    eps = 1e-6                                        # flax LayerNorm's epsilon
    nhwc = lambda layer, h: layer(h.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    const = lambda a: torch.from_numpy(np.asarray(a, np.float32))
    pos = lambda n_out, n_in: np.arange(n_out) * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)

    def stretch(y, frames, n_freq):          # (B, T', F') -> (B, frames, n_freq), corners aligned
        tm = const(decoders._interp_matrix(pos(frames, y.shape[1]), y.shape[1]))
        fm = const(decoders._interp_matrix(pos(n_freq, y.shape[2]), y.shape[2]))
        return torch.einsum("tp,bpq,fq->btf", tm, y, fm)

    class CrossAttention(nn.Module):
        def __init__(self, dim):
            super().__init__()
            ctx = c.context_dim or dim
            self.heads, self.tokens, self.ctx = c.heads, c.text_tokens, ctx
            self.text_proj = nn.Linear(c.text_dim, c.text_tokens * ctx)
            self.norm_ctx, self.norm = nn.LayerNorm(ctx, eps=eps), nn.LayerNorm(dim, eps=eps)
            self.to_q = nn.Linear(dim, dim, bias=False)
            self.to_k, self.to_v = nn.Linear(ctx, dim, bias=False), nn.Linear(ctx, dim, bias=False)
            self.to_out = nn.Linear(dim, dim)

        def forward(self, h, t):
            b, hh, ww, ch = h.shape
            context = self.norm_ctx(self.text_proj(t).reshape(b, self.tokens, self.ctx))
            heads = lambda x: x.reshape(b, x.shape[1], self.heads, ch // self.heads).transpose(1, 2)
            q = heads(self.to_q(self.norm(h).reshape(b, hh * ww, ch)))
            out = F.scaled_dot_product_attention(q, heads(self.to_k(context)), heads(self.to_v(context)))
            return h + self.to_out(out.transpose(1, 2).reshape(b, hh, ww, ch))

    class HtsatGrid(nn.Module):
        def __init__(self):
            super().__init__()
            chans = [d.embed_dim * 2 ** k for k in range(d.num_stages)]
            self.freq_ratio, self.frames_in = d.spec_size // d.n_mels, d.spec_size * (d.spec_size // d.n_mels)
            self.norms = nn.ModuleList([nn.LayerNorm(ch, eps=eps) for ch in chans])
            self.proj = nn.ModuleList([nn.Linear(ch, d.dim) for ch in chans])
            self.up = nn.ModuleList([nn.ConvTranspose2d(d.dim, d.dim, 4, 2, 1) for _ in chans[1:]])
            self.fuse = nn.ModuleList([nn.Conv2d(d.dim, d.dim, 3, padding=1) for _ in chans[1:]])
            self.unpatch = nn.ConvTranspose2d(d.dim, d.dim // 2, d.patch_size, d.patch_size)
            self.head = nn.Conv2d(d.dim // 2, 1, 3, padding=1)
            hz = np.arange(d.n_freq) * d.sample_rate / (2 * (d.n_freq - 1))
            freq_pos = np.interp(hz, np.asarray(d.mel_centres_hz), np.arange(d.n_mels))
            self.register_buffer("time_matrix", const(decoders._interp_matrix(pos(dcfg.frames, self.frames_in),
                                                                                self.frames_in)), persistent=False)
            self.register_buffer("freq_matrix", const(decoders._interp_matrix(freq_pos, d.n_mels)), persistent=False)

        def forward(self, stages, condition):
            feats = [p(n(unfold(s, self.freq_ratio))) for s, n, p in zip(stages, self.norms, self.proj)]
            h = condition(0, F.relu(feats[-1]))
            for k in range(len(feats) - 2, -1, -1):
                h = F.relu(nhwc(self.fuse[k], F.relu(nhwc(self.up[k], h)) + feats[k]))
                h = condition(len(feats) - 1 - k, h)
            y = nhwc(self.head, F.relu(nhwc(self.unpatch, h)))[..., 0]          # (B, S R, n_mels)
            return torch.einsum("tp,bpm,fm->btf", self.time_matrix, y, self.freq_matrix)

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.base = HtsatGrid()
            self.conditioning = nn.ModuleList([CrossAttention(w) for w in dcfg.widths()])
            self.similarity_proj = nn.Linear(1, dcfg.widths()[0])
            self.similarity_gain = nn.Parameter(torch.tensor(4.0))

        def forward(self, stages, similarity, t):
            def condition(level, h):
                if level == 0:
                    h = h + self.similarity_proj(stretch(similarity, h.shape[1], h.shape[2])[..., None])
                return self.conditioning[level](h, t) if c.conditions(level) else h
            y = self.base(stages, condition)
            return y + self.similarity_gain * stretch(similarity, dcfg.frames, dcfg.n_freq)
    return Decoder()


def unfold(grid, freq_ratio):
    """Folded HTSAT token grid (B, H, W, C) -> (time, mel) grid (B, R W, H / R, C) (``lmac.decoders.unfold_tokens``)."""
    b, h, w, ch = grid.shape
    x = grid.reshape(b, freq_ratio, h // freq_ratio, w, ch).permute(0, 1, 3, 2, 4)
    return x.reshape(b, freq_ratio * w, h // freq_ratio, ch)


def _torch_clap(spec):
    """LAION's HTSAT + a transformers RoBERTa + MLP projections at ``spec``'s sizes (random weights)."""
    import reference_models  # noqa: F401  (offline laion_clap import: torchvision / torchaudio stand-ins)
    import torch
    import transformers
    from laion_clap.clap_module.htsat import HTSAT_Swin_Transformer
    a, t, sg = spec.model.audio, spec.model.text, spec.audio.spectrogram
    audio_cfg = types.SimpleNamespace(window_size=sg.n_fft, hop_size=sg.hop_length, sample_rate=sg.sample_rate,
                                      mel_bins=sg.n_mels, fmin=sg.fmin, fmax=sg.fmax)
    mlp = lambda din: torch.nn.Sequential(torch.nn.Linear(din, spec.model.joint_dim), torch.nn.ReLU(),
                                          torch.nn.Linear(spec.model.joint_dim, spec.model.joint_dim))
    model = torch.nn.Module()
    model.audio_branch = HTSAT_Swin_Transformer(spec_size=a.spec_size, patch_size=a.patch_size, embed_dim=a.embed_dim,
                                                depths=list(a.depths), num_heads=list(a.num_heads),
                                                window_size=a.window_size, mlp_ratio=a.mlp_ratio, config=audio_cfg)
    model.text_branch = transformers.RobertaModel(transformers.RobertaConfig(
        vocab_size=t.vocab_size, hidden_size=t.hidden_size, num_hidden_layers=t.num_layers,
        num_attention_heads=t.num_heads, intermediate_size=t.intermediate_size, max_position_embeddings=t.max_positions,
        type_vocab_size=t.type_vocab_size, pad_token_id=t.pad_token_id, layer_norm_eps=t.layer_norm_eps))
    model.audio_projection, model.text_projection = mlp(a.num_features), mlp(t.hidden_size)
    model.logit_scale_a = torch.nn.Parameter(torch.zeros(()))
    model.logit_scale_t = torch.nn.Parameter(torch.zeros(()))
    return model.eval().requires_grad_(False)


def _reference(cfg, clap, task, batch):
    """The same step in PyTorch; returns (run, decoder parameter count, holder of the first loss)."""
    import torch
    from clap_jax import convert
    torch.set_num_threads(os.cpu_count())     # XLA:CPU's thread pool spans every core
    F = torch.nn.functional
    lcfg, dcfg = lmac_zs.loss_config(cfg.loss), lmac_zs.decoder_config(cfg, clap)
    if lcfg.domain != "stft":
        raise ValueError("the PyTorch step covers STFT-domain masks (the soundscapes config)")
    spec, sg = clap.spec, clap.spec.audio.spectrogram
    torch.manual_seed(0)
    model = _torch_clap(spec)
    _torch_state(task.model.clap, convert.LAION_RULES, model, convert.LAION_IGNORE)
    decoder = _torch_decoder(dcfg)
    _torch_state(task.model.decoder, (), decoder, ())
    branch, logmel = model.audio_branch, model.audio_branch.logmel_extractor     # its torchlibrosa bank + dB

    def encode(mag):
        """Linear magnitude (N, T, F) -> (normalised embedding (N, D), stage grids, final tokens (N, G, G, C))."""
        x = logmel(mag[:, None] ** 2).transpose(1, 3)        # (N, n_mels, T, 1)
        x = branch.reshape_wav2img(branch.bn0(x).transpose(1, 3))
        x = branch.patch_embed(x)
        stages = []
        for layer in branch.layers:
            for blk in layer.blocks:
                x, _ = blk(x)
            g = int(round(x.shape[1] ** 0.5))
            stages.append(x.reshape(x.shape[0], g, g, x.shape[2]))
            if layer.downsample is not None:
                x = layer.downsample(x)
        tokens = branch.norm(x)
        emb = model.audio_projection(tokens.mean(1))
        g = stages[-1].shape[1]
        return (F.normalize(emb, dim=-1) if normalize else emb), stages, tokens.reshape(tokens.shape[0], g, g, -1)

    normalize = zero_shot.normalizes(lcfg)
    window = torch.hann_window(sg.win_length)
    waves, ids, mask_ids = (torch.from_numpy(batch[k]) for k in ("waves", "ids", "mask"))
    ids, mask_ids = ids.long(), mask_ids.long()
    b = len(waves)
    eye = torch.eye(b)
    params = list(decoder.parameters())
    opt = torch.optim.Adam(params, lr=cfg.optim.learning_rate)
    warmup = max(1, min(cfg.optim.warmup_steps, cfg.steps - 1))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(s / warmup, 1.0))
    holder = {"first": None}

    def loss_fn():
        with torch.no_grad():                                 # frozen text side, clean pass, dense similarity
            text = model.text_projection(model.text_branch(input_ids=ids, attention_mask=mask_ids).pooler_output)
            t = F.normalize(text, dim=-1) if normalize else text
            scale = model.logit_scale_a.exp() if lcfg.logit_scale is None else torch.tensor(lcfg.logit_scale)
            mag = torch.stft(waves, sg.n_fft, sg.hop_length, sg.win_length, window, center=True,
                             pad_mode=sg.pad_mode, return_complex=True).abs().transpose(1, 2)   # (B, T, F)
            audio, stages, tokens = encode(mag)
            stages = [s.repeat(b, 1, 1, 1) for s in stages]  # row i B + j: clip j
            t_rep = t.repeat_interleave(b, 0)                  # row i B + j: prompt i
            dense = F.normalize(model.audio_projection(unfold(tokens.repeat(b, 1, 1, 1), branch.freq_ratio)), dim=-1)
            similarity = torch.einsum("ntfd,nd->ntf", dense, F.normalize(t_rep, dim=-1))
        mask = torch.sigmoid(decoder(stages, similarity, t_rep))             # (B B, T, F)
        frames = min(mask.shape[1], mag.shape[1])
        mag_rep = mag[:, :frames].repeat(b, 1, 1)
        masked_mag = (torch.expm1(mask[:, :frames] * torch.log1p(mag_rep)) if lcfg.stft_mask == "log1p"
                      else mask[:, :frames] * mag_rep)
        masked = encode(masked_mag)[0].reshape(b, b, -1)                      # [prompt i, clip j]
        sim, sim_masked = scale * t @ audio.T, scale * torch.einsum("pd,pbd->pb", t, masked)
        loss = (sim - sim_masked).abs().sum() + lcfg.l1 * mask.abs().mean((-2, -1)).sum()
        if lcfg.diversity:
            own = masked[torch.arange(b), torch.arange(b)]
            gap = (t @ t.T - torch.einsum("id,jid->ij", own, masked)).abs() * (1 - eye)
            loss = loss + lcfg.diversity * (scale if lcfg.diversity_scale == "logit" else 1.0) * gap.sum()
        return loss

    def run():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        if cfg.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
        opt.step()
        sched.step()
        holder["first"] = loss.item() if holder["first"] is None else holder["first"]
    return run, sum(p.numel() for p in params), holder


def _batch(clap, cfg, b: int) -> dict[str, np.ndarray]:
    """Random waveforms (B, clip_samples) and B captions tokenised to ``data.text_length``."""
    rng = np.random.default_rng(0)
    waves = (0.1 * rng.standard_normal((b, clap.spec.audio.clip_samples))).astype(np.float32)
    ids, mask = clap.tokenizer([CAPTIONS[i % len(CAPTIONS)] for i in range(b)])
    n = cfg.data.text_length
    pad = lambda a, v: np.pad(a[:, :n], ((0, 0), (0, max(0, n - a.shape[1]))), constant_values=v).astype(np.int32)
    return {"waves": waves, "ids": pad(ids, clap.tokenizer.pad_id), "mask": pad(mask, 0)}


def main(argv):
    del argv
    from clap_jax import runtime
    runtime.quiet_logs()  # the table alone on the output (dependencies log WARNING and above)
    from clap_jax import api
    cfg = FLAGS.config
    b = FLAGS.batch_size or cfg.batch_size
    load_before = os.getloadavg()[0]
    clap = api.load(cfg.model)
    batch = _batch(clap, cfg, b)
    ours, task, n_ours, ours_holder = _ours(cfg, clap, batch)
    ref, n_ref, ref_holder = _reference(cfg, clap, task, batch)     # the same CLAP and initial decoder weights
    if n_ours != n_ref:
        raise SystemExit(f"decoder parameter counts differ: ours {n_ours}, PyTorch {n_ref}")
    t_ours = median_seconds(ours, FLAGS.steps)
    t_ref = median_seconds(ref, FLAGS.steps)
    loss_ours, loss_ref = float(ours_holder["first"]["loss"]), ref_holder["first"]
    dev = jax.devices()[0]
    if FLAGS.header:
        print("| LMAC-ZS training step | device | clips | pairs | decoder params (ours / PyTorch) | first-step loss "
              "(ours / PyTorch) | clips/s (ours) | pairs/s (ours) | clips/s (PyTorch) | pairs/s (PyTorch) "
              "| ours / PyTorch | load 1 min (before / after) |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {cfg.model} + {os.path.basename(config_flags.get_config_filename(FLAGS['config']))} | "
          f"{dev.platform}:{getattr(dev, 'device_kind', '')} | {b} | {b * b} | {n_ours:,} / {n_ref:,} | "
          f"{loss_ours:.2f} / {loss_ref:.2f} | {b / t_ours:.2f} | {b * b / t_ours:.1f} | {b / t_ref:.2f} | "
          f"{b * b / t_ref:.1f} | {t_ref / t_ours:.2f}x | {load_before:.1f} / {os.getloadavg()[0]:.1f} |")


if __name__ == "__main__":
    app.run(main)
