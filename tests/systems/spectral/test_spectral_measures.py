"""Dimensional-collapse measures: known ranks, invariances, RankMe vs covariance erank."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from spectral_numpy_reference import batch_with_spectrum

from ufm.systems import spectral as sp


def _batch(lam, seed=0):
    return jnp.asarray(batch_with_spectrum(lam, 12, np.random.default_rng(seed))[0])


@pytest.mark.parametrize("r", [1, 3, 6])
def test_isotropic_rank_r(r):
    z = _batch(np.r_[np.full(r, 2.0), np.zeros(8 - r)])
    assert float(sp.effective_rank(z)) == pytest.approx(r, rel=1e-10)
    assert int(sp.count_above(z)) == r
    assert float(sp.rankme(z, eps=0.0)) == pytest.approx(r, rel=1e-10)
    assert float(sp.rankme(z)) == pytest.approx(r, abs=1e-4)  # eps = 1e-7 adds O(d eps log eps)
    np.testing.assert_allclose(sp.normalized_spectrum(z)[:r], np.full(r, 1 / r), rtol=1e-10)


def test_covariance_eigenvalues_match_numpy():
    z = np.random.default_rng(1).standard_normal((12, 5))
    expected = np.sort(np.linalg.eigvalsh(np.cov(z, rowvar=False)))[::-1]
    np.testing.assert_allclose(sp.covariance_eigenvalues(jnp.asarray(z)), expected, rtol=1e-12)
    assert float(jnp.sum(sp.normalized_spectrum(jnp.asarray(z)))) == pytest.approx(1.0)


def test_effective_rank_of_known_spectrum():
    lam = np.array([4.0, 2.0, 1.0, 1.0, 0.0])
    p = lam[:4] / lam.sum()
    expected = np.exp(-np.sum(p * np.log(p)))
    assert float(sp.effective_rank(_batch(lam))) == pytest.approx(expected, rel=1e-10)
    assert float(sp.entropy_effective_rank(jnp.asarray(lam))) == pytest.approx(expected)


def test_invariance_to_scale_and_rotation():
    rng = np.random.default_rng(2)
    z = _batch(np.array([5.0, 2.0, 1.0, 0.3, 0.01, 0.0]))
    q_right, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    q_left, _ = np.linalg.qr(rng.standard_normal((12, 12)))
    for w in (3.7 * z, z @ q_right):
        np.testing.assert_allclose(sp.normalized_spectrum(w), sp.normalized_spectrum(z), atol=1e-12)
        assert float(sp.effective_rank(w)) == pytest.approx(float(sp.effective_rank(z)))
        assert float(sp.rankme(w)) == pytest.approx(float(sp.rankme(z)))
        assert int(sp.count_above(w)) == int(sp.count_above(z)) == 5  # 0.01 > 1e-3 * 5
    # RankMe uses singular values of the raw matrix, so left rotations do not change it either
    assert float(sp.rankme(q_left @ z)) == pytest.approx(float(sp.rankme(z)))


def test_rankme_centred_bounds_covariance_erank():
    # entropy rank of sqrt(lambda) >= entropy rank of lambda; equal iff the spectrum is flat
    z = jnp.asarray(np.random.default_rng(3).standard_normal((12, 5)) * np.arange(1.0, 6.0))
    assert float(sp.rankme(z, eps=0.0, center=True)) > float(sp.effective_rank(z)) + 0.1
    lam = np.linalg.eigvalsh(np.cov(np.asarray(z), rowvar=False))
    s = np.sqrt(lam) / np.sqrt(lam).sum()
    rv = np.exp(-np.sum(s * np.log(s)))  # Roy-Vetterli rank of the centred batch
    assert float(sp.rankme(z, eps=0.0, center=True)) == pytest.approx(rv, rel=1e-10)


def test_count_above_threshold():
    z = _batch(np.array([1.0, 2e-3, 5e-4, 0.0]))
    assert int(sp.count_above(z)) == 2
    assert int(sp.count_above(z, rel=1e-4)) == 3
    with pytest.raises(ValueError, match="rel"):
        sp.count_above(z, rel=0.0)


def test_collapse_measures_jit_and_vmap():
    zs = jnp.stack([_batch(np.array([3.0, 1.0, 1.0, 0.0]), seed=s) for s in range(3)])
    out = jax.jit(jax.vmap(sp.collapse_measures))(zs)
    for i in range(3):
        assert float(out.erank[i]) == pytest.approx(float(sp.effective_rank(zs[i])))
        assert float(out.rankme[i]) == pytest.approx(float(sp.rankme(zs[i])))
        assert int(out.count[i]) == 3
    assert out.spectrum.shape == (3, 4)
