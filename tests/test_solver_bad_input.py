"""Solver inputs that overflow are refused by name; rows that do not converge are counted,
logged with the worst KKT residual and flagged (issue item 8)."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from sparse import checks, dictionary, sparsity
from sparse import decompose as dec_lib
from sparse.lasso import nonneg_lasso

C = np.random.default_rng(0).standard_normal((30, 8))
Z = np.random.default_rng(1).standard_normal((6, 8))


@pytest.mark.parametrize("method", ["working_set", "fista"])
@pytest.mark.parametrize("which,scale", [("dictionary", 1e30), ("dictionary", 1e15), ("embeddings", 1e30),
                                         ("embeddings", 1e16)])
def test_overflowing_inputs_are_refused_by_name(method, which, scale):
    c, z = (C * scale, Z) if which == "dictionary" else (C, Z * scale)
    with pytest.raises(ValueError, match=rf"^{which} has values of magnitude up to .* \(>= 1e\+15\) in row\(s\) 0"):
        nonneg_lasso(c, z, 0.1, method=method)


def test_one_bad_row_is_named():
    z = Z.copy()
    z[4, 2] = 1e20
    with pytest.raises(ValueError, match=r"embeddings has values of magnitude up to 1e\+20 .* in row\(s\) 4:"):
        nonneg_lasso(C, z, 0.1)
    z[3, 0] = np.inf
    with pytest.raises(ValueError, match=r"embeddings contains NaN or inf in row\(s\) 3"):
        nonneg_lasso(C, z, 0.1)
    with pytest.raises(ValueError, match="l1 must be < 1e"):
        nonneg_lasso(C, Z, 1e31)


def test_large_but_safe_inputs_give_finite_results():
    res = nonneg_lasso(C * 1e6, Z * 1e6, 0.1, method="fista")
    assert np.isfinite(res.weights).all() and np.isfinite(res.objective).all() and res.converged.all()
    res = nonneg_lasso(C, Z * 1e14, 0.1, method="fista", max_iter=50)
    assert np.isfinite(res.weights).all() and np.isfinite(res.objective).all()


def test_unconverged_rows_are_counted_and_logged_with_the_worst_residual(caplog):
    with caplog.at_level(logging.WARNING, logger="sparse"):
        res = nonneg_lasso(C, Z, 0.01, method="ista", max_iter=2)
    assert not res.converged.any()
    [record] = [r for r in caplog.records if r.name == "sparse"]
    worst = int(np.argmax(res.kkt))
    assert "nonneg_lasso: 6 of 6 rows did not converge" in record.getMessage()
    assert f"worst KKT residual {res.kkt[worst]:.3g}" in record.getMessage() and f"row {worst}" in record.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sparse"):
        nonneg_lasso(C, Z, 0.01, method="fista")                 # converges: nothing logged
        with checks.quiet():
            nonneg_lasso(C, Z, 0.01, method="ista", max_iter=2)   # the caller reports itself
    assert not [r for r in caplog.records if r.name == "sparse"]


def _dictionary():
    d = dictionary.from_embeddings([f"concept {i}" for i in range(30)], C, center=False, source="random")
    return d


def test_decompose_reports_once_and_flags_rows(monkeypatch, caplog):
    calls = []

    def capped(dictionary, *a, **k):                              # a solver that stops far too early
        calls.append(1)
        host = getattr(dictionary, "host", dictionary)             # decompose passes a PreparedDictionary
        return nonneg_lasso(host, *a, **{**k, "method": "ista", "max_iter": 1})
    monkeypatch.setattr(dec_lib, "nonneg_lasso", capped)
    monkeypatch.setattr(sparsity, "nonneg_lasso", capped)
    d = _dictionary()
    with caplog.at_level(logging.WARNING, logger="sparse"):
        out = dec_lib.decompose(d, Z, 0.05, chunk_size=2)          # three solver calls
    assert len(calls) == 3 and not out.converged.any() and out.kkt.shape == (6,)
    logged = [r.getMessage() for r in caplog.records if r.name == "sparse"]
    assert len(logged) == 1 and logged[0].startswith("sparse.decompose: 6 of 6 rows did not converge"), logged
    caplog.clear()
    calls.clear()
    with caplog.at_level(logging.WARNING, logger="sparse"):
        out = dec_lib.decompose(d, Z, l0=3)                        # lambda_for_l0: many solves, one report
    assert len(calls) > 1 and not out.converged.all()
    logged = [r.getMessage() for r in caplog.records if r.name == "sparse"]
    assert len(logged) == 1 and logged[0].startswith("sparse.decompose:"), logged
    recs = dec_lib.rows([str(i) for i in range(6)], out, 3)
    assert all(r["converged"] is False for r in recs)


def test_decompose_refuses_huge_embeddings():
    with pytest.raises(ValueError, match=r"embeddings has values of magnitude up to 1e\+30"):
        dec_lib.decompose(_dictionary(), np.full((2, 8), 1e30), 0.05)


def test_every_cli_record_has_converged_and_bad_rows_are_skipped(tmp_path):
    from clap_jax import cli_errors
    z = Z.copy()
    z[2, 1], z[4] = np.nan, 0.0
    np.save(tmp_path / "emb.npy", z)
    (tmp_path / "v.txt").write_text("\n".join(f"concept {i}" for i in range(5)) + "\n")

    class Fake:                                                   # text embeddings only
        spec = type("S", (), {"to_json": staticmethod(lambda: "{}"), "source": "fake"})()
        fingerprint = "fake"

        def embed_text(self, texts, batch_size=32):
            return np.stack([np.random.default_rng(len(t) * 7 + i).standard_normal(8) for i, t in
                             enumerate(texts)])
    skips = cli_errors.Skips("sparse.decompose")
    recs = dec_lib.run(Fake(), embeddings=str(tmp_path / "emb.npy"), vocabulary=str(tmp_path / "v.txt"),
                       center=False, method="fista", progress=False, cache_dir=False, out=str(tmp_path / "o.jsonl"),
                       skips=skips)
    assert [r["key"] for r in recs] == ["0", "1", "3", "5"] and all(isinstance(r["converged"], bool) for r in recs)
    assert skips.items == [("2", "embedding holds NaN or inf"), ("4", "embedding is all zeros")]
    assert skips.exit_code(len(recs)) == cli_errors.PARTIAL
    with pytest.raises(cli_errors.InputError, match="2: embedding holds NaN or inf .stopped by --strict"):
        dec_lib.run(Fake(), embeddings=str(tmp_path / "emb.npy"), vocabulary=str(tmp_path / "v.txt"),
                    center=False, method="fista", progress=False, cache_dir=False, out=False, strict=True)
