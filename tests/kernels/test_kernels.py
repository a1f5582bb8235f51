"""Kernel layer: every fast path against its plain reference (float64, closed-form checks)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ufm
from ufm import kernels
from ufm.systems.ufm import structure as ufm_structure


@pytest.mark.parametrize("loss", ["ce", "mse"])
@pytest.mark.parametrize("bias", ["none", "free", "regularized"])
def test_fused_value_and_grad_equals_autodiff(loss, bias):
    spec = ufm.UFMSpec(
        K=4,
        n=3,
        d=5,
        loss=loss,
        bias=bias,
        lambda_W=3e-3,
        lambda_H=7e-3,
        lambda_b=(2e-3 if bias == "regularized" else 0.0),
    )
    p = ufm.init_params(spec, jax.random.key(0), scale=0.7)
    if p.b is not None:
        p = p._replace(b=jnp.linspace(-0.3, 0.4, 4))
    f, g = kernels.value_and_grad(spec, p)
    f0, g0 = kernels.value_and_grad(spec, p, plain=True)  # jax.value_and_grad(ufm.loss)
    np.testing.assert_allclose(f, f0, rtol=1e-13)
    for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(g0)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    assert kernels.has_fast_value_and_grad(spec)


def test_fused_kernel_falls_back_for_specs_it_does_not_know():
    """A UFM spec with an extra field away from its default (e.g. per-class sizes) gets the
    system's own objective, not the balanced formula."""

    @dataclasses.dataclass(frozen=True)
    class Weighted(ufm.UFMSpec):
        extra: float = 0.0

    p = ufm.init_params(ufm.UFMSpec(K=3, n=2, d=3), jax.random.key(1))
    plain = ufm.UFMSpec(K=3, n=2, d=3)
    default = Weighted(K=3, n=2, d=3)
    other = Weighted(K=3, n=2, d=3, extra=1.0)
    assert ufm_structure._fused_applies(plain) and ufm_structure._fused_applies(default)
    assert not ufm_structure._fused_applies(other)
    f, g = ufm_structure.ufm_fused_value_and_grad(other, p)
    f0, g0 = jax.value_and_grad(ufm_structure.ufm_loss, argnums=1)(other, p)
    assert float(f) == float(f0) and bool(jnp.array_equal(g.H, g0.H))


def test_small_matmul_equals_matmul():
    rng = np.random.default_rng(0)
    for s in (1, 4, 9):
        A, B = rng.standard_normal((3, s)), rng.standard_normal((s, 5))
        np.testing.assert_allclose(kernels.small_matmul(A, B), A @ B, rtol=1e-13, atol=1e-15)
    with pytest.raises(ValueError, match="small_matmul"):
        kernels.small_matmul(np.ones((2, 3)), np.ones((2, 3)))


def _spd_batch(d, c, cond, seed=0):
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((c, d, d)))
    ev = np.exp(rng.uniform(0.0, np.log(cond), (c, d)))
    A = np.einsum("cij,cj,ckj->cik", U, ev, U)
    return np.moveaxis(A, 0, -1), ev  # (d, d, c)


@pytest.mark.parametrize("d", [1, 3, 10])
def test_spd_inverse_equals_lapack_and_identity(d):
    A, _ = _spd_batch(d, 64, 1e3)
    C = jax.jit(kernels.spd_inverse_batched_last)(jnp.asarray(A))
    ref = kernels.spd_inverse_batched_last_reference(jnp.asarray(A))
    np.testing.assert_allclose(C, ref, rtol=1e-12, atol=1e-12 * float(np.max(np.abs(ref))))
    np.testing.assert_allclose(
        np.einsum("ijc,jkc->ikc", A, C), np.eye(d)[:, :, None] + 0 * A, atol=1e-12
    )
    assert np.array_equal(C, np.swapaxes(C, 0, 1))  # symmetric by construction


def test_spd_inverse_float32_and_ill_conditioned():
    A, _ = _spd_batch(6, 16, 1e6, seed=1)
    C64 = kernels.spd_inverse_batched_last(jnp.asarray(A))
    res = np.einsum("ijc,jkc->ikc", A, np.asarray(C64)) - np.eye(6)[:, :, None]
    assert np.max(np.abs(res)) < 1e-9  # ~ cond * eps
    C32 = kernels.spd_inverse_batched_last(jnp.asarray(A, jnp.float32))
    assert C32.dtype == jnp.float32
    with pytest.raises(ValueError, match="shape"):
        kernels.spd_inverse_batched_last(jnp.ones((3, 2, 4)))
