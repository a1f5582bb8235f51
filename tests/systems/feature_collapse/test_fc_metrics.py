"""Feature-collapse metrics: exact-collapse constructions and numpy/scipy/sklearn oracles."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import rankdata, spearmanr

from ufm.systems.feature_collapse import metrics as M

N_C, PER, D = 3, 7, 6
GROUPS = np.repeat(np.arange(N_C), PER)


def _simplex(n, d, scale=1.0, seed=0):
    """n centred, equal-norm, equiangular vectors in R^d (random rotation of I - J/n)."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    e = np.eye(n) - 1.0 / n
    return scale * e @ q[:n] * np.sqrt(n / (n - 1))


@jax.jit
def _metrics(X, g, mask):
    return {
        "trace": M.trace_ratio(X, g, N_C, mask),
        "dir": M.directional_collapse(X, g, N_C, mask),
        "etf": M.etf_error(X, g, N_C, mask),
        "pca": M.pca_ratio(X, N_C, mask),
    }


def _all(X, groups=GROUPS, mask=None):
    """All four metrics in one compiled call (mask None = every row)."""
    mask = np.ones(len(X), bool) if mask is None else mask
    out = _metrics(jnp.asarray(X), jnp.asarray(groups), jnp.asarray(mask))
    return {k: float(v) for k, v in out.items()}


def test_exact_type1_collapse():
    C = _simplex(N_C, D, scale=1.7)
    np.testing.assert_allclose(np.linalg.norm(C, axis=1), 1.7)
    got = _all(C[GROUPS])
    assert got["trace"] < 1e-28 and abs(got["dir"]) < 1e-14
    assert got["etf"] < 1e-14 and got["pca"] < 1e-14


def test_exact_type3_collapse_directions_only():
    """w = r chat_alpha: directions collapsed (1 - cos = 0), rank n_c - 1 (sigma_3 = 0), norms
    spread (trace ratio > 0), Spearman(norm, r) = 1."""
    C = _simplex(N_C, D, seed=1)
    C /= np.linalg.norm(C, axis=1, keepdims=True)
    r = np.random.default_rng(1).permutation(np.linspace(2.0, 0.5, N_C * PER))  # no ties
    X = r[:, None] * C[GROUPS]
    got = _all(X)
    assert abs(got["dir"]) < 1e-14 and got["pca"] < 1e-14
    assert got["trace"] > 0.05
    norms = jnp.linalg.norm(jnp.asarray(X), axis=1)
    assert float(M.spearman(norms, jnp.asarray(r))) == pytest.approx(1.0, abs=1e-14)
    assert float(M.spearman(norms, -jnp.asarray(r))) == pytest.approx(-1.0, abs=1e-14)


def _np_oracles(X, g, k):
    means = np.stack([X[g == c].mean(0) for c in range(N_C)])
    grand = X.mean(0)
    within = np.sum((X - means[g]) ** 2) / len(X)
    between = sum(np.sum(g == c) * np.sum((means[c] - grand) ** 2) for c in range(N_C)) / len(X)
    m = means[g]
    cos = np.sum(X * m, 1) / np.linalg.norm(X, axis=1) / np.linalg.norm(m, axis=1)
    Mc = means - means.mean(0)
    G = Mc @ Mc.T
    etf = np.linalg.norm(G / np.linalg.norm(G) - (np.eye(N_C) - 1 / N_C) / np.sqrt(N_C - 1))
    sv = np.linalg.svd(X - X.mean(0), compute_uv=False)
    return {
        "trace": within / between,
        "dir": np.mean(1 - cos),
        "etf": etf,
        "pca": sv[k - 1] / sv[k - 2],
    }


@pytest.mark.parametrize("masked", [False, True])
def test_random_rows_match_numpy(masked):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(N_C * PER, D)) + 0.5 * _simplex(N_C, D)[GROUPS]
    mask = rng.random(len(X)) < 0.7 if masked else np.ones(len(X), bool)
    mask[[0, PER, 2 * PER]] = True  # every group keeps a row
    got = _all(X, mask=mask)
    ref = _np_oracles(X[mask], GROUPS[mask], N_C)
    for k in ref:
        assert got[k] == pytest.approx(ref[k], rel=1e-10), k
    assert got["trace"] > 0.1 and got["dir"] > 0.05 and got["etf"] > 1e-3 and got["pca"] > 0.1


def test_pca_ratio_matches_sklearn():
    PCA = pytest.importorskip("sklearn.decomposition").PCA
    X = np.random.default_rng(3).normal(size=(40, 5))
    sv = PCA(n_components=3).fit(X).singular_values_
    assert float(M.pca_ratio(jnp.asarray(X), 3)) == pytest.approx(sv[2] / sv[1], rel=1e-10)
    assert np.isnan(float(M.pca_ratio(jnp.asarray(X[:, :2]), 3)))  # fewer columns than k


def test_spearman_matches_scipy_with_ties_and_mask():
    rng = np.random.default_rng(4)
    x = rng.normal(size=60)
    y = np.repeat(rng.integers(0, 8, size=20), 3).astype(float)  # heavy ties (like mu_beta)
    mask = rng.random(60) < 0.6
    got = float(M.spearman(jnp.asarray(x), jnp.asarray(y), jnp.asarray(mask)))
    assert got == pytest.approx(spearmanr(x[mask], y[mask])[0], rel=1e-12)
    np.testing.assert_allclose(
        np.asarray(M.average_ranks(jnp.asarray(y), jnp.asarray(mask)))[mask],
        rankdata(y[mask]),
        rtol=1e-14,
    )
    assert np.isnan(float(M.spearman(jnp.asarray(x), jnp.ones(60))))  # constant input


def test_metrics_under_jit_vmap_float32():
    X = jnp.asarray(np.random.default_rng(5).normal(size=(4, N_C * PER, D)), jnp.float32)
    g = jnp.asarray(GROUPS)

    @jax.jit
    def f(X):
        return jax.vmap(lambda x: M.trace_ratio(x, g, N_C))(X)

    out = f(X)
    assert out.dtype == jnp.float32 and out.shape == (4,)
    ref = [_np_oracles(np.asarray(x, np.float64), GROUPS, N_C)["trace"] for x in X]
    np.testing.assert_allclose(out, ref, rtol=1e-4)
