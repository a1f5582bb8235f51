"""Class reduction of the block-arrow Hessian (ufm.hessian.reduction): exact at collapse, Weyl-
certified near it, never a wrong count.

Oracles: numpy ``eigvalsh`` of the dense autodiff Hessian at the point and at its class means;
the Schur-complement search without the reduction; the classifier without it.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ufm
import ufm.landscape.curvature as curvature
from ufm.hessian.reduction import (
    certified_count,
    class_reduction,
    reduced_count,
    reduced_eigenvalue,
    reduced_lambda_min,
)

BIASES = ("none", "free", "regularized")
SIZES = (3, (2, 4, 1))


def make_spec(loss, bias, n=3, K=3, d=4, dtype="float64", lambda_H=0.02):
    lb = 0.01 if bias == "regularized" else 0.0
    return ufm.UFMSpec(
        K=K,
        n=n,
        d=d,
        loss=loss,
        bias=bias,
        lambda_W=0.01,
        lambda_H=lambda_H,
        lambda_b=lb,
        dtype=dtype,
    )


def offsets(spec):
    return np.concatenate([[0], np.cumsum(spec.class_sizes)])


def collapsed_point(spec, seed, spread=0.0):
    """Random ``W, b`` and class-constant features, plus ``spread`` times Gaussian noise."""
    p = ufm.init_params(spec, jax.random.key(seed), scale=0.7)
    H = np.asarray(p.H, np.float64).copy()
    off = offsets(spec)
    for k in range(spec.K):
        H[:, off[k] : off[k + 1]] = H[:, off[k] : off[k] + 1]
    H = H + spread * np.random.default_rng(seed).standard_normal(H.shape)
    b = None if p.b is None else p.b + 0.3
    return ufm.UFMParams(p.W, jnp.asarray(H, p.W.dtype), b)


def class_means(spec, p):
    H = np.asarray(p.H)
    off = offsets(spec)
    means = [H[:, off[k] : off[k + 1]].mean(axis=1) for k in range(spec.K)]
    Hm = np.repeat(np.stack(means, axis=1), spec.class_sizes, axis=1)
    return p._replace(H=jnp.asarray(Hm, p.H.dtype))


dense_H = jax.jit(lambda spec, p: ufm.hessian.hessian_dense(spec, p)[0])


@jax.jit
def reduce_at(spec, p):
    return class_reduction(spec, p, ufm.hessian.block_arrow(spec, p).A)


def multiset(red):
    mult = np.repeat(np.asarray(red.multiplicity), np.asarray(red.block_eigs).shape[1])
    blocks = np.repeat(np.asarray(red.block_eigs).ravel(), mult)
    return np.sort(np.concatenate([np.asarray(red.eigs), blocks]))


@pytest.mark.parametrize("loss", ["ce", "mse"])
@pytest.mark.parametrize("bias", BIASES)
@pytest.mark.parametrize("n", SIZES)
def test_reduced_spectrum_is_the_dense_spectrum_at_collapse(loss, bias, n):
    spec = make_spec(loss, bias, n)
    p = collapsed_point(spec, 0)
    red = reduce_at(spec, p)
    ev = np.linalg.eigvalsh(np.asarray(dense_H(spec, p)))
    scale = np.abs(ev).max()
    np.testing.assert_allclose(multiset(red), ev, rtol=0, atol=1e-12 * scale)
    assert 0 < float(red.eps) < 1e-11 * scale  # rounding only
    assert float(reduced_lambda_min(red)) == pytest.approx(ev[0], abs=1e-12 * scale)
    for c in (0, 5, len(ev) - 1):
        assert float(reduced_eigenvalue(red, c)) == pytest.approx(ev[c], abs=1e-12 * scale)
    assert np.isinf(float(reduced_eigenvalue(red, len(ev))))
    # away from the eigenvalues every count is certified and exact
    mids = 0.5 * (ev[1:] + ev[:-1])[np.diff(ev) > 1e-6 * scale]
    for s in mids[:: max(1, len(mids) // 7)]:
        assert int(certified_count(red, s)) == int((ev < s).sum())


@pytest.mark.parametrize("loss", ["ce", "mse"])
@pytest.mark.parametrize("bias", ["none", "regularized"])
@pytest.mark.parametrize("spread", [1e-7, 1e-3, 0.3])
def test_weyl_radius_bounds_the_hessian_distance(loss, bias, spread):
    spec = make_spec(loss, bias, (2, 4, 1))
    p = collapsed_point(spec, 1, spread)
    red = reduce_at(spec, p)
    Hd, Hm = np.asarray(dense_H(spec, p)), np.asarray(dense_H(spec, class_means(spec, p)))
    dist = np.linalg.norm(Hd - Hm, 2)
    eps = float(red.eps)
    assert dist <= eps
    assert eps <= 1e3 * dist + 1e-10  # a bound, not a blank cheque
    ev = np.linalg.eigvalsh(Hd)
    assert np.max(np.abs(ev - multiset(red))) <= eps  # Weyl, index by index
    # a certified count is the true one, at any shift, eigenvalues included
    for s in np.concatenate([ev[::3], ev[::5] + 0.5 * eps, np.linspace(ev[0], ev[-1], 11)]):
        c = int(certified_count(red, s))
        assert c in (-1, int((ev < s).sum()))


def test_counts_at_the_threshold_are_never_guessed():
    """Shifts within eps of an eigenvalue of Hess' are undecided (-1), even at exact collapse."""
    spec = make_spec("ce", "none")
    red = reduce_at(spec, collapsed_point(spec, 2))
    ev = multiset(red)
    for s in ev[::4]:
        assert int(certified_count(red, s)) == -1
        assert int(certified_count(red, s + 0.5 * float(red.eps))) == -1
    s = 0.5 * (ev[0] + ev[1]) if ev[1] - ev[0] > 1e-6 else ev[0] - 1.0
    assert int(reduced_count(red, s)) == int(certified_count(red, s))


def test_non_finite_point_certifies_nothing():
    spec = make_spec("ce", "free")
    p = collapsed_point(spec, 3)
    bad = p._replace(H=p.H.at[1, 2].set(jnp.nan))
    red = reduce_at(spec, bad)
    assert np.isinf(float(red.eps))
    for s in (-1.0, 0.0, 1.0):
        assert int(certified_count(red, s)) == -1
    res = jax.jit(ufm.hessian.block_arrow_spectrum)(spec, bad)
    assert not bool(res.converged) or not np.isfinite(float(res.lambda_min))


def test_float32_certified_counts_are_true():
    spec32 = make_spec("ce", "regularized", dtype="float32")
    spec64 = make_spec("ce", "regularized")
    p = collapsed_point(spec64, 4)
    p32 = jax.tree_util.tree_map(lambda x: x.astype(jnp.float32), p)
    red = reduce_at(spec32, p32)
    assert red.eigs.dtype == jnp.float32
    ev = np.linalg.eigvalsh(np.asarray(dense_H(spec64, p)))
    decided = 0
    for s in np.linspace(ev[0] - 0.1, ev[-1] + 0.1, 41):
        c = int(certified_count(red, jnp.float32(s)))
        decided += c >= 0
        assert c in (-1, int((ev < s).sum()))
    assert decided > 20


spectrum = jax.jit(ufm.hessian.block_arrow_spectrum, static_argnames=("reduce",))


def closed_form_points(spec):
    opt = ufm.optimum(spec).params
    origin = jax.tree_util.tree_map(jnp.zeros_like, opt)
    return {"minimum": opt, "origin": origin}


@pytest.mark.parametrize("loss,bias", [("ce", "free"), ("mse", "regularized")])
def test_search_with_and_without_reduction_agree(loss, bias):
    spec = make_spec(loss, bias, n=5, K=3, d=3)
    pts = closed_form_points(spec)
    noise = 1e-9 * jax.random.normal(jax.random.key(5), pts["minimum"].H.shape)
    pts["near minimum"] = pts["minimum"]._replace(H=pts["minimum"].H + noise)
    for name, p in pts.items():
        a, b = spectrum(spec, p, reduce=True), spectrum(spec, p, reduce=False)
        ev = np.linalg.eigvalsh(np.asarray(dense_H(spec, p)))
        for r in (a, b):
            assert bool(r.converged), name
            tol = float(r.zero_tol)
            assert (int(r.n_neg), int(r.n_zero), int(r.n_pos)) == (
                int((ev < -tol).sum()),
                int(((ev >= -tol) & (ev < tol)).sum()),
                int((ev >= tol).sum()),
            ), name
            assert float(r.lambda_min_lower) <= ev[0] + 1e-13
            assert ev[0] <= float(r.lambda_min) + 1e-13
        if name != "near minimum":  # exactly collapsed: no Schur-complement evaluation at all
            assert int(a.num_iters) == 0, name
        assert int(a.num_iters) <= int(b.num_iters), name


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_classify_with_and_without_reduction_agree(loss, monkeypatch):
    # lambda_H = 0.03: the zero band's top at a non-critical point is lambda_H / 2, which must not
    # be the exact eigenvalue lambda_W of CE without bias (rows 1 u^T of W), where any count is
    # a matter of rounding
    spec = make_spec(loss, "none", n=6, K=3, d=3, lambda_H=0.03)
    pts = closed_form_points(spec)
    noise = 1e-10 * jax.random.normal(jax.random.key(6), pts["minimum"].H.shape)
    pts["near minimum"] = pts["minimum"]._replace(H=pts["minimum"].H + noise)
    if loss == "ce":  # an unstructured point: every count falls back to the Schur complement
        pts["random"] = ufm.init_params(spec, jax.random.key(7), scale=0.5)
    fields = ("code", "n_neg", "n_zero", "n_pos")
    got = {k: ufm.classify(spec, p, method="block_arrow") for k, p in pts.items()}
    jax.clear_caches()
    monkeypatch.setattr(curvature, "class_reduction", lambda *a: None)
    for name, p in pts.items():
        ref = ufm.classify(spec, p, method="block_arrow")
        for f in fields:
            assert int(getattr(got[name], f)) == int(getattr(ref, f)), (name, f)
        a, b = float(got[name].lambda_pos_min), float(ref.lambda_pos_min)
        assert a == pytest.approx(b, rel=2.1 * curvature.POS_MIN_RTOL), name
        ev = np.linalg.eigvalsh(np.asarray(dense_H(spec, p)))
        assert float(got[name].lambda_min) == pytest.approx(ev[0], abs=1e-10 * np.abs(ev).max())
    jax.clear_caches()
