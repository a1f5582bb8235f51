"""Eigenvalues of symmetric matrices without the eigenvectors (LAPACK ``syevd``, job ``N``).

``jnp.linalg.eigvalsh`` computes the eigenvectors as well and drops them: on CPU, jax lowers every
symmetric eigenproblem to LAPACK ``?syevd`` with ``jobz = 'V'``. The landscape classification
needs the eigenvalues only (inertia and ``lambda_min`` of a dense float64 Hessian, one per point),
and the divide-and-conquer back-transformation of the vectors is most of the work at these sizes:
on the 2-core development machine (Zen 3, float64, 2048 Hessians of ``96 x 96`` from the
``d = K`` sweep, one at a time in ``lax.map``; ``python benchmarks/perf.py --parts dense``,
BENCHMARKS.md) ``jnp.linalg.eigvalsh`` took 0.88-0.93 ms per matrix and :func:`eigvalsh`
0.31-0.33 ms.

:func:`eigvalsh` calls the same LAPACK routine that jaxlib registers for ``eigh`` on CPU
(the XLA FFI target ``lapack_{s,d}syevd_ffi``) with ``mode = 'N'`` through the public
:func:`jax.ffi.ffi_call`, and ``jnp.linalg.eigvalsh`` on every other platform
(:func:`jax.lax.platform_dependent`) and for complex or other dtypes. The target is probed once
per process on a 3 x 3 matrix (and compared with ``jnp.linalg.eigvalsh``): a jaxlib that lacks it
or answers differently gets the plain routine. Derivatives (``custom_jvp``): ``d lambda_i = v_i^T
dA v_i`` with the vectors of ``jnp.linalg.eigh`` (distinct eigenvalues, as for jax's own rule).
Reference: ``jnp.linalg.eigvalsh`` (tests/kernels/test_eigvals.py: equal to ``1e-12`` relative in
float64, batched, under ``vmap``, ``lax.map`` and ``jit``; a matrix with a non-finite entry
or a LAPACK failure gives all ``nan``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["eigvalsh", "eigvalsh_reference", "lapack_eigvals_available"]

_TARGETS = {np.dtype(np.float32): "lapack_ssyevd_ffi", np.dtype(np.float64): "lapack_dsyevd_ffi"}


def eigvalsh_reference(a: jax.Array) -> jax.Array:
    """``jnp.linalg.eigvalsh(a)`` (the reference of :func:`eigvalsh`)."""
    return jnp.linalg.eigvalsh(a)


def _lapack_values(a):
    """Eigenvalues (ascending) of the symmetrised ``a`` by LAPACK ``?syevd`` with ``jobz = 'N'``;
    ``nan`` for a matrix with a non-finite entry or where LAPACK reports a failure."""
    a = 0.5 * (a + jnp.swapaxes(a, -1, -2))
    call = jax.ffi.ffi_call(
        _TARGETS[np.dtype(a.dtype)],
        (
            jax.ShapeDtypeStruct(a.shape, a.dtype),  # the overwritten input (no vectors)
            jax.ShapeDtypeStruct(a.shape[:-1], a.dtype),
            jax.ShapeDtypeStruct(a.shape[:-2], jnp.int32),
        ),
        input_output_aliases={0: 0},
        vmap_method="broadcast_all",  # the handler loops over leading batch axes itself
    )
    _, w, info = call(a, mode=np.uint8(ord("N")), uplo=np.uint8(ord("L")))
    ok = (info == 0) & jnp.all(jnp.isfinite(a), axis=(-2, -1))
    return jnp.where(ok[..., None], w, jnp.nan)


@functools.cache
def lapack_eigvals_available() -> bool:
    """Whether this jaxlib's CPU LAPACK ``syevd`` target answers a values-only call correctly
    (probed once per process on a 3 x 3 float32 matrix against ``jnp.linalg.eigvalsh``).

    The reference goes first: lowering jax's own ``eigh`` loads jaxlib's LAPACK function table
    (``jaxlib.lapack.prepare_lapack_call``), which the FFI target needs (without it the call
    crashes the process). Every trace of :func:`eigvalsh` runs this probe first, so the table is
    loaded in any process that lowers or runs the fast path (a persistent-cache hit included).
    """
    try:
        cpu = jax.devices("cpu")[0]
    except RuntimeError:
        return False
    a = np.array([[2.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 4.0]], np.float32)
    try:  # eagerly, also when first called while tracing (a jit or lax.map around eigvalsh)
        with jax.ensure_compile_time_eval(), jax.default_device(cpu):
            ref = np.asarray(jax.jit(jnp.linalg.eigvalsh)(a))  # loads the LAPACK table
            got = np.asarray(jax.jit(lambda x: _lapack_values(x))(a))  # a fresh trace
    except Exception:  # noqa: BLE001 - any failure means: use the plain routine
        return False
    return bool(np.allclose(got, ref, rtol=1e-5, atol=1e-5))


@jax.custom_jvp
def _eigvalsh(a):
    if np.dtype(a.dtype) not in _TARGETS or not lapack_eigvals_available():
        return jnp.linalg.eigvalsh(a)
    return jax.lax.platform_dependent(a, cpu=_lapack_values, default=jnp.linalg.eigvalsh)


@_eigvalsh.defjvp
def _eigvalsh_jvp(primals, tangents):
    (a,), (da,) = primals, tangents
    w, v = jnp.linalg.eigh(a)
    da = 0.5 * (da + jnp.swapaxes(da, -1, -2))
    return w, jnp.einsum("...ji,...jk,...ki->...i", v, da, v)


def eigvalsh(a: jax.Array) -> jax.Array:
    """Eigenvalues of the symmetric matrices ``a`` (``(..., n, n)``, symmetrised), ascending.

    Same result as ``jnp.linalg.eigvalsh`` (to rounding), without computing eigenvectors on CPU
    (LAPACK ``syevd`` job ``N``: about 2.8x faster at ``n = 96``, module docstring). Use it where
    only the spectrum is needed (Hessian inertia, ``lambda_min``); jit-, vmap- and
    differentiable.

    Example:
        >>> import jax.numpy as jnp
        >>> [round(float(x), 6) for x in eigvalsh(jnp.array([[2.0, 1.0], [1.0, 2.0]]))]
        [1.0, 3.0]
    """
    a = jnp.asarray(a)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"eigvalsh needs square matrices (..., n, n), got shape {a.shape}")
    return _eigvalsh(a)
