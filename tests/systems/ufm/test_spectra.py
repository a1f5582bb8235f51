"""The closed-form Hessian spectrum at the collapsed MSE optimum against three Hessian routines,
at end points of gradient descent from several seeds (rotated copies of the optimum)."""

import jax
import numpy as np
import pytest

import ufm
from ufm.systems.ufm import collapse_spectrum

CASES = [(3, 2, 3, 5e-3, 5e-3), (4, 2, 6, 1e-2, 2e-3)]


@pytest.mark.parametrize("K,n,d,lw,lh", CASES)
def test_closed_form_spectrum_matches_dense_lanczos_and_block_arrow(K, n, d, lw, lh):
    spec = ufm.UFMSpec(K=K, n=n, d=d, loss="mse", lambda_W=lw, lambda_H=lh)
    cs = collapse_spectrum(spec)
    assert int(cs.multiplicities.sum()) == spec.num_params
    assert cs.zero_modes == ufm.zero_mode_count(spec)
    p0 = ufm.init_batch(spec, jax.random.key(0), num_seeds=2)
    res = ufm.optimize(spec, p0, ufm.OptimizerSettings(learning_rate=1.0, max_steps=5000, tol=1e-9))
    pol = ufm.polish(spec, res.params)
    full = cs.full()
    for s in range(2):
        p = jax.tree_util.tree_map(lambda x: x[s], pol.params)
        ev = np.sort(np.asarray(ufm.hessian.hessian_spectrum_dense(spec, p)))
        np.testing.assert_allclose(ev, full, atol=1e-9)
        lz = ufm.hessian.lanczos_extremes(spec, p, jax.random.key(s), num_matvecs=spec.num_params)
        np.testing.assert_allclose(float(lz.lambda_max), full[-1], rtol=1e-9)
        ba = ufm.hessian.block_arrow(spec, p)
        # eigenvalues below sigma, for sigma just above 0 and just below the smallest non-zero one
        # (and below lambda_H, where the block-arrow shift is valid)
        top = min(cs.smallest_nonzero, lh) * (1 - 1e-6)
        for sigma in (1e-9, top):
            count = int(ufm.hessian.block_arrow_inertia(ba, sigma))
            assert count == int(np.sum(full < sigma)), (sigma, count)


def test_smallest_nonzero_and_errors():
    spec = ufm.UFMSpec(K=3, n=2, d=3, loss="mse", lambda_W=5e-3, lambda_H=5e-3)
    cs = collapse_spectrum(spec)
    assert cs.smallest_nonzero == pytest.approx(cs.values[cs.values > 0].min())
    with pytest.raises(ValueError, match="mse"):
        collapse_spectrum(spec.replace(loss="ce"))
    with pytest.raises(ValueError, match="origin"):
        collapse_spectrum(spec.replace(lambda_W=0.5, lambda_H=0.5))
