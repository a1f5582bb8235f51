"""Functions of a symmetric matrix, ``F(A) = U f(Lambda) U^T``, with gradients safe at repeated
eigenvalues.

Differentiating ``jnp.linalg.eigh`` directly divides by eigenvalue gaps ``lambda_i - lambda_j``,
which gives ``inf``/``NaN`` gradients as soon as two eigenvalues coincide (a rank-deficient batch
covariance has many equal zero eigenvalues). A spectral function ``F`` is nevertheless smooth at
repeated eigenvalues when ``f`` is, and its derivative is the Daleckii-Krein formula

    dF = U (L o (U^T dA U)) U^T,
    L_ij = (f(lambda_i) - f(lambda_j)) / (lambda_i - lambda_j)   (lambda_i != lambda_j),
    L_ij = f'(lambda_i)                                          (lambda_i == lambda_j),

(Daleckii & Krein 1965; see Higham, "Functions of Matrices", 2008, Thm. 3.11). We use it as the
custom JVP; the divided difference is replaced by ``(f'(lambda_i) + f'(lambda_j)) / 2`` when the gap
is below ``sqrt(machine eps) * max|lambda|`` (error O(gap^2), below the cancellation error of the
divided difference there). Reverse mode follows by JAX's transposition of the linear JVP.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp


def _sym(a):
    return 0.5 * (a + a.T)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def sym_matrix_function(a, fn: Callable, *params):
    """``U fn(Lambda, *params) U^T`` for a symmetric ``a = U Lambda U^T`` (``a`` is symmetrised).

    ``fn(lam, *params)`` must be elementwise in the eigenvalue vector ``lam`` and differentiable;
    ``fn`` is static (a hashable Python callable: a module-level function such as ``jnp.sqrt``),
    ``params`` are arrays (traced under ``jit``, so changing them does not recompile). The
    gradient uses the Daleckii-Krein formula, finite at repeated eigenvalues; gradients with
    respect to ``params`` are supported too. NumPy equivalent:
    ``w, u = numpy.linalg.eigh(a); (u * fn(w, *params)) @ u.T``.

    >>> import jax.numpy as jnp
    >>> a = jnp.array([[2.0, 0.0], [0.0, 8.0]])
    >>> [round(float(v), 6) for v in jnp.diag(sym_matrix_function(a, jnp.sqrt))]
    [1.414214, 2.828427]
    """
    lam, u = jnp.linalg.eigh(_sym(a))
    return (u * fn(lam, *params)) @ u.T


def loewner_matrix(lam, f, df):
    """First divided differences ``L_ij`` of a function with values ``f`` and derivatives ``df``
    at the eigenvalues ``lam`` (secant off the diagonal, mean derivative for near-equal pairs)."""
    gap = lam[:, None] - lam[None, :]
    tol = jnp.sqrt(jnp.finfo(lam.dtype).eps) * jnp.max(jnp.abs(lam))
    close = jnp.abs(gap) <= tol
    secant = (f[:, None] - f[None, :]) / jnp.where(close, jnp.ones_like(gap), gap)
    return jnp.where(close, 0.5 * (df[:, None] + df[None, :]), secant)


@sym_matrix_function.defjvp
def _sym_matrix_function_jvp(fn, primals, tangents):
    a, *params = primals
    da, *dparams = tangents
    lam, u = jnp.linalg.eigh(_sym(a))
    f, df = jax.jvp(lambda x: fn(x, *params), (lam,), (jnp.ones_like(lam),))
    inner = loewner_matrix(lam, f, df) * (u.T @ _sym(da) @ u)
    if params:
        _, df_params = jax.jvp(lambda *q: fn(lam, *q), tuple(params), tuple(dparams))
        inner = inner + jnp.diag(df_params)
    return (u * f) @ u.T, u @ inner @ u.T
