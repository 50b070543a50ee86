r"""Sanity checks of LMAC-ZS and the zero-shot baselines (methods.md C.4): cascading randomisation of
the CLAP audio encoder, and the files of the zero-shot evaluation's sanity outputs::

    clips (B, samples) -> ĉ: the original CLAP's zero-shot decision, prompt t_ĉ (B, D), kept fixed
    state_0 = the CLAP                                    maps_0 = explain(state_0)   (B, T, F)
    state_1 = audio projection + last norm re-initialised  ssim(maps_0, maps_1)        (B,)
    state_2 = + the last stage (HTSAT) / conv_block6 (CNN14) ...     (cumulative, top-down,
    ...     down to the patch embedding / conv_block1)  -> ssim (steps + 1, B), row 0 = 1

As :mod:`lmac.sanity` does for L-MAC (the classifier randomised, the decoder kept trained and
reading it), the CLAP's audio encoder is what is randomised, for LMAC-ZS and GradCAM++ alike: the
decoder stays trained and reads the randomised encoder's features and dense similarity (and the
masked clip is never re-encoded: the map alone is compared). The text branch is untouched, so the
prompt embedding t_ĉ is the same at every step. Maps are min-max scaled per clip and compared by
:func:`lmac.sanity.ssim` (skimage's defaults, data range 1), as L-MAC's are. Each step is one
batched call of :func:`lmac.evaluate_zs._masks` over every clip (one compile for all steps).

Files: ``sanity.json`` ({steps, cascade, n_clips, prompts, methods: {name: {ssim, ssim_mean,
ssim_std, unrelated_mean, unrelated_std}}}: unrelated = :func:`lmac.sanity.unrelated_ssim`, the
level another clip's map reaches), ``sanity.png`` (:func:`lmac.report_figures.sanity_figure`) and ``scatter.png`` (mask
mean against similarity, present and absent prompts: :func:`lmac.report_figures.scatter_figure`).
"""
from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from clap_jax import atomic
from clap_jax.data import soundscapes
from clap_jax.linalg import l2_normalize
from lmac import sanity

SANITY_METHODS = ("lmac_zs", "gradcam++")
EXPLAINABLE = ("lmac_zs", "gradcam", "gradcam++", "saliency")      # maps that need no extra options
SCATTER_METHODS = ("lmac_zs", "gradcam++")


def cascade(clap_model) -> tuple[tuple[str, tuple[tuple, ...]], ...]:
    """(step name, state paths re-initialised at that step), top-down, applied cumulatively:
    the audio projection with the encoder's last norm (HTSAT) or ``fc1`` (CNN14), then each
    HTSAT stage (``stage4`` .. ``stage1``, the patch embedding and ``bn0`` last) or each CNN14
    block (``block6`` .. ``block1``, with ``bn0``)."""
    audio = clap_model.audio_branch
    if hasattr(audio, "patch_embed"):
        n = len(audio.layers)
        return (("projection", (("audio_projection",), ("audio_branch", "norm"))),
                *((f"stage{i + 1}", (("audio_branch", "layers", i),)) for i in range(n - 1, -1, -1)),
                ("patch_embed", (("audio_branch", "patch_embed"), ("audio_branch", "bn0"))))
    n = len(audio.blocks)
    return (("projection", (("audio_projection",), ("audio_branch", "fc1"))),
            *((f"block{i}", (("audio_branch", f"conv_block{i}"),) + ((("audio_branch", "bn0"),) if i == 1 else ()))
              for i in range(n, 0, -1)))


def fresh_state(graphdef, state, seed: int = 0) -> dict:
    """Pure-dict state of a new ``ClapModel`` of the same config from the modules' own initialisers
    (built in one compiled call: eager initialisation is slow on CPU)."""
    model = nnx.merge(graphdef, state)
    make = lambda: type(model)(model.cfg, rngs=nnx.Rngs(seed))
    return nnx.to_pure_dict(jax.jit(lambda: nnx.split(make())[1])())


def _at(tree, path):
    for k in path:
        tree = tree[k]
    return tree


def reinitialize(state, fresh: dict, paths) -> nnx.State:
    """A copy of ``state`` whose subtrees at ``paths`` (tuples of keys; missing or None ones skipped)
    are ``fresh``'s, cast to the original leaves' dtypes. ``state`` is not modified."""
    pure = nnx.to_pure_dict(state)
    for path in paths:
        try:
            old = _at(pure, path)
        except (KeyError, IndexError, TypeError):
            continue
        if old is None:
            continue
        _at(pure, path[:-1])[path[-1]] = jax.tree.map(lambda o, n: jnp.asarray(n, o.dtype), old, _at(fresh, path))
    out = jax.tree.map(lambda v: v, state)
    nnx.replace_by_pure_dict(out, pure)
    return out


def sanity_check(explainer, waves: np.ndarray, template: str, *, methods=SANITY_METHODS, seed: int = 0,
                 win_size: int = 7) -> dict:
    """Cascading randomisation (module docstring) of each method's map on prepared clips (B, samples),
    conditioned on the prompt of each clip's original zero-shot decision. Returns ``steps``
    (("original", "projection", "stage4", ...)), ``cascade`` {step: [paths]}, ``n_clips``,
    ``prompts`` and per method ``ssim`` (steps, B), ``ssim_mean`` and ``ssim_std`` over clips."""
    from lmac import evaluate_zs
    bad = [m for m in methods if m not in EXPLAINABLE]
    if bad:
        raise ValueError(f"cascading randomisation supports {EXPLAINABLE}, got {bad}")
    clap = explainer.clap
    sg = clap.spec.audio.spectrogram
    labels = [c.label for c in soundscapes.CLASSES]
    text_all = clap.embed_text([template.format(label=lab) for lab in labels])
    t_unit = l2_normalize(text_all)
    scale = float(clap.logit_scale if explainer.spec.loss.logit_scale is None else explainer.spec.loss.logit_scale)
    w = np.asarray(waves, np.float32)
    mag = jnp.asarray(clap.magnitude(jnp.asarray(w)))
    pred = np.asarray((l2_normalize(clap.embed_audio(w, sg.sample_rate)) @ t_unit.T).argmax(1))
    text = jnp.asarray(text_all[pred])
    steps = cascade(nnx.merge(clap.graphdef, clap.state))
    fresh = fresh_state(clap.graphdef, clap.state, seed)
    # every leaf on one device: re-initialised leaves are uncommitted, and jit's cache key sees that
    device = jax.devices()[0]
    states = [jax.device_put(clap.state, device)]
    for _, paths in steps:
        states.append(jax.device_put(reinitialize(states[-1], fresh, paths), device))
    options = tuple((m, ()) for m in EXPLAINABLE[1:])
    key = jax.random.key(seed)
    out = {"steps": ["original"] + [name for name, _ in steps],
           "cascade": {name: ["/".join(map(str, p)) for p in paths] for name, paths in steps},
           "n_clips": int(len(w)), "prompts": [labels[k] for k in pred], "methods": {}}
    for m in methods:
        cfg = explainer.spec.loss if m == "lmac_zs" else dataclasses.replace(explainer.spec.loss, domain="stft")
        graphs = ((clap.graphdef, sg), explainer.decoder_graph, cfg, options)
        explain = lambda state: sanity.minmax(evaluate_zs._masks(graphs, m, (state, explainer.decoder_state), mag,
                                                                 text, jnp.asarray(t_unit), scale, key))
        ref = explain(states[0])
        s = np.stack([np.asarray(sanity.ssim(ref, ref if i == 0 else explain(st), data_range=1.0, win_size=win_size))
                      for i, st in enumerate(states)])
        out["methods"][m] = sanity.summary(s, sanity.unrelated_ssim(ref, data_range=1.0, win_size=win_size))
    return out


def table(result: dict) -> str:
    """Markdown: mean ± std SSIM per method and step, and the unrelated-map level (another clip's map)."""
    steps = result["steps"]
    fmt = lambda m, s: "–" if m is None else f"{m:.3f} ± {s:.3f}"
    lines = ["| method | " + " | ".join(steps) + " | unrelated maps |", "|---|" + "---:|" * (len(steps) + 1)]
    for name, r in result["methods"].items():
        cells = [fmt(m, s) for m, s in zip(r["ssim_mean"], r["ssim_std"])]
        cells.append(fmt(r.get("unrelated_mean"), r.get("unrelated_std")))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\n{result['n_clips']} clips"


def write(out_dir: str, sanity_result: dict | None, scatter: dict | None, protocol: str = "") -> list[str]:
    """sanity.json and sanity.png (when ``sanity_result``), scatter.png (when ``scatter``: {method:
    points from the evaluation}, LMAC-ZS and GradCAM++ if evaluated, else every method)."""
    from lmac import report_figures
    paths = []
    if sanity_result:
        paths.append(os.path.join(out_dir, "sanity.json"))
        atomic.write_json(paths[-1], sanity_result, allow_nan=False)
        paths.append(report_figures.sanity_figure(os.path.join(out_dir, "sanity.png"), sanity_result))
    if scatter:
        chosen = {m: scatter[m] for m in SCATTER_METHODS if m in scatter} or scatter
        paths.append(report_figures.scatter_figure(os.path.join(out_dir, "scatter.png"), chosen, protocol))
    return paths
