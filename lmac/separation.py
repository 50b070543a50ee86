"""How far a CLAP's own zero-shot similarities separate present from absent prompts, no explainer involved.

    separation.prompt_separation(similarity, present)   # {auc, step_ratio_lit_80, step_lit_at_ratio_0.2}

An explainer whose mask follows the similarity lights an absent prompt the CLAP hears and dims a
present one it does not; the sharpest such explainer is a *step* (a whole mask above a threshold,
nothing below). Its absent / present mask-mean ratio is what the absent / present aim (methods.md C)
asks of the CLAP itself (``lmac.evaluate --zero_shot`` reports it per protocol).
"""
from __future__ import annotations

import numpy as np
import scipy.stats


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's ρ (ranks with ties broken by order; NaN under 3 points)."""
    rank = lambda v: np.argsort(np.argsort(v, kind="stable"), kind="stable").astype(np.float64)
    return float(np.corrcoef(rank(x), rank(y))[0, 1]) if len(x) > 2 else float("nan")


def step_curve(similarity: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A *step* explainer lights a whole mask for similarities >= t and nothing below. For every
    distinct t (descending): the share of present and of absent prompts it lights, (thresholds,) each.
    ``similarity`` (rows,) zero-shot logits, ``present`` (rows,) bool (False: an absent prompt)."""
    s, pres = np.asarray(similarity, np.float64), np.asarray(present, bool)
    t = np.unique(s)[::-1]
    lit = lambda v: (len(v) - np.searchsorted(np.sort(v), t, side="left")) / len(v)   # share of v >= each t
    return lit(s[pres]), lit(s[~pres])


def prompt_separation(similarity: np.ndarray, present: np.ndarray) -> dict[str, float]:
    """How far CLAP's own similarities separate present from absent prompts: what the absent / present aim
    asks of an explainer whose mask is a step in the similarity (arguments as :func:`step_curve`).

    ``auc``: ROC-AUC of the similarity for present against absent (Mann-Whitney, ties count half). A step
    explainer's absent / present mask-mean ratio is the share of absent prompts it lights over the share
    of present ones: ``step_ratio_lit_80`` at the highest t lighting >= 80 % of the present prompts,
    ``step_lit_at_ratio_0.2`` the largest share of present prompts any t lights at a ratio <= 0.2."""
    s, pres = np.asarray(similarity, np.float64), np.asarray(present, bool)
    n_p, n_a = pres.sum(), (~pres).sum()
    auc = (scipy.stats.rankdata(s)[pres].sum() - n_p * (n_p + 1) / 2) / (n_p * n_a)
    lit_p, lit_a = step_curve(s, pres)
    at_80 = np.argmax(lit_p >= 0.8)                       # lit_p rises as t falls: the first t reaching 80 %
    ok = lit_a <= 0.2 * lit_p
    return {"auc": float(auc), "step_ratio_lit_80": float(lit_a[at_80] / lit_p[at_80]),
            "step_lit_at_ratio_0.2": float(lit_p[ok].max()) if ok.any() else 0.0}


def copresent_pairs(clips, classes) -> list[tuple[int, int]]:
    """Ordered pairs (x, y), x != y, of rows of one clip with different classes: the co-present event
    pairs that ``own_mask_wins`` and ``prompt_specificity`` score. ``clips``, ``classes``: per row."""
    return [(x, y) for x, (i, k) in enumerate(zip(clips, classes)) for y, (j, q) in enumerate(zip(clips, classes))
            if i == j and k != q]


def separation_table(separation: dict[str, dict[str, float]]) -> str:
    """Markdown: one row per protocol of :func:`prompt_separation`."""
    lines = ["| protocol | present / absent ROC-AUC of the similarity | absent / present of the step lighting 80 % "
             "of present prompts | most present prompts a step lights at absent / present <= 0.2 |",
             "|---|---:|---:|---:|"]
    lines += [f"| {p} | {r['auc']:.3f} | {r['step_ratio_lit_80']:.3f} | {r['step_lit_at_ratio_0.2']:.3f} |"
              for p, r in separation.items()]
    return "\n".join(lines)
