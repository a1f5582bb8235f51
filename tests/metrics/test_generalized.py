"""GNC2, UNC3 and NC5 against an independent transcription of rhubarbwu/neural-collapse
(neural_collapse/kernels.py kernel_stats with util.symm_reduce / normalize, measure.similarities,
measure.orthogonality_deviation), in numpy, including the library's folded triangle reduction."""

import numpy as np
import pytest

import ufm


def _normalize(x):
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + np.finfo(x.dtype).eps)


def _symm_reduce(data, reduce=np.sum):
    """The library's reduction of the strict upper triangle (rows folded in pairs)."""
    N = data.shape[0]
    total = 0.0
    for i in range((N - 1) // 2):
        folded = np.concatenate((data[i][i + 1 :], data[N - i - 2][N - i - 1 :]))
        total += reduce(folded)
    if N % 2 == 0:
        total += reduce(data[N // 2 - 1][N // 2 :])
    return total / (N * (N - 1) / 2)


def _kernel_stats(M, mG, kernel):
    X = _normalize(M - mG)
    diff = np.linalg.norm(X[:, None, :] - X[None, :, :], axis=-1)
    with np.errstate(divide="ignore"):
        grid = diff if kernel == "distance" else np.log(diff**-1.0)
    avg = _symm_reduce(grid)
    var = _symm_reduce(grid, lambda row: np.sum((row - avg) ** 2))
    return avg, var


@pytest.mark.parametrize("K", [3, 4, 7])
@pytest.mark.parametrize("kernel", ["distance", "log"])
def test_gnc2_matches_the_published_formula(K, kernel):
    rng = np.random.default_rng(K)
    M, mG = rng.standard_normal((K, 6)), rng.standard_normal(6)
    mean, var = ufm.metrics.gnc2_hyperspherical(M, mG, kernel=kernel)
    ref_mean, ref_var = _kernel_stats(M, mG, kernel)
    np.testing.assert_allclose([float(mean), float(var)], [ref_mean, ref_var], rtol=1e-12)


def test_gnc2_vanishes_at_a_simplex_etf_and_not_elsewhere():
    etf = np.asarray(ufm.simplex_etf(5, 6))
    for kernel in ("distance", "log"):
        _, var = ufm.metrics.gnc2_hyperspherical(3.0 * etf, kernel=kernel)
        assert float(var) < 1e-24
        _, var = ufm.metrics.gnc2_hyperspherical(etf + 0.1 * np.eye(5, 6), kernel=kernel)
        assert float(var) > 1e-6


def test_unc3_matches_torch_var_of_similarities():
    rng = np.random.default_rng(0)
    W, M, mG = rng.standard_normal((5, 4)), rng.standard_normal((5, 4)), rng.standard_normal(4)
    sims = np.sum(W * (M - mG), axis=1)
    np.testing.assert_allclose(
        float(ufm.metrics.unc3_uniform_duality(W, M, mG)), np.var(sims, ddof=1), rtol=1e-12
    )
    opt = ufm.optimum(ufm.UFMSpec(K=4, n=3, d=4, loss="ce")).params  # self-dual optimum
    means = np.asarray(opt.H).reshape(4, 4, 3).mean(axis=2).T
    assert float(ufm.metrics.unc3_uniform_duality(np.asarray(opt.W), means)) < 1e-20


def test_nc5_matches_the_published_orthogonality_deviation():
    rng = np.random.default_rng(1)
    M, g = rng.standard_normal((6, 5)), rng.standard_normal(5)
    cos = (M @ g) / (np.linalg.norm(M, axis=1) * np.linalg.norm(g))
    np.testing.assert_allclose(
        float(ufm.metrics.nc5_ood_orthogonality(M, g)), np.mean(np.abs(cos)), rtol=1e-12
    )


def test_bad_shapes_name_the_argument():
    with pytest.raises(ValueError, match="means"):
        ufm.metrics.gnc2_hyperspherical(np.ones(3))
    with pytest.raises(ValueError, match="kernel"):
        ufm.metrics.gnc2_hyperspherical(np.ones((3, 2)), kernel="riesz")
    with pytest.raises(ValueError, match="W and means"):
        ufm.metrics.unc3_uniform_duality(np.ones((3, 2)), np.ones((2, 2)))
