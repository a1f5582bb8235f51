"""``lambda_pos_min`` (the smallest Hessian eigenvalue above the zero band: the curvature after
the symmetry zero modes) from the block-arrow and Lanczos methods, against dense ``eigh`` in
float64 at UFM minima and at a saddle (the origin ``W = H = 0``: the count below the band
includes its negative eigenvalues). The dense method's own ``lambda_pos_min`` is that same
minimum (test_imbalance.py checks it).

Block-arrow (bisection on exact inertia counts) must lie in ``[x, (1 + POS_MIN_RTOL) x]`` for the
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
from ufm.landscape.curvature import POS_MIN_RTOL, positive_min_by_inertia
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
