"""Parity of lmac.metrics with its references: SPS and COMP against ``quantus`` called as the L-MAC
recipe calls it (``Sparseness`` / ``Complexity``, ``return_aggregate=True, abs=True``, a_batch = mask as
(B, 1, T, F)), the recipe's faithfulness formulas evaluated in PyTorch and its aggregation over batches,
and ROC-AUC against ``sklearn.metrics.roc_auc_score``."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

quantus = pytest.importorskip("quantus", reason="parity tests need quantus (pip install -e '.[test]')")
torch = pytest.importorskip("torch")
pytestmark = pytest.mark.parity

import jax.numpy as jnp  # noqa: E402

from lmac import metrics  # noqa: E402


def _quantus(metric_cls, mask: np.ndarray, aggregate: bool) -> list[float]:
    """The recipe's call: model None, x_batch of the same (B, 1, T, F) shape, softmax False."""
    a = np.ascontiguousarray(mask[:, None].astype(np.float32))
    x = np.random.default_rng(0).standard_normal(a.shape).astype(np.float32)
    y = np.zeros(a.shape[0], np.int64)
    m = metric_cls(return_aggregate=aggregate, abs=True, disable_warnings=True)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")
        return m(model=None, x_batch=x, a_batch=a, y_batch=y, softmax=False, device="cpu")


def _masks():
    rng = np.random.default_rng(0)
    b, t, f = 4, 43, 51
    yield "uniform random", rng.random((b, t, f))
    yield "sigmoid of gaussian", 1 / (1 + np.exp(-3 * rng.standard_normal((b, t, f))))
    tt, ff = np.meshgrid(np.arange(t), np.arange(f), indexing="ij")
    blobs = np.stack([np.exp(-((tt - 10 * i - 5) ** 2 + (ff - 7 * i - 10) ** 2) / (20.0 + 10 * i)) for i in range(b)])
    yield "gaussian blobs, different peaks", blobs * np.array([1.0, 0.5, 0.25, 0.8])[:, None, None]
    sparse = (rng.random((b, t, f)) < 0.02) * rng.random((b, t, f))
    sparse[1, 0, 0] = 0.9  # make sure no row is all zero
    yield "mostly zeros", sparse
    binary = np.zeros((b, t, f))
    binary[:, 5:20, 10:30] = 1.0
    binary[0] *= 0.3
    yield "binary rectangles", binary
    yield "recipe size, one clip", rng.random((1, 425, 513)) ** 4


@pytest.mark.parametrize("name,mask", list(_masks()), ids=[n for n, _ in _masks()])
def test_sparseness_and_complexity_match_quantus(name, mask):
    mask = mask.astype(np.float32)
    for ours, cls in ((metrics.sparseness, quantus.Sparseness), (metrics.complexity, quantus.Complexity)):
        got = np.asarray(ours(jnp.asarray(mask)))
        want = np.asarray(_quantus(cls, mask, aggregate=False), np.float64)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=f"{cls.__name__} {name}")
        agg = float(metrics.batch_aggregate(jnp.asarray(got)))
        np.testing.assert_allclose(agg, _quantus(cls, mask, aggregate=True)[0], rtol=1e-5, atol=1e-5)


def test_sparseness_normalises_over_the_whole_batch_as_quantus():
    """Quantus' normalise_by_max divides the whole batch by one max, so the 1e-7 offset makes a
    sample's SPS depend on its batch: ours does the same (and differs with normalise='sample')."""
    rng = np.random.default_rng(5)
    mask = (rng.random((2, 30, 20)) ** 6).astype(np.float32)
    mask[1] *= 1e-5  # tiny next to the batch max: the 1e-7 offset matters
    want = np.asarray(_quantus(quantus.Sparseness, mask, aggregate=False))
    np.testing.assert_allclose(np.asarray(metrics.sparseness(mask)), want, rtol=1e-5, atol=1e-5)
    per_sample = np.asarray(metrics.sparseness(mask, normalise="sample"))
    assert abs(per_sample[1] - want[1]) > 1e-2


def test_complexity_nan_with_an_all_zero_row_as_quantus():
    mask = np.random.default_rng(1).random((3, 10, 12)).astype(np.float32)
    mask[2] = 0.0
    want = _quantus(quantus.Complexity, mask, aggregate=True)[0]
    assert np.isnan(want)
    assert np.isnan(float(metrics.batch_aggregate(metrics.complexity(mask))))


def _recipe_faithfulness_torch(p_clean, p_in, p_out):
    """The recipe's AD/AI/AG/Fid-In/FF formulas (interpreter_brain.py), re-expressed in PyTorch."""
    pred, theta, out = (torch.from_numpy(x) for x in (p_clean, p_in, p_out))
    eps = 1e-10
    c = pred.argmax(1, keepdim=True)
    pc, oc = pred.gather(1, c)[:, 0], theta.gather(1, c)[:, 0]
    sp, st = torch.softmax(pred, 1), torch.softmax(theta, 1)
    c2 = sp.argmax(1, keepdim=True)
    ad = torch.relu(sp.gather(1, c2)[:, 0] - st.gather(1, c2)[:, 0]) / (sp.gather(1, c2)[:, 0] + eps) * 100
    return {
        "AI": (pc < oc).float() * 100,
        "AD": ad,
        "AG": torch.relu(oc - pc) / (1 - pc + eps) * 100,
        "FF": pc - out.gather(1, c)[:, 0],
        "Fid-In": (torch.topk(theta, k=1, dim=1)[1] == c).sum(1).float(),
    }


def test_recipe_aggregation_over_batches():
    """Batches as the recipe sees them: per-sample faithfulness from PyTorch, per-batch quantus SPS
    and COMP (skipped for all-zero masks), NaN COMP dropped, then means, against our Aggregator."""
    rng = np.random.default_rng(2)
    logits = lambda b: (3 * rng.standard_normal((b, 10))).astype(np.float32)
    soft = lambda z: np.exp(z - z.max(1, keepdims=True)) / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)
    masks = [rng.random((3, 20, 17)) ** 2, np.zeros((2, 20, 17)), rng.random((3, 20, 17)) ** 5,
             rng.random((1, 20, 17)), rng.random((2, 20, 17))]
    masks[4][0] = 0.0  # NaN COMP
    agg = metrics.Aggregator()
    scores = {k: [] for k in metrics.FAITHFULNESS_KEYS}
    sps, comp = [], []
    for mask in masks:
        mask = mask.astype(np.float32)
        b = mask.shape[0]
        p = [soft(logits(b)).astype(np.float32) for _ in range(3)]
        agg.add(metrics.batch_metrics(*p, jnp.asarray(mask), recipe_ad=True))
        for k, v in _recipe_faithfulness_torch(*p).items():
            scores[k].extend(v.tolist())
        if mask.sum() > 0:  # the recipe's "all zeros saliency map" guard
            sps.append(_quantus(quantus.Sparseness, mask, aggregate=True)[0])
            comp.append(_quantus(quantus.Complexity, mask, aggregate=True)[0])
    comp_t = torch.tensor(comp)
    want = {k: float(torch.tensor(v).mean()) for k, v in scores.items()}
    want["SPS"] = float(torch.tensor(sps).mean())
    want["COMP"] = float(comp_t[~torch.isnan(comp_t)].mean())
    got = agg.result()
    assert got["n_zero_mask_batches"] == 1 and got["n_nan_comp_batches"] == 1
    for k, v in want.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-5, atol=1e-5, err_msg=k)


def test_roc_auc_matches_sklearn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(4)
    b, t, f = 5, 30, 40
    truth = rng.random((b, t, f)) < np.linspace(0.05, 0.6, b)[:, None, None]
    noisy = truth * rng.random((b, t, f)) * 0.5 + rng.random((b, t, f))
    quantised = np.round(noisy * 4) / 4  # many ties
    for maps in (noisy, quantised, rng.random((b, t, f))):
        maps = maps.astype(np.float32)
        got = np.asarray(metrics.localization_per_sample(maps, truth)["roc_auc"])
        want = [sklearn_metrics.roc_auc_score(truth[i].ravel(), maps[i].ravel()) for i in range(b)]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
