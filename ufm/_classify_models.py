"""Model-specific facts for the classifier (:func:`ufm.classify`): the hooks and the UFM's.

:mod:`ufm._classify` is generic over the model: what depends on it comes from three
``functools.singledispatch`` hooks on the spec type, registered here for :class:`ufm.UFMSpec` and
in :mod:`ufm._classify_deep` for :class:`ufm.DeepUFMSpec`:

* ``_validate(spec, params, *, batched, tols)``: host-side input checks (``batched``: a leading
  point axis); raises ``TypeError``/``ValueError`` naming the field.
* ``_model_facts(spec, params, tols) -> _ModelFacts``: pure jax, traced inside the classifier's
  ``jit``: the reference value ``f_star`` and whether it is the global minimum value
  (``ref_is_optimum``), the certificate ``sigma_1``, its gap and bound, the curvature bound, the
  numerical rank and the predicted number of symmetry zero modes (``nan`` where not available).
* ``_num_global_params(spec)``: size of the global block (memory heuristic of
  :func:`ufm.classify_batch`).

``tols`` is the classifier's tolerance record (``rank_rtol``, ``rank_atol``, ``kink_rtol``, ...;
:mod:`ufm._classify`).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ._objective import UFMParams
from ._saddles import certificate, negative_curvature_direction, zero_mode_count
from ._spec import UFMSpec
from ._theory import optimal_value


@functools.singledispatch
def _validate(spec, params, *, batched: bool, tols) -> None:
    """Check ``params`` (leading point axis when ``batched``) against ``spec``; raise on bad input.

    Runs on the host before compilation; models register their own (:mod:`ufm._classify_deep`).
    """
    raise TypeError(f"classify expects a UFMSpec or a DeepUFMSpec, got {type(spec).__name__}")


@_validate.register
def _(spec: UFMSpec, params, *, batched: bool, tols) -> None:
    if not isinstance(params, UFMParams):
        raise TypeError(f"params must be UFMParams for a UFMSpec, got {type(params).__name__}")
    W, H = params.W, params.H
    if W.shape[-2:] != (spec.K, spec.d) or H.shape[-2:] != (spec.d, spec.N):
        raise ValueError(f"params: W {W.shape} and H {H.shape} do not match spec K={spec.K}, "
                         f"d={spec.d}, N={spec.N}")
    if (params.b is None) == spec.has_bias:
        raise ValueError(f"params.b must be {'an array' if spec.has_bias else 'None'} for "
                         f"bias={spec.bias!r}")


class _ModelFacts(NamedTuple):
    """Model-specific columns of a record (``_model_facts``; ``nan`` where not available)."""

    f_star: jax.Array  # reference value
    ref_is_optimum: jax.Array  # bool: f_star is the global minimum value
    sigma_1: jax.Array
    certificate_gap: jax.Array
    cert_bound: jax.Array  # the bound the certificate compares sigma_1 with (scales cert_tol)
    curvature_bound: jax.Array
    rank: jax.Array
    zero_modes_predicted: jax.Array


@functools.singledispatch
def _model_facts(spec, params, tols) -> _ModelFacts:
    """Reference value, certificate, curvature bound, rank and predicted zero modes (pure jax)."""
    raise TypeError(f"no classification facts registered for {type(spec).__name__}")


@_model_facts.register
def _(spec: UFMSpec, params, tols) -> _ModelFacts:
    c = lambda v: jnp.asarray(v, params.W.dtype)  # noqa: E731
    cert = certificate(spec, params)
    nc = negative_curvature_direction(spec, params)
    f_star = c(optimal_value(spec) if _has_closed_form(spec) else jnp.nan)
    rank = _rank(params.W, c(tols.rank_rtol), c(tols.rank_atol))
    # a common null direction of W and H^T exists iff rank [W; H^T] < d (same thresholds)
    escape = _rank(jnp.concatenate([params.W, params.H.T], axis=0), c(tols.rank_rtol),
                   c(tols.rank_atol)) < spec.d
    table = jnp.asarray([zero_mode_count(spec, r) for r in range(spec.d + 1)], jnp.int32)
    return _ModelFacts(f_star, jnp.asarray(True), cert.sigma_1, cert.gap, cert.bound,
                       jnp.where(escape, nc.bound, jnp.nan), rank, table[rank])


@functools.singledispatch
def _num_global_params(spec) -> int:
    """Size of the global (non-feature) block: the batch-size memory heuristic."""
    return spec.num_params


@_num_global_params.register
def _(spec: UFMSpec) -> int:
    return spec.K * spec.d


def _rank(X, rtol, atol):
    sv = jnp.linalg.svd(X, compute_uv=False)
    return jnp.sum(sv > jnp.maximum(rtol * sv[0], atol)).astype(jnp.int32)


def _has_closed_form(spec) -> bool:
    """Whether ``optimal_value`` can be called (traced lambdas: it returns nan itself)."""
    try:
        optimal_value(spec)
    except ValueError:
        return False
    return True
