"""The lambda_min search of ufm.hessian.block_arrow_spectrum at many random (non-critical) points
against dense eigh: the certified bracket [lambda_min_lower, lambda_min] (tangent roots above,
evaluated left points and chord roots below) always holds the true value, and the answer and the
counts do not depend on the Lanczos start or the class reduction."""

import jax
import numpy as np
import pytest

import ufm


@pytest.mark.parametrize("bias", ["none", "free"])
def test_bracket_holds_lambda_min_at_random_points(bias):
    spec = ufm.UFMSpec(
        K=3, n=8, d=3, loss="ce", bias=bias, lambda_W=1e-3, lambda_H=1e-3, dtype="float64"
    )
    variants = {
        "default": jax.jit(lambda p: ufm.hessian.block_arrow_spectrum(spec, p)),
        "Schur only": jax.jit(lambda p: ufm.hessian.block_arrow_spectrum(spec, p, reduce=False)),
        "Lanczos start": jax.jit(
            lambda p: ufm.hessian.block_arrow_spectrum(spec, p, reduce=False, num_matvecs=8)
        ),
    }
    dense = jax.jit(lambda p: ufm.hessian.hessian_dense(spec, p)[0])
    for seed, scale in enumerate((0.03, 0.1, 0.3, 0.7, 1.0, 2.0, 3.0, 5.0)):
        p = ufm.init_params(spec, jax.random.key(seed), scale=scale)
        ev = np.linalg.eigvalsh(np.asarray(dense(p)))
        for name, fn in variants.items():
            r = fn(p)
            tol = 1e-13 * float(r.scale)
            assert bool(r.converged), (seed, name)
            assert float(r.lambda_min_lower) <= ev[0] + tol, (seed, name)
            assert ev[0] <= float(r.lambda_min) + tol, (seed, name)
            assert abs(float(r.lambda_min) - ev[0]) <= 1e-10, (seed, name)
            zt = float(r.zero_tol)
            want = (int((ev < -zt).sum()), int(((ev >= -zt) & (ev < zt)).sum()))
            assert (int(r.n_neg), int(r.n_zero)) == want, (seed, name)


def test_num_matvecs_is_validated():
    spec = ufm.UFMSpec(K=3, n=2, d=3, loss="ce", lambda_W=1e-3, lambda_H=1e-3, dtype="float64")
    p = ufm.init_params(spec, jax.random.key(0))
    with pytest.raises(ValueError, match="num_matvecs"):
        ufm.hessian.block_arrow_spectrum(spec, p, num_matvecs=1)
    with pytest.raises(ValueError, match="num_matvecs"):
        ufm.hessian.block_arrow_spectrum(spec, p, num_matvecs=-2)
