"""The convex program of the UFM: its value equals the closed forms for balanced classes, its dual
bound is below an independent solve of the factorised (class-mean) UFM for any class sizes, and the
vmapped solve agrees with one-at-a-time solves."""

import numpy as np
import pytest
import scipy.optimize as so

import ufm
from ufm.systems.ufm import solve_convex

VARIANTS = [
    ("ce", "none", 0.0),
    ("ce", "free", 0.0),
    ("ce", "regularized", 0.01),
    ("mse", "none", 0.0),
    ("mse", "free", 0.0),
    ("mse", "regularized", 0.01),
    ("mse", "regularized", 0.5),
]


@pytest.mark.parametrize("loss,bias,lb", VARIANTS)
def test_balanced_value_is_the_closed_form(loss, bias, lb):
    spec = ufm.UFMSpec(
        K=4, n=5, d=4, loss=loss, bias=bias, lambda_W=5e-3, lambda_H=5e-3, lambda_b=lb
    )
    sol = solve_convex(
        4, [5] * 4, loss=loss, bias=bias, lambda_W=5e-3, lambda_H=5e-3, lambda_b=lb, iterations=5000
    )
    f_star = ufm.optimal_value(spec)
    assert float(sol.lower_bound) <= f_star + 1e-12 <= float(sol.value) + 2e-12
    assert abs(float(sol.value) - f_star) < 1e-11 and float(sol.gap) < 1e-8


def _factorised(n, loss, bias, lW, lH, lb, seed):
    """min over W (K x K), class features Hbar (K x K), b of (1/N) sum_k n_k l(W hbar_k + b, k)
    + lW/2 ||W||^2 + lH/2 sum_k n_k ||hbar_k||^2 + lb/2 ||b||^2, by L-BFGS (scipy): the UFM with
    collapsed features, an independent route to the same minimum."""
    K = n.size
    N = n.sum()
    rng = np.random.default_rng(seed)

    def fun(x):
        W, Hb = x[: K * K].reshape(K, K), x[K * K : 2 * K * K].reshape(K, K)
        b = x[2 * K * K :] if bias != "none" else np.zeros(K)
        U = W @ Hb + b[:, None]
        if loss == "ce":
            m = U.max(axis=0)
            E = np.exp(U - m)
            lse = m + np.log(E.sum(axis=0))
            val = np.sum(n * (lse - np.diag(U))) / N
            G = (E / E.sum(axis=0) - np.eye(K)) * n / N
        else:
            R = U - np.eye(K)
            val = 0.5 * np.sum(n * np.sum(R**2, axis=0)) / N
            G = R * n / N
        val += 0.5 * lW * np.sum(W**2) + 0.5 * lH * np.sum(n * np.sum(Hb**2, axis=0))
        gW = G @ Hb.T + lW * W
        gH = W.T @ G + lH * Hb * n
        grad = [gW.ravel(), gH.ravel()]
        if bias != "none":
            val += 0.5 * lb * b @ b
            grad.append(G.sum(axis=1) + lb * b)
        return val, np.concatenate(grad)

    size = 2 * K * K + (K if bias != "none" else 0)
    res = so.minimize(
        fun,
        0.5 * rng.standard_normal(size),
        jac=True,
        method="L-BFGS-B",
        options=dict(maxiter=20000, ftol=1e-16, gtol=1e-12),
    )
    return res.fun


@pytest.mark.parametrize(
    "loss,bias,lb", [("ce", "none", 0.0), ("ce", "free", 0.0), ("mse", "regularized", 0.05)]
)
def test_imbalanced_bound_matches_an_independent_factorised_solve(loss, bias, lb):
    n = np.array([12.0, 5.0, 2.0, 1.0])
    lW = lH = 2e-3
    sol = solve_convex(
        4, n, loss=loss, bias=bias, lambda_W=lW, lambda_H=lH, lambda_b=lb, iterations=8000
    )
    best = min(_factorised(n, loss, bias, lW, lH, lb, seed) for seed in range(3))
    assert float(sol.lower_bound) <= best + 1e-9  # the certified bound is never above a minimum
    assert abs(best - float(sol.value)) < 1e-7  # and both routes find the same value
    assert float(sol.gap) < 1e-6


def test_vmap_over_class_sizes_equals_single_solves():
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 9, size=(3, 3)).astype(float)
    batch = solve_convex(3, sizes, loss="ce", lambda_W=5e-3, lambda_H=5e-3, iterations=2000)
    for i in range(3):
        one = solve_convex(3, sizes[i], loss="ce", lambda_W=5e-3, lambda_H=5e-3, iterations=2000)
        np.testing.assert_allclose(float(batch.value[i]), float(one.value), rtol=1e-12)
        np.testing.assert_allclose(float(batch.lower_bound[i]), float(one.lower_bound), rtol=1e-10)


def test_bad_input_names_the_field():
    with pytest.raises(ValueError, match="class_sizes"):
        solve_convex(3, [1.0, 0.0, 2.0])
    with pytest.raises(ValueError, match="lambda_W"):
        solve_convex(3, [1, 1, 1], lambda_W=-1.0)
    with pytest.raises(ValueError, match="lambda_b"):
        solve_convex(3, [1, 1, 1], bias="regularized")
