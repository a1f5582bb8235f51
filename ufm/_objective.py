"""UFM objective, parameters and initialisation (theory.md section 1).

``objective(spec)(params)`` and ``loss(spec, params)`` are pure functions of arrays: gradients come
from ``jax.grad``, Hessians from ``jax.hessian`` or the structured routines. ``loss`` and
``init_params`` are ``functools.singledispatch`` generics over the spec type, so the optimiser,
Hessian and sweep code serve every model of the toolkit (the deep UFM registers its own).
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ._spec import SpecError, UFMSpec


class UFMParams(NamedTuple):
    """UFM parameters: ``W (K, d)``, class-major features ``H (d, N)``, bias ``b (K,)`` or ``None``.

    ``b`` is ``None`` when ``spec.bias == "none"`` so that flattened parameter vectors (and Hessians)
    hold only the free variables.
    """

    W: jax.Array
    H: jax.Array
    b: Optional[jax.Array] = None


def labels(K: int, n: int) -> np.ndarray:
    """Class-major labels ``[0]*n + [1]*n + ... + [K-1]*n`` (numpy, static)."""
    return np.repeat(np.arange(K), n)


def one_hot_targets(K: int, n: int, dtype="float64") -> np.ndarray:
    """``Y = I_K kron 1_n^T`` of shape ``(K, N)``."""
    return np.repeat(np.eye(K, dtype=dtype), n, axis=1)


def logits(params: UFMParams) -> jax.Array:
    """``Z = W H + b 1^T`` of shape ``(K, N)``."""
    Z = params.W @ params.H
    if params.b is not None:
        Z = Z + params.b[:, None]
    return Z


def fit_term(Z: jax.Array, loss_kind: str, n: int) -> jax.Array:
    """``g(Z)``: mean cross-entropy or ``1/(2N)||Z - Y||^2`` over class-major columns."""
    K, N = Z.shape
    if loss_kind == "ce":
        lse = jax.nn.logsumexp(Z, axis=0)
        true = jnp.sum(Z.reshape(K, K, n) * jnp.eye(K, dtype=Z.dtype)[:, :, None], axis=0)
        return jnp.mean(lse - true.reshape(N))
    if loss_kind == "mse":
        Y = jnp.asarray(one_hot_targets(K, n, Z.dtype))
        return 0.5 * jnp.sum((Z - Y) ** 2) / N
    raise SpecError(f"loss must be one of ce, mse; got {loss_kind!r}")


def fit_grad(Z: jax.Array, loss_kind: str, n: int) -> jax.Array:
    """``G = grad_Z g(Z)`` in closed form (softmax minus one-hot, or residual, over ``N``)."""
    K, N = Z.shape
    Y = jnp.asarray(one_hot_targets(K, n, Z.dtype))
    if loss_kind == "ce":
        return (jax.nn.softmax(Z, axis=0) - Y) / N
    return (Z - Y) / N


@functools.singledispatch
def loss(spec, params):
    """The objective value of ``params`` for the model described by ``spec``."""
    raise TypeError(f"no objective registered for {type(spec).__name__}")


@loss.register
def _(spec: UFMSpec, params: UFMParams):
    Z = logits(params)
    f = fit_term(Z, spec.loss, spec.n)
    f = f + 0.5 * spec.lambda_W * jnp.sum(params.W**2) + 0.5 * spec.lambda_H * jnp.sum(params.H**2)
    if spec.bias == "regularized":
        f = f + 0.5 * spec.lambda_b * jnp.sum(params.b**2)
    return f


def objective(spec):
    """``f = objective(spec)``: the pure objective ``f(params)`` of ``spec``.

    Example:
        >>> import jax, ufm
        >>> spec = ufm.UFMSpec(K=3, n=2, d=3, loss="mse")
        >>> p = ufm.init_params(spec, jax.random.key(0))
        >>> f = ufm.objective(spec)
        >>> bool(f(p) > 0)
        True
    """
    return functools.partial(loss, spec)


@functools.singledispatch
def init_params(spec, key, scale=None):
    """Random initial parameters for ``spec`` (one seed); vmap over keys for many seeds.

    ``scale=None`` takes the model's documented default.
    """
    raise TypeError(f"no initialisation registered for {type(spec).__name__}")


@init_params.register
def _(spec: UFMSpec, key, scale=None):
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


def init_batch(spec, key, num_seeds: int | None = None, scale=None, seeds=None):
    """Initial parameters for many seeds, stacked along a leading axis.

    Seed ``i`` uses ``jax.random.fold_in(key, seeds[i])`` (default ``seeds = arange(num_seeds)``), so
    a seed's start does not depend on how many seeds are run or on how they are sharded.
    """
    if seeds is None:
        if num_seeds is None:
            raise ValueError("init_batch needs num_seeds or seeds")
        seeds = np.arange(num_seeds)
    require_x64(spec)
    scale = tuple(scale) if isinstance(scale, list) else scale
    return _init_batch(spec, key, jnp.asarray(seeds, dtype=jnp.uint32), scale)


@functools.partial(jax.jit, static_argnames=("scale",))
def _init_batch(spec, key, seeds, scale):
    keys = jax.vmap(lambda s: jax.random.fold_in(key, s))(seeds)
    return jax.vmap(lambda k: init_params(spec, k, scale))(keys)


def require_x64(spec) -> None:
    """Raise a clear error when ``spec.dtype`` is float64 but JAX runs in 32-bit mode."""
    if getattr(spec, "dtype", None) == "float64" and not jax.config.jax_enable_x64:
        raise SpecError(
            "dtype='float64' needs 64-bit JAX: call jax.config.update('jax_enable_x64', True) "
            "before creating arrays, or use dtype='float32'"
        )


def grad_norm(spec, params) -> jax.Array:
    """Euclidean norm of the full gradient of the objective."""
    g = jax.grad(loss, argnums=1)(spec, params)
    return jnp.sqrt(sum(jnp.sum(x**2) for x in jax.tree_util.tree_leaves(g)))
