"""Forward-feature-map analysis against closed forms, identities and a numpy reimplementation.

Collapsed configurations are built here (simplex-ETF class means from the centred identity rows,
randomly rotated into R^p) and from the UFM's closed-form optimum (ufm.optimum); the numpy
reference diagonalises M = F^T F / n with numpy.linalg.eigh and computes CKA from the n x n
kernel matrices directly.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ufm
from ufm.systems import feature_map as fm


def rand_orth(rng, d):
    Q, R = np.linalg.qr(rng.standard_normal((d, d)))
    return Q * np.sign(np.diag(R))


def nc_features(rng, C, n_c, p, scale=2.0, offset=0.0):
    """Exact neural collapse: class-major rows equal to their class mean; means a simplex ETF
    (rotated into R^p), plus an optional common offset (uncentred means)."""
    means = np.zeros((C, p))
    means[:, :C] = scale * (np.eye(C) - 1.0 / C)
    means = means @ rand_orth(rng, p).T + offset
    labels = np.repeat(np.arange(C), n_c)
    return means[labels], labels


def np_reference(F, f_hat, Y, bias):
    """Independent numpy: eigh of M (n > p), Nystrom e_k, kernel-matrix CKA."""
    n = F.shape[0]
    Fb = np.hstack([F, np.ones((n, 1))]) if bias else F
    rho, V = np.linalg.eigh(Fb.T @ Fb / n)
    rho, V = rho[::-1], V[:, ::-1]
    keep = rho > 1e-9 * rho[0]
    E = Fb @ V[:, keep] / np.sqrt(rho[keep])
    a = E.T @ Y / n
    pi_star = np.cumsum((a**2).sum(1)) / ((Y**2).sum() / n)
    Fc = F - F.mean(0)
    rc = np.clip(np.linalg.eigvalsh(Fc.T @ Fc / n)[::-1], 0, None)
    pr = rc.sum() ** 2 / (rc**2).sum()
    q = rc[rc > 0] / rc.sum()
    er = np.exp(-(q * np.log(q)).sum())
    T = Fc @ Fc.T
    fc = f_hat - f_hat.mean(0)
    U, s, _ = np.linalg.svd(fc, full_matrices=False)
    Q = U[:, s > 1e-9 * s[0]]
    P = Q @ Q.T
    cka = np.sum(T * P) / (np.linalg.norm(T) * np.linalg.norm(P))
    return rho, pi_star, rc, pr, er, 1.0 - cka


def test_matches_numpy_reference():
    rng = np.random.default_rng(0)
    n, p, C = 60, 7, 3
    F = np.abs(rng.standard_normal((n, p))) @ rng.standard_normal((p, p))
    f_hat = F @ rng.standard_normal((p, C)) + 0.3
    Y = np.eye(C)[rng.integers(0, C, n)]
    for bias in (True, False):
        r = fm.analyse(F, f_hat, Y, bias=bias)
        rho, pi_star, rc, pr, er, dlr = np_reference(F, f_hat, Y, bias)
        np.testing.assert_allclose(r.rho, rho, rtol=1e-10)
        np.testing.assert_allclose(r.pi_star, pi_star, rtol=1e-10)
        np.testing.assert_allclose(r.rho_centred, rc[: r.rho_centred.shape[0]], atol=1e-10)
        np.testing.assert_allclose(r.participation_ratio, pr, rtol=1e-10)
        np.testing.assert_allclose(r.effective_rank, er, rtol=1e-10)
        np.testing.assert_allclose(r.d_lr, dlr, rtol=1e-10)
        np.testing.assert_allclose(r.centred_gap, rc[C - 1] / rc[C - 2], rtol=1e-10)
        np.testing.assert_allclose(r.pi_star_C, pi_star[C - 1], rtol=1e-12)
        np.testing.assert_allclose(r.rho_ratio, rho / rho[0], rtol=1e-10)


@pytest.mark.parametrize("n,p", [(40, 6), (6, 40)])
def test_eigenfunctions_orthonormal_and_methods_agree(n, p):
    rng = np.random.default_rng(1)
    F = rng.standard_normal((n, p)) + 1.0
    Y = rng.standard_normal((n, 3))
    ref = None
    for method in ("svd", "eigh"):
        for centre, bias in ((True, True), (False, False)):
            s = fm.feature_spectrum(F, method=method, centre=centre, bias=bias)
            E = np.asarray(s.efuns)
            q = min(n, p + bias)
            assert E.shape == (n, q) and int(s.valid.sum()) == q
            np.testing.assert_allclose(E.T @ E / n, np.eye(q), atol=1e-9)
            # Nystrom: the out-of-sample map reproduces the eigenfunctions on the samples
            np.testing.assert_allclose(np.asarray(fm.eigenfunctions(s, F)), E, atol=1e-9)
        s = fm.feature_spectrum(F, method=method)
        E = np.asarray(s.efuns)
        q = min(n, p)
        # e_k = F v_k / sqrt(rho_k)
        np.testing.assert_allclose(
            F @ np.asarray(s.vecs) / np.sqrt(np.asarray(s.rho)), E, atol=1e-9
        )
        # the non-zero spectrum of M = F^T F / n equals that of the Gram F F^T / n
        gram = np.sort(np.linalg.eigvalsh(F @ F.T / n))[::-1][:q]
        np.testing.assert_allclose(s.rho, gram, rtol=1e-9)
        pi = fm.cumulative_mass(fm.projections(s.efuns, Y), Y)
        proj = E @ E.T / n  # sign-free: projector onto span(F) in the empirical inner product
        if ref is None:
            ref = (proj, pi)
        else:
            np.testing.assert_allclose(proj, ref[0], atol=1e-9)
            np.testing.assert_allclose(pi, ref[1], atol=1e-9)


def test_full_mass_when_span_contains_targets():
    rng = np.random.default_rng(2)
    n, C = 50, 4
    Y = np.eye(C)[rng.integers(0, C, n)]
    extra = rng.standard_normal((n, 3))
    F = np.hstack([Y, extra]) @ rng.standard_normal((C + 3, C + 3))  # invertible mix
    r = fm.analyse(F, F[:, :C], Y, bias=False)
    assert r.pi_star.shape == (C + 3,)
    np.testing.assert_allclose(r.pi_star[-1], 1.0, atol=1e-12)
    assert np.all(np.diff(np.asarray(r.pi_star)) >= -1e-14) and float(r.pi_star[0]) > 0
    # span(F) without the targets' directions: strictly less than full mass
    r2 = fm.analyse(extra, F[:, :C], Y, bias=False)
    assert float(r2.pi_star[-1]) < 0.9


@pytest.mark.parametrize("offset", [0.0, 1.5])
def test_exact_neural_collapse(offset):
    rng = np.random.default_rng(3)
    C, n_c, p = 4, 6, 9
    F, labels = nc_features(rng, C, n_c, p, offset=offset)
    Y = np.eye(C)[labels]
    W = rng.standard_normal((C, p))
    f_hat = F @ W.T + rng.standard_normal(C)
    r = fm.analyse(F, f_hat, labels)
    assert abs(float(r.d_lr)) < 1e-12
    np.testing.assert_allclose(r.pi_star_C, 1.0, atol=1e-12)
    np.testing.assert_allclose(r.pi_hat_C, 1.0, atol=1e-12)
    assert int(r.rank) == C  # C - 1 mean directions + the constant
    np.testing.assert_allclose(r.centred_gap, 0.0, atol=1e-14)
    np.testing.assert_allclose(r.participation_ratio, C - 1, rtol=1e-12)
    np.testing.assert_allclose(r.effective_rank, C - 1, rtol=1e-12)
    # centred spectrum: the means' Gram is scale^2 (I - J/C), so M = means^T means / C has
    # C - 1 equal eigenvalues scale^2 / C (scale = 2)
    rc = np.asarray(r.rho_centred)
    np.testing.assert_allclose(rc[: C - 1], 4.0 / C, rtol=1e-12)
    assert float(fm.nc1_quotient(F, labels, C)) < 1e-24
    assert float(fm.etf_error_means(F, labels, C)) < 1e-12
    if offset:  # uncentred means: the constant is in span(F) even without the bias feature
        r0 = fm.analyse(F, f_hat, Y, bias=False)
        np.testing.assert_allclose(r0.pi_star_C, 1.0, atol=1e-12)


def test_random_features_are_not_collapsed():
    rng = np.random.default_rng(4)
    n, p, C = 200, 50, 4
    F = rng.standard_normal((n, p))
    labels = rng.integers(0, C, n)
    f_hat = F @ rng.standard_normal((p, C))
    r = fm.analyse(F, f_hat, labels)
    assert float(r.d_lr) > 0.5
    assert float(r.pi_star_C) < 0.5
    assert float(r.participation_ratio) > 20 and float(r.centred_gap) > 0.8
    assert float(fm.nc1_quotient(F, labels, C)) > 10


def ufm_features(loss, bias, K=4, n=5):
    opt = ufm.optimum(ufm.UFMSpec(K=K, n=n, d=K, loss=loss, bias=bias))
    W, H = np.asarray(opt.params.W), np.asarray(opt.params.H)
    b = np.zeros(K) if opt.params.b is None else np.asarray(opt.params.b)
    return opt, H.T, (W @ H).T + b, np.repeat(np.arange(K), n)


def test_ufm_ce_optimum_is_the_minimal_projection_operator():
    K, n = 4, 5
    opt, F, f_hat, labels = ufm_features("ce", "none", K, n)
    # h_{k,i} = c w_k with c^2 = lW/(n lH); class means centred: M = c^2/K W^T W
    # eigenvalues of W^T W: ||w||^2 K/(K-1) on K - 1 directions -> lam = c^2 ||w||^2 / (K - 1)
    lam = (5e-3 / (n * 5e-3)) * opt.w_norm_sq / (K - 1)
    s = fm.feature_spectrum(F)
    np.testing.assert_allclose(s.rho[: K - 1], lam, rtol=1e-12)  # C - 1 equal eigenvalues
    assert abs(float(s.rho[K - 1])) < 1e-12 * lam and int(s.valid.sum()) == K - 1  # no mean dir.
    # with the bias feature: the constant (eigenvalue 1) joins: {1, lam x (K-1)}
    sb = fm.feature_spectrum(F, bias=True)
    np.testing.assert_allclose(
        np.sort(np.asarray(sb.rho)), np.sort([1.0, *[lam] * (K - 1), 0.0]), atol=1e-12
    )
    # the readout's operator is a combination of projections onto span{1} and the centred class
    # indicators: its range is exactly the span of the class indicators
    Z = np.eye(K)[labels]
    Fb = np.hstack([F, np.ones((K * n, 1))])
    T = Fb @ Fb.T / (K * n)
    P = Z @ np.linalg.pinv(Z)
    np.testing.assert_allclose(P @ T, T, atol=1e-12)
    assert np.linalg.matrix_rank(T, tol=1e-10) == K
    r = fm.analyse(F, f_hat, labels, bias=True)
    np.testing.assert_allclose(r.pi_star_C, 1.0, atol=1e-12)
    assert abs(float(r.d_lr)) < 1e-12
    r0 = fm.analyse(F, f_hat, labels, bias=False)  # the constant is missing: 1 - 1/K of the mass
    np.testing.assert_allclose(r0.pi_star_C, 1.0 - 1.0 / K, atol=1e-12)
    np.testing.assert_allclose(r0.pi_star[K - 2], 1.0 - 1.0 / K, atol=1e-12)
    assert float(fm.nc1_quotient(F, labels, K)) < 1e-24
    assert float(fm.etf_error_means(F, labels, K)) < 1e-12


def test_ufm_mse_orthogonal_frame():
    K, n = 4, 5
    _, F, f_hat, labels = ufm_features("mse", "none", K, n)
    s = fm.feature_spectrum(F)
    np.testing.assert_allclose(s.rho, s.rho[0], rtol=1e-12)  # K equal: mean direction included
    sc = fm.feature_spectrum(F, centre=True)
    np.testing.assert_allclose(sc.rho[: K - 1], sc.rho[0], rtol=1e-12)
    assert float(sc.rho[K - 1]) < 1e-12 * float(sc.rho[0])
    r = fm.analyse(F, f_hat, labels, bias=False)
    np.testing.assert_allclose(r.pi_star_C, 1.0, atol=1e-12)
    assert abs(float(r.d_lr)) < 1e-12


def test_invariances():
    rng = np.random.default_rng(5)
    n, p, C = 30, 6, 3
    F = rng.standard_normal((n, p)) ** 2
    f_hat = F @ rng.standard_normal((p, C))
    Y = np.eye(C)[rng.integers(0, C, n)]
    r = fm.analyse(F, f_hat, Y)
    R = rand_orth(rng, p)
    rr = fm.analyse(F @ R, f_hat, Y)
    for name in ("rho", "pi_star", "pi_hat", "rho_centred", "d_lr", "participation_ratio"):
        np.testing.assert_allclose(getattr(rr, name), getattr(r, name), rtol=1e-10, atol=1e-12)
    # D_LR depends on the outputs only through their span, on F only up to scale
    A = rng.standard_normal((C, C))
    np.testing.assert_allclose(fm.d_lr(3.0 * F, f_hat @ A), r.d_lr, rtol=1e-10)


def test_float32_and_jit_vmap():
    rng = np.random.default_rng(6)
    C, n_c, p = 3, 5, 6
    F, labels = nc_features(rng, C, n_c, p, offset=0.5)
    f_hat = F @ rng.standard_normal((p, C))
    r32 = fm.analyse(jnp.asarray(F, jnp.float32), jnp.asarray(f_hat, jnp.float32), labels)
    for leaf in r32:
        assert leaf.dtype in (jnp.float32, jnp.int32, jnp.int64)
    assert r32.rho.dtype == jnp.float32 and r32.d_lr.dtype == jnp.float32
    assert abs(float(r32.d_lr)) < 1e-5 and abs(float(r32.pi_star_C) - 1) < 1e-5
    assert int(r32.rank) == C
    # jit and vmap over checkpoints agree with eager calls
    Fs = np.stack([F, F + 0.1 * rng.standard_normal(F.shape)])
    fs = np.stack([f_hat, f_hat])
    batched = jax.jit(jax.vmap(fm.analyse, in_axes=(0, 0, None)))(Fs, fs, jnp.asarray(labels))
    for i in range(2):
        one = fm.analyse(Fs[i], fs[i], labels)
        for a, b in zip(batched, one, strict=True):
            np.testing.assert_allclose(a[i], b, rtol=1e-9, atol=1e-12)


def test_scalar_summaries_closed_forms():
    np.testing.assert_allclose(fm.participation_ratio(jnp.array([2.0, 2.0, 2.0, 0.0])), 3.0)
    np.testing.assert_allclose(fm.effective_rank(jnp.array([2.0, 2.0, 2.0, 0.0])), 3.0)
    rho = jnp.array([3.0, 1.0])
    np.testing.assert_allclose(fm.participation_ratio(rho), 16.0 / 10.0)
    np.testing.assert_allclose(
        fm.effective_rank(rho), np.exp(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25)))
    )
    np.testing.assert_allclose(fm.centred_gap(jnp.array([4.0, 2.0, 1.0, 0.5]), 3), 0.5)
    np.testing.assert_allclose(fm.centred_gap(jnp.array([4.0, 2.0]), 3), 0.0)  # padded with 0
    np.testing.assert_allclose(fm.at_k(jnp.array([0.1, 0.5]), 5), 0.5)


def test_nc_metrics_match_toolkit():
    rng = np.random.default_rng(7)
    F = rng.standard_normal((24, 5))
    labels = np.repeat(np.arange(4), 6)
    np.testing.assert_allclose(
        fm.nc1_quotient(F, labels, 4), ufm.metrics.nc1_quotient(F.T, labels, 4), rtol=1e-12
    )
    np.testing.assert_allclose(
        fm.etf_error_means(F, labels, 4), ufm.metrics.nc2_etf_means(F.T, labels, 4), rtol=1e-12
    )


def test_errors():
    F = np.ones((5, 3))
    with pytest.raises(ValueError, match="method"):
        fm.feature_spectrum(F, method="qr")
    with pytest.raises(ValueError, match="F must be a 2-d"):
        fm.feature_spectrum(np.ones(5))
    with pytest.raises(ValueError, match="f_hat must be"):
        fm.analyse(F, np.ones((4, 2)), np.zeros(5, dtype=int))
    with pytest.raises(ValueError, match="Y must be"):
        fm.analyse(F, np.ones((5, 2)), np.ones((5, 3)))
    with pytest.raises(ValueError, match="num_classes"):
        fm.centred_gap(jnp.ones(3), 1)
    with pytest.raises(ValueError, match="features"):
        fm.eigenfunctions(fm.feature_spectrum(F), np.ones((2, 4)))
