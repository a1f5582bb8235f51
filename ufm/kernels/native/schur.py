"""The sample sums of the UFM block-arrow Schur complement as one native call (``ufm_schur.cc``).

:func:`ufm_schur_sums` computes, for the cross-entropy UFM at a shift ``sigma``, the six sums
over the samples that make ``sum_i B_i C_i B_i^T``, ``C_i = (D_i - sigma I)^{-1}``, and
:func:`ufm_cinv_apply` applies the ``C_i`` to one vector per sample. The formulas are in
:mod:`ufm.systems.ufm.structure`, whose :meth:`~ufm.systems.ufm.structure.UFMBlockArrow.schur`
calls them (docs/theory.md section 3.8). Its XLA version is that method's ``lax.scan`` over
sample chunks; the two agree to rounding (``tests/kernels/test_native_schur.py``). Eight samples
share one SIMD vector, the inverses come from a vectorised Cholesky factorisation, the products
over the samples are register-blocked and the chunks are shared between the cores the process
may use (``UFM_NATIVE_THREADS`` caps the threads). Measured: ``python benchmarks/perf.py --parts
hessian`` (BENCHMARKS.md).

CPU only, float64 only (the block-arrow inertia is a float64 computation), ``K, d <= 64``;
under ``vmap`` it runs once per batch member. Its library (``"schur"`` in
:data:`ufm.kernels.native.build.LIBRARIES`) compiles on first use, apart from the optimiser's.
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from .build import load

__all__ = ["ufm_schur_sums", "ufm_cinv_apply", "schur_supports", "SCHUR_MAX_SIZE"]

#: Largest K and d the kernel takes (its per-sample work arrays hold 64 vectors).
SCHUR_MAX_SIZE = 64
_TARGET, _CINV = "ufm_schur_f64", "ufm_cinv_f64"


@functools.cache
def _register() -> bool:
    lib = load("schur")
    if lib is None:
        return False
    jax.ffi.register_ffi_target(_TARGET, jax.ffi.pycapsule(lib.UfmSchurF64), platform="cpu")
    jax.ffi.register_ffi_target(_CINV, jax.ffi.pycapsule(lib.UfmCinvF64), platform="cpu")
    return True


def _max_threads() -> int:
    """``UFM_NATIVE_THREADS`` (0: the cores the process may use), read here, at trace time: the
    kernel never calls getenv, which could race with a setenv while it runs asynchronously."""
    raw = os.environ.get("UFM_NATIVE_THREADS", "").strip()
    try:
        return max(int(raw), 0) if raw else 0
    except ValueError:
        raise ValueError(f"UFM_NATIVE_THREADS must be an integer >= 1, got {raw!r}") from None


def _scalars(shift, num_samples):
    f64 = jnp.float64
    return jnp.stack([jnp.asarray(shift, f64), jnp.asarray(1.0 / num_samples, f64)])


def schur_supports(K: int, d: int, dtype) -> bool:
    """Whether :func:`ufm_schur_sums` takes these sizes and dtype here (CPU backend, library
    available)."""
    return (
        np.dtype(dtype) == np.float64
        and 1 <= K <= SCHUR_MAX_SIZE
        and 1 <= d <= SCHUR_MAX_SIZE
        and jax.default_backend() == "cpu"
        and _register()
    )


def ufm_schur_sums(W, Hc, Gc, Pc, shift, num_samples: int):
    """The sample sums of ``sum_i B_i (D_i - sigma I)^{-1} B_i^T``, CE UFM.

    Args:
        W: ``(K, d)``; Hc, Gc, Pc: features, logit gradients (over ``N``) and softmax
            probabilities in zero-padded chunks ``(num_chunks, d or K, c)``, samples last.
        shift: ``lambda_H - sigma`` (a scalar, may be traced); num_samples: ``N``.

    Returns ``(T1, T2, T3, Wb1, Wb2, bb)`` with the shapes and index orders of the XLA scan
    in :mod:`ufm.systems.ufm.structure`: ``T1, T3 (nK, nd)`` on packed upper triangles,
    ``T2 (K d, d K)``, ``Wb1 (K K, d)``, ``Wb2 (K, K d)``, ``bb (K, K)``. The inverses are not
    stored (``d^2`` numbers per sample): :func:`ufm_cinv_apply` applies them.
    """
    K, d = W.shape
    nc, _, c = Hc.shape
    if not schur_supports(K, d, W.dtype):
        raise ValueError(f"ufm_schur_sums does not take K={K}, d={d}, dtype={W.dtype} here")
    f64 = jnp.float64
    nK, nd = K * (K + 1) // 2, d * (d + 1) // 2
    out = [
        jax.ShapeDtypeStruct(s, f64)
        for s in ((nK, nd), (K * d, d * K), (nK, nd), (K * K, d), (K, K * d), (K, K))
    ]
    call = jax.ffi.ffi_call(_TARGET, out, vmap_method="sequential")
    sums = call(W, Hc, Gc, Pc, _scalars(shift, num_samples), max_threads=np.int64(_max_threads()))
    return tuple(sums)


def ufm_cinv_apply(W, Pc, Yc, shift, num_samples: int):
    """``(D_i - sigma I)^{-1} y_i`` for every sample (CE UFM), ``Yc (num_chunks, d, c)`` chunked
    like ``Pc``; ``shift = lambda_H - sigma``. Each ``D_i`` is factored again (Cholesky): cheaper
    than storing the inverses."""
    K, d = W.shape
    if not schur_supports(K, d, W.dtype):
        raise ValueError(f"ufm_cinv_apply does not take K={K}, d={d}, dtype={W.dtype} here")
    call = jax.ffi.ffi_call(
        _CINV, jax.ShapeDtypeStruct(Yc.shape, jnp.float64), vmap_method="sequential"
    )
    return call(W, Pc, Yc, _scalars(shift, num_samples), max_threads=np.int64(_max_threads()))
