"""What the UFM tells the classifier (:func:`ufm.classify`): input checks and model facts.

The hooks of :mod:`ufm.landscape.facts` for :class:`ufm.UFMSpec`: the closed-form ``f*``
(:func:`ufm.optimal_value`, a global minimum value where it exists), the global-optimality
certificate ``sigma_1(grad_Z g) <= sqrt(lambda_W lambda_H)`` (:func:`ufm.certificate`), the
curvature bound of :func:`ufm.negative_curvature_direction` where ``W`` and ``H^T`` share a null
direction, the numerical rank of ``W`` and the predicted number of symmetry zero modes
(:func:`ufm.zero_mode_count`), docs/theory.md section 3.
"""

from __future__ import annotations

import jax.numpy as jnp

from ...landscape.facts import ModelFacts, numerical_rank_of
from .objective import UFMParams
from .saddles import certificate, negative_curvature_direction, zero_mode_count
from .spec import UFMSpec
from .theory import optimal_value

__all__ = ["ufm_validate_params", "ufm_classification_facts", "ufm_num_global_params"]


def ufm_validate_params(spec: UFMSpec, params, *, batched: bool, tols) -> None:
    """Check ``params`` (leading point axis when ``batched``) against ``spec``; raise on bad
    input."""
    if not isinstance(params, UFMParams):
        raise TypeError(f"params must be UFMParams for a UFMSpec, got {type(params).__name__}")
    W, H = params.W, params.H
    if W.shape[-2:] != (spec.K, spec.d) or H.shape[-2:] != (spec.d, spec.N):
        raise ValueError(
            f"params: W {W.shape} and H {H.shape} do not match spec K={spec.K}, "
            f"d={spec.d}, N={spec.N}"
        )
    if (params.b is None) == spec.has_bias:
        raise ValueError(
            f"params.b must be {'an array' if spec.has_bias else 'None'} for bias={spec.bias!r}"
        )


def ufm_classification_facts(spec: UFMSpec, params, tols) -> ModelFacts:
    """Reference value, certificate, curvature bound, rank and predicted zero modes (pure jax)."""
    c = lambda v: jnp.asarray(v, params.W.dtype)  # noqa: E731
    cert = certificate(spec, params)
    nc = negative_curvature_direction(spec, params)
    f_star = c(optimal_value(spec) if _has_closed_form(spec) else jnp.nan)
    rank = numerical_rank_of(params.W, c(tols.rank_rtol), c(tols.rank_atol))
    # a common null direction of W and H^T exists iff rank [W; H^T] < d (same thresholds)
    escape = (
        numerical_rank_of(
            jnp.concatenate([params.W, params.H.T], axis=0), c(tols.rank_rtol), c(tols.rank_atol)
        )
        < spec.d
    )
    table = jnp.asarray([zero_mode_count(spec, r) for r in range(spec.d + 1)], jnp.int32)
    return ModelFacts(
        f_star,
        jnp.asarray(True),
        cert.sigma_1,
        cert.gap,
        cert.bound,
        jnp.where(escape, nc.bound, jnp.nan),
        rank,
        table[rank],
    )


def ufm_num_global_params(spec: UFMSpec) -> int:
    """Size of the global block ``W`` (the batch-size heuristic of :func:`ufm.classify_batch`)."""
    return spec.K * spec.d


def _has_closed_form(spec) -> bool:
    """Whether ``optimal_value`` can be called (traced lambdas: it returns nan itself)."""
    try:
        optimal_value(spec)
    except ValueError:
        return False
    return True
