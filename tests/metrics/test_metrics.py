"""Neural-collapse metrics (ufm/_metrics.py, ufm/_frames.py) against closed forms and identities.

Collapsed configurations are built here, independently of the library: the simplex ETF from the
centred identity rows ``I - J/K`` and the orthogonal frame from ``I``, both embedded in ``d > K``
dimensions by a random orthogonal map. Independent NumPy implementations use per-sample loops.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ufm

TOL = 1e-12
K, N_PER, D = 4, 3, 7


def rand_orth(rng, d):
    Q, R = np.linalg.qr(rng.standard_normal((d, d)))
    return Q * np.sign(np.diag(R))


def simplex_etf(rng, K, d, scale=1.0):
    """Rows form a simplex ETF in R^d: centred identity rows, zero-padded, rotated."""
    W0 = np.zeros((K, d))
    W0[:, :K] = np.eye(K) - 1.0 / K
    return scale * W0 @ rand_orth(rng, d).T


def orth_frame(rng, K, d, scale=1.0):
    W0 = np.zeros((K, d))
    W0[:, :K] = np.eye(K)
    return scale * W0 @ rand_orth(rng, d).T


def collapsed_features(W, n, c):
    """Class-major H with h_{k,i} = c w_k."""
    return c * np.repeat(W, n, axis=0).T


def ufm_point(rng, K, n, d, bias="none", dtype="float64"):
    spec = ufm.UFMSpec(K=K, n=n, d=d, loss="mse", bias=bias, dtype=dtype)
    W = rng.standard_normal((K, d)).astype(dtype)
    H = rng.standard_normal((d, K * n)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype) if spec.has_bias else None
    return spec, ufm.UFMParams(
        jnp.asarray(W), jnp.asarray(H), None if b is None else jnp.asarray(b)
    )


# Independent NumPy references (per-sample loops) --------------------------------------------


def np_stats(H, y, K):
    d, N = H.shape
    means = np.zeros((d, K))
    for c in range(K):
        means[:, c] = H[:, y == c].mean(axis=1)
    mu_G = H.mean(axis=1)
    Sw = np.zeros((d, d))
    for i in range(N):
        r = H[:, i] - means[:, y[i]]
        Sw += np.outer(r, r) / N
    Sb = np.zeros((d, d))
    for c in range(K):
        m = means[:, c] - mu_G
        Sb += np.outer(m, m) / K
    return means, mu_G, Sw, Sb


def np_cdnv(H, y, K):
    means, _, _, _ = np_stats(H, y, K)
    var = [
        np.mean([np.sum((H[:, i] - means[:, c]) ** 2) for i in range(H.shape[1]) if y[i] == c])
        for c in range(K)
    ]
    vals = [
        (var[a] + var[c]) / (2 * np.sum((means[:, a] - means[:, c]) ** 2))
        for a in range(K)
        for c in range(a + 1, K)
    ]
    return np.mean(vals)


# Collapsed configurations: every collapse metric vanishes -------------------------------------


def test_simplex_etf_collapse_is_zero():
    rng = np.random.default_rng(0)
    W = simplex_etf(rng, K, D, scale=1.7)
    H = collapsed_features(W, N_PER, 0.6)
    y = ufm.systems.ufm.labels(K, N_PER)
    zero = {
        "nc1_pinv": ufm.metrics.nc1_pinv(H, y, K),
        "nc1_svd": ufm.metrics.nc1_svd(H, y, K),
        "nc1_quotient": ufm.metrics.nc1_quotient(H, y, K),
        "nc1_cdnv": ufm.metrics.nc1_cdnv(H, y, K),
        "equinorm_M": ufm.metrics.equinorm(ufm.metrics.class_means(H, y, K)[0]),
        "equinorm_W": ufm.metrics.equinorm(W.T),
        "equiangularity_M": ufm.metrics.equiangularity(ufm.metrics.class_means(H, y, K)[0]),
        "maxangle_W": ufm.metrics.max_angle_deviation(W.T),
        "etf_W_centred": ufm.metrics.nc2_etf_weights(W),
        "etf_W_raw": ufm.metrics.nc2_etf_weights(W, center=False),
        "etf_M": ufm.metrics.nc2_etf_means(H, y, K),
        "nc3_papyan": ufm.metrics.nc3_papyan(W, H, y, K),
        "nc3_zhu": ufm.metrics.nc3_zhu(W, H, y, K),
        "nc4_bias": ufm.metrics.nc4_bias_relation(W, None, H, y, K),
        "sigma_W": jnp.max(jnp.abs(ufm.metrics.within_class_cov(H, y, K))),
    }
    for name, v in zero.items():
        assert abs(float(v)) < TOL, name
    assert float(ufm.metrics.nc4_ncc_agreement(W, None, H, y, K)) == 1.0
    # the ETF is not an orthogonal frame: closed form of the distance between the two targets
    expect = math.sqrt(2 - 2 * math.sqrt((K - 1) / K))
    assert float(ufm.metrics.nc2_orthogonal_frame_means(H, y, K)) == pytest.approx(expect, abs=TOL)
    # Sigma_B = c^2 a^2 (I - J/K)-type: K-1 equal eigenvalues, so numerical rank K-1
    assert int(ufm.metrics.numerical_rank(ufm.metrics.class_means(H, y, K)[0])) == K - 1

    spec = ufm.UFMSpec(K=K, n=N_PER, d=D, loss="ce", bias="regularized", lambda_b=1e-3)
    m = ufm.nc_metrics(spec, ufm.UFMParams(jnp.asarray(W), jnp.asarray(H), jnp.zeros(K)))
    for key in ufm.NC_METRIC_NAMES:
        if key.startswith("nc2_orth") or key.startswith("rank") or key == "nc4_ncc":
            continue
        assert abs(float(m[key])) < TOL, key
    assert float(m["nc4_ncc"]) == 1.0 and int(m["rank_M"]) == K - 1 and int(m["rank_W"]) == K - 1
    assert float(m["nc2_orth_M"]) == pytest.approx(expect, abs=TOL)
    assert float(m["nc2_orth_W"]) == pytest.approx(expect, abs=TOL)


def test_orthogonal_frame_collapse_mse_no_bias():
    rng = np.random.default_rng(1)
    a, c = 1.3, 0.8
    W = orth_frame(rng, K, D, scale=a)
    H = collapsed_features(W, N_PER, c)
    y = ufm.systems.ufm.labels(K, N_PER)
    spec = ufm.UFMSpec(K=K, n=N_PER, d=D, loss="mse", bias="none")
    m = ufm.nc_metrics(spec, ufm.UFMParams(jnp.asarray(W), jnp.asarray(H)))
    zero = [
        "nc1_pinv",
        "nc1_svd",
        "nc1_quotient",
        "nc1_cdnv",
        "nc2_equinorm_M",
        "nc2_equinorm_W",
        "nc2_equiangular_M",
        "nc2_equiangular_W",
        "nc2_maxangle_M",
        "nc2_etf_M",
        "nc2_etf_W",
        "nc2_orth_M",
        "nc2_orth_W",
        "nc3_zhu",
    ]
    for key in zero:
        assert abs(float(m[key])) < TOL, key
    assert abs(float(ufm.metrics.nc2_orthogonal_frame_means(H, y, K))) < TOL
    assert abs(float(ufm.metrics.nc2_orthogonal_frame_weights(W))) < TOL
    assert abs(float(ufm.metrics.nc3_papyan(W, H, y, K, center=True))) < TOL
    # closed forms of what does not vanish for an uncentred orthogonal frame
    assert float(m["nc3_papyan"]) == pytest.approx(2 - 2 * math.sqrt((K - 1) / K), abs=TOL)
    assert float(m["nc2_maxangle_W"]) == pytest.approx(1 / (K - 1), abs=TOL)  # all cosines 0
    assert float(m["nc4_bias"]) == pytest.approx(
        c * a**2 / math.sqrt(K), abs=TOL
    )  # W mu_G = c a^2 1/K
    assert float(m["nc4_ncc"]) == 1.0
    assert int(m["rank_M"]) == K - 1 and int(m["rank_W"]) == K  # centring drops one direction


def test_frame_errors_closed_forms():
    for k in range(2, 7):
        etf, orth = jnp.eye(k) - 1.0 / k, jnp.eye(k)
        cross = math.sqrt(2 - 2 * math.sqrt((k - 1) / k))
        assert float(ufm.metrics.etf_error(2.5 * etf)) == pytest.approx(0, abs=TOL)
        assert float(ufm.metrics.orthogonal_frame_error(0.3 * orth)) == pytest.approx(0, abs=TOL)
        assert float(ufm.metrics.etf_error(orth)) == pytest.approx(cross, abs=TOL)
        assert float(ufm.metrics.orthogonal_frame_error(etf)) == pytest.approx(cross, abs=TOL)
        # G = 0 normalises to 0: distance to a unit-norm target is 1
        assert float(ufm.metrics.etf_error(jnp.zeros((k, k)))) == pytest.approx(1.0, abs=TOL)
        assert float(ufm.metrics.orthogonal_frame_error(jnp.zeros((k, k)))) == pytest.approx(
            1.0, abs=TOL
        )
        # a negated ETF sits at distance 2
        assert float(ufm.metrics.etf_error(-etf)) == pytest.approx(2.0, abs=TOL)


# Hand-computed values ---------------------------------------------------------------------------


def test_hand_computed_two_classes():
    # class 0: (-3, 1), (-1, -1) -> mean (-2, 0); class 1: (2, 3), (2, -3) -> mean (2, 0); mu_G = 0.
    # Sigma_W = [[1/2, -1/2], [-1/2, 5]], Sigma_B = diag(4, 0).
    # Columns shuffled (not class-major) to exercise the one-hot path.
    pts = {0: [(-3.0, 1.0), (-1.0, -1.0)], 1: [(2.0, 3.0), (2.0, -3.0)]}
    order = [(1, 0), (0, 0), (1, 1), (0, 1)]
    H = np.array([pts[c][i] for c, i in order]).T
    y = np.array([c for c, _ in order])
    M_raw, mu_G = ufm.metrics.class_means(H, y, 2)
    np.testing.assert_allclose(M_raw, [[-2.0, 2.0], [0.0, 0.0]], atol=TOL)
    np.testing.assert_allclose(mu_G, [0.0, 0.0], atol=TOL)
    np.testing.assert_allclose(
        ufm.metrics.within_class_cov(H, y, 2), [[0.5, -0.5], [-0.5, 5.0]], atol=TOL
    )
    np.testing.assert_allclose(
        ufm.metrics.between_class_cov(H, y, 2), [[4.0, 0.0], [0.0, 0.0]], atol=TOL
    )
    assert float(ufm.metrics.nc1_pinv(H, y, 2)) == pytest.approx(0.5 / 4 / 2, abs=TOL)
    assert float(ufm.metrics.nc1_svd(H, y, 2)) == pytest.approx(0.5 / 4 / 2, abs=TOL)
    assert float(ufm.metrics.nc1_quotient(H, y, 2)) == pytest.approx(5.5 / 4, abs=TOL)
    # var_0 = 2, var_1 = 9, ||mu_0 - mu_1||^2 = 16
    assert float(ufm.metrics.nc1_cdnv(H, y, 2)) == pytest.approx(11 / 32, abs=TOL)
    # within-class spread orthogonal to the means: invisible to the pseudo-inverse, not to the
    # quotient
    H2 = np.array([[-2.0, -2.0, 2.0, 2.0], [1.0, -1.0, 3.0, -3.0]])
    y2 = np.array([0, 0, 1, 1])
    assert float(ufm.metrics.nc1_pinv(H2, y2, 2)) == pytest.approx(0.0, abs=TOL)
    assert float(ufm.metrics.nc1_quotient(H2, y2, 2)) == pytest.approx(5 / 4, abs=TOL)


def test_hand_computed_nc2_values():
    V = np.diag([1.0, 2.0, 3.0])  # norms 1, 2, 3; orthogonal
    assert float(ufm.metrics.equinorm(V)) == pytest.approx(math.sqrt(2 / 3) / 2, abs=TOL)
    assert float(ufm.metrics.equinorm(V, ddof=1)) == pytest.approx(1 / 2, abs=TOL)
    assert float(ufm.metrics.equiangularity(V)) == pytest.approx(0.0, abs=TOL)
    assert float(ufm.metrics.max_angle_deviation(V)) == pytest.approx(0.5, abs=TOL)
    # three unit vectors at 0, 90, 180 degrees in the plane: cosines 0, -1, 0
    V = np.array([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    assert float(ufm.metrics.equiangularity(V)) == pytest.approx(np.std([0.0, -1.0, 0.0]), abs=TOL)
    assert float(ufm.metrics.max_angle_deviation(V)) == pytest.approx(
        (0.5 + 0.5 + 0.5) / 3, abs=TOL
    )
    # a zero vector has cosine 0 with everything; all-zero vectors: CoV 0 (0/0 defined as 0)
    np.testing.assert_allclose(
        ufm.metrics.cosines(np.array([[1.0, 0.0], [0.0, 0.0]])), np.diag([1.0, 0.0])
    )
    assert float(ufm.metrics.equinorm(np.zeros((3, 4)))) == 0.0


def test_nc4_ncc_agreement_cases():
    rng = np.random.default_rng(2)
    k, n, d = 5, 20, 8
    mus = 10.0 * rng.standard_normal((d, k))
    y = ufm.systems.ufm.labels(k, n)
    H = mus[:, y] + 0.1 * rng.standard_normal((d, k * n))
    M_raw, _ = ufm.metrics.class_means(H, y, k)
    # linear classifier from the class means (no bias): agrees with NCC on well-separated data
    assert float(ufm.metrics.nc4_ncc_agreement(np.asarray(M_raw).T, None, H, y, k)) == 1.0
    # with b_c = -||mu_c||^2/2 the classifier *is* the NCC rule: agreement 1 even on pure noise
    Hn = rng.standard_normal((d, k * n))
    Mn, _ = ufm.metrics.class_means(Hn, y, k)
    Mn = np.asarray(Mn)
    bn = -0.5 * np.sum(Mn**2, axis=0)
    assert float(ufm.metrics.nc4_ncc_agreement(Mn.T, bn, Hn, y, k)) == 1.0
    # counterexample, d = 1: means -1 and 3 (NCC threshold 1), classifier threshold 0
    H1 = np.array([[-2.2, 0.2, 0.5, 5.5]])
    y1 = np.array([0, 0, 1, 1])
    W1 = np.array([[-1.0], [1.0]])
    assert float(ufm.metrics.nc4_ncc_agreement(W1, None, H1, y1, 2)) == 0.5  # 0.2 and 0.5 disagree
    assert (
        float(ufm.metrics.nc4_ncc_agreement(W1, np.array([1.0, 0.0]), H1, y1, 2)) == 1.0
    )  # threshold 1
    # bias relation ||W mu_G + b|| by hand: mu_G = 1, W mu_G + b = (-1 + 1, 1 + 0)
    assert float(
        ufm.metrics.nc4_bias_relation(W1, np.array([1.0, 0.0]), H1, y1, 2)
    ) == pytest.approx(1.0)


def test_numerical_rank_prescribed_spectrum():
    rng = np.random.default_rng(3)
    s = np.array([2.0, 1.0, 3e-3, 1e-3, 0.0])  # tau sigma_1 = 2e-3 lies between the 3rd and 4th
    U, V = rand_orth(rng, 6)[:, :5], rand_orth(rng, 5)
    M = U @ np.diag(s) @ V.T
    assert int(ufm.metrics.numerical_rank(M)) == 3
    assert int(ufm.metrics.numerical_rank(M, tau=1e-2)) == 2
    assert int(ufm.metrics.numerical_rank(M, tau=1e-6)) == 4
    assert int(ufm.metrics.numerical_rank(np.zeros((3, 4)))) == 0
    assert ufm.metrics.numerical_rank(M).dtype == jnp.int32


def test_numerical_rank_counts_strictly_above_the_threshold_like_numpy():
    """Singular values exactly at ``tau sigma_1`` are not counted, as in
    ``numpy.linalg.matrix_rank(M, rtol=tau)`` (``S > tol``). Diagonal matrices with powers of two:
    their SVD and ``tau * sigma_1`` are exact, so the ties are real ties."""
    for diag, tau in (
        ([1.0, 2.0**-10], 2.0**-10),
        ([4.0, 2.0**-8, 2.0**-9], 2.0**-10),
        ([2.0, 1.0, 0.5, 0.25], 0.125),
        ([2.0, 1.0, 0.5, 0.25], 0.25),
    ):
        M = np.diag(diag)
        expected = int(np.linalg.matrix_rank(M, rtol=tau))
        assert expected == int(np.sum(np.asarray(diag) > tau * max(diag)))
        assert int(ufm.metrics.numerical_rank(M, tau=tau)) == expected, (diag, tau)


# Independent implementations on random data ----------------------------------------------------


def test_nc1_against_numpy_loops():
    rng = np.random.default_rng(4)
    k, d, N = 4, 6, 37
    y = np.concatenate([np.arange(k), rng.integers(0, k, N - k)])  # imbalanced, every class present
    rng.shuffle(y)
    H = rng.standard_normal((d, N)) + 2.0 * rng.standard_normal((d, k))[:, y]
    means, mu_G, Sw, Sb = np_stats(H, y, k)
    M_raw, mu = ufm.metrics.class_means(H, y, k)
    np.testing.assert_allclose(M_raw, means, rtol=1e-12, atol=TOL)
    np.testing.assert_allclose(mu, mu_G, rtol=1e-12, atol=TOL)
    np.testing.assert_allclose(ufm.metrics.within_class_cov(H, y, k), Sw, rtol=1e-12, atol=TOL)
    np.testing.assert_allclose(ufm.metrics.between_class_cov(H, y, k), Sb, rtol=1e-12, atol=TOL)
    ref_pinv = np.trace(Sw @ np.linalg.pinv(Sb, rcond=1e-10)) / k
    lam, vec = np.linalg.eigh(Sb)
    top = vec[:, -(k - 1) :]
    ref_svd = np.trace(Sw @ top @ np.diag(1 / lam[-(k - 1) :]) @ top.T) / k
    assert float(ufm.metrics.nc1_pinv(H, y, k)) == pytest.approx(ref_pinv, rel=1e-10)
    assert float(ufm.metrics.nc1_pinv(H, y, k, rtol=1e-10)) == pytest.approx(ref_pinv, rel=1e-10)
    assert float(ufm.metrics.nc1_svd(H, y, k)) == pytest.approx(ref_svd, rel=1e-10)
    assert ref_svd == pytest.approx(ref_pinv, rel=1e-8)  # rank Sigma_B <= K-1 even when imbalanced
    assert float(ufm.metrics.nc1_quotient(H, y, k)) == pytest.approx(
        np.trace(Sw) / np.trace(Sb), rel=1e-12
    )
    assert float(ufm.metrics.nc1_cdnv(H, y, k)) == pytest.approx(np_cdnv(H, y, k), rel=1e-10)


def test_nc1_pinv_threshold_on_rank_deficient_means():
    # class means exactly in a 2-dim subspace (rank Sigma_B = 2 < K - 1 = 4): the threshold decides
    rng = np.random.default_rng(5)
    k, n, d = 5, 6, 8
    y = ufm.systems.ufm.labels(k, n)
    basis = rand_orth(rng, d)[:, :2]
    E = rng.standard_normal((d, k * n))
    E -= np_stats(E, y, k)[0][:, y]  # within-class noise with zero class means
    H = 3.0 * (basis @ rng.standard_normal((2, k)))[:, y] + 0.3 * E
    _, _, Sw, Sb = np_stats(H, y, k)
    assert np.linalg.matrix_rank(Sb, tol=1e-10 * np.linalg.norm(Sb, 2)) == 2
    ref = np.trace(Sw @ np.linalg.pinv(Sb, rcond=1e-9)) / k
    assert float(ufm.metrics.nc1_pinv(H, y, k)) == pytest.approx(ref, rel=1e-9)
    assert float(ufm.metrics.nc1_pinv(H, y, k, rtol=1e-6)) == pytest.approx(ref, rel=1e-9)
    assert float(ufm.metrics.nc1_svd(H, y, k)) == pytest.approx(ref, rel=1e-9)
    # rtol = 0 inverts rounding-level eigenvalues too (Han's untruncated top K-1): huge
    assert float(ufm.metrics.nc1_svd(H, y, k, rtol=0.0)) > 1e10 * ref


def test_nc1_is_stable_under_a_large_common_offset():
    # post-ReLU-like features: spread O(1) around an offset 1e6; the centring loses ~10 digits
    rng = np.random.default_rng(9)
    k, n, d = 4, 5, 6
    y = ufm.systems.ufm.labels(k, n)
    H = rng.standard_normal((d, k * n)) + 2.0 * rng.standard_normal((d, k))[:, y]
    Ho = H + 1e6
    means, mu_G, _, _ = np_stats(Ho, y, k)
    sv = np.linalg.svd(means - mu_G[:, None], compute_uv=False)
    # premise: naive centring leaves a K-th singular value far above matrix_rank's tolerance
    assert sv[-1] > 1e3 * max(d, k) * np.finfo(float).eps * sv[0]
    for fn in (
        ufm.metrics.nc1_pinv,
        ufm.metrics.nc1_svd,
        ufm.metrics.nc1_quotient,
        ufm.metrics.nc1_cdnv,
    ):
        assert float(fn(Ho, y, k)) == pytest.approx(float(fn(H, y, k)), rel=1e-6), fn.__name__


def test_nc_metrics_matches_generic_functions():
    rng = np.random.default_rng(6)
    spec, p = ufm_point(rng, K, N_PER, D, bias="free")
    W, H, b, k = p.W, p.H, p.b, spec.K
    y = ufm.systems.ufm.labels(k, spec.n)
    M_raw, mu_G = ufm.metrics.class_means(H, y, k)
    M = M_raw - mu_G[:, None]
    ref = {
        "nc1_pinv": ufm.metrics.nc1_pinv(H, y, k),
        "nc1_svd": ufm.metrics.nc1_svd(H, y, k),
        "nc1_quotient": ufm.metrics.nc1_quotient(H, y, k),
        "nc1_cdnv": ufm.metrics.nc1_cdnv(H, y, k),
        "nc2_equinorm_M": ufm.metrics.equinorm(M),
        "nc2_equinorm_W": ufm.metrics.equinorm(W.T),
        "nc2_equiangular_M": ufm.metrics.equiangularity(M),
        "nc2_equiangular_W": ufm.metrics.equiangularity(W.T),
        "nc2_maxangle_M": ufm.metrics.max_angle_deviation(M),
        "nc2_maxangle_W": ufm.metrics.max_angle_deviation(W.T),
        "nc2_etf_M": ufm.metrics.nc2_etf_means(H, y, k),
        "nc2_etf_W": ufm.metrics.nc2_etf_weights(W),
        "nc2_orth_M": ufm.metrics.nc2_orthogonal_frame_means(H, y, k),
        "nc2_orth_W": ufm.metrics.nc2_orthogonal_frame_weights(W),
        "nc3_papyan": ufm.metrics.nc3_papyan(W, H, y, k),
        "nc3_zhu": ufm.metrics.nc3_zhu(W, H, y, k),
        "nc4_ncc": ufm.metrics.nc4_ncc_agreement(W, b, H, y, k),
        "nc4_bias": ufm.metrics.nc4_bias_relation(W, b, H, y, k),
        "rank_M": ufm.metrics.numerical_rank(M),
        "rank_W": ufm.metrics.numerical_rank(W),
    }
    m = ufm.nc_metrics(spec, p)
    assert tuple(m) == ufm.NC_METRIC_NAMES == tuple(ref)
    for key in ufm.NC_METRIC_NAMES:
        np.testing.assert_allclose(m[key], ref[key], rtol=1e-10, atol=1e-13, err_msg=key)
    # the random point is far from collapse: NC1 is O(1), NCC agreement < 1 is possible
    assert float(m["nc1_quotient"]) > 0.1


# Invariances -----------------------------------------------------------------------------------


def test_rotation_and_scale_invariance():
    rng = np.random.default_rng(7)
    spec, p = ufm_point(rng, K, N_PER, D, bias="none")
    m0 = ufm.nc_metrics(spec, p)
    Q = jnp.asarray(rand_orth(rng, spec.d))
    m_rot = ufm.nc_metrics(spec, ufm.UFMParams(p.W @ Q.T, Q @ p.H))
    for key in ufm.NC_METRIC_NAMES:
        np.testing.assert_allclose(m_rot[key], m0[key], rtol=1e-9, atol=1e-12, err_msg=key)
    cH, cW = 3.7, 0.2
    m_sc = ufm.nc_metrics(spec, ufm.UFMParams(cW * p.W, cH * p.H))
    for key in ufm.NC_METRIC_NAMES:
        want = np.asarray(m0[key]) * (cH * cW if key == "nc4_bias" else 1)
        np.testing.assert_allclose(m_sc[key], want, rtol=1e-9, atol=1e-12, err_msg=key)
    # translation of the features: NC1 and the centred-mean metrics do not move; uncentred do
    t = jnp.asarray(rng.standard_normal((spec.d, 1)))
    m_tr = ufm.nc_metrics(spec, ufm.UFMParams(p.W, p.H + t))
    for key in (
        "nc1_pinv",
        "nc1_svd",
        "nc1_quotient",
        "nc1_cdnv",
        "nc2_equinorm_M",
        "nc2_equiangular_M",
        "nc2_maxangle_M",
        "nc2_etf_M",
        "nc3_papyan",
        "nc3_zhu",
        "rank_M",
    ):
        np.testing.assert_allclose(m_tr[key], m0[key], rtol=1e-9, atol=1e-12, err_msg=key)
    assert abs(float(m_tr["nc2_orth_M"]) - float(m0["nc2_orth_M"])) > 1e-6


# Degenerate inputs: defined values, no NaN -----------------------------------------------------


def test_zero_and_point_collapsed_features_are_defined():
    spec = ufm.UFMSpec(K=K, n=N_PER, d=D, loss="ce", bias="free")
    zeros = ufm.UFMParams(jnp.zeros((K, D)), jnp.zeros((D, K * N_PER)), jnp.zeros(K))
    m = jax.jit(ufm.nc_metrics)(spec, zeros)
    assert all(bool(jnp.isfinite(v)) for v in m.values())
    for key in (
        "nc1_pinv",
        "nc1_svd",
        "nc1_quotient",
        "nc1_cdnv",
        "nc2_equinorm_M",
        "nc2_equiangular_M",
        "nc3_papyan",
        "nc4_bias",
        "rank_M",
        "rank_W",
    ):
        assert float(m[key]) == 0.0, key
    for key in ("nc2_etf_M", "nc2_etf_W", "nc2_orth_M", "nc2_orth_W", "nc3_zhu"):
        assert float(m[key]) == pytest.approx(1.0, abs=TOL), key
    # every sample at one point except for within-class noise: Sigma_B = 0 exactly
    H = np.tile(np.array([[1.0, -1.0]]), (4, 3))  # each class holds +1 and -1: all class means 0
    y = ufm.systems.ufm.labels(3, 2)
    assert float(ufm.metrics.nc1_pinv(H, y, 3)) == 0.0  # Sigma_B^+ = 0
    assert float(ufm.metrics.nc1_quotient(H, y, 3)) == math.inf
    assert float(ufm.metrics.nc1_cdnv(H, y, 3)) == math.inf


# Transformations: vmap, jit, dtypes --------------------------------------------------------------


def test_vmap_over_seeds_equals_loop_and_jit_equals_eager():
    spec = ufm.UFMSpec(K=K, n=N_PER, d=D, loss="ce", bias="free")
    S = 3
    batch = ufm.init_batch(spec, jax.random.key(0), S, scale=1.0)
    batch = batch._replace(b=jax.random.normal(jax.random.key(1), (S, K)))
    f = jax.jit(jax.vmap(lambda p: ufm.nc_metrics(spec, p)))
    mv = f(batch)
    for i in range(S):
        pi = jax.tree_util.tree_map(lambda x: x[i], batch)
        mi = ufm.nc_metrics(spec, pi)
        for key in ufm.NC_METRIC_NAMES:
            np.testing.assert_allclose(mv[key][i], mi[key], rtol=1e-10, atol=1e-13, err_msg=key)
    # generic functions: vmap over a seed axis of H and W, labels shared; traced labels under jit
    y = jnp.asarray(ufm.systems.ufm.labels(K, N_PER))
    Hs, Ws = batch.H, batch.W
    for fn in (ufm.metrics.nc1_pinv, ufm.metrics.nc1_cdnv):
        v = jax.vmap(lambda h: fn(h, y, K))(Hs)
        j = jax.jit(fn, static_argnums=2)(Hs[1], y, K)
        np.testing.assert_allclose(v, [fn(Hs[i], y, K) for i in range(S)], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(j, fn(Hs[1], y, K), rtol=1e-10, atol=1e-14)
    v = jax.vmap(lambda w, h: ufm.metrics.nc3_zhu(w, h, y, K))(Ws, Hs)
    np.testing.assert_allclose(
        v, [ufm.metrics.nc3_zhu(Ws[i], Hs[i], y, K) for i in range(S)], rtol=1e-10
    )
    v = jax.vmap(lambda w, b, h: ufm.metrics.nc4_ncc_agreement(w, b, h, y, K))(Ws, batch.b, Hs)
    loop = [ufm.metrics.nc4_ncc_agreement(Ws[i], batch.b[i], Hs[i], y, K) for i in range(S)]
    np.testing.assert_array_equal(v, loop)


def test_no_recompilation_for_new_values(caplog):
    spec = ufm.UFMSpec(K=K, n=N_PER, d=D, loss="mse", bias="free")
    p0, p1 = (ufm.init_params(spec, jax.random.key(s)) for s in (0, 1))
    y = ufm.systems.ufm.labels(K, N_PER)
    f = jax.jit(jax.vmap(lambda p: ufm.nc_metrics(spec, p)))
    batch = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), p0, p1)
    ufm.nc_metrics(spec, p0), ufm.metrics.nc1_pinv(p0.H, y, K), f(batch)
    batch2 = jax.tree_util.tree_map(lambda x: 2 * x, batch)
    with jax.log_compiles(), caplog.at_level("WARNING"):
        ufm.nc_metrics(spec, p1)
        ufm.metrics.nc1_pinv(p1.H, y, K)
        f(batch2)
    assert not [r for r in caplog.records if "Compiling" in r.getMessage()]


def test_float32_in_float32_out():
    rng = np.random.default_rng(8)
    spec, p = ufm_point(rng, K, N_PER, D, bias="free", dtype="float32")
    m = ufm.nc_metrics(spec, p)
    for key, v in m.items():
        assert v.dtype == (jnp.int32 if key.startswith("rank") else jnp.float32), key
    m64 = ufm.nc_metrics(
        spec.replace(dtype="float64"), jax.tree_util.tree_map(lambda x: x.astype(jnp.float64), p)
    )
    for key in ufm.NC_METRIC_NAMES:
        np.testing.assert_allclose(m[key], m64[key], rtol=2e-4, atol=1e-5, err_msg=key)
    y = ufm.systems.ufm.labels(K, N_PER)
    H, W = p.H, p.W
    for v in (
        ufm.metrics.nc1_pinv(H, y, K),
        ufm.metrics.nc1_cdnv(H, y, K),
        ufm.metrics.within_class_cov(H, y, K),
        ufm.metrics.class_means(H, y, K)[0],
        ufm.metrics.nc3_zhu(W, H, y, K),
        ufm.metrics.etf_error(W @ W.T),
        ufm.metrics.equinorm(W.T),
        ufm.metrics.nc4_ncc_agreement(W, p.b, H, y, K),
    ):
        assert v.dtype == jnp.float32


# Input validation ------------------------------------------------------------------------------


def test_bad_inputs_name_the_field():
    H = np.zeros((3, 6))
    y = ufm.systems.ufm.labels(3, 2)
    with pytest.raises(ufm.SpecError, match="num_classes"):
        ufm.metrics.nc1_pinv(H, y, 1)
    with pytest.raises(ValueError, match="labels"):
        ufm.metrics.nc1_pinv(H, y[:-1], 3)
    with pytest.raises(ValueError, match="labels"):
        ufm.metrics.nc1_pinv(H, y + 1, 3)  # label 3 out of range
    with pytest.raises(ValueError, match="labels"):
        ufm.metrics.nc1_pinv(H, y.astype(float), 3)
    with pytest.raises(ValueError, match="H"):
        ufm.metrics.nc1_pinv(np.zeros(6), y, 3)
    with pytest.raises(ValueError, match="W"):
        ufm.metrics.nc3_zhu(np.zeros((3, 4)), H, y, 3)
    with pytest.raises(ValueError, match="b"):
        ufm.metrics.nc4_ncc_agreement(np.zeros((3, 3)), np.zeros(2), H, y, 3)
    with pytest.raises(ValueError, match="ddof"):
        ufm.metrics.equiangularity(np.eye(2), ddof=1)  # a single pair
    with pytest.raises(ValueError, match="G"):
        ufm.metrics.etf_error(np.zeros((3, 4)))


# The closed-form optima of theory.md section 2 (ufm.optimum) are collapsed ----------------------

_ETF_ZERO = (
    "nc1_pinv",
    "nc1_svd",
    "nc1_quotient",
    "nc1_cdnv",
    "nc2_equinorm_M",
    "nc2_equinorm_W",
    "nc2_equiangular_M",
    "nc2_equiangular_W",
    "nc2_maxangle_M",
    "nc2_etf_M",
    "nc2_etf_W",
    "nc3_zhu",
)


@pytest.mark.parametrize(
    "loss,bias,lb,frame",
    [
        ("ce", "none", 0.0, "etf"),
        ("ce", "free", 0.0, "etf"),
        ("ce", "regularized", 0.1, "etf"),
        ("mse", "none", 0.0, "orth"),
        ("mse", "free", 0.0, "etf"),
        ("mse", "regularized", 0.01, "etf"),
        ("mse", "regularized", 0.5, "other"),
    ],
)
def test_nc_metrics_vanish_at_the_closed_form_optimum(loss, bias, lb, frame):
    spec = ufm.UFMSpec(
        K=K, n=5, d=D, loss=loss, bias=bias, lambda_W=5e-3, lambda_H=5e-3, lambda_b=lb
    )
    if bias == "regularized" and loss == "mse":  # both sides of the bias phase boundary
        assert (lb < ufm.systems.ufm.mse_bias_threshold(spec)) == (frame == "etf")
    m = ufm.nc_metrics(spec, ufm.optimum(spec).params)
    zero = (
        _ETF_ZERO
        + {
            "etf": ("nc2_maxangle_W", "nc3_papyan"),
            "orth": ("nc2_orth_M", "nc2_orth_W"),
            "other": (),
        }[frame]
    )
    for key in zero:
        assert abs(float(m[key])) < TOL, key
    assert float(m["nc4_ncc"]) == 1.0
    assert int(m["rank_M"]) == K - 1 and int(m["rank_W"]) == (K - 1 if frame == "etf" else K)
    Ks = K * float(spec.s)
    cross = 2 - 2 * math.sqrt((K - 1) / K)
    if frame == "etf":
        assert float(m["nc2_orth_M"]) == pytest.approx(math.sqrt(cross), abs=TOL)
    if frame == "orth":
        assert float(m["nc3_papyan"]) == pytest.approx(cross, abs=TOL)
    # ||W mu_G + b|| is the mean logit: 0 for CE with b = 0; (1 - K s)/sqrt(K) for MSE except
    # with a free or sub-threshold regularised bias, where W mu_G = 0 and b = 1/(K(1 + lb)) 1
    want = {"ce": 0.0, "mse": (1 - Ks) / math.sqrt(K)}[loss]
    if loss == "mse" and frame == "etf":
        want = 1 / (math.sqrt(K) * (1 + lb))
    assert float(m["nc4_bias"]) == pytest.approx(want, abs=TOL)


# Published variants against re-implementations of the published formulas (docs/metrics.md 8) ----


def _weak_means(ratio, seed=7):
    """K = 4, d = 6, n = 5: centred class means with singular values 2, 2, 2 ratio (a weak third
    direction) and within-class noise with exactly zero class means."""
    rng = np.random.default_rng(seed)
    k, n, d = 4, 5, 6
    y = ufm.systems.ufm.labels(k, n)
    U = rand_orth(rng, d)[:, :3]
    Vc = np.linalg.svd(np.eye(k) - 1.0 / k)[0][:, :3]  # orthonormal basis of the centred classes
    means = U @ np.diag([2.0, 2.0, 2.0 * ratio]) @ Vc.T
    E = 0.05 * rng.standard_normal((d, k * n))
    E -= np_stats(E, y, k)[0][:, y]
    return means[:, y] + E, y, k


def _published_nc1(H, y, k, pinv):
    """Zhu et al. (tding1) / Zhou et al. / rhubarbwu: Sigma_W, Sigma_B as d x d matrices and a
    library pseudo-inverse of Sigma_B, Tr(Sigma_W Sigma_B^+) / K."""
    _, _, Sw, Sb = np_stats(H, y, k)
    return float(np.trace(Sw @ pinv(Sb)) / k)


@pytest.mark.parametrize("ratio", [1e-9, 5e-8, 1e-6])
def test_nc1_published_cutoffs_reproduce_the_library_calls(ratio):
    """``rcond="published"`` (= scipy, torch) and ``"numpy"``/``"jax"`` against the library pinv
    of the explicit Sigma_B. The weak direction has ``lambda_3 / lambda_1 = ratio^2``: at 1e-9
    every library drops it and the default keeps it (a value 1e15 times larger); at 5e-8 numpy
    and scipy keep it and jax drops it (cut-offs 1e-15, 6 eps = 1.3e-15, 60 eps = 1.3e-14); at
    1e-6 all keep it. The explicit Sigma_B knows ``1 / lambda_3`` only to ``eps / ratio^2``
    (10% at 5e-8): compared to that accuracy."""
    import scipy.linalg

    H, y, k = _weak_means(ratio)
    refs = {
        "published": _published_nc1(H, y, k, scipy.linalg.pinv),
        "scipy": _published_nc1(H, y, k, scipy.linalg.pinv),
        "numpy": _published_nc1(H, y, k, np.linalg.pinv),
        "jax": _published_nc1(H, y, k, lambda S: np.asarray(jnp.linalg.pinv(jnp.asarray(S)))),
    }
    rel = min(0.3, 10 * np.finfo(np.float64).eps / ratio**2)
    ours = float(ufm.metrics.nc1_pinv(H, y, k))
    weak = 0.05**2 / (2 * ratio) ** 2  # the kept weak direction's share, roughly
    assert ours > 0.1 * weak  # the default always keeps it
    for name, ref in refs.items():
        got = float(ufm.metrics.nc1_pinv(H, y, k, rcond=name))
        if ref > 1e-2:  # kept
            assert got == pytest.approx(ref, rel=rel) and got == pytest.approx(ours, rel=rel)
        else:  # dropped: small and exact
            assert got == pytest.approx(ref, rel=1e-9) and got < 1e-8 * ours, (name, got, ref)
        assert float(ufm.metrics.nc1_svd(H, y, k, rcond=name)) == pytest.approx(got, rel=1e-12)
    kept = {name for name, ref in refs.items() if ref > 1e-2}
    expected = {1e-9: set(), 5e-8: {"published", "scipy", "numpy"}, 1e-6: set(refs)}[ratio]
    assert kept == expected
    c = 6 * np.finfo(np.float64).eps  # a number: keep lambda_i > c lambda_1 (= "scipy")
    assert float(ufm.metrics.nc1_pinv(H, y, k, rcond=c)) == pytest.approx(
        float(ufm.metrics.nc1_pinv(H, y, k, rcond="scipy")), rel=1e-12
    )
    with pytest.raises(ValueError, match="rcond"):
        ufm.metrics.nc1_pinv(H, y, k, rcond="matlab")
    with pytest.raises(ValueError, match="rtol or rcond"):
        ufm.metrics.nc1_pinv(H, y, k, rtol=1e-3, rcond="published")


def test_nc2_and_nc4_published_variants():
    """tding1's compute_ETF (uncentred W), Zhou's centred W, rhubarbwu's bias-free NCC."""
    rng = np.random.default_rng(8)
    k, n, d = 4, 6, 5
    W = rng.standard_normal((k, d)) + 0.7  # w_bar != 0: centring matters
    eye = (np.eye(k) - 1.0 / k) / np.sqrt(k - 1)

    def compute_etf(W):  # tding1/Neural-Collapse, utils.compute_ETF, in numpy
        WWT = W @ W.T
        WWT = WWT / np.linalg.norm(WWT, "fro")
        return np.linalg.norm(WWT - eye, "fro")

    tding1 = compute_etf(W)
    zhou = compute_etf(W - W.mean(0))
    assert float(ufm.metrics.nc2_etf_weights(W, center=False)) == pytest.approx(tding1, rel=1e-12)
    assert float(ufm.metrics.nc2_etf_weights(W)) == pytest.approx(zhou, rel=1e-12)
    assert abs(tding1 - zhou) > 0.05
    y = ufm.systems.ufm.labels(k, n)
    H = 1.5 * rng.standard_normal((d, k))[:, y] + 0.8 * rng.standard_normal((d, k * n))
    b = 2.0 * rng.standard_normal(k)
    means = np.stack([H[:, y == c].mean(1) for c in range(k)], 1)
    ncc = np.argmin(((H[:, None, :] - means[:, :, None]) ** 2).sum(0), axis=0)
    rhubarbwu = float(np.mean(np.argmax(W @ H, axis=0) == ncc))  # clf_ncc_agreement: no bias
    notebook = float(np.mean(np.argmax(W @ H + b[:, None], axis=0) == ncc))  # network output
    assert rhubarbwu != notebook
    assert float(ufm.metrics.nc4_ncc_agreement(W, None, H, y, k)) == rhubarbwu
    assert float(ufm.metrics.nc4_ncc_agreement(W, b, H, y, k)) == notebook
