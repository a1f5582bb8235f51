"""ufm.kernels.eigvalsh (LAPACK syevd job N on CPU) against jnp.linalg.eigvalsh and NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ufm.kernels import eigvals as eigvals_mod
from ufm.kernels import eigvalsh, eigvalsh_reference


def _sym(rng, *shape):
    a = rng.normal(size=shape)
    return a + np.swapaxes(a, -1, -2)


def test_lapack_target_is_used_on_this_machine():
    # the fast path must actually be taken here (a silent fallback would make the other tests
    # compare jnp with itself), also when the first call is inside a trace (the probe then runs
    # eagerly)
    eigvals_mod.lapack_eigvals_available.cache_clear()
    fn = jax.jit(lambda x: jax.lax.map(eigvalsh, x))
    hlo = fn.lower(jnp.ones((3, 4, 4))).as_text().replace(" : ui8", "")
    assert "syevd_ffi" in hlo and "mode = 78" in hlo and "mode = 86" not in hlo, hlo[-2000:]
    assert eigvals_mod.lapack_eigvals_available()


@pytest.mark.parametrize("n", [1, 2, 7, 100])
def test_equals_reference_float64(n):
    a = _sym(np.random.default_rng(n), n, n)
    got = np.asarray(jax.jit(eigvalsh)(jnp.asarray(a)))
    ref = np.asarray(eigvalsh_reference(jnp.asarray(a)))
    scale = np.max(np.abs(ref))
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(got, np.linalg.eigvalsh(a), rtol=0, atol=1e-12 * scale)
    assert np.all(np.diff(got) >= 0)


def test_float32_and_asymmetric_input_is_symmetrised():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(6, 6)).astype(np.float32)  # not symmetric: both use (a + a^T) / 2
    got = np.asarray(eigvalsh(jnp.asarray(a)))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np.linalg.eigvalsh(0.5 * (a + a.T)), rtol=0, atol=1e-5)


def test_batched_vmap_and_map_agree():
    a = jnp.asarray(_sym(np.random.default_rng(1), 3, 5, 9, 9))
    ref = np.asarray(eigvalsh_reference(a))
    for got in (
        eigvalsh(a),
        jax.vmap(jax.vmap(eigvalsh))(a),
        jax.lax.map(lambda x: jax.lax.map(eigvalsh, x), a),
    ):
        np.testing.assert_allclose(np.asarray(got), ref, rtol=0, atol=1e-12 * np.abs(ref).max())


def test_nonfinite_input_gives_nan_not_garbage():
    a = np.eye(4)
    a[1, 2] = a[2, 1] = np.nan
    got = np.asarray(eigvalsh(jnp.asarray(a)))
    assert np.all(np.isnan(got))


def test_derivative_is_v_dA_v():
    a = jnp.asarray(_sym(np.random.default_rng(5), 5, 5))
    da = jnp.asarray(_sym(np.random.default_rng(6), 5, 5))
    _, t = jax.jvp(eigvalsh, (a,), (da,))
    _, t_ref = jax.jvp(jnp.linalg.eigvalsh, (a,), (da,))
    np.testing.assert_allclose(np.asarray(t), np.asarray(t_ref), rtol=1e-10, atol=1e-12)
    g = jax.grad(lambda x: eigvalsh(x)[0])(a)
    g_ref = jax.grad(lambda x: jnp.linalg.eigvalsh(x)[0])(a)
    np.testing.assert_allclose(np.asarray(g), np.asarray(g_ref), rtol=1e-10, atol=1e-12)


def test_fallback_when_target_missing(monkeypatch):
    missing = {np.dtype(t): "no_such_ffi_target" for t in (np.float32, np.float64)}
    monkeypatch.setattr(eigvals_mod, "_TARGETS", missing)
    eigvals_mod.lapack_eigvals_available.cache_clear()
    try:
        assert not eigvals_mod.lapack_eigvals_available()
        a = jnp.asarray(_sym(np.random.default_rng(2), 4, 4))
        hlo = jax.jit(lambda x: eigvalsh(x)).lower(a).as_text()  # a fresh trace
        assert "no_such_ffi_target" not in hlo
        hlo = hlo.replace(" : ui8", "")
        assert "mode = 86" in hlo and "mode = 78" not in hlo  # jax's own eigh (job 'V')
        np.testing.assert_allclose(np.asarray(eigvalsh(a)), np.linalg.eigvalsh(np.asarray(a)))
    finally:
        eigvals_mod.lapack_eigvals_available.cache_clear()


def test_rejects_non_square():
    with pytest.raises(ValueError, match="square"):
        eigvalsh(jnp.ones((3, 4)))
