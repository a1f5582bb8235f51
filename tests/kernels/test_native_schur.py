"""The native sample sums of the UFM block-arrow Schur complement (ufm.kernels.native.schur)
against the XLA scan of UFMBlockArrow.schur: S(sigma) and (D_i - sigma I)^{-1} y_i to rounding for
every bias variant, K = d, d > K, d < K, sample counts that leave padded lanes and chunks, under
vmap, with one thread or several, and the cases where it must not run."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ufm
from ufm.kernels import native

pytestmark = pytest.mark.skipif(
    not native.available("schur"),
    reason=f"native kernels unavailable: {native.unavailable_reason('schur')}",
)


def _structure(K, n, d, bias, seed=1, scale=1.0, sample_chunk=256):
    lb = 1e-3 if bias == "regularized" else 0.0
    spec = ufm.UFMSpec(
        K=K,
        n=n,
        d=d,
        loss="ce",
        bias=bias,
        lambda_W=1e-3,
        lambda_H=1e-3,
        lambda_b=lb,
        dtype="float64",
    )
    p = ufm.init_params(spec, jax.random.key(seed), scale=scale)
    ba = ufm.hessian.block_arrow(spec, p, sample_chunk=sample_chunk)
    return spec, p, ba


def _both(ba, sigma, Y):
    out = {}
    for kernel in ("xla", "native"):
        S, C = ba.schur(jnp.asarray(sigma), kernel=kernel)
        out[kernel] = (np.asarray(S), np.asarray(ba.apply_cinv(C, Y)))
    return out


@pytest.mark.parametrize("bias", ["none", "free", "regularized"])
@pytest.mark.parametrize(
    "K,n,d,chunk",
    [
        (3, 5, 3, 256),  # N = 15: one chunk, padded lanes
        (4, 9, 17, 8),  # d > K, N = 36 in chunks of 8 (a padded chunk)
        (10, 13, 10, 64),  # K = d = 10, N = 130: full and padded chunks
        (7, 3, 2, 5),  # d < K, chunks of 5 (not a multiple of the 8 lanes)
    ],
)
def test_native_schur_equals_xla_scan(bias, K, n, d, chunk):
    spec, p, ba = _structure(K, n, d, bias, sample_chunk=chunk)
    Y = jax.random.normal(jax.random.key(4), (d, spec.N), jnp.float64)
    for sigma in (-1e-2, 0.5 * float(ba.diag_min)):
        r = _both(ba, sigma, Y)
        (Sx, Cx), (Sn, Cn) = r["xla"], r["native"]
        assert Sn.shape == Sx.shape == (ba.A.shape[0],) * 2
        np.testing.assert_allclose(Sn, Sx, rtol=1e-11, atol=1e-13 * np.abs(Sx).max())
        np.testing.assert_allclose(Cn, Cx, rtol=1e-10, atol=1e-12 * np.abs(Cx).max())
        assert np.allclose(Sn, Sn.T, rtol=0, atol=0)


def test_native_schur_under_jit_vmap_and_threads(monkeypatch):
    spec = ufm.UFMSpec(K=5, n=40, d=5, loss="ce", lambda_W=1e-3, lambda_H=1e-3, dtype="float64")
    pts = ufm.init_batch(spec, jax.random.key(0), 3, scale=1.0)

    def schur_of(p, kernel):
        ba = ufm.hessian.block_arrow(spec, p, sample_chunk=16)
        return ba.schur(jnp.asarray(-1e-3), kernel=kernel)[0]

    batched = jax.jit(jax.vmap(lambda p: schur_of(p, "native")))(pts)
    for i in range(3):
        one = jax.tree_util.tree_map(lambda x: x[i], pts)
        ref = np.asarray(jax.jit(lambda p: schur_of(p, "xla"))(one))
        np.testing.assert_allclose(np.asarray(batched[i]), ref, rtol=1e-11, atol=1e-14)
    # one thread against all (13 chunks shared between the threads): the same sums to rounding
    one = jax.tree_util.tree_map(lambda x: x[0], pts)
    many = np.asarray(schur_of(one, "native"))
    monkeypatch.setenv("UFM_NATIVE_THREADS", "1")
    single = np.asarray(schur_of(one, "native"))
    np.testing.assert_allclose(single, many, rtol=1e-12, atol=1e-15)


def test_spectrum_with_native_sums_matches_dense():
    # the default path of block_arrow_spectrum (native sums, no class reduction) against eigh
    spec = ufm.UFMSpec(
        K=4, n=12, d=4, loss="ce", bias="free", lambda_W=1e-3, lambda_H=1e-3, dtype="float64"
    )
    for seed, scale in ((0, 1.0), (1, 0.2), (2, 3.0)):
        p = ufm.init_params(spec, jax.random.key(seed), scale=scale)
        res = jax.jit(lambda p: ufm.hessian.block_arrow_spectrum(spec, p, reduce=False))(p)
        ev = np.linalg.eigvalsh(np.asarray(ufm.hessian.hessian_dense(spec, p)[0]))
        assert bool(res.converged)
        assert abs(float(res.lambda_min) - ev[0]) < 1e-10
        assert int(res.n_neg) == int((ev < -float(res.zero_tol)).sum())


def test_native_schur_refuses_what_it_does_not_take():
    spec = ufm.UFMSpec(K=3, n=4, d=3, loss="ce", lambda_W=1e-3, lambda_H=1e-3, dtype="float32")
    p = ufm.init_params(spec, jax.random.key(0))
    ba = ufm.hessian.block_arrow(spec, p)
    with pytest.raises(ValueError, match="native Schur sums do not apply"):
        ba.schur(jnp.asarray(-1e-3, jnp.float32), kernel="native")
    S, _ = ba.schur(jnp.asarray(-1e-3, jnp.float32))  # auto: the XLA scan in float32
    assert S.dtype == jnp.float32
    with pytest.raises(ValueError, match="kernel must be"):
        ba.schur(-1e-3, kernel="fast")
    with pytest.raises(ValueError, match="does not take"):
        native.ufm_schur_sums(jnp.zeros((3, 3), jnp.float32), *(jnp.zeros((1, 3, 4)),) * 3, 1.0, 4)


def test_switched_off_block_arrow_uses_the_xla_scan(tmp_path):
    code = (
        "import jax, jax.numpy as jnp, ufm\n"
        "jax.config.update('jax_enable_x64', True)\n"
        "spec = ufm.UFMSpec(K=3, n=4, d=3, loss='ce', lambda_W=1e-3, lambda_H=1e-3,"
        " dtype='float64')\n"
        "p = ufm.init_params(spec, jax.random.key(0))\n"
        "r = ufm.hessian.block_arrow_spectrum(spec, p, reduce=False)\n"
        "print(bool(r.converged))\n"
        "try:\n    ufm.hessian.block_arrow(spec, p).schur(-1e-3, kernel='native')\n"
        "except ValueError as e:\n    print(e)"
    )
    env = {**os.environ, "UFM_NATIVE_CACHE": str(tmp_path), "UFM_NATIVE_KERNELS": "off"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "True"
    assert "do not apply here" in lines[1] and "switched off by UFM_NATIVE_KERNELS" in lines[1]


def test_mse_has_no_native_schur_and_says_so():
    spec = ufm.UFMSpec(K=3, n=4, d=3, loss="mse", lambda_W=1e-3, lambda_H=1e-3, dtype="float64")
    ba = ufm.hessian.block_arrow(spec, ufm.init_params(spec, jax.random.key(0)))
    with pytest.raises(ValueError, match="for cross-entropy"):
        ba.schur(-1e-3, kernel="native")
    with pytest.raises(ValueError, match="kernel must be"):
        ba.schur(-1e-3, kernel="fast")
    S_auto, _ = ba.schur(-1e-3)
    S_xla, _ = ba.schur(-1e-3, kernel="xla")
    np.testing.assert_array_equal(np.asarray(S_auto), np.asarray(S_xla))
