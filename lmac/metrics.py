"""Explanation metrics of the L-MAC recipe, batched in JAX, and localisation against a ground truth.

Three families, each a pure function of whole batches (no loop over examples)::

    p_clean, p_in, p_out (B, K) softmax ──> faithfulness_per_sample ──> AI AD AG FF Fid-In (B,)
    mask (B, ...) in [0, 1]             ──> sparseness / complexity ──> SPS COMP (B,)  (Quantus)
                                        ──> mask_mean               ──> MM (B,)
    map (B, T, F) >= 0, truth (B, T, F) ──> localization_per_sample ──> mass rank AUC IoU (B,)

    per batch: batch_metrics (jitted) ──> Aggregator.add ──> Aggregator.result()   # on the host

Notation as SpeechBrain's ``recipes/ESC50/interpret`` (``interpreter_brain.py``): c = argmax p_clean
(first index on ties, like ``torch.argmax``), p_c, o_c, q_c the probabilities of c on the clean,
masked-in and masked-out inputs. AI, AD and AG are in percent, FF in probability units, Fid-In in [0, 1].

Recipe quirks reproduced on request:

* ``recipe_ad=True``: the recipe's ``compute_AD`` applies a second softmax to p_clean and p_in, which
  are already probabilities, and takes c = argmax of the re-softmaxed p_clean. This shrinks AD.
* SPS and COMP are Quantus ``Sparseness`` / ``Complexity`` (``abs=True``, default ``normalise=True``
  with ``normalise_by_max`` over *all* axes, i.e. every map of a batch is divided by the largest
  |value| of the whole batch). The recipe calls them once per batch with ``return_aggregate=True``
  (mean over the batch), skips batches whose mask sums to 0 and drops batches with NaN COMP.
"""
from __future__ import annotations

import functools
import math
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

EPS = 1e-10  # interpreter_brain.py's module-level eps, used by AD and AG
SPARSENESS_EPS = 1e-7  # added to every attribution before sorting (quantus Sparseness)
COMPLEXITY_EPS = 1e-12  # inside the log (quantus Complexity)

FAITHFULNESS_KEYS = ("AI", "AD", "AG", "FF", "Fid-In")
LOCALIZATION_KEYS = ("relevance_mass", "relevance_rank", "roc_auc", "iou")


# ----------------------------------------------------------------------------- faithfulness
def _take(p: jax.Array, c: jax.Array) -> jax.Array:
    return jnp.take_along_axis(p, c[:, None], axis=1)[:, 0]


@functools.partial(jax.jit, static_argnames=("recipe_ad",))
def faithfulness_per_sample(p_clean: jax.Array, p_in: jax.Array, p_out: jax.Array,
                            recipe_ad: bool = False) -> dict[str, jax.Array]:
    """Per-sample AI, AD, AG, FF, Fid-In, each (B,) float32.

    p_clean, p_in, p_out: (B, K) class probabilities (softmax outputs) of the clean, masked-in and
    masked-out inputs. AI = 100·1[p_c < o_c]; AD = 100·relu(p_c − o_c)/(p_c + 1e-10);
    AG = 100·relu(o_c − p_c)/(1 − p_c + 1e-10); FF = p_c − q_c; Fid-In = 1[argmax p_in = c]
    (the recipe's top-1 ``topk``; ties in p_in resolve to the first index here).
    """
    p_clean, p_in, p_out = (jnp.asarray(p, jnp.float32) for p in (p_clean, p_in, p_out))
    c = jnp.argmax(p_clean, axis=1)
    pc, oc, qc = _take(p_clean, c), _take(p_in, c), _take(p_out, c)
    if recipe_ad:
        s_clean, s_in = jax.nn.softmax(p_clean, axis=1), jax.nn.softmax(p_in, axis=1)
        c_ad = jnp.argmax(s_clean, axis=1)
        pc_ad, oc_ad = _take(s_clean, c_ad), _take(s_in, c_ad)
    else:
        pc_ad, oc_ad = pc, oc
    return {
        "AI": (pc < oc).astype(jnp.float32) * 100.0,
        "AD": jax.nn.relu(pc_ad - oc_ad) / (pc_ad + EPS) * 100.0,
        # the barrier stops XLA from folding (1 - p_c) + eps into (1 + eps) - p_c = 1 - p_c (0/0 at p_c = 1)
        "AG": jax.nn.relu(oc - pc) / (jax.lax.optimization_barrier(1.0 - pc) + EPS) * 100.0,
        "FF": pc - qc,
        "Fid-In": (jnp.argmax(p_in, axis=1) == c).astype(jnp.float32),
    }


def faithfulness(p_clean: jax.Array, p_in: jax.Array, p_out: jax.Array,
                 recipe_ad: bool = False) -> dict[str, jax.Array]:
    """Batch means (scalars) of :func:`faithfulness_per_sample`: AI, AD, AG (percent), FF, Fid-In."""
    per = faithfulness_per_sample(p_clean, p_in, p_out, recipe_ad=recipe_ad)
    return {k: jnp.mean(v) for k, v in per.items()}


# ----------------------------------------------------------------------------- mask statistics
def _flat(maps: jax.Array) -> jax.Array:
    maps = jnp.asarray(maps, jnp.float32)
    return maps.reshape(maps.shape[0], -1)


def _valid(valid: jax.Array | None, b: int) -> jax.Array:
    return jnp.ones((b,), bool) if valid is None else jnp.asarray(valid, bool)


def _quantus_normalise(a: jax.Array, normalise: str | None, valid: jax.Array) -> jax.Array:
    """Quantus ``normalise_by_max`` then ``abs``. ``"batch"`` (Quantus' default, as the recipe calls it):
    one max |a| over the whole batch (valid rows only); ``"sample"``: per row; ``None``: abs only.
    An all-zero array is left as it is (Quantus' rule)."""
    a_abs = jnp.abs(a)
    if normalise is None:
        return a_abs
    if normalise == "batch":
        peak = jnp.max(jnp.where(valid[:, None], a_abs, 0.0))
    elif normalise == "sample":
        peak = jnp.max(a_abs, axis=1, keepdims=True)
    else:
        raise ValueError(f"normalise must be 'batch', 'sample' or None, got {normalise!r}")
    return jnp.abs(a / jnp.where(peak == 0, 1.0, peak))


@functools.partial(jax.jit, static_argnames=("normalise",))
def sparseness(maps: jax.Array, normalise: str | None = "batch", valid: jax.Array | None = None) -> jax.Array:
    """SPS, Quantus ``Sparseness`` (Gini index) per sample: (B, ...) -> (B,) float32, higher = sparser.

    After normalisation (see :func:`_quantus_normalise`), each map is flattened to n values,
    a += 1e-7, sorted ascending, and G = Σ_i (2i − n − 1)·a_(i) / (n·Σ_i a_(i)). The weights are
    divided by n before the sum (same value, less float32 cancellation). Quantus refuses constant
    batches with an assertion; this returns the formula's value (0). ``valid`` (B,) bool excludes
    padding rows from the batch max.
    """
    a = _quantus_normalise(_flat(maps), normalise, _valid(valid, maps.shape[0])) + SPARSENESS_EPS
    a = jnp.sort(a, axis=1)
    n = a.shape[1]
    w = (2.0 * jnp.arange(1, n + 1, dtype=jnp.float32) - (n + 1)) / n
    return jnp.sum(w * a, axis=1) / jnp.sum(a, axis=1)


@functools.partial(jax.jit, static_argnames=("normalise",))
def complexity(maps: jax.Array, normalise: str | None = "batch", valid: jax.Array | None = None) -> jax.Array:
    """COMP, Quantus ``Complexity`` per sample: (B, ...) -> (B,) float32 entropy in nats, lower = simpler.

    p_i = |a_i| / Σ_j |a_j| after normalisation, COMP = −Σ_i p_i·log(p_i + 1e-12). An all-zero map
    gives NaN (0/0), as in Quantus; the recipe then drops that batch's COMP.
    """
    a = _quantus_normalise(_flat(maps), normalise, _valid(valid, maps.shape[0]))
    p = a / jnp.sum(jnp.abs(a), axis=1, keepdims=True)
    return -jnp.sum(p * jnp.log(p + COMPLEXITY_EPS), axis=1)


@jax.jit
def mask_mean(maps: jax.Array) -> jax.Array:
    """MM, the mean mask value per sample: (B, ...) -> (B,) float32."""
    return jnp.mean(_flat(maps), axis=1)


def batch_aggregate(per_sample: jax.Array, valid: jax.Array | None = None) -> jax.Array:
    """Quantus ``return_aggregate=True``: the mean of a (B,) score over the (valid) batch; NaN propagates."""
    v = _valid(valid, per_sample.shape[0])
    return jnp.sum(jnp.where(v, per_sample, 0.0)) / jnp.sum(v)


@functools.partial(jax.jit, static_argnames=("recipe_ad",))
def batch_metrics(p_clean: jax.Array, p_in: jax.Array, p_out: jax.Array, mask: jax.Array,
                  valid: jax.Array | None = None, recipe_ad: bool = False) -> dict[str, jax.Array]:
    """Everything the recipe logs for one batch, for :meth:`Aggregator.add`.

    p_*: (B, K) probabilities; mask: (B, T, F) (any trailing shape) in [0, 1]; valid: (B,) bool for a
    padded last batch. Returns the (B,) arrays of :func:`faithfulness_per_sample` and ``MM``, the batch
    scalars ``SPS`` and ``COMP`` (Quantus batch means), ``mask_sum`` (the recipe skips SPS/COMP when
    it is 0) and ``valid``.
    """
    v = _valid(valid, mask.shape[0])
    out = dict(faithfulness_per_sample(p_clean, p_in, p_out, recipe_ad=recipe_ad))
    out["MM"] = mask_mean(mask)
    out["SPS"] = batch_aggregate(sparseness(mask, valid=v), v)
    out["COMP"] = batch_aggregate(complexity(mask, valid=v), v)
    out["mask_sum"] = jnp.sum(jnp.where(v[:, None], _flat(mask), 0.0))
    out["valid"] = v
    return out


class Aggregator:
    """Host-side accumulation over batches, as the recipe's ``on_stage_end`` aggregates.

    ``add(batch_metrics(...))`` per batch; ``result()`` returns floats: AI, AD, AG, FF, Fid-In and MM
    averaged over all (valid) samples; SPS and COMP averaged over batches, skipping batches whose mask
    sums to 0 ("all zeros saliency map") and, for COMP only, batches whose COMP is NaN. Where the
    recipe omits SPS or COMP (no batch left, or NaN) the value is NaN. Also counts: ``n_samples``,
    ``n_batches``, ``n_zero_mask_batches``, ``n_nan_comp_batches``.
    """

    def __init__(self) -> None:
        self._samples: dict[str, list[np.ndarray]] = {k: [] for k in (*FAITHFULNESS_KEYS, "MM")}
        self._sps: list[float] = []
        self._comp: list[float] = []
        self.n_batches = self.n_zero_mask_batches = self.n_nan_comp_batches = 0

    def add(self, batch: Mapping[str, jax.Array]) -> None:
        """One batch's :func:`batch_metrics` (arrays are fetched to the host here)."""
        batch = jax.device_get(dict(batch))
        v = np.asarray(batch.get("valid", np.ones_like(np.asarray(batch["AI"]), bool)), bool)
        for k in self._samples:
            if k in batch:
                self._samples[k].append(np.asarray(batch[k], np.float64)[v])
        self.n_batches += 1
        if not float(batch["mask_sum"]) > 0:
            self.n_zero_mask_batches += 1
            return
        self._sps.append(float(batch["SPS"]))
        comp = float(batch["COMP"])
        if math.isnan(comp):
            self.n_nan_comp_batches += 1
        else:
            self._comp.append(comp)

    def result(self) -> dict[str, float]:
        out = {k: float(np.mean(np.concatenate(v))) if v and sum(map(len, v)) else float("nan")
               for k, v in self._samples.items()}
        out["SPS"] = float(np.mean(self._sps)) if self._sps else float("nan")
        out["COMP"] = float(np.mean(self._comp)) if self._comp else float("nan")
        out["n_samples"] = int(sum(map(len, self._samples["AI"])))
        out["n_batches"] = self.n_batches
        out["n_zero_mask_batches"] = self.n_zero_mask_batches
        out["n_nan_comp_batches"] = self.n_nan_comp_batches
        return out


# ----------------------------------------------------------------------------- localisation
@jax.jit
def localization_per_sample(maps: jax.Array, truth: jax.Array) -> dict[str, jax.Array]:
    """Localisation of non-negative relevance maps against boolean ground-truth masks.

    maps: (B, T, F) (any trailing shape) float, >= 0 (pass relu or |.| of signed attributions);
    truth: same shape, bool. With N bins per sample and k = |truth|, returns (B,) float32 arrays:

    * ``relevance_mass``: Σ map·truth / Σ map (NaN if the map sums to 0);
    * ``relevance_rank``: share of the k highest bins inside the truth; bins tied with the k-th value
      share the remaining places in proportion (the expectation under random tie-breaking);
    * ``roc_auc``: map as score, truth as label, Mann-Whitney with ties counted 1/2 (= average ranks);
    * ``iou``: max over thresholds t of IoU({map >= t}, truth), t over the sorted unique map values
      except the minimum (exact, no grid); the threshold that keeps every bin (IoU = k/N, the chance
      floor) is used only for a constant map. So a binary truth scores 1 and its complement 0.

    Samples with empty or full truth (k = 0 or k = N) have no negatives or no positives: all four are
    NaN there and ``valid`` (B,) bool is False.
    """
    m = _flat(maps)
    t = jnp.asarray(truth, bool).reshape(m.shape)
    n = m.shape[1]
    k = jnp.sum(t, axis=1)
    valid = (k > 0) & (k < n)
    kf = k.astype(jnp.float32)

    mass = jnp.sum(jnp.where(t, m, 0.0), axis=1) / jnp.sum(m, axis=1)

    # One sort serves rank, AUC and IoU: s = each map in descending order, ts = its truth labels.
    order = jnp.argsort(-m, axis=1)
    s = jnp.take_along_axis(m, order, axis=1)
    ts = jnp.take_along_axis(t, order, axis=1)
    group_end = jnp.concatenate([s[:, :-1] != s[:, 1:], jnp.ones_like(s[:, :1], bool)], axis=1)
    group_start = jnp.concatenate([jnp.ones_like(s[:, :1], bool), s[:, 1:] != s[:, :-1]], axis=1)
    count = lambda x: jnp.sum(x, axis=1).astype(jnp.float32)

    vk = jnp.take_along_axis(s, jnp.clip(k - 1, 0, n - 1)[:, None], axis=1)
    gt, eq = m > vk, m == vk
    rank = (count(gt & t) + (kf - count(gt)) * count(eq & t) / count(eq)) / kf

    # Per bin of value v: negatives above v (before its tie group), and up to the group's end.
    is_neg = (~ts).astype(jnp.int32)
    neg_cum = jnp.cumsum(is_neg, axis=1)
    neg_to_end = jax.lax.cummin(jnp.where(group_end, neg_cum, n), axis=1, reverse=True)
    neg_above = jax.lax.cummax(jnp.where(group_start, neg_cum - is_neg, 0), axis=1)
    n_neg = n - k[:, None]
    below2 = 2 * n_neg - neg_to_end - neg_above  # 2·#(neg < v) + #(neg = v)
    auc = jnp.sum(jnp.where(ts, 0.5 * below2.astype(jnp.float32) / n_neg.astype(jnp.float32), 0.0),
                  axis=1) / kf

    tp = jnp.cumsum(ts, axis=1)
    kept = jnp.arange(1, n + 1)
    iou_all = tp.astype(jnp.float32) / (kept + k[:, None] - tp).astype(jnp.float32)
    proper = group_end & (kept < n)
    iou = jnp.where(jnp.any(proper, axis=1), jnp.max(jnp.where(proper, iou_all, -jnp.inf), axis=1),
                    iou_all[:, -1])

    nan = jnp.float32(jnp.nan)
    out = {name: jnp.where(valid, x, nan) for name, x in
           zip(LOCALIZATION_KEYS, (mass, rank, auc, iou))}
    out["valid"] = valid
    return out


def localization(maps: jax.Array, truth: jax.Array) -> dict[str, jax.Array]:
    """Means over the valid samples of :func:`localization_per_sample` (scalars; NaN if none valid,
    and relevance mass ignores all-zero maps), plus ``n_valid``."""
    per = localization_per_sample(maps, truth)
    out = {k: jnp.nanmean(per[k]) for k in LOCALIZATION_KEYS}
    out["n_valid"] = jnp.sum(per["valid"])
    return out


@jax.jit
def prompt_specificity(own: jax.Array, other: jax.Array, truth: jax.Array) -> dict[str, jax.Array]:
    """Whether two sounds of one clip get masks of their own: for P pairs (a, b) of co-present events,
    ``own`` the mask (>= 0) for a's prompt, ``other`` the mask for b's prompt, ``truth`` a's true mask
    (bool), each (P, T, F) (any trailing shape). Returns (P,) float32 arrays:

    * ``specificity``: relevance mass of ``own`` on a's event minus that of ``other`` on it, in [-1, 1];
      0 for an explainer that draws one mask per clip whatever the prompt, > 0 when a's prompt moves
      the mask onto a's event (NaN where a map sums to 0 or ``truth`` is empty);
    * ``correlation``: Pearson's r between the two masks over bins (1: the same mask up to scale and
      offset; NaN where a mask is constant).
    """
    a, b = _flat(own), _flat(other)
    t = jnp.asarray(truth, bool).reshape(a.shape)
    mass = lambda m: jnp.sum(jnp.where(t, m, 0.0), axis=1) / jnp.sum(m, axis=1)
    spec = jnp.where(jnp.any(t, axis=1), mass(a) - mass(b), jnp.nan)
    ca, cb = a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True)
    corr = jnp.sum(ca * cb, axis=1) / jnp.sqrt(jnp.sum(ca * ca, axis=1) * jnp.sum(cb * cb, axis=1))
    return {"specificity": spec, "correlation": corr}
