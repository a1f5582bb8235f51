"""Singular values of tall or wide matrices without an ``m x m`` workspace.

``jnp.linalg.svd(X, compute_uv=False)`` of an ``m x n`` matrix allocates an ``max(m, n)^2``
workspace on CPU (measured with jax 0.10: 80 GB for ``100010 x 10``, the ``[W; H^T]`` stack of a
UFM with ``N = 10^5``). :func:`singular_values` first reduces a matrix with ``m > n`` rows to its
``n x n`` triangular factor ``R`` (Householder QR, ``jnp.linalg.qr(mode="r")``: ``X = Q R`` with
orthonormal ``Q``, so ``X`` and ``R`` share their singular values; QR is backward stable, so the
accuracy is that of a direct SVD) and takes the SVD of ``R``; a wide matrix goes through its
transpose. Memory ``O(m n)``. NumPy equivalent: ``numpy.linalg.svd(X, compute_uv=False)``
(the reference of the test).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["singular_values"]


def singular_values(X) -> jax.Array:
    """Singular values of ``X (m, n)``, descending, ``min(m, n)`` of them.

    Example:
        >>> import jax.numpy as jnp
        >>> X = jnp.array([[3.0, 0.0], [0.0, 4.0], [0.0, 0.0]])
        >>> [float(s) for s in singular_values(X)]
        [4.0, 3.0]
    """
    X = jnp.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be a matrix, got shape {X.shape}")
    m, n = X.shape
    if m < n:
        X, m, n = X.T, n, m
    if m > n:
        X = jnp.linalg.qr(X, mode="r")
    return jnp.linalg.svd(X, compute_uv=False)
