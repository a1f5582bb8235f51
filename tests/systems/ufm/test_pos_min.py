"""``lambda_pos_min`` (the smallest Hessian eigenvalue above the zero band: the curvature after
the symmetry zero modes) from every Hessian method, against dense ``eigh`` in float64 at UFM CE
and MSE minima (balanced and imbalanced classes) and at the origin ``W = H = 0`` with the
optimal bias (a strict saddle: the count below the band includes its negative eigenvalues).

Block-arrow (bisection on exact inertia counts) must lie in ``[x, (1 + POS_MIN_RTOL) x]`` for the
dense value ``x``; Lanczos (smallest Ritz value above ``zero_tol``) must match to ``1e-8`` (these
tiny problems have fewer parameters than Krylov vectors). In the CE case the answer is the pole
of the fast path, ``lambda_H``, closed by the interlacing bound; the generic autodiff
structure (no pole) is checked by bisection alone.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ufm
from ufm.hessian.inertia import block_arrow_inertia
from ufm.hessian.structure import block_arrow
from ufm.landscape.curvature import POS_MIN_RTOL, positive_min_by_inertia
from ufm.systems.ufm import imbalanced_optimum

CASES = [
    ufm.UFMSpec(K=3, n=2, d=3, loss="ce"),
    ufm.UFMSpec(K=3, n=(4, 4, 1), d=3, loss="mse", bias="free"),
]


def _minimum_and_origin(spec):
    p = ufm.optimum(spec).params if spec.balanced else imbalanced_optimum(spec).params
    origin = p._replace(W=jnp.zeros_like(p.W), H=jnp.zeros_like(p.H))  # b kept: critical
    return p, jax.tree_util.tree_map(lambda x, y: jnp.stack([x, y]), p, origin)


@pytest.mark.parametrize("spec", CASES, ids=lambda s: f"{s.loss}-{s.bias}-n{s.n}")
def test_pos_min_every_method_agrees_with_dense(spec):
    p, both = _minimum_and_origin(spec)
    dense = ufm.classify_batch(spec, both, method="dense", warn=False)
    assert list(dense["class"]) == ["global_min", "strict_saddle"]
    x = dense["lambda_pos_min"]
    ev = np.asarray(ufm.hessian.hessian_spectrum_dense(spec, p))
    assert x[0] == pytest.approx(np.min(ev[ev >= dense["zero_tol"][0]]), rel=1e-12)
    assert np.all(x > 1e3 * dense["zero_tol"])
    ba = ufm.classify_batch(spec, both, method="block_arrow", warn=False)
    assert list(ba["class"]) == list(dense["class"])
    v = ba["lambda_pos_min"]
    assert np.all(v >= x * (1 - 1e-12)) and np.all(v <= x * (1 + POS_MIN_RTOL)), (v, x)
    lz = ufm.classify_batch(spec, both, method="lanczos", warn=False)
    np.testing.assert_allclose(lz["lambda_pos_min"], x, rtol=1e-8)
    if spec.balanced:  # CE: the answer is lambda_H, the pole of the fast path
        assert x[0] == pytest.approx(float(spec.lambda_H), rel=1e-12)
        return
    # the generic structure (LU per sample, no cap on the shift): bisection alone
    tol = float(dense["zero_tol"][0])
    g = block_arrow(spec, p, method="autodiff")
    with jax.numpy_dtype_promotion("standard"):
        c0 = block_arrow_inertia(g, tol)
        v, ok = positive_min_by_inertia(
            g, lambda s: block_arrow_inertia(g, s), c0, tol, jnp.inf, jnp.asarray(10.0)
        )
    assert bool(ok) and x[0] * (1 - 1e-12) <= float(v) <= x[0] * (1 + POS_MIN_RTOL)
