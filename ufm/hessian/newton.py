"""Newton steps for polishing critical points of any index (dense and block-arrow structured).

The Newton step ``x = -Hess^+ grad`` converges quadratically to the nearby critical point whatever
its Morse index, so it polishes saddles as well as minima. The Hessian is singular at critical
points of the UFM (the rotation symmetry ``W -> W Q, H -> Q^T H`` and, for CE with a free bias,
``b -> b + c 1``), so the inverse is an ``eigh`` pseudo-inverse that drops eigenvalues with
``|lambda| < rtol * max |lambda|``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ..core.model import loss
from .dense import hessian_dense
from .structure import block_arrow, has_split, split_features

__all__ = ["newton_step"]


def _pinv_solve(M, rhs, rtol):
    ev, V = jnp.linalg.eigh(M)
    keep = jnp.abs(ev) > rtol * jnp.max(jnp.abs(ev))
    coef = jnp.where(keep, (V.T @ rhs) / jnp.where(keep, ev, 1.0), 0.0)
    return V @ coef


def newton_step(
    spec, params, *, method: str = "auto", rtol: float = 1e-10, sample_chunk: int = 256
):
    """The Newton step ``-Hess^+ grad`` at ``params``, returned as a params pytree.

    ``params + step`` (leafwise) is the next iterate; iterate to polish a critical point of any
    index. ``method``:

    * ``"structured"``: eliminate the per-sample feature blocks ``D_i`` of the block-arrow Hessian
      (:func:`ufm.hessian.block_arrow`), solve the small Schur system ``S(0) x_theta = -g_theta +
      sum_i B_i
      D_i^{-1} g_i`` with an ``eigh`` pseudo-inverse of ``S(0)`` (size ``Kd (+K)`` for the UFM),
      then
      ``x_i = -D_i^{-1}(g_i + B_i^T x_theta)``. ``O(N K^2 d^2)``, for problems too big for a dense
      Hessian; needs the ``D_i`` nonsingular (``lambda_H > 0``).
    * ``"dense"``: ``eigh`` pseudo-inverse of the full Hessian (:func:`ufm.hessian.hessian_dense`);
    up to a
      few thousand parameters.
    * ``"auto"``: structured when :func:`ufm.hessian.split_features` is registered for the spec
    type.

    ``rtol`` drops eigenvalues with ``|lambda| < rtol * max |lambda|`` (recommended ``1e-10`` in
    float64). Both methods agree where the Hessian is nonsingular; at (near-)singular points they
    can
    differ by components along the near-null directions, which the objective does not see to second
    order. Pure and vmappable over seeds.

    Example:
        >>> import jax, ufm
        >>> spec = ufm.UFMSpec(K=3, n=2, d=3, loss="mse", lambda_W=0.05, lambda_H=0.05)
        >>> p = ufm.init_params(spec, jax.random.key(0), scale=1e-2)  # near the saddle W = H = 0
        >>> step = jax.jit(ufm.hessian.newton_step)
        >>> gnorm = jax.jit(ufm.grad_norm)
        >>> norms = [float(gnorm(spec, p))]
        >>> for _ in range(4):
        ...     p = jax.tree_util.tree_map(lambda a, b: a + b, p, step(spec, p))
        ...     norms.append(float(gnorm(spec, p)))
        >>> norms[0] > 1e-3, norms[-1] < 1e-12
        (True, True)
    """
    if method not in ("auto", "structured", "dense"):
        raise ValueError(f"method must be one of auto, structured, dense; got {method!r}")
    if method == "auto":
        method = "structured" if has_split(spec) else "dense"
    grads = jax.grad(loss, argnums=1)(spec, params)
    if method == "dense":
        H, unravel = hessian_dense(spec, params)
        g, _ = ravel_pytree(grads)
        return unravel(-_pinv_solve(H, g, rtol))
    split = split_features(spec, params)
    gsplit = split_features(spec, grads)
    g_th, _ = ravel_pytree(gsplit.theta)
    _, unravel_th = ravel_pytree(split.theta)
    gF = gsplit.features
    ba = block_arrow(spec, params, sample_chunk=sample_chunk)
    S0, C0 = ba.schur(jnp.zeros((), g_th.dtype))
    rhs = -g_th + ba.b(ba.apply_cinv(C0, gF))
    x_th = _pinv_solve(S0, rhs, rtol)
    x_F = -ba.apply_cinv(C0, gF + ba.bt(x_th))
    return split.merge(unravel_th(x_th), x_F)
