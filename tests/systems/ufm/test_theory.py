"""Theory oracles (theory.md sections 2-3): closed-form optima, frames, certificates, saddles.

Checked against: the formulas re-derived independently here, the numerical examples of theory.md,
scalar minimisation (scipy), a float64 L-BFGS + Newton solver, dense float64 Hessians and
Hessian-vector products.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize as so
from jax.flatten_util import ravel_pytree

import ufm

LW, LH = 0.02, 0.03  # unequal on purpose: alpha != beta in the curvature bound

# -- helpers -----------------------------------------------------------------------------------


@jax.jit
def _value_and_grad_flat(spec, x, like):
    _, unravel = ravel_pytree(like)
    return jax.value_and_grad(lambda y: ufm.loss(spec, unravel(y)))(x)


@jax.jit
def _dense_hessian(spec, params):
    x, unravel = ravel_pytree(params)
    return jax.hessian(lambda y: ufm.loss(spec, unravel(y)))(x)


@jax.jit
def _hvp(spec, params, v):
    return jax.jvp(jax.grad(lambda p: ufm.loss(spec, p)), (params,), (v,))[1]


# Jitted entry points (spec is a pytree: one compilation per shape, lambdas traced).
_loss = jax.jit(ufm.loss)
_grad_norm = jax.jit(ufm.grad_norm)
_certificate = ufm.certificate  # jitted in the library
_neg_curv = ufm.negative_curvature_direction


def _tree_dot(a, b):
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _solve(spec, seed=0, d_small=None, newton=4):
    """Float64 minimiser of ``spec`` restricted to its first ``d_small`` feature coordinates.

    L-BFGS-B (scipy, jax gradients) then Newton steps with a pseudo-inverse dense Hessian. The
    restriction is a mask on the full-size problem, so every ``d_small`` shares one compilation
    (host-side work is numpy); returns params at ``spec.d``, zero beyond ``d_small``.
    """
    K, N, d = spec.K, spec.N, spec.d
    d_small = d if d_small is None else d_small
    cols = (np.arange(d) < d_small).astype(float)
    parts = [np.outer(np.ones(K), cols), np.outer(cols, np.ones(N))]
    if spec.has_bias:
        parts.append(np.ones(K))
    mask = np.concatenate([m.ravel() for m in parts])  # ravel_pytree order: W, H, b
    like = ufm.UFMParams(*(np.zeros_like(m) for m in parts))
    unravel = ravel_pytree(like)[1]
    x = 0.5 * mask * np.random.default_rng(seed).standard_normal(mask.size)

    def fun(x):
        v, g = _value_and_grad_flat(spec, x * mask, like)
        return float(v), np.asarray(g) * mask

    res = so.minimize(
        fun,
        x,
        jac=True,
        method="L-BFGS-B",
        options=dict(maxiter=5000, gtol=1e-9, ftol=0.0, maxcor=20),
    )
    x = res.x * mask
    idx = np.flatnonzero(mask)
    for _ in range(newton):
        g = np.asarray(_value_and_grad_flat(spec, x, like)[1])[idx]
        Hm = np.asarray(_dense_hessian(spec, unravel(x)))[np.ix_(idx, idx)]
        x[idx] -= np.linalg.pinv(Hm, rcond=1e-10, hermitian=True) @ g
    return unravel(jnp.asarray(x))


def _gnorm(spec, params):
    return float(_grad_norm(spec, params))


# Independent re-derivation of the closed forms (theory.md section 2), written out per case.
def _expected(spec):
    """(regime, f*, W W^T, b*) from the formulas, by hand."""
    K, n, s = spec.K, spec.n, spec.s
    lW, lH, lb = spec.lambda_W, spec.lambda_H, spec.lambda_b
    c = math.sqrt(n * lH / lW)
    I, J = np.eye(K), np.ones((K, K))
    if spec.loss == "ce":
        if s >= 1 / K:
            return "collapse-to-zero", math.log(K), 0 * I, 0.0
        rho = (K - 1) / K * math.log((1 - (K - 1) * s) / s)
        f = -math.log(1 - (K - 1) * s) + (K - 1) * s * math.log((1 - (K - 1) * s) / s)
        return "etf", f, rho * c * K / (K - 1) * (I - J / K), 0.0
    Ks = K * s
    if spec.bias == "none":
        if Ks >= 1:
            return "collapse-to-zero", 0.5, 0 * I, 0.0
        return "orthogonal-frame", Ks * (1 - Ks / 2), c * (1 - Ks) * I, 0.0
    if spec.bias == "free":
        if Ks >= 1:
            return "collapse-to-zero", (K - 1) / (2 * K), 0 * I, 1 / K
        return "etf", (K - 1) * s * (1 - Ks / 2), c * (1 - Ks) * (I - J / K), 1 / K
    if Ks >= 1:
        return "collapse-to-zero", 0.5 - 1 / (2 * K * (1 + lb)), 0 * I, 1 / (K * (1 + lb))
    if lb <= Ks / (1 - Ks):
        f = (K - 1) * s * (1 - Ks / 2) + lb / (2 * K * (1 + lb))
        return "etf", f, c * (1 - Ks) * (I - J / K), 1 / (K * (1 + lb))
    f = Ks * (1 - Ks / 2) - K * s**2 / (2 * lb)
    return "bias-dominated", f, c * ((1 - Ks) * I - (Ks / lb) * J / K), s / lb


VARIANTS = [  # (loss, bias, lambda_b, lambda scale) -- scale 1 nontrivial, 40 above the threshold
    ("ce", "none", 0.0, 1),
    ("ce", "free", 0.0, 1),
    ("ce", "regularized", 0.1, 1),
    ("mse", "none", 0.0, 1),
    ("mse", "free", 0.0, 1),
    ("mse", "regularized", 0.01, 1),
    ("mse", "regularized", 0.5, 1),
    ("ce", "none", 0.0, 40),
    ("ce", "free", 0.0, 40),
    ("mse", "none", 0.0, 40),
    ("mse", "free", 0.0, 40),
    ("mse", "regularized", 0.3, 40),
]


def _spec(loss, bias, lb, scale, K=3, n=2, d=None):
    d = K + 1 if d is None else d
    return ufm.UFMSpec(
        K=K, n=n, d=d, loss=loss, bias=bias, lambda_W=scale * LW, lambda_H=scale * LH, lambda_b=lb
    )


# -- frames --------------------------------------------------------------------------------------


@pytest.mark.parametrize("K", [2, 3, 5])
def test_simplex_etf_and_orthogonal_frame(K):
    for d in (K - 1, K, K + 2):
        M = np.asarray(ufm.simplex_etf(K, d))
        assert M.shape == (K, d)
        np.testing.assert_allclose(M @ M.T, K / (K - 1) * (np.eye(K) - 1 / K), atol=1e-14)
        np.testing.assert_allclose(M.sum(0), 0, atol=1e-14)
        assert int(ufm.systems.ufm.rank_of(M)) == K - 1
    assert ufm.simplex_etf(K, K, dtype="float32").dtype == jnp.float32
    with pytest.raises(ValueError, match=rf"d={K - 2}"):
        ufm.simplex_etf(K, K - 2)
    for d in (K, K + 2):
        O = np.asarray(ufm.orthogonal_frame(K, d))
        np.testing.assert_allclose(O @ O.T, np.eye(K), atol=0)
    with pytest.raises(ValueError, match=rf"d={K - 1}"):
        ufm.orthogonal_frame(K, K - 1)


# -- closed forms --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw, expected",
    [
        (dict(loss="ce"), 0.1836919957),
        (dict(loss="mse"), 0.0437213595),
        (dict(loss="mse", bias="free"), 0.0327910197),
        (dict(loss="mse", bias="regularized", lambda_b=0.01), 0.0340286434),
    ],
)
def test_theory_md_examples(kw, expected):
    spec = ufm.UFMSpec(K=4, n=5, d=4, lambda_W=5e-3, lambda_H=5e-3, **kw)
    opt = ufm.optimum(spec)
    assert abs(ufm.optimal_value(spec) - expected) < 6e-11
    assert abs(opt.value - expected) < 6e-11
    assert abs(float(_loss(spec, opt.params)) - expected) < 6e-11


def test_ce_closed_form_matches_scalar_minimisation():
    rng = np.random.default_rng(0)
    for _ in range(25):
        K = int(rng.integers(2, 12))
        s = float(np.exp(rng.uniform(np.log(1e-4), np.log(1.5 / K))))
        phi = lambda r: np.log1p((K - 1) * np.exp(-r * K / (K - 1))) + K * s * r  # noqa: E731
        res = so.minimize_scalar(
            phi, bounds=(0.0, 60.0), method="bounded", options=dict(xatol=1e-12)
        )
        spec = ufm.UFMSpec(K=K, n=1, d=K, lambda_W=s, lambda_H=s)  # s = sqrt(1 * s * s)
        assert abs(ufm.optimal_value(spec) - min(res.fun, phi(0.0))) < 1e-10
        assert (
            abs(
                float(ufm.systems.ufm.ce_optimal_rho(K, s)) - (res.x if res.fun < phi(0.0) else 0.0)
            )
            < 1e-5
        )
    # vmappable over s
    ss = jnp.array([1e-3, 0.1, 0.5])
    np.testing.assert_allclose(
        jax.vmap(lambda s: ufm.systems.ufm.ce_optimal_rho(3, s))(ss),
        [float(ufm.systems.ufm.ce_optimal_rho(3, float(s))) for s in ss],
        rtol=1e-14,
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_optimum_structure(variant):
    spec = _spec(*variant)
    regime, f, gram, b = _expected(spec)
    opt = ufm.optimum(spec)
    W, H = np.asarray(opt.params.W), np.asarray(opt.params.H)
    assert opt.regime == regime
    assert W.shape == (spec.K, spec.d) and H.shape == (spec.d, spec.N)
    assert abs(opt.value - f) < 1e-14 and abs(ufm.optimal_value(spec) - f) < 1e-14
    assert abs(float(_loss(spec, opt.params)) - f) < 1e-14
    assert _gnorm(spec, opt.params) <= 1e-10
    np.testing.assert_allclose(W @ W.T, gram, atol=1e-13)
    np.testing.assert_allclose(opt.gram, gram, atol=1e-13)
    np.testing.assert_allclose(np.sum(W**2, 1), np.diag(gram).mean(), atol=1e-13)
    assert abs(opt.w_norm_sq - np.diag(gram).mean()) < 1e-13
    a = math.sqrt(spec.lambda_W / (spec.n * spec.lambda_H))
    np.testing.assert_allclose(H, a * np.repeat(W.T, spec.n, axis=1), atol=1e-14)
    assert opt.rank == int(ufm.systems.ufm.rank_of(W)) == int(ufm.systems.ufm.rank_of(H))
    if spec.has_bias:
        np.testing.assert_allclose(opt.params.b, b, atol=1e-15)
    else:
        assert opt.params.b is None
    assert opt.bias == pytest.approx(b, abs=1e-15)
    if spec.loss == "ce":
        assert opt.rho == pytest.approx(
            float(ufm.systems.ufm.ce_optimal_rho(spec.K, spec.s)), rel=1e-14
        )
        Z = np.asarray(ufm.systems.ufm.logits(opt.params))
        assert Z[0, 0] == pytest.approx(opt.rho, abs=1e-13)  # true-class logit is rho*
    else:
        assert opt.scale == pytest.approx(max(1 - spec.K * spec.s, 0.0), abs=1e-15)
    cert = _certificate(spec, opt.params)
    assert float(cert.gap) <= 1e-12
    if regime != "collapse-to-zero":
        assert abs(float(cert.gap)) <= 1e-12  # active directions: sigma_1(G) = sqrt(lW lH)


@pytest.mark.parametrize(
    "variant", [v for v in VARIANTS if v[3] == 1 and v[:2] != ("ce", "regularized")]
)
def test_closed_form_is_what_a_solver_finds(variant):
    # d = K: no spurious local minima (Shen & Gu 2024), so a random start reaches f*.
    spec = _spec(*variant, d=3)
    p = _solve(spec, seed=1)
    assert _gnorm(spec, p) < 1e-10
    assert abs(float(_loss(spec, p)) - ufm.optimal_value(spec)) < 1e-12


def test_optimum_errors_dtype_and_traced_lambdas():
    with pytest.raises(ValueError, match="d=2"):
        ufm.optimum(ufm.UFMSpec(K=4, n=2, d=2, loss="ce"))
    with pytest.raises(ValueError, match="d=3"):
        ufm.optimal_value(ufm.UFMSpec(K=4, n=2, d=3, loss="mse"))
    # regularised MSE bias: rank K - 1 below the threshold, rank K above it
    below = ufm.UFMSpec(K=4, n=2, d=3, loss="mse", bias="regularized", lambda_b=0.01)
    assert ufm.optimum(below).regime == "etf"
    with pytest.raises(ValueError, match="d=3"):
        ufm.optimum(below.replace(lambda_b=1.0))
    # collapse to zero needs no dimension
    assert ufm.optimum(ufm.UFMSpec(K=4, n=2, d=1, loss="ce", lambda_W=1.0, lambda_H=1.0)).rank == 0
    with pytest.raises(ufm.SpecError, match="lambda_W"):
        ufm.optimum(ufm.UFMSpec(K=3, n=2, d=3, lambda_W=0.0))
    spec32 = ufm.UFMSpec(K=3, n=2, d=4, loss="mse", bias="free", dtype="float32")
    p32 = ufm.optimum(spec32).params
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(p32))
    assert abs(float(_loss(spec32, p32)) - ufm.optimal_value(spec32)) < 1e-6

    c32 = ufm.certificate(spec32, p32)
    assert c32.gap.dtype == jnp.float32 and abs(float(c32.gap)) < 1e-6
    nc32 = ufm.negative_curvature_direction(spec32, p32)
    assert nc32.bound.dtype == jnp.float32 and nc32.direction.W.dtype == jnp.float32

    # certificate vmapped over a lambda (a pytree leaf of the spec): the bound is sqrt(lW lH)
    spec64 = spec32.replace(dtype="float64")
    p64 = ufm.optimum(spec64).params
    lws = jnp.array([1e-3, 0.02, 0.4])
    certs = jax.vmap(lambda lw: ufm.certificate(spec64.replace(lambda_W=lw), p64))(lws)
    lH = spec64.lambda_H
    np.testing.assert_allclose(certs.bound, np.sqrt(np.asarray(lws) * lH), rtol=1e-15)
    np.testing.assert_allclose(certs.sigma_1, math.sqrt(spec64.lambda_W * lH), rtol=1e-13)
    # traced lambdas: optimal_value under vmap equals the concrete values, nan where d is too small
    lbs = np.array([0.005, 0.05, 0.5, 5.0])
    base = ufm.UFMSpec(K=3, n=2, d=3, loss="mse", bias="regularized", lambda_b=1.0)
    got = jax.vmap(lambda lb: ufm.optimal_value(base.replace(lambda_b=lb)))(jnp.asarray(lbs))
    np.testing.assert_allclose(
        got, [ufm.optimal_value(base.replace(lambda_b=float(v))) for v in lbs], rtol=1e-14
    )
    small = base.replace(d=2)
    got = jax.vmap(lambda lb: ufm.optimal_value(small.replace(lambda_b=lb)))(jnp.asarray(lbs))
    thr = ufm.systems.ufm.mse_bias_threshold(small)
    assert np.array_equal(np.isnan(got), lbs > thr)
    scales = jnp.array([0.5, 1.0, 40.0])
    for loss, bias in [("ce", "free"), ("mse", "none"), ("mse", "free")]:
        sp = _spec(loss, bias, 0.0, 1)
        got = jax.vmap(lambda c: ufm.optimal_value(sp.replace(lambda_W=c * LW)))(scales)
        want = [ufm.optimal_value(sp.replace(lambda_W=float(c) * LW)) for c in scales]
        np.testing.assert_allclose(got, want, rtol=1e-14)


def test_mse_bias_threshold_is_the_phase_boundary():
    base = ufm.UFMSpec(K=4, n=5, d=4, loss="mse", bias="regularized", lambda_b=1.0)
    thr = ufm.systems.ufm.mse_bias_threshold(base)
    Ks = base.K * base.s
    assert thr == pytest.approx(Ks / (1 - Ks), rel=1e-15)
    lo, hi = (
        ufm.optimum(base.replace(lambda_b=thr * (1 - 1e-12))),
        ufm.optimum(base.replace(lambda_b=thr * (1 + 1e-12))),
    )
    assert (lo.regime, hi.regime) == ("etf", "bias-dominated")
    assert abs(lo.value - hi.value) < 1e-12 and abs(lo.bias - hi.bias) < 1e-11  # continuous
    np.testing.assert_allclose(lo.gram, hi.gram, atol=1e-10)
    # far above the threshold W W^T tends to the orthogonal frame; f* to the no-bias value
    far = ufm.optimum(base.replace(lambda_b=1e8))
    none = ufm.optimum(base.replace(bias="none", lambda_b=0.0))
    np.testing.assert_allclose(far.gram, none.gram, atol=1e-7)
    assert abs(far.value - none.value) < 1e-9
    assert ufm.systems.ufm.mse_bias_threshold(base.replace(lambda_W=1.0, lambda_H=1.0)) == math.inf


# -- certificate and negative curvature ------------------------------------------------------


def test_certificate_against_numpy_and_vmap():
    spec = _spec("ce", "free", 0.0, 1, K=3, n=2, d=4)
    rng = np.random.default_rng(3)
    W, H, b = rng.normal(size=(4, 3, 4)), rng.normal(size=(4, 4, 6)), rng.normal(size=(4, 3))
    batch = ufm.UFMParams(jnp.asarray(W), jnp.asarray(H), jnp.asarray(b))
    certs = jax.vmap(ufm.certificate, in_axes=(None, 0))(spec, batch)
    Y = np.repeat(np.eye(3), 2, axis=1)
    for i in range(4):
        Z = W[i] @ H[i] + b[i][:, None]
        P = np.exp(Z - Z.max(0)) / np.exp(Z - Z.max(0)).sum(0)
        sigma = np.linalg.svd((P - Y) / 6, compute_uv=False)[0]  # softmax - one-hot, over N
        assert float(certs.sigma_1[i]) == pytest.approx(sigma, rel=1e-12)
        assert float(certs.gap[i]) == pytest.approx(sigma - math.sqrt(LW * LH), rel=1e-12)
    p0 = jax.tree.map(lambda x: x[0], batch)
    assert float(certs.grad_norm[0]) == pytest.approx(_gnorm(spec, p0), rel=1e-12)
    assert float(ufm.certificate(spec, p0).gap) == pytest.approx(float(certs.gap[0]), rel=1e-13)


@pytest.mark.parametrize("mix", ["balanced", "optimal"])
def test_negative_curvature_rayleigh_quotient_is_the_bound(mix):
    # Along the direction Z moves only at second order, so d^T Hess d equals the bound at *any*
    # point with a common null vector of W and H^T (here: random padded points), critical or not.
    spec = _spec("mse", "regularized", 0.1, 1, K=3, n=2, d=4)
    rng = np.random.default_rng(0)
    batch = ufm.UFMParams(
        jnp.asarray(0.7 * rng.normal(size=(3, 3, 2))),
        jnp.asarray(0.7 * rng.normal(size=(3, 2, 6))),
        jnp.zeros((3, 3)),
    )
    batch = ufm.systems.ufm.pad_params(batch, 4)
    nc = jax.vmap(ufm.negative_curvature_direction, in_axes=(None, 0, None, None))(
        spec, batch, 1e-6, mix
    )
    assert bool(jnp.all(nc.found))
    assert not np.any(np.asarray(nc.direction.b))
    norms = jax.vmap(lambda d: _tree_dot(d, d))(nc.direction)
    np.testing.assert_allclose(norms, 1.0, atol=1e-14)
    rq = jax.vmap(lambda p, d: _tree_dot(d, _hvp(spec, p, d)))(batch, nc.direction)
    np.testing.assert_allclose(rq, nc.bound, atol=1e-12)
    assert bool(jnp.all(nc.bound < 0))
    loop = _neg_curv(spec, jax.tree.map(lambda x: x[1], batch), mix=mix)
    assert float(loop.bound) == pytest.approx(float(nc.bound[1]), abs=1e-15)
    bal = jax.vmap(ufm.negative_curvature_direction, in_axes=(None, 0))(spec, batch).bound
    assert bool(jnp.all(nc.bound <= bal + 1e-15))  # the optimal mix is never worse
    # the optimal mix is the bottom eigenvalue of [[lW, -sigma_1], [-sigma_1, lH]]
    sig = jax.vmap(ufm.certificate, in_axes=(None, 0))(spec, batch).sigma_1
    want = [np.linalg.eigvalsh([[LW, -s], [-s, LH]])[0] for s in np.asarray(sig)]
    if mix == "optimal":
        np.testing.assert_allclose(nc.bound, want, atol=1e-14)


def test_negative_curvature_at_optima():
    # full-rank optimum (MSE, no bias, d = K): no common null direction
    spec = _spec("mse", "none", 0.0, 1, d=3)
    assert not bool(_neg_curv(spec, ufm.optimum(spec).params).found)
    # rank K-1 optimum in d = K: the direction exists and is flat (a rotation), bound = 0
    spec = _spec("ce", "none", 0.0, 1, d=3)
    p = ufm.optimum(spec).params
    nc = _neg_curv(spec, p)
    assert bool(nc.found) and abs(float(nc.bound)) < 1e-12
    assert abs(float(_tree_dot(nc.direction, _hvp(spec, p, nc.direction)))) < 1e-12
    with pytest.raises(ValueError, match="mix"):
        ufm.negative_curvature_direction(spec, p, mix="best")


# -- zero modes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant, d",
    [
        (("ce", "none", 0.0, 1), 3),
        (("ce", "free", 0.0, 1), 3),
        (("ce", "free", 0.0, 1), 5),
        (("ce", "regularized", 0.1, 1), 4),
        (("mse", "none", 0.0, 1), 3),
        (("mse", "none", 0.0, 1), 5),
        (("mse", "free", 0.0, 1), 4),
        (("mse", "regularized", 0.01, 1), 3),
        (("mse", "regularized", 0.5, 1), 4),
        (("ce", "free", 0.0, 40), 3),
    ],
)
def test_zero_modes_at_global_minima(variant, d):
    spec = _spec(*variant, d=d)
    opt = ufm.optimum(spec)
    ev = np.linalg.eigvalsh(np.asarray(_dense_hessian(spec, opt.params)))
    count = ufm.zero_mode_count(spec, opt.rank)
    assert count == ufm.zero_mode_count(spec)
    zero = np.abs(ev) < 1e-10
    assert zero.sum() == count
    assert ev[~zero].min() > 1e-4  # all others clearly positive


def test_zero_mode_count_formula_and_helpers():
    spec = ufm.UFMSpec(K=4, n=2, d=6, loss="ce", bias="free")
    # orbit dimension of rank-r points under O(d): dim O(d) - dim O(d - r); +1 for the free CE bias
    assert [ufm.zero_mode_count(spec, r) for r in range(7)] == [1, 6, 10, 13, 15, 16, 16]
    assert ufm.zero_mode_count(spec.replace(loss="mse"), 3) == 12
    with pytest.raises(ValueError, match="rank"):
        ufm.zero_mode_count(spec, 7)
    assert ufm.saddle_dims(ufm.UFMSpec(K=4, n=2, d=4, loss="ce")) == (1, 2)
    assert ufm.saddle_dims(ufm.UFMSpec(K=4, n=2, d=4, loss="mse")) == (1, 2, 3)
    assert ufm.saddle_dims(ufm.UFMSpec(K=4, n=2, d=2, loss="mse")) == (1,)
    assert ufm.saddle_dims(ufm.UFMSpec(K=4, n=2, d=4, loss="ce", lambda_W=1.0, lambda_H=1.0)) == ()
    W = jnp.asarray(np.random.default_rng(0).normal(size=(5, 2)) @ np.ones((2, 4)))
    assert (
        int(ufm.systems.ufm.rank_of(W)) == 1
        and int(ufm.systems.ufm.rank_of(jnp.zeros((3, 3)))) == 0
    )
    batch = ufm.UFMParams(jnp.ones((2, 3, 1)), jnp.ones((2, 1, 6)), None)
    padded = ufm.systems.ufm.pad_params(batch, 4)
    assert padded.W.shape == (2, 3, 4) and padded.H.shape == (2, 4, 6)
    assert not np.any(np.asarray(padded.W[..., 1:])) and not np.any(np.asarray(padded.H[:, 1:]))
    with pytest.raises(ValueError, match="d=0"):
        ufm.systems.ufm.pad_params(batch, 0)


# -- planted saddles -------------------------------------------------------------------------------

SADDLES = [  # (loss, bias, lambda_b, K, d, d_small, equal lambdas); d' = 1, 2 share a compilation
    ("ce", "none", 0.0, 4, 4, 1, False),
    ("ce", "none", 0.0, 4, 4, 2, True),
    ("ce", "free", 0.0, 4, 5, 2, False),
    ("mse", "none", 0.0, 3, 3, 2, False),
    ("mse", "none", 0.0, 3, 3, 1, True),
    ("mse", "free", 0.0, 4, 4, 2, False),
    ("mse", "regularized", 0.01, 3, 3, 1, True),
    ("mse", "regularized", 0.5, 3, 3, 2, False),
]


@pytest.mark.parametrize("loss, bias, lb, K, d, d_small, equal", SADDLES)
def test_planted_saddles(loss, bias, lb, K, d, d_small, equal):
    lH = LW if equal else LH
    spec = ufm.UFMSpec(K=K, n=2, d=d, loss=loss, bias=bias, lambda_W=LW, lambda_H=lH, lambda_b=lb)
    assert d_small in ufm.saddle_dims(spec)
    padded = _solve(spec, d_small=d_small)
    W, H = np.asarray(padded.W), np.asarray(padded.H)
    small = ufm.UFMParams(jnp.asarray(W[:, :d_small]), jnp.asarray(H[:d_small]), padded.b)
    p = ufm.systems.ufm.planted_saddle(spec, d_small, small)
    np.testing.assert_array_equal(p.W, padded.W)
    assert p.W.shape == (K, d)
    f, fstar = float(_loss(spec, p)), ufm.optimal_value(spec)
    assert _gnorm(spec, p) <= 1e-9
    assert f > fstar + 1e-3
    cert = _certificate(spec, p)
    assert float(cert.gap) > 1e-3
    lam_min = np.linalg.eigvalsh(np.asarray(_dense_hessian(spec, p)))[0]
    bal = _neg_curv(spec, p)
    opt = _neg_curv(spec, p, mix="optimal")
    assert bool(bal.found) and bool(opt.found)
    assert lam_min < 0 and float(bal.bound) < 0
    assert lam_min <= float(opt.bound) + 1e-12 <= float(bal.bound) + 2e-12
    # observed: the optimal mix attains lambda_min; the balanced bound is tight iff lW = lH
    assert abs(lam_min - float(opt.bound)) < 1e-10
    if equal:
        assert abs(lam_min - float(bal.bound)) < 1e-10
    else:
        assert float(bal.bound) - lam_min > 1e-4


def test_planted_saddle_errors():
    spec = ufm.UFMSpec(K=4, n=2, d=4, loss="ce")
    with pytest.raises(ValueError, match="d_small=3"):
        ufm.systems.ufm.planted_saddle(spec, 3, ufm.optimum(spec.replace(d=3)).params)
    with pytest.raises(ValueError, match="shape"):
        ufm.systems.ufm.planted_saddle(spec, 2, ufm.UFMParams(jnp.ones((4, 1)), jnp.ones((1, 8))))
    with pytest.raises(ValueError, match="params_small.b"):
        ufm.systems.ufm.planted_saddle(
            spec, 1, ufm.UFMParams(jnp.ones((4, 1)), jnp.ones((1, 8)), jnp.ones(4))
        )
