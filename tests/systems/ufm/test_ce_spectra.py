"""The closed-form Hessian spectrum of the CE UFM at its simplex-ETF optimum (docs/theory.md
section 8.2) against the dense Hessian at rotated copies of the closed-form optimum (every bias
variant, ``d = K - 1``, ``d = K``, ``d > K``, ``K = 2``), and against Lanczos extremes and exact
block-arrow inertia counts at a larger size."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import ufm
from ufm.systems.ufm import ce_std_matrix, collapse_spectrum


def _rotated_optimum(spec, seed):
    """The closed-form optimum ``(W Q, Q^T H, b)`` for a random orthogonal ``Q``."""
    p = ufm.optimum(spec).params
    g = np.random.default_rng(seed).standard_normal((spec.d, spec.d))
    Q = jnp.asarray(np.linalg.qr(g)[0])
    return p._replace(W=p.W @ Q, H=Q.T @ p.H)


CASES = [
    # K, n, d, lambda_W, lambda_H, bias, lambda_b
    (3, 2, 3, 5e-3, 5e-3, "none", 0.0),  # d = K
    (4, 2, 4, 1e-2, 2e-3, "none", 0.0),  # d = K
    (4, 2, 6, 2e-3, 1e-2, "none", 0.0),  # d > K
    (5, 2, 4, 3e-3, 7e-3, "none", 0.0),  # d = K - 1
    (2, 3, 3, 1e-2, 3e-3, "none", 0.0),  # K = 2
    (3, 2, 4, 2e-2, 1e-2, "free", 0.0),
    (4, 2, 5, 3e-3, 7e-3, "regularized", 0.05),
]


@pytest.mark.parametrize("K,n,d,lw,lh,bias,lb", CASES)
def test_ce_spectrum_matches_dense(K, n, d, lw, lh, bias, lb):
    spec = ufm.UFMSpec(K=K, n=n, d=d, loss="ce", bias=bias, lambda_W=lw, lambda_H=lh, lambda_b=lb)
    cs = collapse_spectrum(spec)
    assert int(cs.multiplicities.sum()) == spec.num_params
    assert cs.zero_modes == ufm.zero_mode_count(spec)
    assert np.all(cs.values[cs.values != 0] > 0)
    p = _rotated_optimum(spec, K + d)
    ev = np.asarray(jax.jit(lambda q: ufm.hessian.hessian_spectrum_dense(spec, q))(p))
    full = cs.full()
    np.testing.assert_allclose(ev, full, rtol=0, atol=1e-11 * max(1.0, full[-1]))
    assert cs.smallest_nonzero == pytest.approx(np.min(ev[ev > 1e-9]), rel=1e-9)


def test_ce_spectrum_lanczos_and_block_arrow_at_larger_size():
    spec = ufm.UFMSpec(K=6, n=8, d=6, loss="ce", lambda_W=1e-3, lambda_H=1e-2)
    cs = collapse_spectrum(spec)
    full = cs.full()
    p = _rotated_optimum(spec, 1)
    lz = jax.jit(
        lambda q: ufm.hessian.lanczos_extremes(spec, q, jax.random.key(3), num_matvecs=120)
    )(p)
    np.testing.assert_allclose(float(lz.lambda_max), full[-1], rtol=1e-9)
    assert abs(float(lz.lambda_min)) < 1e-9
    res = jax.jit(ufm.hessian.block_arrow_spectrum)(spec, p)
    assert (int(res.n_neg), int(res.n_zero)) == (0, cs.zero_modes)
    assert abs(float(res.lambda_min)) < 1e-9
    # exact eigenvalue counts below every gap of the closed-form spectrum under lambda_H
    ba = ufm.hessian.block_arrow(spec, p)
    count = jax.jit(ufm.hessian.block_arrow_inertia)
    below = cs.values[cs.values < spec.lambda_H]
    assert len(below) >= 3  # zero, lambda_W and the small eigenvalues of the 2x2 / 3x3 blocks
    gaps = list((below[1:] + below[:-1]) / 2) + [min(cs.values[len(below)], spec.lambda_H) * 0.999]
    for sigma in gaps:
        assert int(count(ba, sigma)) == int(np.sum(full < sigma)), sigma


def test_std_matrix_and_errors():
    spec = ufm.UFMSpec(K=4, n=3, d=4, loss="ce", lambda_W=4e-3, lambda_H=6e-3)
    assert ce_std_matrix(spec).shape == (3, 3)
    assert ce_std_matrix(spec.replace(bias="free")).shape == (4, 4)
    assert ce_std_matrix(spec.replace(K=2, d=2)).shape == (1, 1)
    m = ce_std_matrix(spec)
    np.testing.assert_allclose(m, m.T, rtol=0, atol=0)
    with pytest.raises(ValueError, match="origin"):
        collapse_spectrum(spec.replace(lambda_W=0.5, lambda_H=0.5))
    with pytest.raises(ValueError, match="d=2"):
        collapse_spectrum(spec.replace(d=2))
    with pytest.raises(ValueError, match="bias-dominated"):
        collapse_spectrum(spec.replace(loss="mse", bias="regularized", lambda_b=0.5))
    with pytest.raises(ValueError, match="loss='ce'"):
        ce_std_matrix(spec.replace(loss="mse"))
    with pytest.raises(ValueError, match="balanced"):
        collapse_spectrum(ufm.UFMSpec(K=3, n=(2, 3, 4), d=3, loss="ce"))


def test_named_blocks_are_eigenvectors():
    """The eigenvalues of section 8.2 belong to the perturbations its table names: H v = lam v."""
    K, n, d, lw, lh = 4, 2, 6, 2e-3, 1e-2
    spec = ufm.UFMSpec(K=K, n=n, d=d, loss="ce", lambda_W=lw, lambda_H=lh)
    p = ufm.optimum(spec).params
    hess = np.asarray(jax.jit(lambda q: ufm.hessian.hessian_dense(spec, q)[0])(p))
    W, H = np.asarray(p.W), np.asarray(p.H)
    rho = float(ufm.systems.ufm.ce_optimal_rho(K, spec.s))
    nu, prob = K * rho / (K - 1), 1 - (K - 1) * float(spec.s)
    E = W.T / np.sqrt(nu * np.sqrt(n * lh / lw))  # d x K, E^T E = I - J/K (W = alpha E^T)
    np.testing.assert_allclose(E.T @ E, np.eye(K) - 1.0 / K, atol=1e-13)
    perp = np.linalg.svd(E, full_matrices=True)[0][:, K - 1 :]  # complement of the ETF span
    Om = np.random.default_rng(0).standard_normal((d, d))
    Om = Om - Om.T
    zW, zH = np.zeros_like(W), np.zeros_like(H)

    def tangent(dW, dH):
        return np.asarray(ravel_pytree(ufm.UFMParams(jnp.asarray(dW), jnp.asarray(dH)))[0])

    def within(direction):  # sample 0 minus sample 1 of class 0
        dH = zH.copy()
        dH[:, 0], dH[:, 1] = direction, -direction
        return dH

    cases = [
        (tangent(zW, within(E[:, 0])), lh * (1 + prob * nu)),  # own ETF direction
        (tangent(zW, within(E[:, 1] - E[:, 2])), lh * (1 + nu / K)),  # other ETF directions
        (tangent(zW, within(perp[:, 0])), lh),  # outside the span
        (tangent(np.outer(np.ones(K), E[:, 1] - E[:, 3]), zH), lw),  # rows shift inside span
        (tangent(np.outer(np.ones(K), perp[:, 1]), zH), lw),  # rows shift outside span
        (tangent(zW, np.outer(perp[:, 0], np.ones(spec.N))), lh),  # features shift outside
        (tangent(W @ Om, -Om @ H), 0.0),  # rotations
    ]
    for v, lam in cases:
        np.testing.assert_allclose(hess @ v, lam * v, rtol=0, atol=1e-12 * np.linalg.norm(v))


@pytest.mark.parametrize("K,lw,lh", [(3, 4e-3, 6e-3), (4, 4e-3, 6e-3), (7, 1e-3, 2e-3)])
def test_std_matrix_characteristic_polynomial(K, lw, lh):
    """Without a bias ``M_std`` is ``3 x 3`` with the closed-form characteristic polynomial
    ``x^3 - c2 x^2 + c1 x - c0`` of docs/theory.md section 8.2."""
    spec = ufm.UFMSpec(K=K, n=3, d=K, loss="ce", lambda_W=lw, lambda_H=lh)
    s = float(spec.s)
    nu = np.log((1 - (K - 1) * s) / s)
    c2 = lw * (1 + nu * ((K - 1) / K - s * (K - 2))) + lh * (2 + nu * ((K + 1) / K - s * (K - 1)))
    c1 = (lh / K) * (
        lh * (K + (K + 1) * nu + nu**2 - (K - 1) * s * nu * (K + nu))
        + lw * (K + (5 * K - 3) * nu + nu**2 - s * nu * (K * (5 * K - 9) + (K - 1) * nu))
    )
    c0 = (4 * lw * lh**2 * nu / K) * (K - 1 + nu - s * (K * (K - 2) + (K - 1) * nu))
    np.testing.assert_allclose(np.poly(ce_std_matrix(spec)), [1, -c2, c1, -c0], rtol=1e-12)
    k2 = ufm.UFMSpec(K=2, n=3, d=2, loss="ce", lambda_W=lw, lambda_H=lh)
    s2 = float(k2.s)
    lam2 = lh * (1 + np.log((1 - s2) / s2) * (1 - s2))  # K = 2: a 1 x 1 block
    np.testing.assert_allclose(ce_std_matrix(k2), [[lam2]], rtol=1e-13)


def test_ce_spectrum_at_gradient_descent_end_points():
    """End points of the optimiser from random seeds (``d = K``) have the closed-form spectrum."""
    spec = ufm.UFMSpec(K=3, n=2, d=3, loss="ce", lambda_W=5e-3, lambda_H=1e-2)
    full = collapse_spectrum(spec).full()
    p0 = ufm.init_batch(spec, jax.random.key(0), num_seeds=2)
    res = ufm.optimize(spec, p0, ufm.OptimizerSettings(learning_rate=1.0, max_steps=5000, tol=1e-9))
    pol = ufm.polish(spec, res.params)
    spectrum = jax.jit(jax.vmap(lambda q: ufm.hessian.hessian_spectrum_dense(spec, q)))
    for ev in np.asarray(spectrum(pol.params)):
        np.testing.assert_allclose(ev, full, rtol=0, atol=1e-10 * full[-1])
