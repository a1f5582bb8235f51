"""IterNorm: the spectral recursion, both orientations vs the official code, limits, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from spectral_numpy_reference import batch_with_spectrum, official_iternorm

from ufm.systems import spectral as sp

LAM = np.array([4.0, 2.0, 1.0, 0.5, 0.25])


def _batch(lam, side, n_obs=12, seed=0):
    rng = np.random.default_rng(seed)
    x, v = batch_with_spectrum(lam, n_obs, rng)
    if side == "feature":
        return x + rng.standard_normal(x.shape[1]), v
    return x.T + rng.standard_normal((x.shape[1], 1)), v


def _out_cov(zhat, side):
    return np.cov(np.asarray(zhat, dtype=float), rowvar=(side == "instance"), ddof=1)


def _recursion(x, t):
    e = np.array(x, dtype=float)
    for _ in range(t):
        e = e * (3.0 - e) ** 2 / 4.0
    return e


@pytest.mark.parametrize("side", ["feature", "instance"])
def test_output_spectrum_follows_recursion(side):
    ts = range(1, 7)
    z, v = _batch(LAM, side)
    x = LAM / LAM.sum()
    outputs = jax.jit(lambda z: [sp.iternorm(z, t, side=side) for t in ts])(jnp.asarray(z))
    for t, zhat in zip(ts, outputs):
        expected = (v * _recursion(x, t)) @ v.T  # same eigenvectors, eigenvalues e_T(x)
        np.testing.assert_allclose(_out_cov(zhat, side), expected, atol=1e-12)
        np.testing.assert_allclose(sp.iternorm_spectrum(x, t), _recursion(x, t), rtol=1e-14)
        np.testing.assert_allclose(sp.iternorm_gain(x, t) ** 2 * x, _recursion(x, t), rtol=1e-12)


def test_output_spectrum_float32():
    z, v = _batch(LAM, "instance")
    zhat = sp.iternorm(jnp.asarray(z, dtype=jnp.float32), side="instance")
    assert zhat.dtype == jnp.float32
    expected = (v * _recursion(LAM / LAM.sum(), 4)) @ v.T
    np.testing.assert_allclose(_out_cov(zhat, "instance"), expected, atol=2e-6)


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("t", [1, 4])
def test_orientations_match_official_code(axis, t):
    z = np.random.default_rng(7).standard_normal((12, 5)) * np.array([1.0, 3.0, 0.5, 2.0, 1.0])
    got = sp.iternorm(jnp.asarray(z), t, side=sp.side_from_axis(axis))
    np.testing.assert_allclose(got, official_iternorm(z, axis, t), atol=1e-12)


def test_orientations_differ():
    z = np.random.default_rng(8).standard_normal((12, 5))
    a = sp.iternorm(jnp.asarray(z), side="instance")
    b = sp.iternorm(jnp.asarray(z), side="feature")
    assert np.abs(np.asarray(a) - np.asarray(b)).max() > 1e-2


@pytest.mark.parametrize("side", ["feature", "instance"])
def test_large_t_approaches_exact_whitening(side):
    z, _ = _batch(np.array([1.2, 1.0, 1.0, 0.8, 0.6]), side)  # kappa = 2 < 2.44: stable
    white = sp.whiten(jnp.asarray(z), side=side)
    err = [float(jnp.abs(sp.iternorm(jnp.asarray(z), t, side=side) - white).max()) for t in (4, 50)]
    assert err[1] < 1e-13
    assert err[0] > 1e-2


def test_large_t_error_growth_matches_linearisation():
    # kappa = 16: converged by T ~ 10, then rounding errors grow by |1 - (4 + 16)/2| = 9 per step
    z, _ = _batch(LAM, "feature")
    white = sp.whiten(jnp.asarray(z), side="feature")
    err = [
        float(jnp.abs(sp.iternorm(jnp.asarray(z), t, side="feature") - white).max())
        for t in (10, 12, 16)
    ]
    assert err[0] < 1e-10
    growth = (err[2] / err[1]) ** (1 / 4)
    assert growth == pytest.approx(float(sp.iternorm_error_growth(16.0)), rel=0.1)


def test_null_space_gain_is_1_5_to_the_t():
    lam = np.array([2.0, 1.0, 0.5, 0.0, 0.0])
    z, v = _batch(lam, "feature")
    sigma = sp.covariance(jnp.asarray(z), "feature")
    for t in (0, 3, 6):
        w = np.asarray(sp.iternorm_matrix(sigma, t))
        null = v[:, 3:]
        np.testing.assert_allclose(w @ null, 1.5**t / np.sqrt(lam.sum()) * null, atol=1e-10)
    assert float(sp.iternorm_gain(0.0, 6)) == 1.5**6


def test_zero_iterations_is_trace_scaling():
    z, _ = _batch(LAM, "feature")
    zc = z - z.mean(axis=0)
    expected = zc / np.sqrt(np.trace(np.cov(z, rowvar=False)))
    np.testing.assert_allclose(sp.iternorm(jnp.asarray(z), 0, side="feature"), expected)


def test_rank_deficient_instance_side_is_finite_with_finite_gradients():
    z = np.random.default_rng(9).standard_normal((12, 5))  # m x m Gram of rank <= 4

    def f(z):
        return jnp.sum(jnp.sin(sp.iternorm(z, side="instance")))

    assert np.all(np.isfinite(sp.iternorm(jnp.asarray(z), side="instance")))
    assert np.all(np.isfinite(jax.grad(f)(jnp.asarray(z))))


def test_vmap_matches_loop_and_jit_does_not_recompile():
    views = jnp.asarray(np.random.default_rng(10).standard_normal((3, 12, 5)))
    fn = jax.jit(lambda z: sp.iternorm(z, side="instance"))
    looped = jnp.stack([fn(v) for v in views])
    np.testing.assert_allclose(jax.vmap(fn)(views), looped, atol=1e-13)
    assert fn._cache_size() == 1


@pytest.mark.parametrize("bad", [-1, 2.0, True])
def test_bad_n_iter(bad):
    with pytest.raises(ValueError, match="n_iter"):
        sp.iternorm(jnp.ones((12, 5)), bad, side="feature")
