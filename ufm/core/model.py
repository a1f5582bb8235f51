"""Generic model entry points, dispatched to the registered system of a spec.

``loss(spec, params)``, ``init_params(spec, key)`` and ``nc_metrics(spec, params)`` work for every
registered system (:mod:`ufm.core.registry`): the optimiser, the Hessian routines, the classifier
and the sweeps call these and nothing model-specific. They are pure functions of arrays: gradients
come from ``jax.grad``, Hessians from ``jax.hessian`` or the structured routines, and a spec passed
through ``jit`` traces only its lambdas.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .jitting import adaptive_jit, jit_when_eager
from .registry import system_of
from .trees import tree_norm
from .validation import SpecError, check_int, check_scale, require_x64

__all__ = [
    "loss",
    "objective",
    "init_params",
    "init_batch",
    "grad_norm",
    "nc_metrics",
    "evaluate_points",
    "spec_label",
]


@jit_when_eager
def loss(spec, params):
    """The objective value of ``params`` for the model described by ``spec``.

    Example:
        >>> import jax, ufm
        >>> spec = ufm.UFMSpec(K=3, n=2, d=3, loss="mse")
        >>> p = ufm.init_params(spec, jax.random.key(0))
        >>> bool(ufm.loss(spec, p) > 0)
        True
    """
    system = system_of(spec)
    _check_point(spec, params)
    return system.loss(spec, params)


_SHAPES: dict = {}


def _expected_shapes(spec):
    """Leaf shapes and dtypes of one point of ``spec`` (cached per static spec structure)."""
    leaves, treedef = jax.tree_util.tree_flatten(spec)
    try:
        key = (type(spec), treedef)
        hash(key)
    except TypeError:
        return None
    if key not in _SHAPES:
        probe = jax.tree_util.tree_unflatten(treedef, [0.0] * len(leaves))
        try:
            shapes = jax.eval_shape(lambda: init_params(probe, jax.random.key(0)))
        except Exception:  # a system whose init needs more than the static spec: skip the check
            shapes = None
        _SHAPES[key] = shapes
    return _SHAPES[key]


def _check_point(spec, params) -> None:
    """``params`` must be one point of ``spec`` (no seed axis): a clear error instead of a shape
    error deep inside JAX."""
    shapes = _expected_shapes(spec)
    if shapes is None:
        return
    want = jax.tree_util.tree_leaves(shapes)
    got = jax.tree_util.tree_leaves(params)
    if len(want) == len(got) and all(tuple(g.shape) == tuple(w.shape) for g, w in zip(got, want)):
        return
    raise ValueError(
        f"params do not fit one point of {type(spec).__name__}: leaf shapes "
        f"{[tuple(g.shape) for g in got]}, expected {[tuple(w.shape) for w in want]}; for a "
        "batch with a leading seed axis use jax.vmap(lambda p: ufm.loss(spec, p)) or "
        "ufm.core.evaluate_points(spec, batch)"
    )


def objective(spec):
    """``f = objective(spec)``: the pure objective ``f(params)`` of ``spec``.

    Example:
        >>> import jax, ufm
        >>> spec = ufm.UFMSpec(K=3, n=2, d=3, loss="mse")
        >>> f = ufm.objective(spec)
        >>> bool(f(ufm.init_params(spec, jax.random.key(0))) > 0)
        True
    """
    system_of(spec)  # fail now, not inside jit, for an unregistered spec
    return functools.partial(loss, spec)


def init_params(spec, key, scale=None):
    """Random initial parameters for ``spec`` (one seed); vmap over keys for many seeds.

    ``scale=None`` takes the system's documented default.
    """
    return system_of(spec).init(spec, key, scale)


def init_batch(spec, key, num_seeds: int | None = None, scale=None, seeds=None):
    """Initial parameters for many seeds, stacked along a leading axis.

    Seed ``i`` uses ``jax.random.fold_in(key, seeds[i])`` (default ``seeds = arange(num_seeds)``),
    so a seed's start does not depend on how many seeds are run or on how they are sharded.
    Compiled once per spec shape and bucket of seed counts (powers of two, at least 8).
    """
    system_of(spec)
    if seeds is None:
        if num_seeds is None:
            raise SpecError("init_batch needs num_seeds or seeds")
        seeds = np.arange(check_int("num_seeds", num_seeds, 1))
    seeds = np.asarray(seeds)
    if seeds.ndim != 1 or seeds.size == 0:
        raise SpecError(
            f"seeds must be a non-empty 1-D sequence of integers, got shape {seeds.shape}"
        )
    if not np.issubdtype(seeds.dtype, np.integer) or seeds.min() < 0 or seeds.max() >= 2**32:
        raise SpecError(f"seeds must be integers in [0, 2**32), got {seeds[:5].tolist()}...")
    require_x64(spec)
    scale = check_scale("scale", scale)
    # pad to a bucket (a power of two, at least 8): one compilation serves every seed count in it
    m = seeds.size
    width = max(8, 1 << (m - 1).bit_length())
    padded = np.zeros(width, np.uint32)
    padded[:m] = seeds
    out = _init_batch(spec, key, jnp.asarray(padded), scale)
    # cut on the host: an eager slice would compile a small XLA program per shape
    if width == m:
        return out
    traced = isinstance(jax.tree_util.tree_leaves(out)[0], jax.core.Tracer)
    return jax.tree_util.tree_map(
        lambda x: x[:m] if traced else jnp.asarray(np.asarray(x)[:m]), out
    )


@adaptive_jit(static_argnames=("scale",), setup=True)
def _init_batch(spec, key, seeds, scale):
    keys = jax.vmap(lambda s: jax.random.fold_in(key, s))(seeds)
    return jax.vmap(lambda k: init_params(spec, k, scale))(keys)


@jit_when_eager
def grad_norm(spec, params) -> jax.Array:
    """Euclidean norm of the full gradient of the objective."""
    return tree_norm(jax.grad(loss, argnums=1)(spec, params))


def nc_metrics(spec, params, **options) -> dict:
    """The system's collapse metrics of one point (NC metrics for the UFM, DNC per layer for the
    deep UFM, ...): a dict of scalars, pure and vmappable. ``options`` go to the system's hook
    (e.g. ``tau``, ``rtol``)."""
    fn = system_of(spec).require("metrics", "collapse metrics (ufm.nc_metrics)")
    return fn(spec, params, **options)


@adaptive_jit
def _evaluate(spec, params):
    return jax.vmap(lambda p: (loss(spec, p), grad_norm(spec, p)))(params)


def evaluate_points(spec, params) -> tuple[np.ndarray, np.ndarray]:
    """``(f, ||grad f||)`` of a batch of points (leading axis), as float64 NumPy arrays."""
    f, g = _evaluate(spec, params)
    return np.asarray(f, np.float64), np.asarray(g, np.float64)


def spec_label(spec) -> str:
    """A short label of a spec for tables and messages (the system's ``label`` hook)."""
    system = system_of(spec)
    if system.label is not None:
        return system.label(spec)
    fields = spec.as_dict() if hasattr(spec, "as_dict") else {}
    return system.name + " " + " ".join(f"{k}={v}" for k, v in fields.items())
