"""``D_LR``: distance of the feature kernel from the minimal projection onto the outputs.

Nam, Mingard, Lee, Hayou & Louis (arXiv 2410.04264, later version): with ``F_c`` the features
and ``f_c`` the outputs centred over samples, ``T = F_c F_c^T`` (the centred feature kernel on the
samples) and ``T_MP = Q Q^T`` the orthogonal projection onto the span of the centred outputs
(``Q`` an orthonormal basis, ``r`` its rank),

    CKA(T, T_MP) = <T, T_MP>_F / (||T||_F ||T_MP||_F) = ||Q^T F_c||_F^2 / (||F_c^T F_c||_F sqrt(r)),
    D_LR = 1 - CKA(T, T_MP)  in [0, 1].

``D_LR = 0`` iff the centred kernel is a multiple of that projection: the features have ``r``
equal non-zero singular values and their left singular space is the output space (neural
collapse with an ETF gives exactly this). Lazy/random features spread over many directions give
``D_LR`` near 1.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

__all__ = ["cka_minimal_projection", "d_lr"]


def cka_minimal_projection(F, f_hat, *, rtol: float | None = None) -> tuple[jax.Array, jax.Array]:
    """``(CKA(T, T_MP), r)``; see the module docstring. ``r`` counts the singular values of the
    centred outputs above ``rtol * sigma_1`` (default ``rtol = max(n, C) * eps``). nan when the
    centred features or outputs vanish."""
    F, f_hat = jnp.asarray(F), jnp.asarray(f_hat)
    if F.ndim != 2 or f_hat.ndim != 2 or F.shape[0] != f_hat.shape[0]:
        raise ValueError(
            f"F (n, p) and f_hat (n, C) must share the sample axis (got {F.shape}, {f_hat.shape})"
        )
    return _cka(F, f_hat.astype(F.dtype), rtol)


@functools.partial(jax.jit, static_argnums=2)
def _cka(F, f_hat, rtol):
    Fc = F - jnp.mean(F, axis=0)
    fc = f_hat - jnp.mean(f_hat, axis=0)
    n, C = fc.shape
    if rtol is None:
        rtol = max(n, C) * float(jnp.finfo(F.dtype).eps)
    U, s, _ = jnp.linalg.svd(fc, full_matrices=False)
    keep = s > rtol * s[0]
    r = jnp.sum(keep)
    QtF = jnp.where(keep[:, None], U.T @ Fc, 0.0)
    gram = Fc.T @ Fc if Fc.shape[1] <= n else Fc @ Fc.T  # same Frobenius norm
    cka = jnp.sum(QtF**2) / (jnp.linalg.norm(gram) * jnp.sqrt(r.astype(F.dtype)))
    return cka, r


def d_lr(F, f_hat, *, rtol: float | None = None) -> jax.Array:
    """``D_LR = 1 - CKA(F_c F_c^T, Q Q^T)``: 0 = rich / low-rank (neural collapse), ~1 = lazy.

    Invariant to rotations and rescalings of the features and to invertible linear maps of the
    outputs (only their span enters).

    Example:
        >>> import jax.numpy as jnp
        >>> F = jnp.array([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])  # 2 collapsed classes
        >>> f = jnp.array([[2.0, -2.0], [-2.0, 2.0], [2.0, -2.0], [-2.0, 2.0]])
        >>> float(d_lr(F, f))
        0.0
    """
    return 1.0 - cka_minimal_projection(F, f_hat, rtol=rtol)[0]
