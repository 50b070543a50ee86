"""lmac.metrics without torch: faithfulness on hand-made tables, localisation of the truth and its
complement, the recipe's aggregation over batches (all-zero masks skipped, NaN COMP dropped)."""
from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest

from lmac import metrics

# Three samples, three classes. c = argmax p_clean: sample 0 -> 0, sample 1 -> 0 (tie 0.4/0.4, first
# index), sample 2 -> 2.
P_CLEAN = np.array([[0.5, 0.3, 0.2], [0.4, 0.4, 0.2], [0.1, 0.2, 0.7]], np.float32)
# o_c: 0.25 (drop), 0.6 (increase), 0.7 (tie with p_c: neither increase nor drop)
P_IN = np.array([[0.25, 0.5, 0.25], [0.6, 0.2, 0.2], [0.2, 0.1, 0.7]], np.float32)
# q_c: 0.1, 0.5, 0.1
P_OUT = np.array([[0.1, 0.6, 0.3], [0.5, 0.25, 0.25], [0.3, 0.6, 0.1]], np.float32)

EXPECTED = {
    "AI": [0.0, 100.0, 0.0],                     # 1[p_c < o_c]: 0.5<0.25 no, 0.4<0.6 yes, 0.7<0.7 no
    "AD": [100 * 0.25 / 0.5, 0.0, 0.0],          # relu(p_c - o_c) / p_c
    "AG": [0.0, 100 * 0.2 / 0.6, 0.0],           # relu(o_c - p_c) / (1 - p_c)
    "FF": [0.5 - 0.1, 0.4 - 0.5, 0.7 - 0.1],     # p_c - q_c
    "Fid-In": [0.0, 1.0, 1.0],                   # argmax p_in: 1, 0, 2
}


def test_faithfulness_hand_table():
    per = metrics.faithfulness_per_sample(P_CLEAN, P_IN, P_OUT)
    for k, want in EXPECTED.items():
        np.testing.assert_allclose(np.asarray(per[k]), want, rtol=1e-6, atol=1e-6, err_msg=k)
    means = metrics.faithfulness(P_CLEAN, P_IN, P_OUT)
    assert set(means) == set(metrics.FAITHFULNESS_KEYS)
    for k, want in EXPECTED.items():
        np.testing.assert_allclose(float(means[k]), np.mean(want), rtol=1e-6, atol=1e-6, err_msg=k)
    np.testing.assert_allclose(float(means["AI"]), 100 / 3, rtol=1e-6)
    np.testing.assert_allclose(float(means["AD"]), 50 / 3, rtol=1e-6)
    np.testing.assert_allclose(float(means["AG"]), 100 / 9, rtol=1e-6)
    np.testing.assert_allclose(float(means["FF"]), 0.3, rtol=1e-6)
    np.testing.assert_allclose(float(means["Fid-In"]), 2 / 3, rtol=1e-6)


def test_faithfulness_recipe_ad_double_softmax():
    """The recipe's AD re-softmaxes probabilities: sample 0 drops from 50 % to 22.06 %."""
    e = math.exp
    pc = e(0.5) / (e(0.5) + e(0.3) + e(0.2))        # softmax(p_clean[0])[0] = 0.390694
    oc = e(0.25) / (e(0.25) + e(0.5) + e(0.25))     # softmax(p_in[0])[0]    = 0.304504
    ad0 = 100 * (pc - oc) / pc
    assert abs(ad0 - 22.0606) < 1e-3
    per = metrics.faithfulness_per_sample(P_CLEAN, P_IN, P_OUT, recipe_ad=True)
    np.testing.assert_allclose(np.asarray(per["AD"]), [ad0, 0.0, 0.0], rtol=1e-5, atol=1e-6)
    for k in ("AI", "AG", "FF", "Fid-In"):  # only AD changes
        np.testing.assert_allclose(np.asarray(per[k]), EXPECTED[k], rtol=1e-6, atol=1e-6, err_msg=k)


def test_faithfulness_eps_edges():
    """p_c = 1: AG's denominator is the recipe's eps alone and the gain is 0, not NaN."""
    p = np.array([[1.0, 0.0]], np.float32)
    per = metrics.faithfulness_per_sample(p, p, np.array([[0.0, 1.0]], np.float32))
    assert float(per["AG"][0]) == 0.0 and float(per["AD"][0]) == 0.0 and float(per["FF"][0]) == 1.0


def _truth(b=3, t=12, f=10, seed=0):
    rng = np.random.default_rng(seed)
    truth = np.zeros((b, t, f), bool)
    for i in range(b):  # a rectangle per sample, covering less than half of the grid
        t0, f0 = rng.integers(0, t // 2), rng.integers(0, f // 2)
        truth[i, t0:t0 + 3 + i, f0:f0 + 4] = True
    return truth


def test_localization_truth_scores_one_complement_zero():
    truth = _truth()
    assert (truth.sum((1, 2)) < truth[0].size / 2).all()
    per = metrics.localization_per_sample(truth.astype(np.float32), truth)
    for k in metrics.LOCALIZATION_KEYS:
        np.testing.assert_array_equal(np.asarray(per[k]), 1.0, err_msg=k)
    # The complement 1 - truth: relevance mass 0, rank 0 (|truth| < N/2, so the top-|truth| bins all
    # lie outside), AUC 0, and IoU 0: its only non-trivial region is the complement itself, and the
    # threshold that keeps every bin (IoU |truth|/N) is excluded for non-constant maps.
    per = metrics.localization_per_sample((~truth).astype(np.float32), truth)
    for k in metrics.LOCALIZATION_KEYS:
        np.testing.assert_array_equal(np.asarray(per[k]), 0.0, err_msg=k)
    # A graded map that is monotone in the truth also scores 1 on all four, except relevance mass.
    rng = np.random.default_rng(1)
    graded = np.where(truth, 2 + rng.random(truth.shape), rng.random(truth.shape)).astype(np.float32)
    per = metrics.localization_per_sample(graded, truth)
    for k in ("relevance_rank", "roc_auc", "iou"):
        np.testing.assert_allclose(np.asarray(per[k]), 1.0, rtol=0, atol=1e-7, err_msg=k)
    assert (np.asarray(per["relevance_mass"]) < 1).all()


def test_localization_by_hand_and_degenerate_truths():
    # One sample of 6 bins, truth = bins {0, 1}.
    m = np.array([[3.0, 1.0, 2.0, 1.0, 0.0, 0.0]], np.float32)
    t = np.array([[True, True, False, False, False, False]])
    per = metrics.localization_per_sample(m, t)
    np.testing.assert_allclose(float(per["relevance_mass"][0]), 4 / 7, rtol=1e-6)
    # top-2 values: 3 (in), then 2 (out) -> 1/2
    np.testing.assert_allclose(float(per["relevance_rank"][0]), 0.5, rtol=1e-6)
    # positives 3 and 1 against negatives {2, 1, 0, 0}: 3 beats 4, 1 beats 2 and ties 1 -> (4 + 2.5)/8
    np.testing.assert_allclose(float(per["roc_auc"][0]), 6.5 / 8, rtol=1e-6)
    # thresholds 3: {0} -> 1/2; 2: {0,2} -> 1/3; 1: {0,1,2,3} -> 2/4; (0 keeps all: excluded)
    np.testing.assert_allclose(float(per["iou"][0]), 0.5, rtol=1e-6)
    # relevance rank with a tie at the k-th value: top-2 of [1, 1, 1, 0] with truth {0, 3}:
    # three bins tie for two places, one of the three is in the truth -> 2 * (1/3) / 2
    per = metrics.localization_per_sample(np.array([[1.0, 1.0, 1.0, 0.0]], np.float32),
                                          np.array([[True, False, False, True]]))
    np.testing.assert_allclose(float(per["relevance_rank"][0]), 1 / 3, rtol=1e-6)

    # Empty and full truths are NaN and excluded from the means; a constant map gets IoU |truth|/N.
    maps = np.ones((3, 4, 5), np.float32)
    truth = np.zeros((3, 4, 5), bool)
    truth[1] = True
    truth[2, 0, :2] = True
    per = metrics.localization_per_sample(maps, truth)
    np.testing.assert_array_equal(np.asarray(per["valid"]), [False, False, True])
    for k in metrics.LOCALIZATION_KEYS:
        assert np.isnan(np.asarray(per[k])[:2]).all(), k
    np.testing.assert_allclose(float(per["iou"][2]), 2 / 20, rtol=1e-6)
    np.testing.assert_allclose(float(per["roc_auc"][2]), 0.5, rtol=1e-6)
    means = metrics.localization(maps, truth)
    assert int(means["n_valid"]) == 1
    np.testing.assert_allclose(float(means["relevance_mass"]), 2 / 20, rtol=1e-6)


def _structured_mask(b, seed):
    rng = np.random.default_rng(seed)
    return (rng.random((b, 8, 6)) ** 3).astype(np.float32)


def test_sparseness_complexity_by_hand():
    # A single map [0, 0, 0, 1]: after normalisation by the max, +1e-7, sorted.
    a = np.array([0, 0, 0, 1], np.float64) + 1e-7
    g = ((2 * np.arange(1, 5) - 5) * a).sum() / (4 * a.sum())
    np.testing.assert_allclose(float(metrics.sparseness(np.array([[0, 0, 0, 0.5]], np.float32))[0]), g, rtol=1e-5)
    # Entropy of [1, 1, 2] / 4.
    p = np.array([0.25, 0.25, 0.5])
    np.testing.assert_allclose(float(metrics.complexity(np.array([[1, 1, 2]], np.float32))[0]),
                               -(p * np.log(p)).sum(), rtol=1e-6)
    # The uniform map is maximally complex and minimally sparse; an all-zero row has NaN complexity.
    assert abs(float(metrics.sparseness(np.ones((1, 9), np.float32))[0])) < 1e-6
    assert np.isnan(float(metrics.complexity(np.zeros((1, 9), np.float32))[0]))
    np.testing.assert_allclose(float(metrics.mask_mean(np.array([[[0.0, 1.0], [0.5, 0.5]]]))[0]), 0.5)


def test_aggregator_skips_zero_masks_and_drops_nan_comp():
    rng = np.random.default_rng(0)
    probs = lambda b: rng.dirichlet(np.ones(4), size=b).astype(np.float32)
    good = _structured_mask(2, 1)
    zero = np.zeros((3, 8, 6), np.float32)              # skipped: "all zeros saliency map"
    with_zero_row = _structured_mask(2, 2)
    with_zero_row[1] = 0.0                              # its COMP is NaN: dropped, SPS kept
    agg = metrics.Aggregator()
    batches, per_sample = [], []
    for mask in (good, zero, with_zero_row):
        b = mask.shape[0]
        p = (probs(b), probs(b), probs(b))
        out = metrics.batch_metrics(*p, jnp.asarray(mask))
        agg.add(out)
        batches.append(out)
        per_sample.append(metrics.faithfulness_per_sample(*p))
    assert np.isnan(float(batches[2]["COMP"])) and not np.isnan(float(batches[2]["SPS"]))
    res = agg.result()
    assert res["n_samples"] == 7 and res["n_batches"] == 3
    assert res["n_zero_mask_batches"] == 1 and res["n_nan_comp_batches"] == 1
    np.testing.assert_allclose(res["SPS"], (float(batches[0]["SPS"]) + float(batches[2]["SPS"])) / 2, rtol=1e-6)
    np.testing.assert_allclose(res["COMP"], float(batches[0]["COMP"]), rtol=1e-6)
    np.testing.assert_allclose(res["SPS"], np.mean([
        float(np.mean(metrics.sparseness(m))) for m in (good, with_zero_row)]), rtol=1e-6)
    for k in metrics.FAITHFULNESS_KEYS:  # over all 7 samples, zero-mask batch included
        want = np.mean(np.concatenate([np.asarray(p[k]) for p in per_sample]))
        np.testing.assert_allclose(res[k], want, rtol=1e-5, atol=1e-6, err_msg=k)
    want_mm = np.mean(np.concatenate([m.reshape(m.shape[0], -1).mean(1) for m in (good, zero, with_zero_row)]))
    np.testing.assert_allclose(res["MM"], want_mm, rtol=1e-6)


def test_aggregator_padding_rows_do_not_count():
    rng = np.random.default_rng(3)
    mask = _structured_mask(3, 4)
    p = [rng.dirichlet(np.ones(5), size=3).astype(np.float32) for _ in range(3)]
    padded_mask = np.concatenate([mask, np.zeros((2, 8, 6), np.float32)])
    padded_p = [np.concatenate([x, np.full((2, 5), 0.2, np.float32)]) for x in p]
    valid = np.array([True] * 3 + [False] * 2)
    a, b = metrics.Aggregator(), metrics.Aggregator()
    a.add(metrics.batch_metrics(*p, mask))
    b.add(metrics.batch_metrics(*padded_p, padded_mask, valid=valid))
    ra, rb = a.result(), b.result()
    for k, v in ra.items():
        np.testing.assert_allclose(rb[k], v, rtol=1e-6, err_msg=k)


@pytest.mark.parametrize("empty", [True, False])
def test_aggregator_nothing_left_is_nan(empty):
    agg = metrics.Aggregator()
    if not empty:
        p = np.full((2, 3), 1 / 3, np.float32)
        agg.add(metrics.batch_metrics(p, p, p, np.zeros((2, 4, 4), np.float32)))
    res = agg.result()
    assert np.isnan(res["SPS"]) and np.isnan(res["COMP"])
    assert res["n_samples"] == (0 if empty else 2)


def test_prompt_specificity_by_hand():
    """Two prompts' masks on one clip: the same mask scores 0 specificity and r = 1; a mask moved onto
    a's event scores its mass gain, hand-counted on a 2 x 2 grid."""
    truth = np.array([[[True, False], [False, False]]] * 3)          # a's event: bin (0, 0)
    own = np.array([[[0.5, 0.5], [0.5, 0.5]],                        # the other mask unchanged
                    [[3.0, 1.0], [0.0, 0.0]],                        # mass 3/4 on a
                    [[1.0, 0.0], [0.0, 0.0]]])                       # mass 1
    other = np.array([[[0.5, 0.5], [0.5, 0.5]], [[1.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 1.0]]])
    other[0] += np.array([[0.1, 0.0], [0.0, 0.2]])                   # not constant, so r is defined
    own[0] = other[0]
    out = {k: np.asarray(v) for k, v in metrics.prompt_specificity(jnp.asarray(own), jnp.asarray(other),
                                                                  jnp.asarray(truth)).items()}
    np.testing.assert_allclose(out["specificity"], [0.0, 0.75 - 0.25, 1.0 - 0.0], atol=1e-6)
    np.testing.assert_allclose(out["correlation"][0], 1.0, atol=1e-6)
    np.testing.assert_allclose(out["correlation"][2], -1.0 / 3.0, atol=1e-6)     # one-hot bins (0,0), (1,1)
    assert np.isnan(out["correlation"][1])                                      # ``other`` constant
    empty = metrics.prompt_specificity(jnp.asarray(own), jnp.asarray(other), jnp.zeros_like(jnp.asarray(truth)))
    assert np.all(np.isnan(np.asarray(empty["specificity"])))
