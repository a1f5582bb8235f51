"""ufm.kernels.singular_values against numpy, and its memory (jax's CPU svd wants max(m, n)^2)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ufm
from ufm.kernels import singular_values


@pytest.mark.parametrize("shape", [(50, 3), (3, 50), (4, 4), (7, 1)])
def test_singular_values_match_numpy(shape):
    X = np.random.default_rng(sum(shape)).standard_normal(shape)
    X[:, 0] *= 1e-9  # a tiny singular value keeps its relative accuracy through the QR
    got = np.asarray(jax.jit(singular_values)(jnp.asarray(X)))
    want = np.linalg.svd(X, compute_uv=False)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15 * want[0])


def test_singular_values_need_no_square_workspace():
    """jax's CPU svd(compute_uv=False) of a 100010 x 10 matrix asks for an 80 GB workspace; the
    kernel and the UFM certificate at N = 10^5 compile to a few MB."""
    X = jax.ShapeDtypeStruct((100010, 10), jnp.float64)
    temp = jax.jit(singular_values).lower(X).compile().memory_analysis().temp_size_in_bytes
    assert temp < 50e6
    spec = ufm.UFMSpec(K=10, n=10000, d=10)
    p = ufm.UFMParams(
        jax.ShapeDtypeStruct((10, 10), jnp.float64), jax.ShapeDtypeStruct((10, spec.N), jnp.float64)
    )
    cert = ufm.certificate.lower(spec, p).compile().memory_analysis().temp_size_in_bytes
    assert cert < 500e6
    with pytest.raises(ValueError, match="matrix"):
        singular_values(jnp.ones(3))
