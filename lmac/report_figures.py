"""Reports of ``lmac.evaluate``: markdown tables, the output files, and figures (:mod:`clap_jax.plots`:
matplotlib, headless, imported only when a figure is written)::

    results {protocol: {method: {metric: value}}}, sanity  -> results.md, results.json, sanity.json

    examples (spectrogram (n, T, F), maps {method: (n, T, F)}, truth {method: (n, T, F)}) -> maps.png
    sanity ({steps, methods: {name: {ssim_mean, ssim_std}}})                              -> sanity.png
    points {method: {mask_mean, similarity, kind, spearman}} (LMAC-ZS evaluation)         -> scatter.png
    prompt examples (LMAC-ZS evaluation: lmac.evaluate_zs._examples)                     -> maps.png
    step curves {protocol: (lit present, lit absent)} (LMAC-ZS evaluation)               -> separation.png

maps.png: one row per clip: the log1p magnitude spectrogram, each method's map (min-max scaled
for display) with its predicted label, and the true mask of the event of the predicted class
(L-MAC's prediction; blank when no event of that class is in the clip). Time runs left to right,
frequency (STFT bins) upwards. The zero-shot maps.png (:func:`prompt_maps_figure`) has one row
per (clip, prompt) instead: the prompts of each present event and one absent prompt.
"""
from __future__ import annotations

import os

import numpy as np

from clap_jax import atomic, plots
from lmac import metrics


def _scaled(m: np.ndarray) -> np.ndarray:
    lo, hi = float(np.min(m)), float(np.max(m))
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def maps_figure(path: str, examples: dict) -> str:
    """Writes maps.png (see the module docstring); returns ``path``."""
    spec, maps = examples["spectrogram"], examples["maps"]
    names = list(maps)
    n = min(len(spec), *(len(m) for m in maps.values()))
    ref = "lmac" if "lmac" in names else names[0]
    cols = 2 + len(names)
    fig, axes = plots.figure(n, cols, size=(2.2 * cols, 2.0 * n), layout="tight")
    labels = examples.get("labels") or ()
    label = lambda k: labels[k] if k < len(labels) else str(k)
    for i in range(n):
        panels = [("spectrogram", spec[i], "magma")]
        panels += [(f"{m}: {label(int(examples['prediction'][m][i]))}", _scaled(maps[m][i]), "viridis") for m in names]
        truth = examples.get("truth", {}).get(ref)
        panels.append((f"true mask ({ref})", truth[i].astype(float) if truth is not None else np.zeros_like(spec[i]),
                       "gray"))
        for ax, (title, img, cmap) in zip(axes[i], panels):
            plots.spectrogram_image(ax, img, cmap=cmap)
            ax.set_title(title, fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"explanation maps ({examples.get('protocol', '')})", fontsize=9)
    return plots.save(fig, path, dpi=100)


def prompt_maps_figure(path: str, examples: dict) -> str:
    """Writes the zero-shot maps.png: one row per (clip, prompt), present events' prompts and then the
    clip's absent prompt: the log1p magnitude spectrogram (titled with the clip, the prompt and its
    similarity), the event's true mask (blank for the absent prompt) and each method's mask on a
    fixed [0, 1] scale (not rescaled, so a dark mask for an absent prompt reads as dark), titled
    with its mean. ``examples``: clip, prompt, kind, similarity (per row), spectrogram and truth
    (rows, T, F), maps {method: (rows, T, F)}, protocol. Returns ``path``."""
    spec, truth, maps = examples["spectrogram"], examples["truth"], examples["maps"]
    names, n = list(maps), len(spec)
    cols = 2 + len(names)
    fig, axes = plots.figure(n, cols, size=(2.0 * cols, 1.45 * n), layout="tight")
    for r in range(n):
        frames = min(spec[r].shape[0], truth[r].shape[0], *(maps[m][r].shape[0] for m in names))
        head = (f"clip {examples['clip'][r]}, {examples['kind'][r]}: {examples['prompt'][r]} "
                f"(sim {examples['similarity'][r]:.1f})")
        panels = [(head, spec[r][:frames], "magma", None), ("true mask", truth[r][:frames], "gray", 1.0)]
        panels += [(f"{m}: mean {float(maps[m][r][:frames].mean()):.2f}", maps[m][r][:frames], "viridis", 1.0)
                   for m in names]
        for ax, (title, img, cmap, top) in zip(axes[r], panels):
            plots.spectrogram_image(ax, img, cmap=cmap, **({} if top is None else {"vmin": 0.0, "vmax": top}))
            ax.set_title(title, fontsize=6)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"masks for present and absent prompts ({examples.get('protocol', '')})\n"
                 "time to the right, STFT bins upwards, masks on a fixed 0-1 scale", fontsize=8)
    return plots.save(fig, path, dpi=100)


def sanity_figure(path: str, result: dict) -> str:
    """Writes sanity.png: mean SSIM (± std over clips) to the original map against the number of
    re-initialised blocks, one line per method, and dashed at each method's unrelated-map level (the
    SSIM of a clip's original map to another clip's: a curve there has forgotten the clip's map);
    returns ``path``."""
    steps = result["steps"]
    x = np.arange(len(steps))
    as_array = lambda values: np.array([np.nan if v is None else v for v in values], float)
    means = {name: as_array(r["ssim_mean"]) for name, r in result["methods"].items()}
    stds = {name: as_array(r["ssim_std"]) for name, r in result["methods"].items()}
    floors = {name: (f"{name}: another clip's map", r["unrelated_mean"]) for name, r in result["methods"].items()
              if r.get("unrelated_mean") is not None}
    fig, [[ax]] = plots.figure(size=(7, 3.5))
    plots.lines(ax, x, means, bands={n: (m - stds[n], m + stds[n]) for n, m in means.items()}, baselines=floors,
                xlabel="re-initialised (cumulative, top-down)", ylabel="SSIM to the original map")
    ax.set_xticks(x, steps, rotation=30, fontsize=8)
    ax.set_ylim(-0.1, 1.05)
    return plots.save(fig, path, dpi=100)


def scatter_figure(path: str, points: dict, protocol: str = "") -> str:
    """Writes scatter.png: mask mean against the zero-shot similarity of every (present or absent
    prompt, clip) pair, present and absent prompts in two colours, one panel per method side by side
    with Spearman ρ over all its pairs in the title. ``points`` {method: {mask_mean, similarity,
    kind ("present" | "absent"), spearman}}; returns ``path``."""
    names = list(points)
    fig, axes = plots.figure(1, len(names), size=(3.6 * len(names), 3.4))
    for ax, name in zip(axes[0], names):
        p = points[name]
        mm, sim, kind = np.asarray(p["mask_mean"], float), np.asarray(p["similarity"], float), np.asarray(p["kind"])
        for what, colour in (("present", "tab:blue"), ("absent", "tab:orange")):
            sel = kind == what
            ax.scatter(sim[sel], mm[sel], s=10, alpha=0.6, color=colour, label=f"{what} ({int(sel.sum())})")
        rho = p.get("spearman")
        ax.set_title(f"{name}: Spearman ρ = {'–' if rho is None or not np.isfinite(rho) else f'{rho:.2f}'}",
                     fontsize=9)
        ax.set_xlabel("similarity (zero-shot logit)")
        ax.set_ylabel("mask mean")
        ax.legend(fontsize=7)
    if protocol:
        fig.suptitle(f"mask mean vs similarity ({protocol})", fontsize=9)
    return plots.save(fig, path, dpi=100)


def separation_figure(path: str, curves: dict, title: str = "") -> str:
    """Writes separation.png: for a step explainer (``lmac.separation.step_curve``), its absent / present
    mask-mean ratio against the share of present prompts it lights, one line per protocol, the aim's 0.2
    dashed. ``curves`` {protocol: (lit_present, lit_absent)}; ``title`` names the run; returns ``path``."""
    fig, axes = plots.figure(1, 1, size=(4.6, 3.4))
    ax = axes[0][0]
    for name, (lit_p, lit_a) in curves.items():
        keep = lit_p > 0
        ax.plot(lit_p[keep], lit_a[keep] / lit_p[keep], label=name, lw=1.4)
    ax.axhline(0.2, color="k", ls="--", lw=0.8, label="absent / present 0.2")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("share of present-event prompts lit (similarity >= t)")
    ax.set_ylabel("absent / present mask mean")
    ax.set_title("a mask that is a step in the CLAP's similarity" + (f"\n{title}" if title else ""), fontsize=9)
    ax.legend(fontsize=7)
    return plots.save(fig, path, dpi=110)


# ------------------------------------------------------------------ tables and files

_COLUMNS = (("AI", "AI ↑", 2), ("AD", "AD ↓", 2), ("AG", "AG ↑", 2), ("FF", "FF ↑", 3), ("Fid-In", "Fid-In ↑", 3),
            ("SPS", "SPS ↑", 3), ("COMP", "COMP ↓", 2), ("MM", "MM", 3), ("relevance_mass", "mass ↑", 3),
            ("relevance_rank", "rank ↑", 3), ("roc_auc", "AUC ↑", 3), ("iou", "IoU ↑", 3))


def _fmt(v, digits):
    return "–" if v is None else f"{v:.{digits}f}"


def markdown(results: dict, sanity_result: dict | None = None) -> str:
    """One paper-style table per protocol (rows methods) and the randomisation table."""
    lines = []
    for protocol, rows in results.items():
        has_loc = any("roc_auc" in r for r in rows.values())
        cols = [c for c in _COLUMNS if has_loc or c[0] not in metrics.LOCALIZATION_KEYS]
        lines += [f"### {protocol}", "", "| method | " + " | ".join(c[1] for c in cols) + " |",
                  "|---|" + "---:|" * len(cols)]
        for name, r in rows.items():
            lines.append(f"| {name} | " + " | ".join(_fmt(r.get(k), d) for k, _, d in cols) + " |")
        first = next(iter(rows.values()))
        note = f"{first['n_samples']} clips"
        if has_loc:
            note += "; localised (prediction matches an event): " + ", ".join(
                f"{m} {r['n_localized']}/{r['n_truth']}" for m, r in rows.items())
        lines += ["", note, ""]
    if sanity_result:
        steps = sanity_result["steps"]
        lines += ["### cascading randomisation (SSIM to the original map, blocks re-initialised top-down)", "",
                  "| method | " + " | ".join(steps) + " | unrelated maps |", "|---|" + "---:|" * (len(steps) + 1)]
        for name, r in sanity_result["methods"].items():
            cells = [_fmt(v, 3) for v in r["ssim_mean"]] + [_fmt(r.get("unrelated_mean"), 3)]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += ["", f"{sanity_result['n_clips']} clips", ""]
    return "\n".join(lines)


def write_outputs(out_dir: str, result: dict, sanity_result: dict | None, run: dict | None = None) -> list[str]:
    """results.json, results.md, maps.png, sanity.json, sanity.png (and run.json) in ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []

    def dump(name, obj):
        path = os.path.join(out_dir, name)
        atomic.write_json(path, obj, allow_nan=False)
        paths.append(path)
    dump("results.json", result["results"])
    atomic.write_text(os.path.join(out_dir, "results.md"), markdown(result["results"], sanity_result))
    paths.append(os.path.join(out_dir, "results.md"))
    if result.get("examples"):
        paths.append(maps_figure(os.path.join(out_dir, "maps.png"), result["examples"]))
    if sanity_result:
        dump("sanity.json", sanity_result)
        paths.append(sanity_figure(os.path.join(out_dir, "sanity.png"), sanity_result))
    if run:
        dump("run.json", run)
    return paths
