"""Feature-collapse theory: the paper's constants, scipy oracles, type-III system and condition."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize, minimize_scalar

from ufm.systems.feature_collapse import theory as T
from ufm.systems.feature_collapse import word_law

PAPER = {"n_c": 3, "n_w": 1200, "L": 15}


def test_paper_constants():
    """Type-I predicted embedding norms quoted in the paper: 1.42213 (K=1000), 0.616024 (K=50)."""
    assert T.type1_optimum(K=1000, lam=1e-3, **PAPER).w_norm == pytest.approx(1.42213, abs=5e-6)
    assert T.type1_optimum(K=50, lam=1e-3, **PAPER).w_norm == pytest.approx(0.616024, abs=5e-7)


@pytest.mark.parametrize("K, lam", [(1000, 1e-3), (50, 1e-3), (200, 3e-3), (7, 1e-2)])
def test_type1_matches_scipy(K, lam):
    opt = T.type1_optimum(K=K, lam=lam, **PAPER)
    f = lambda s: float(T.type1_objective(s, K=K, lam=lam, **PAPER))
    ref = minimize_scalar(f, bounds=(0.0, 50.0), method="bounded", options={"xatol": 1e-12})
    assert opt.s == pytest.approx(ref.x, rel=1e-6)
    assert opt.value == pytest.approx(ref.fun, rel=1e-12, abs=1e-14)
    assert opt.value <= ref.fun + 1e-14
    # the split of s between the layers: lam n_w ||w||^2 = lam K L ||u||^2, ||w|| ||u|| = s
    assert opt.w_norm * opt.u_norm == pytest.approx(opt.s, rel=1e-14)
    assert 1200 * opt.w_norm**2 == pytest.approx(K * 15 * opt.u_norm**2, rel=1e-12)
    # and that split minimises the decay at fixed s (direct 2-D minimisation over (a, b))
    g = T.gamma(3)

    def full(ab):
        a, b = ab
        ce = float(T.reduced_ce(g * a * b, 3, K, 15))
        return ce + 0.5 * lam * (1200 * a**2 + K * 15 * b**2)

    ref2 = minimize(
        full, [1.0, 1.0], method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-14}
    )
    assert abs(ref2.x[0]) == pytest.approx(opt.w_norm, rel=1e-4)
    assert abs(ref2.x[1]) == pytest.approx(opt.u_norm, rel=1e-4)


def test_reduced_ce_and_gradient():
    t = np.linspace(0.0, 30.0, 61)
    ce = T.reduced_ce(t, 3, 1000, 15)
    ref = np.log(1 + 1000 * ((1 + 2 * np.exp(-t)) / 3) ** 15)
    np.testing.assert_allclose(ce, ref, rtol=1e-12, atol=1e-15)
    grad = T.reduced_ce_grad(t, 3, 1000, 15)
    auto = jax.vmap(jax.grad(lambda x: jnp.log(1 + 1000 * ((1 + 2 * jnp.exp(-x)) / 3) ** 15)))(
        jnp.asarray(t)
    )
    np.testing.assert_allclose(grad, auto, rtol=1e-10, atol=1e-300)
    assert np.all(np.diff(grad) > 0)  # CE is convex: the minimisations are well posed


def test_type1_trivial_when_decay_too_strong():
    """s* = 0 exactly when lam sqrt(n_w K L) >= K L / (K + 1) (the slope of CE(gamma s) at 0)."""
    K, L, n_w = 50, 15, 1200
    lam_c = K * L / (K + 1) / math.sqrt(n_w * K * L)
    assert T.type1_optimum(3, n_w, K, L, 1.01 * lam_c).s == 0.0
    assert T.type1_optimum(3, n_w, K, L, 0.99 * lam_c).s > 0.0


@pytest.mark.parametrize("K, d, lam_u", [(200, 100, 1e-3), (1000, 100, 1e-3), (64, 32, 1e-2)])
def test_type2_matches_scipy(K, d, lam_u):
    opt = T.type2_optimum(3, K, 15, d, lam_u)
    f = lambda b: float(T.type2_objective(b, 3, K, 15, d, lam_u))
    ref = minimize_scalar(f, bounds=(0.0, 10.0), method="bounded", options={"xatol": 1e-12})
    assert opt.b == pytest.approx(ref.x, rel=1e-6) and opt.u_norm == opt.b
    assert opt.value <= ref.fun + 1e-14
    assert opt.phi_norm == math.sqrt(d) and opt.s == pytest.approx(math.sqrt(d) * opt.b)


def test_type2_value_paper_setting():
    """K = 1000 with LayerNorm: ||u||* = 0.097546 (the paper's Zipf + LN run has sigma_1,2 of
    the 15000 u_{k,l} = 8.387, 8.377, i.e. rms norm sqrt((8.387^2 + 8.377^2)/15000) = 0.0968)."""
    b = T.type2_optimum(3, 1000, 15, 100, 1e-3).b
    assert b == pytest.approx(0.0975463, abs=2e-7)
    assert b == pytest.approx(math.sqrt((8.387**2 + 8.377**2) / 15000), rel=0.01)


@pytest.mark.parametrize(
    "law, s_c, L, lam", [("zipf", 20, 4, 1e-3), ("zipf", 7, 2, 1e-2), ("uniform", 10, 3, 1e-3)]
)
def test_type3_solution_residuals_and_stationarity(law, s_c, L, lam):
    mu = word_law(law, s_c)
    sol = T.type3_solve(mu, 3, L, lam)
    assert sol is not None and sol.b > 0 and np.all(sol.r > 0)
    first, second = T.type3_residuals(sol.r, sol.b, mu, 3, L, lam)
    np.testing.assert_allclose(first, 0.0, atol=1e-13 * L * mu.max() * sol.b)
    assert abs(second) <= 1e-10 * 3**L * L * sol.b**2
    # a critical point of the reduced objective (jax gradient, independent of the solver)
    g = 3 / 2

    @jax.jit
    def E(r, b):
        risk = L * jnp.sum(jnp.asarray(mu) * jnp.log1p(2 * jnp.exp(-g * b * r)))
        return risk + 0.5 * lam * (3 * jnp.sum(r**2) + 3.0**L * L * b**2)

    gr, gb = jax.jit(jax.grad(E, argnums=(0, 1)))(jnp.asarray(sol.r), sol.b)
    assert np.max(np.abs(gr)) < 1e-12 and abs(float(gb)) < 1e-10
    assert float(E(jnp.asarray(sol.r), sol.b)) == pytest.approx(sol.value, rel=1e-13)
    # frequent words get larger norms (type III), equal law gives equal norms
    if law == "zipf":
        assert np.all(np.diff(sol.r) < 0)
    else:
        np.testing.assert_allclose(sol.r, sol.r[0], rtol=1e-12)
    # it beats the trivial point (0, 0)
    assert sol.value < float(E(jnp.zeros(s_c), 0.0))


def test_type3_existence_condition():
    mu = word_law("zipf", 20)
    L = 4
    lam_c = math.sqrt(L * 3.0 ** (-L - 1) * np.sum(mu**2))
    assert T.type3_exists(mu, 3, L, 0.999 * lam_c) and not T.type3_exists(mu, 3, L, 1.001 * lam_c)
    assert T.type3_solve(mu, 3, L, 1.001 * lam_c) is None
    assert T.type3_solve(mu, 3, L, 10 * lam_c) is None
    near = T.type3_solve(mu, 3, L, 0.999 * lam_c)
    far = T.type3_solve(mu, 3, L, 0.5 * lam_c)
    assert near.b < far.b  # the non-trivial branch shrinks to 0 at the threshold
    # the paper's L = 15 setting: no type-III critical point at lam = 1e-3
    assert not T.type3_exists(word_law("zipf", 400), 3, 15, 1e-3)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: T.type1_optimum(3, 1200, 1, 15, 1e-3), "K"),
        (lambda: T.type1_optimum(3, 1200, 50, 15, -1e-3), "lam"),
        (lambda: T.type1_optimum(1, 1200, 50, 15, 1e-3), "n_c"),
        (lambda: T.type2_optimum(3, 50, 15, 100, 0.0), "lam_u"),
        (lambda: T.type2_optimum(3, 50, 15, 0, 1e-3), "d"),
        (lambda: T.type3_solve(np.array([0.5, 0.6]), 3, 2, 1e-3), "mu"),
    ],
)
def test_theory_errors_name_the_field(call, match):
    with pytest.raises(ValueError, match=rf"^{match}\b"):
        call()
