"""Extreme Hessian eigenvalues by Lanczos on Hessian-vector products (any registered objective).

:func:`lanczos_extremes`: both ends of the spectrum from one Lanczos run on Hessian-vector
products (``jax.jvp`` of ``jax.grad``), fixed Krylov depth, full reorthogonalisation (classical
Gram-Schmidt applied twice), breakdown handled. Memory ``num_matvecs * p``; for very large problems
with per-sample structure use :func:`ufm.hessian.block_arrow_spectrum`, which is exact.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..core.jitting import jit_when_eager
from ..core.validation import check_int
from .dense import flat_objective

__all__ = ["LanczosResult", "lanczos_extremes"]


class LanczosResult(NamedTuple):
    """Extreme Hessian eigenvalue estimates from :func:`lanczos_extremes`.

    ``lambda_min``/``lambda_max`` are Ritz values (in exact arithmetic ``lambda_min >= true
    lambda_min`` and ``lambda_max <= true lambda_max``); ``residual_min``/``residual_max`` are the
    Ritz residual norms ``||H v - theta v||`` (``|beta_m y_m|``): an eigenvalue of the Hessian lies
    within that distance of each Ritz value. ``ritz_values`` are all ``num_matvecs`` Ritz values,
    ascending. ``breakdown`` says that some Krylov step hit an (almost) invariant subspace and was
    restarted with a fresh random vector; ``num_restarts`` counts those steps. ``vector_min`` is the
    unit Ritz vector of ``lambda_min`` as a params pytree (a negative-curvature direction when
    ``lambda_min < 0``).
    """

    lambda_min: jax.Array
    lambda_max: jax.Array
    residual_min: jax.Array
    residual_max: jax.Array
    ritz_values: jax.Array
    breakdown: jax.Array
    num_restarts: jax.Array
    vector_min: Any


def _hvp_operator(spec, params):
    f, flat, unravel = flat_objective(spec, params)
    _, hvp = jax.linearize(jax.grad(f), flat)  # forward-over-reverse, primal computed once
    return hvp, flat, unravel


def _cgs2(Q, w):
    """Two passes of classical Gram-Schmidt of ``w`` against the rows of ``Q`` (zero rows inert)."""
    w = w - Q.T @ (Q @ w)
    return w - Q.T @ (Q @ w)


@jit_when_eager(static_argnames=("num_matvecs", "breakdown_rtol"))
def lanczos_extremes(
    spec, params, key, num_matvecs: int = 64, *, breakdown_rtol=None
) -> LanczosResult:
    """Smallest and largest Hessian eigenvalues by Lanczos on Hessian-vector products.

    Algorithm: symmetric Lanczos tridiagonalisation (Lanczos 1950; Golub & Van Loan, *Matrix
    Computations*, 4th ed., sec. 10.1) of the Hessian, accessed only through forward-over-reverse
    Hessian-vector products (``jax.linearize`` of ``jax.grad``, cost of about two gradients each),
    with full reorthogonalisation (two passes of classical Gram-Schmidt, "twice is enough") against
    the whole basis, and the Ritz values of the ``num_matvecs x num_matvecs`` tridiagonal matrix.
    Both ends of the spectrum come from one run. The Krylov depth ``num_matvecs`` is a static Python
    int (``2 <= num_matvecs <= p``): the loop is a fixed-length ``fori_loop``, so ``jax.vmap`` over
    seeds (``params``, ``key``) costs no masking. Style follows ``matfree.decomp.tridiag_sym``
    (pnkraemer/matfree).

    Breakdown: when the new residual has norm ``beta <= breakdown_rtol * ||H q_j||`` (the start
    vector lies in a small invariant subspace, common at symmetric critical points such as
    ``W = H = 0``), the off-diagonal entry is set to exactly zero and the recursion continues with a
    fresh random vector orthogonalised against the basis. The tridiagonal matrix stays equal to
    ``Q^T H Q`` for the orthonormal basis ``Q`` (block-diagonal), so every Ritz value is a genuine
    Rayleigh-Ritz value and nothing is masked or NaN. Default ``breakdown_rtol = 1e4 * eps`` of the
    dtype: above it two Gram-Schmidt passes still give an orthonormal vector.

    Recommended: float64, ``num_matvecs`` 40-100. Memory ``num_matvecs * p`` numbers. SciPy
    equivalent: ``scipy.sparse.linalg.eigsh(LinearOperator(hvp), k=1, which="SA"/"LA")``.

    Example:
        >>> import jax, ufm
        >>> spec = ufm.UFMSpec(K=3, n=2, d=3, loss="mse")
        >>> p = ufm.init_params(spec, jax.random.key(0))
        >>> lanczos = jax.jit(ufm.hessian.lanczos_extremes, static_argnames="num_matvecs")
        >>> res = lanczos(spec, p, jax.random.key(1), num_matvecs=27)
        >>> ev = jax.jit(ufm.hessian.hessian_spectrum_dense)(spec, p)
        >>> bool(abs(res.lambda_min - ev[0]) < 1e-8), bool(abs(res.lambda_max - ev[-1]) < 1e-8)
        (True, True)
    """
    hvp, flat, unravel = _hvp_operator(spec, params)
    n = flat.size
    m = check_int("num_matvecs", num_matvecs, 2)
    if m > n:
        raise ValueError(f"num_matvecs must be <= the number of parameters {n}, got {m}")
    dtype = flat.dtype
    if breakdown_rtol is None:
        breakdown_rtol = 1e4 * float(np.finfo(dtype).eps)

    def unit(v):
        return v / jnp.linalg.norm(v)

    v0 = unit(jax.random.normal(key, (n,), dtype))
    Q = jnp.zeros((m + 1, n), dtype).at[0].set(v0)
    alphas = jnp.zeros((m,), dtype)
    betas = jnp.zeros((m,), dtype)

    def step(j, carry):
        Q, alphas, betas, restarts = carry
        q = Q[j]
        w = hvp(q)
        a = jnp.dot(q, w)
        w0_norm = jnp.linalg.norm(w)
        w = _cgs2(Q, w)
        b = jnp.linalg.norm(w)
        broke = b <= breakdown_rtol * w0_norm

        def fresh(_):
            r = jax.random.normal(jax.random.fold_in(key, j + 1), (n,), dtype)
            return unit(_cgs2(Q, unit(r)))

        q_next = jax.lax.cond(broke, fresh, lambda _: w / jnp.where(broke, 1.0, b), None)
        Q = jax.lax.dynamic_update_index_in_dim(Q, q_next, j + 1, 0)
        alphas = alphas.at[j].set(a)
        betas = betas.at[j].set(jnp.where(broke, 0.0, b))
        return Q, alphas, betas, restarts + jnp.where(broke & (j < m - 1), 1, 0)

    Q, alphas, betas, restarts = jax.lax.fori_loop(0, m, step, (Q, alphas, betas, jnp.int32(0)))
    T = jnp.diag(alphas) + jnp.diag(betas[:-1], 1) + jnp.diag(betas[:-1], -1)
    theta, Y = jnp.linalg.eigh(T)
    resid = jnp.abs(betas[-1] * Y[-1, :])
    v_min = Q[:m].T @ Y[:, 0]
    return LanczosResult(
        lambda_min=theta[0],
        lambda_max=theta[-1],
        residual_min=resid[0],
        residual_max=resid[-1],
        ritz_values=theta,
        breakdown=restarts > 0,
        num_restarts=restarts,
        vector_min=unravel(v_min),
    )
