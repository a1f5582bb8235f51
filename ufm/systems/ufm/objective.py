"""UFM objective, parameters and initialisation (docs/theory.md section 1).

``ufm_loss(spec, params)`` and ``ufm_init(spec, key)`` are the system's hooks; callers use the
generic :func:`ufm.loss` / :func:`ufm.init_params`, which dispatch to them.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ...core.validation import SpecError, require_x64
from .spec import UFMSpec


class UFMParams(NamedTuple):
    """UFM parameters: ``W (K, d)``, class-major features ``H (d, N)``, bias ``b (K,)`` or ``None``.

    ``b`` is ``None`` when ``spec.bias == "none"`` so that flattened parameter vectors (and
    Hessians)
    hold only the free variables.
    """

    W: jax.Array
    H: jax.Array
    b: jax.Array | None = None


def _sizes(K: int, n) -> np.ndarray:
    """Samples per class: ``n`` (int, balanced) or the ``K`` class sizes, as an int array."""
    sizes = np.broadcast_to(np.asarray(n, dtype=np.int64), (K,)) if np.ndim(n) == 0 else n
    sizes = np.asarray(sizes, dtype=np.int64)
    if sizes.shape != (K,) or np.any(sizes < 1):
        raise SpecError(f"n must be an int >= 1 or K={K} positive class sizes, got {n!r}")
    return sizes


def labels(K: int, n) -> np.ndarray:
    """Class-major labels ``[0]*n_1 + [1]*n_2 + ... + [K-1]*n_K`` (numpy, static).

    ``n`` is the number of samples per class (int) or the ``K`` class sizes."""
    return np.repeat(np.arange(K), _sizes(K, n))


def one_hot_targets(K: int, n, dtype="float64") -> np.ndarray:
    """``Y = I_K kron 1_n^T`` of shape ``(K, N)`` (class-major one-hot columns; ``n`` an int or
    the ``K`` class sizes)."""
    return np.repeat(np.eye(K, dtype=dtype), _sizes(K, n), axis=1)


def logits(params: UFMParams) -> jax.Array:
    """``Z = W H + b 1^T`` of shape ``(K, N)``."""
    Z = params.W @ params.H
    if params.b is not None:
        Z = Z + params.b[:, None]
    return Z


def fit_term(Z: jax.Array, loss_kind: str, n) -> jax.Array:
    """``g(Z)``: mean cross-entropy or ``1/(2N)||Z - Y||^2`` over class-major columns (``n`` the
    samples per class, or the ``K`` class sizes: the mean is over all ``N`` samples)."""
    K, N = Z.shape
    if loss_kind == "ce":
        lse = jax.nn.logsumexp(Z, axis=0)
        if np.ndim(n) == 0:
            true = jnp.sum(Z.reshape(K, K, n) * jnp.eye(K, dtype=Z.dtype)[:, :, None], axis=0)
        else:  # imbalanced: the true-class logit of each column by a static gather
            true = Z[labels(K, n), np.arange(N)]
        return jnp.mean(lse - true.reshape(N))
    if loss_kind == "mse":
        Y = jnp.asarray(one_hot_targets(K, n, Z.dtype))
        return 0.5 * jnp.sum((Z - Y) ** 2) / N
    raise SpecError(f"loss must be one of ce, mse; got {loss_kind!r}")


def fit_grad(Z: jax.Array, loss_kind: str, n) -> jax.Array:
    """``G = grad_Z g(Z)`` in closed form (softmax minus one-hot, or residual, over ``N``)."""
    K, N = Z.shape
    Y = jnp.asarray(one_hot_targets(K, n, Z.dtype))
    if loss_kind == "ce":
        return (jax.nn.softmax(Z, axis=0) - Y) / N
    return (Z - Y) / N


def ufm_loss(spec: UFMSpec, params: UFMParams):
    """The UFM objective ``f(W, H, b)`` (docs/theory.md section 1)."""
    Z = logits(params)
    f = fit_term(Z, spec.loss, spec.n)
    f = f + 0.5 * spec.lambda_W * jnp.sum(params.W**2) + 0.5 * spec.lambda_H * jnp.sum(params.H**2)
    if spec.bias == "regularized":
        f = f + 0.5 * spec.lambda_b * jnp.sum(params.b**2)
    return f


def ufm_init(spec: UFMSpec, key, scale=None):
    """UFM initialisation: ``W, H`` i.i.d. ``N(0, scale^2)``, bias zero (recommended ``scale`` 0.1).

    ``scale`` may be a pair ``(scale_W, scale_H)``. Small scales start near the origin, a saddle
    when ``s < 1/K``; the optimiser leaves it along the top singular direction of ``grad_Z g``.
    """
    require_x64(spec)
    scale = 0.1 if scale is None else scale
    sw, sh = (scale, scale) if np.ndim(scale) == 0 else scale
    dtype = spec.jnp_dtype
    kw, kh = jax.random.split(key)
    W = sw * jax.random.normal(kw, (spec.K, spec.d), dtype)
    H = sh * jax.random.normal(kh, (spec.d, spec.N), dtype)
    b = jnp.zeros((spec.K,), dtype) if spec.has_bias else None
    return UFMParams(W, H, b)
