"""``lambda_pos_min`` (the smallest Hessian eigenvalue above the zero band: the curvature after
the symmetry zero modes) from the block-arrow and Lanczos methods, against dense ``eigh`` in
float64 at UFM minima and at a saddle (the origin ``W = H = 0``: the count below the band
includes its negative eigenvalues). The dense method's own ``lambda_pos_min`` is that same
minimum (test_imbalance.py checks it).

Block-arrow (bisection on exact inertia counts, or on the fast path safeguarded Newton on the
sorted eigenvalue of the Schur complement) must lie in ``[x, (1 + POS_MIN_RTOL) x]`` for the
dense value ``x``; Lanczos (smallest Ritz value above ``zero_tol``) must match to ``1e-8`` (these
tiny problems have fewer parameters than Krylov vectors). CE without bias has its answer at the
pole of the fast path, ``lambda_H``, closed by the interlacing bound; MSE with a free bias and
class sizes is checked on the generic autodiff structure (no pole: bisection alone).
Compilation dominates: one classification spec, the other on the structure directly.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ufm
from ufm.hessian.inertia import block_arrow_inertia
from ufm.hessian.structure import block_arrow
from ufm.landscape.curvature import (
    POS_MIN_RTOL,
    positive_min_by_inertia,
    positive_min_by_newton,
)
from ufm.systems.ufm import collapse_spectrum, imbalanced_optimum


def _dense_pos_min(spec, params, tol) -> float:
    ev = np.asarray(ufm.hessian.hessian_spectrum_dense(spec, params))
    return float(np.min(ev[ev >= tol]))


def test_pos_min_in_records_ce():
    spec = ufm.UFMSpec(K=3, n=2, d=3, loss="ce")
    p = ufm.optimum(spec).params
    origin = jax.tree_util.tree_map(jnp.zeros_like, p)
    both = jax.tree_util.tree_map(lambda x, y: jnp.stack([x, y]), p, origin)
    ba = ufm.classify_batch(spec, both, method="block_arrow", warn=False)
    assert list(ba["class"]) == ["global_min", "strict_saddle"]
    x = np.array([_dense_pos_min(spec, q, t) for q, t in zip((p, origin), ba["zero_tol_upper"])])
    assert np.all(x > 1e3 * ba["zero_tol"])
    assert x[0] == pytest.approx(float(spec.lambda_H), rel=1e-12)  # the fast path's pole
    # the records' closed-form reference (the collapse_spectrum analysis) is the dense value
    assert collapse_spectrum(spec).smallest_nonzero == pytest.approx(x[0], rel=1e-12)
    v = ba["lambda_pos_min"]
    assert np.all(v >= x * (1 - 1e-12)) and np.all(v <= x * (1 + POS_MIN_RTOL)), (v, x)
    lz = ufm.classify_batch(spec, both, method="lanczos", warn=False)
    assert list(lz["class"]) == ["global_min", "strict_saddle"]
    np.testing.assert_allclose(lz["lambda_pos_min"], x, rtol=1e-8)


def test_pos_min_imbalanced_mse_generic_structure():
    spec = ufm.UFMSpec(K=3, n=(4, 4, 1), d=3, loss="mse", bias="free")
    p = imbalanced_optimum(spec).params
    ev = np.asarray(ufm.hessian.hessian_spectrum_dense(spec, p))
    tol = 1e-8 * float(np.abs(ev).max())
    x = _dense_pos_min(spec, p, tol)
    assert x > 1e3 * tol
    g = block_arrow(spec, p, method="autodiff")
    cap = jnp.inf
    with jax.numpy_dtype_promotion("standard"):
        c0 = block_arrow_inertia(g, tol)
        v, ok = positive_min_by_inertia(
            g, lambda s: block_arrow_inertia(g, s), c0, tol, cap, jnp.asarray(10.0)
        )
    assert int(c0) == int(np.sum(ev < tol)) == 3  # the predicted zero modes
    assert bool(ok) and x * (1 - 1e-12) <= float(v) <= x * (1 + POS_MIN_RTOL), (float(v), x)


@pytest.mark.parametrize(
    "loss,bias,d", [("ce", "none", 3), ("ce", "free", 4), ("ce", "none", 2), ("mse", "free", 3)]
)
def test_pos_min_by_newton_on_the_fast_path(loss, bias, d):
    # safeguarded Newton on the sorted eigenvalue of S (curvature.positive_min_by_newton) against
    # eigh at random points (no class reduction to shortcut it), at the origin, and at a minimum
    # whose answer is the fast path's pole lambda_H (closed by the interlacing bound)
    spec = ufm.UFMSpec(K=3, n=5, d=d, loss=loss, bias=bias, lambda_W=5e-3, lambda_H=5e-3)
    points = [ufm.init_params(spec, jax.random.key(s), scale=sc) for s, sc in enumerate((0.3, 1.5))]
    points.append(jax.tree_util.tree_map(jnp.zeros_like, points[0]))
    if loss == "ce" and bias == "none" and d == 3:
        points.append(ufm.optimum(spec).params)
    for i, p in enumerate(points):
        ev = np.asarray(ufm.hessian.hessian_spectrum_dense(spec, p))
        g = block_arrow(spec, p, method="fast")
        cap = g.diag_min
        tol = jnp.minimum(1e-8 * float(np.abs(ev).max()), 0.5 * cap)
        x = _dense_pos_min(spec, p, float(tol))
        scale = jnp.asarray(float(np.abs(ev).max()))
        with jax.numpy_dtype_promotion("standard"):
            c0 = block_arrow_inertia(g, tol)
            for start in (jnp.nan, 0.9 * x, 5.0 * x):
                v, ok = positive_min_by_newton(g, c0, tol, cap, scale, jnp.asarray(start))
                assert int(c0) == int(np.sum(ev < float(tol))), i
                assert bool(ok), (i, start)
                # rounding of either side: of order eps ||Hess|| (here <= 1e-12 ||Hess||); an
                # answer within the shifts' margin below the pole is that pole's interlacing
                # bound (documented accuracy: the margin)
                low = x - 1e-12 * float(scale)
                margin = max(0.25 * POS_MIN_RTOL * float(cap), 4 * np.sqrt(2.0**-52) * float(scale))
                high = max(x * (1 + POS_MIN_RTOL), x + margin if x >= float(cap) - margin else 0)
                assert low <= float(v) <= high, (i, float(v), x)


@pytest.mark.parametrize("loss,d", [("ce", 4), ("ce", 3), ("ce", 2), ("mse", 3)])
def test_interlacing_bound_closed_form_matches_all_eigenvalues(loss, d):
    # UFMBlockArrow.diag_eigenvalue (lambda_H for most c at d >= K; MSE's shared D_i) against the
    # d N eigenvalues of blockdiag(D_i) computed one block at a time
    from ufm.landscape.curvature import _feature_block_eigenvalues, _interlacing_bound

    spec = ufm.UFMSpec(K=3, n=4, d=d, loss=loss, lambda_W=5e-3, lambda_H=5e-3)
    g = block_arrow(spec, ufm.init_params(spec, jax.random.key(0), scale=1.0), method="fast")
    every = np.asarray(_feature_block_eigenvalues(g))
    for c in range(0, d * spec.N + 2):
        want = every[c] if c < every.size else np.inf
        got = float(_interlacing_bound(g, jnp.asarray(c)))  # through the structure's hook
        assert got == pytest.approx(want, rel=1e-12, abs=1e-15), c
