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

from .registry import system_of
from .trees import tree_norm
from .validation import SpecError, check_int, require_x64

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


def loss(spec, params):
    """The objective value of ``params`` for the model described by ``spec``.

    Example:
        >>> import jax, ufm
        >>> spec = ufm.UFMSpec(K=3, n=2, d=3, loss="mse")
        >>> p = ufm.init_params(spec, jax.random.key(0))
        >>> bool(ufm.loss(spec, p) > 0)
        True
    """
    return system_of(spec).loss(spec, params)


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
    so
    a seed's start does not depend on how many seeds are run or on how they are sharded. Compiled
    once per spec shape.
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
    require_x64(spec)
    scale = tuple(scale) if isinstance(scale, list) else scale
    return _init_batch(spec, key, jnp.asarray(seeds, dtype=jnp.uint32), scale)


@functools.partial(jax.jit, static_argnames=("scale",))
def _init_batch(spec, key, seeds, scale):
    keys = jax.vmap(lambda s: jax.random.fold_in(key, s))(seeds)
    return jax.vmap(lambda k: init_params(spec, k, scale))(keys)


def grad_norm(spec, params) -> jax.Array:
    """Euclidean norm of the full gradient of the objective."""
    return tree_norm(jax.grad(loss, argnums=1)(spec, params))


def nc_metrics(spec, params, **options) -> dict:
    """The system's collapse metrics of one point (NC metrics for the UFM, DNC per layer for the
    deep UFM, ...): a dict of scalars, pure and vmappable. ``options`` go to the system's hook
    (e.g. ``tau``, ``rtol``)."""
    fn = system_of(spec).require("metrics", "collapse metrics (ufm.nc_metrics)")
    return fn(spec, params, **options)


@jax.jit
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
