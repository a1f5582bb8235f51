"""Small matrix products written for XLA's CPU code generator.

Inside ``vmap`` over many seeds, ``A @ B`` with tiny matrices (``K = d = 4``) becomes a batched
``dot`` that XLA:CPU runs as one small library call per seed: call overhead, not arithmetic,
dominates. :func:`small_matmul` writes the product as a sum of ``s`` broadcast outer products when
the contracted dimension ``s`` is at most ``unroll_max``: plain elementwise multiply-adds that XLA
fuses into one vectorised loop over the whole batch (and into its consumers). Larger contractions
stay a ``dot``. The reference is ``A @ B`` (:func:`small_matmul_reference`); the two agree to
rounding (the summation order differs), which ``tests/kernels`` checks.

Measured (``benchmarks/seeds_throughput.py``; BENCHMARKS.md): for ``K = d = 4``, ``n = 5``, 2048
seeds of the UFM, unrolling ``Z = W H`` and ``W^T G`` gives about 1.3-1.5x more seed-steps per
second than batched dots; at ``K = d = 10`` the two are within noise, so the default threshold
keeps dots there.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["UNROLL_MAX", "small_matmul", "small_matmul_reference"]

#: Contracted dimensions up to this size are unrolled into broadcast multiply-adds.
UNROLL_MAX = 8


def small_matmul(A: jax.Array, B: jax.Array, unroll_max: int = UNROLL_MAX) -> jax.Array:
    """``A @ B`` for ``A (r, s)``, ``B (s, t)``; unrolled over ``s`` when ``s <= unroll_max``.

    Example:
        >>> import jax.numpy as jnp
        >>> A = jnp.arange(6.0).reshape(2, 3); B = jnp.arange(12.0).reshape(3, 4)
        >>> bool(jnp.array_equal(small_matmul(A, B), A @ B))
        True
    """
    if A.ndim != 2 or B.ndim != 2 or A.shape[1] != B.shape[0]:
        raise ValueError(f"small_matmul needs (r, s) @ (s, t), got {A.shape} @ {B.shape}")
    s = A.shape[1]
    if s > unroll_max:
        return A @ B
    out = A[:, 0, None] * B[None, 0, :]
    for a in range(1, s):
        out = out + A[:, a, None] * B[None, a, :]
    return out


def small_matmul_reference(A: jax.Array, B: jax.Array) -> jax.Array:
    """The plain product ``A @ B`` (reference of :func:`small_matmul`)."""
    return jnp.matmul(A, B)
