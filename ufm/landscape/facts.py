"""What a system tells the classifier: tolerances, the model-facts record, a rank helper.

:func:`ufm.classify` is generic over the model. What depends on the model comes from the system's
hooks (:mod:`ufm.core.registry`): ``validate_params(spec, params, *, batched, tols)`` (host-side
input checks, raising ``TypeError``/``ValueError`` naming the field), ``classification(spec,
params, tols) -> ModelFacts`` (pure jax, traced inside the classifier's ``jit``: the reference value
``f_star`` and whether it is the global minimum value, the certificate ``sigma_1``, its gap and
bound, the curvature bound, the numerical rank and the predicted number of symmetry zero modes,
``nan`` where not available, and the orbit scale of the symmetry zero modes) and
``num_global_params(spec)`` (size of the global block, for the
batch-size memory heuristic of :func:`ufm.classify_batch`). ``tols`` is the :class:`Tolerances`
record of the classifier (:func:`default_tolerances`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..kernels import singular_values

__all__ = [
    "ModelFacts",
    "Tolerances",
    "default_tolerances",
    "numerical_rank_of",
    "orbit_rank_and_scale",
    "all_finite",
]


class ModelFacts(NamedTuple):
    """Model-specific fields of a classification record (``nan`` where not available)."""

    f_star: jax.Array  # reference value
    ref_is_optimum: jax.Array  # bool: f_star is the global minimum value
    sigma_1: jax.Array
    certificate_gap: jax.Array
    cert_bound: jax.Array  # the bound the certificate compares sigma_1 with (scales cert_tol)
    curvature_bound: jax.Array
    rank: jax.Array
    zero_modes_predicted: jax.Array
    # smallest non-zero singular value of the map (unit-Frobenius generator) -> tangent at the
    # point; inf without continuous symmetries (:func:`orbit_rank_and_scale`)
    orbit_scale: jax.Array


class Tolerances(NamedTuple):
    """The classifier's tolerances (module docstring of :mod:`ufm.landscape.classify`)."""

    grad_tol: float
    zero_rtol: float
    zero_gtol: float
    f_rtol: float
    cert_rtol: float
    cert_gtol: float
    rank_rtol: float
    rank_atol: float
    kink_rtol: float
    undecided_factor: float


def default_tolerances(
    dtype,
    grad_tol=None,
    zero_rtol=None,
    zero_gtol=None,
    f_rtol=None,
    cert_rtol=None,
    cert_gtol=None,
    rank_rtol=None,
    rank_atol=None,
    kink_rtol=None,
    undecided_factor=None,
):
    """The classifier's tolerances for points of ``dtype`` (``None`` takes the default)."""
    f64 = np.dtype(dtype) == np.float64
    pick = lambda v, a, b: float((a if f64 else b) if v is None else v)  # noqa: E731
    tols = Tolerances(
        grad_tol=pick(grad_tol, 1e-8, 1e-4),
        zero_rtol=pick(zero_rtol, 1e-8, 1e-3),
        zero_gtol=pick(zero_gtol, 10.0, 10.0),
        f_rtol=pick(f_rtol, 1e-8, 1e-4),
        cert_rtol=pick(cert_rtol, 1e-6, 1e-3),
        cert_gtol=pick(cert_gtol, 1.0, 1.0),
        rank_rtol=pick(rank_rtol, 1e-8, 1e-3),
        rank_atol=pick(rank_atol, 1e-6, 1e-3),
        kink_rtol=pick(kink_rtol, 1e-6, 1e-3),
        undecided_factor=pick(undecided_factor, 100.0, 100.0),
    )
    for name, v in tols._asdict().items():
        if not (v >= 0 and math.isfinite(v)):
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    if tols.undecided_factor < 1:
        raise ValueError(f"undecided_factor must be >= 1, got {tols.undecided_factor!r}")
    return tols


def all_finite(*trees):
    """``True`` when every leaf of every tree is finite and not huge (``sum(x^2) <=
    sqrt(finfo.max)``, so that products of up to four entries, e.g. Hessian entries and Schur
    complements, stay finite): the guard every classification applies before any LAPACK call
    (jaxlib's CPU ``svd`` never returns on some ``inf`` inputs)."""
    ok = jnp.asarray(True)
    for t in trees:
        for x in jax.tree_util.tree_leaves(t):
            x = jnp.asarray(x)
            big = float(np.sqrt(np.finfo(x.dtype).max))
            ok = ok & jnp.all(jnp.isfinite(x)) & (jnp.sum(x * x) <= big)
    return ok


def numerical_rank_of(X, rtol, atol):
    """Number of singular values of ``X`` above ``max(rtol * sigma_1, atol)`` (``int32``; ``-1``
    for a non-finite ``X``, which never reaches LAPACK)."""
    ok = all_finite(X)
    sv = singular_values(jnp.where(ok, X, 0.0))
    rank = jnp.sum(sv > jnp.maximum(rtol * sv[0], atol)).astype(jnp.int32)
    return jnp.where(ok, rank, -1).astype(jnp.int32)


def orbit_rank_and_scale(T, rtol, atol):
    """``(rank, scale)`` of the generator-tangent matrix ``T`` (one row per symmetry generator of
    unit Frobenius norm, one column per parameter): the dimension of the orbit through the point
    (the predicted number of symmetry zero modes) and the smallest singular value counted in it
    (``inf`` for rank 0).

    Why the scale matters: for a linear isometric symmetry ``f(g x) = f(x)`` with generator
    ``xi``, differentiating ``grad f(g x) = g grad f(x)`` gives ``Hess(x) (xi x) = xi grad f(x)``
    exactly, at any point. So on the span ``V`` of the tangents ``xi x``,
    ``||Hess v|| <= ||grad f|| / scale`` for every unit ``v`` in ``V``
    (``||xi||_2 <= ||xi||_F``), and by the residual bound for invariant subspaces the Hessian has
    ``rank`` eigenvalues within ``2 ||grad f|| / scale`` of zero. Near a collapse threshold the
    point is small (``scale ~ sigma_r(W) -> 0``) and these modes leave any fixed multiple of
    ``||grad f||``: :func:`ufm.classify` scales ``zero_tol`` by ``1 / scale``.
    """
    if T.shape[0] == 0:
        return jnp.asarray(0, jnp.int32), jnp.asarray(jnp.inf, T.dtype)
    ok = all_finite(T)
    sv = singular_values(jnp.where(ok, T, 0.0))
    keep = sv > jnp.maximum(rtol * sv[0], atol)
    rank = jnp.sum(keep).astype(jnp.int32)
    scale = jnp.min(jnp.where(keep, sv, jnp.inf))
    return jnp.where(ok, rank, -1).astype(jnp.int32), jnp.where(ok, scale, jnp.nan)
