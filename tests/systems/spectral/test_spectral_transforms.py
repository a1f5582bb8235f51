"""Spectral transformations: output spectra, whitening on the support, guards and gradients."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from spectral_numpy_reference import batch_with_spectrum, wmse_whitening

from ufm.systems import spectral as sp
from ufm.systems.spectral.matfun import sym_matrix_function

LAM = np.array([4.0, 2.0, 1.0, 0.5, 0.25])


def _batch(lam, side, n_obs, seed=0, offset=True):
    """A batch (m x d layout) whose covariance on ``side`` is V diag(lam) V^T; returns (z, V)."""
    rng = np.random.default_rng(seed)
    x, v = batch_with_spectrum(lam, n_obs, rng)
    if side == "feature":
        z = x + (rng.standard_normal(x.shape[1]) if offset else 0.0)  # per-feature offsets
    else:
        z = x.T + (rng.standard_normal((x.shape[1], 1)) if offset else 0.0)  # per-sample offsets
    return z, v


def _out_cov(zhat, side):
    return np.cov(np.asarray(zhat, dtype=float), rowvar=(side == "instance"), ddof=1)


@pytest.mark.parametrize("side", ["feature", "instance"])
@pytest.mark.parametrize("ddof", [0, 1])
def test_covariance_matches_numpy(side, ddof):
    z = np.random.default_rng(1).standard_normal((12, 5))
    got = sp.covariance(jnp.asarray(z), side, ddof)
    np.testing.assert_allclose(got, np.cov(z, rowvar=(side == "instance"), ddof=ddof), atol=1e-12)


@pytest.mark.parametrize("side", ["feature", "instance"])
@pytest.mark.parametrize("p", [0.0, 0.25, 0.5, 1.0])
def test_power_family_output_covariance(side, p):
    z, v = _batch(LAM, side, n_obs=12)
    zhat = sp.power_transform(jnp.asarray(z), p, side=side)
    expected = (v * LAM ** (1 - 2 * p)) @ v.T  # same eigenvectors, eigenvalues lam^(1-2p)
    np.testing.assert_allclose(_out_cov(zhat, side), expected, atol=1e-10)
    np.testing.assert_allclose(sp.power_output_spectrum(LAM, p), LAM ** (1 - 2 * p), rtol=1e-12)


def test_power_family_float32():
    z, v = _batch(LAM, "feature", n_obs=12)
    zhat = sp.power_transform(jnp.asarray(z, dtype=jnp.float32), 0.25, side="feature")
    assert zhat.dtype == jnp.float32
    np.testing.assert_allclose(_out_cov(zhat, "feature"), (v * LAM**0.5) @ v.T, atol=2e-5)


@pytest.mark.parametrize("side", ["feature", "instance"])
@pytest.mark.parametrize("dtype,atol", [(jnp.float64, 1e-10), (jnp.float32, 1e-4)])
def test_whitening_is_projector_on_range(side, dtype, atol):
    lam = np.array([3.0, 3.0, 1.0, 0.0, 0.0])  # repeated and zero eigenvalues
    z, v = _batch(lam, side, n_obs=12)
    zhat = sp.whiten(jnp.asarray(z, dtype=dtype), side=side)
    assert zhat.dtype == dtype
    projector = v[:, :3] @ v[:, :3].T
    np.testing.assert_allclose(_out_cov(zhat, side), projector, atol=atol)


@pytest.mark.parametrize("p", [0.25, 1.0])
def test_power_transform_scale_covariance(p):
    z, _ = _batch(LAM, "feature", n_obs=12)
    z = jnp.asarray(z)
    a = sp.power_transform(3.0 * z, p, side="feature")
    b = 3.0 ** (1 - 2 * p) * sp.power_transform(z, p, side="feature")
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_guard_caps_gain_below_floor():
    lam = np.array([1.0, 0.5, 0.3, 1e-4, 1e-5])  # the last two are below eps * tr = 1.8e-2
    z, v = _batch(lam, "feature", n_obs=12)
    zhat = sp.power_transform(jnp.asarray(z), 0.5, side="feature", eps=1e-2)
    floor = 1e-2 * lam.sum()
    expected_eigs = lam * np.maximum(lam, floor) ** -1.0
    np.testing.assert_allclose(sp.power_output_spectrum(lam, 0.5, eps=1e-2), expected_eigs)
    np.testing.assert_allclose(_out_cov(zhat, "feature"), (v * expected_eigs) @ v.T, atol=1e-12)


def test_generic_spectral_transform():
    z, v = _batch(LAM, "instance", n_obs=12)
    zhat = sp.spectral_transform(jnp.asarray(z), jnp.exp, side="instance")
    np.testing.assert_allclose(
        _out_cov(zhat, "instance"), (v * LAM * np.exp(LAM) ** 2) @ v.T, rtol=1e-10
    )


def test_cholesky_whitening_matches_reference():
    z = np.random.default_rng(3).standard_normal((12, 5)) @ np.diag([1.0, 2.0, 3.0, 0.5, 1.5])
    for eps in (0.0, 0.1):
        got = sp.cholesky_whiten(jnp.asarray(z), eps=eps)
        np.testing.assert_allclose(got, wmse_whitening(z, eps), atol=1e-12)
    np.testing.assert_allclose(
        np.cov(sp.cholesky_whiten(jnp.asarray(z)), rowvar=False), np.eye(5), atol=1e-12
    )


# --- gradients -------------------------------------------------------------------------------


def _sum_sin(fn):
    return lambda z: jnp.sum(jnp.sin(fn(z)) * jnp.arange(1.0, z.shape[1] + 1.0))


@pytest.mark.parametrize("side,p", [("feature", 1.0), ("instance", 0.25)])
def test_grad_finite_and_correct_with_repeated_and_zero_eigenvalues(side, p):
    lam = np.array([1.0, 1.0, 1.0, 0.0, 0.0])  # threefold repeated + a null space
    z, _ = _batch(lam, side, n_obs=12)
    f = _sum_sin(functools.partial(sp.power_transform, p=p, side=side, eps=1e-2))
    assert np.all(np.isfinite(jax.grad(f)(jnp.asarray(z))))
    check_grads(f, (jnp.asarray(z),), order=1, modes=("rev",), eps=1e-6)  # VJP vs finite diff.


def test_grad_finite_for_constant_batch():
    z = jnp.ones((12, 5))
    f = _sum_sin(functools.partial(sp.power_transform, p=1.0, side="feature"))
    assert np.all(np.isfinite(jax.grad(f)(z)))
    assert np.all(sp.power_transform(z, 1.0, side="feature") == 0)


_exp_matrix = jax.jit(lambda m: sym_matrix_function(m, jnp.exp))


@pytest.mark.parametrize(
    "spectrum", [[3.0, 2.0, 1.0, 0.5], [1.0, 1.0, 2.0, 2.0], [0.0, 0.0, 1.0, 2.0]]
)
def test_sym_matrix_function_jvp_matches_finite_differences(spectrum):
    rng = np.random.default_rng(4)
    q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    a = jnp.asarray((q * np.array(spectrum)) @ q.T)
    check_grads(_exp_matrix, (a,), order=1, modes=("fwd", "rev"))


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda z: sp.power_transform(z, 0.5, side="features"), "side"),
        (lambda z: sp.power_transform(z, float("nan"), side="feature"), "p must"),
        (lambda z: sp.power_transform(z, 0.5, side="feature", eps=0.0), "eps"),
        (lambda z: sp.whiten(z, side="feature", ddof=12), "ddof"),
        (lambda z: sp.whiten(z[0], side="feature"), "shape"),
        (lambda z: sp.whiten(z.astype(jnp.int32), side="feature"), "floating"),
        (lambda z: sp.cholesky_whiten(z, eps=-0.1), "eps"),
        (lambda z: sp.side_from_axis(2), "axis"),
    ],
)
def test_bad_input_names_the_field(call, match):
    with pytest.raises(ValueError, match=match):
        call(jnp.ones((12, 5)))


def test_lapack_free_cholesky_and_its_gradient_match_lapack():
    """cholesky_lower / forward_substitution (plain array loops, used by W-MSE) against LAPACK's
    potrf / trsm through jnp.linalg and jax.scipy: factors, solves and gradients, float64."""
    from jax.scipy.linalg import solve_triangular

    rng = np.random.default_rng(3)
    z = jnp.asarray(rng.normal(size=(40, 7)))
    a = z.T @ z / 40 + 0.1 * jnp.eye(7)
    np.testing.assert_allclose(sp.cholesky_lower(a), np.linalg.cholesky(np.asarray(a)), atol=1e-13)
    b = jnp.asarray(rng.normal(size=(7, 5)))
    low = jnp.linalg.cholesky(a)
    np.testing.assert_allclose(
        sp.forward_substitution(low, b), solve_triangular(low, b, lower=True), atol=1e-12
    )

    def ours(m):
        return jnp.sum(jnp.tanh(sp.forward_substitution(sp.cholesky_lower(m @ m.T + 0.1), b)))

    def lapack(m):
        low = jnp.linalg.cholesky(m @ m.T + 0.1)
        return jnp.sum(jnp.tanh(solve_triangular(low, b, lower=True)))

    m = jnp.asarray(rng.normal(size=(7, 7)))
    np.testing.assert_allclose(jax.grad(ours)(m), jax.grad(lapack)(m), atol=1e-11)
    bad = -jnp.eye(3)  # not positive definite: NaN, as LAPACK
    assert np.isnan(np.asarray(sp.cholesky_lower(bad))).any()
