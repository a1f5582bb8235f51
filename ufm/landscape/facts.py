"""What a system tells the classifier: tolerances, the model-facts record, a rank helper.

:func:`ufm.classify` is generic over the model. What depends on the model comes from the system's
hooks (:mod:`ufm.core.registry`): ``validate_params(spec, params, *, batched, tols)`` (host-side
input checks, raising ``TypeError``/``ValueError`` naming the field), ``classification(spec,
params, tols) -> ModelFacts`` (pure jax, traced inside the classifier's ``jit``: the reference value
``f_star`` and whether it is the global minimum value, the certificate ``sigma_1``, its gap and
bound, the curvature bound, the numerical rank and the predicted number of symmetry zero modes,
``nan`` where not available) and ``num_global_params(spec)`` (size of the global block, for the
batch-size memory heuristic of :func:`ufm.classify_batch`). ``tols`` is the :class:`Tolerances`
record of the classifier (:func:`default_tolerances`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["ModelFacts", "Tolerances", "default_tolerances", "numerical_rank_of"]


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
):
    f64 = np.dtype(dtype) == np.float64
    pick = lambda v, a, b: float((a if f64 else b) if v is None else v)  # noqa: E731
    tols = Tolerances(
        grad_tol=pick(grad_tol, 1e-8, 1e-4),
        zero_rtol=pick(zero_rtol, 1e-8, 1e-3),
        zero_gtol=pick(zero_gtol, 100.0, 100.0),
        f_rtol=pick(f_rtol, 1e-8, 1e-4),
        cert_rtol=pick(cert_rtol, 1e-6, 1e-3),
        cert_gtol=pick(cert_gtol, 1.0, 1.0),
        rank_rtol=pick(rank_rtol, 1e-8, 1e-3),
        rank_atol=pick(rank_atol, 1e-6, 1e-3),
        kink_rtol=pick(kink_rtol, 1e-6, 1e-3),
    )
    for name, v in tols._asdict().items():
        if not (v >= 0 and math.isfinite(v)):
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    return tols


def numerical_rank_of(X, rtol, atol):
    """Number of singular values of ``X`` above ``max(rtol * sigma_1, atol)`` (``int32``)."""
    sv = jnp.linalg.svd(X, compute_uv=False)
    return jnp.sum(sv > jnp.maximum(rtol * sv[0], atol)).astype(jnp.int32)
