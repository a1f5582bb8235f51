"""What the UFM tells the classifier (:func:`ufm.classify`): input checks and model facts.

The hooks of :mod:`ufm.landscape.facts` for :class:`ufm.UFMSpec`: the closed-form ``f*``
(:func:`ufm.optimal_value`, a global minimum value where it exists), the global-optimality
certificate ``sigma_1(grad_Z g) <= sqrt(lambda_W lambda_H)`` (:func:`ufm.certificate`), the
curvature bound of :func:`ufm.negative_curvature_direction` where ``W`` and ``H^T`` share a null
direction, the numerical rank of ``W`` and the predicted number of symmetry zero modes with the
scale of their orbit (:func:`orbit_facts`), docs/theory.md sections 3.4 and 3.7.

Continuous symmetries of the UFM (each contributes zero modes):

* ``W -> W Q``, ``H -> Q^T H`` with ``Q in O(d)`` (every variant);
* MSE only: the class rotations ``W -> O W``, ``H -> H (O^T (x) I_n)``, ``b -> O b`` with
  ``O in O(K)`` (no bias) or ``O in O(K)`` fixing ``1`` (a bias: ``O 1 = 1``), since
  ``O Y (O^T (x) I_n) = Y``. At a minimiser with ``W W^T`` proportional to the identity on the
  fitted class space (``d >= r*``) they move the point along the ``O(d)`` orbit and add nothing;
  with ``d`` below the rank of the minimiser (e.g. ``K = 5``, ``d = 4``, no bias) they turn the
  fitted ``d``-dimensional class subspace and add ``d (K_eff - d)`` flat directions (the
  Grassmannian; ``K_eff = K`` without bias, ``K - 1`` with one);
* CE with a free bias: ``b -> b + c 1`` (an exact zero mode).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from ...kernels import singular_values
from ...landscape.facts import ModelFacts, numerical_rank_of, orbit_rank_and_scale
from .objective import UFMParams
from .saddles import certificate, negative_curvature_direction
from .spec import UFMSpec
from .theory import optimal_value

__all__ = [
    "OrbitFacts",
    "orbit_facts",
    "ufm_validate_params",
    "ufm_classification_facts",
    "ufm_num_global_params",
]


class OrbitFacts(NamedTuple):
    """The orbit of the continuous symmetries through a UFM point (:func:`orbit_facts`).

    Attributes:
        zero_modes: its dimension, plus one for CE with a free bias: the predicted number of
            symmetry zero modes of the Hessian.
        scale: smallest non-zero singular value of the map from unit-Frobenius-norm generators
            to tangent vectors (``inf`` without continuous symmetry): the symmetry modes lie
            within ``2 ||grad f|| / scale`` of zero
            (:func:`ufm.landscape.facts.orbit_rank_and_scale`).
    """

    zero_modes: object
    scale: object


def _skew_unit_basis(m: int) -> np.ndarray:
    """``(e_j e_k^T - e_k e_j^T) / sqrt(2)``, ``j < k``: an orthonormal basis of ``so(m)``."""
    j, k = np.triu_indices(m, 1)
    E = np.zeros((j.size, m, m))
    E[np.arange(j.size), j, k] = 2**-0.5
    E[np.arange(j.size), k, j] = -(2**-0.5)
    return E


def _compress_columns(X):
    """``Y`` with ``Y Y^T = X X^T`` and at most ``X.shape[0]`` columns (R^T of a QR of X^T)."""
    rows, cols = X.shape
    if cols <= rows:
        return X
    return jnp.linalg.qr(X.T, mode="r").T


def _mse_tangents(spec: UFMSpec, params: UFMParams):
    """Generator tangents of ``O(d) x O(K)`` (MSE), with the ``n`` samples of a class position
    compressed exactly: the tangent of ``H`` is ``-(E X_i + X_i A)`` for the ``d x K`` matrices
    ``X_i = H[:, class-major index (k, i)]``, whose Gram over ``i`` only involves the
    ``dK x dK`` matrix ``sum_i vec(X_i) vec(X_i)^T``. Imbalanced classes: the class rotations act
    within each group of equal-size classes only (``O Y R = Y`` needs ``O diag(n) O^T = diag(n)``),
    each group compressed the same way."""
    if not spec.balanced:
        return _mse_tangents_groups(spec, params)
    W, H, b = params.W, params.H, params.b
    K, d, n = spec.K, spec.d, spec.n
    dtype = W.dtype
    Y = _compress_columns(H.reshape(d * K, n)).reshape(d, K, -1)  # (d, K, c)
    Ed = jnp.asarray(_skew_unit_basis(d), dtype)
    if spec.has_bias:  # O(K) fixing 1: U so(K-1) U^T, U an orthonormal basis of 1-perp
        U = np.linalg.svd(np.eye(K) - 1.0 / K)[0][:, : K - 1]
        EK = np.einsum("ia,mab,jb->mij", U, _skew_unit_basis(K - 1), U)
    else:
        EK = _skew_unit_basis(K)
    EK = jnp.asarray(EK, dtype)
    flat = lambda *xs: jnp.concatenate([x.reshape(x.shape[0], -1) for x in xs], axis=1)  # noqa: E731
    rot_W = jnp.einsum("kd,mde->mke", W, Ed)
    rot_H = -jnp.einsum("mde,ekc->mdkc", Ed, Y)
    cls_W = jnp.einsum("mkl,ld->mkd", EK, W)
    cls_H = -jnp.einsum("dlc,mlk->mdkc", Y, EK)
    parts_rot, parts_cls = [rot_W, rot_H], [cls_W, cls_H]
    if b is not None:
        parts_rot.append(jnp.zeros((Ed.shape[0], K), dtype))
        parts_cls.append(jnp.einsum("mkl,l->mk", EK, b))
    return jnp.concatenate([flat(*parts_rot), flat(*parts_cls)], axis=0)


def _group_generators(K: int, idx: np.ndarray, has_bias: bool) -> np.ndarray:
    """Unit generators of the rotations of the classes ``idx`` (fixing their ``1`` with a bias),
    embedded in ``K x K``."""
    g = idx.size
    if has_bias:
        U = np.linalg.svd(np.eye(g) - 1.0 / g)[0][:, : g - 1]
        E = np.einsum("ia,mab,jb->mij", U, _skew_unit_basis(g - 1), U) if g > 2 else None
        if g == 2:  # O(2) fixing 1 has no continuous part
            return np.zeros((0, K, K))
    else:
        E = _skew_unit_basis(g)
    out = np.zeros((E.shape[0], K, K))
    out[:, idx[:, None], idx[None, :]] = E
    return out


def _mse_tangents_groups(spec: UFMSpec, params: UFMParams):
    """:func:`_mse_tangents` for class sizes: groups of equal-size classes, each compressed."""
    W, H, b = params.W, params.H, params.b
    K, d = spec.K, spec.d
    sizes = np.asarray(spec.class_sizes)
    start = np.concatenate([[0], np.cumsum(sizes)])
    dtype = W.dtype
    Ed = jnp.asarray(_skew_unit_basis(d), dtype)
    gens = []
    blocks = []  # per group: compressed (d, g, c) features and the group's class indices
    for size in dict.fromkeys(sizes.tolist()):
        idx = np.flatnonzero(sizes == size)
        cols = np.concatenate([np.arange(start[k], start[k] + size) for k in idx])
        Hg = H[:, cols].reshape(d * idx.size, size)
        blocks.append((_compress_columns(Hg).reshape(d, idx.size, -1), idx))
        if idx.size >= 2:
            gens.append(_group_generators(K, idx, spec.has_bias))
    EK = jnp.asarray(np.concatenate(gens) if gens else np.zeros((0, K, K)), dtype)
    # explicit sizes: no class generator at all (e.g. two classes of each size with a bias)
    # leaves zero rows, where reshape(0, -1) is undefined
    flat = (
        lambda *xs: jnp.concatenate(  # noqa: E731
            [x.reshape(x.shape[0], math.prod(x.shape[1:])) for x in xs], axis=1
        )
    )
    rot = [jnp.einsum("kd,mde->mke", W, Ed)]
    cls = [jnp.einsum("mkl,ld->mkd", EK, W)]
    for Y, idx in blocks:
        rot.append(-jnp.einsum("mde,ekc->mdkc", Ed, Y))
        cls.append(-jnp.einsum("dlc,mlk->mdkc", Y, EK[:, idx][:, :, idx]))
    if b is not None:
        rot.append(jnp.zeros((Ed.shape[0], K), dtype))
        cls.append(jnp.einsum("mkl,l->mk", EK, b))
    return jnp.concatenate([flat(*rot), flat(*cls)], axis=0)


def orbit_facts(spec: UFMSpec, params: UFMParams, rank_rtol=1e-8, rank_atol=1e-6) -> OrbitFacts:
    """Predicted symmetry zero modes at a UFM point and the scale of their orbit (pure jax).

    CE: only ``O(d)`` acts (plus the exact shift of a free bias); with ``m_1 >= ... >= m_d`` the
    eigenvalues of ``W^T W + H H^T`` and ``r`` the numerical rank of ``[W; H^T]`` (singular
    values above ``max(rank_rtol sigma_1, rank_atol)``), the unit generator
    ``(e_i e_j^T - e_j e_i^T)/sqrt(2)`` has a tangent of norm ``sqrt((m_i + m_j)/2)``, so the
    orbit has dimension ``z(d, r) = d(d-1)/2 - (d-r)(d-r-1)/2`` (:func:`ufm.zero_mode_count`) and
    ``scale = sqrt((m_r + m_{r+1})/2)`` (``m_{d+1} = 0``). MSE: ``O(d) x O(K)`` (module
    docstring), counted as the numerical rank of the generator-tangent matrix (same thresholds)
    and its smallest counted singular value. Vmappable; at a critical point of rank ``r`` this
    is the orbit dimension of :func:`ufm.zero_mode_count` except for MSE with ``d`` below the
    rank of the minimiser, where the class rotations add ``d (K_eff - d)``.

    Example:
        >>> import ufm
        >>> spec = ufm.UFMSpec(K=5, n=2, d=4, loss="mse")
        >>> full = ufm.optimum(spec.replace(d=5)).params  # orthogonal frame in R^5
        >>> p = ufm.UFMParams(full.W[:, :4], full.H[:4])  # keep 4 of the 5 class directions
        >>> int(ufm.systems.ufm.facts.orbit_facts(spec, p).zero_modes)  # z(4, 4) = 6, + 4 (d < K)
        10
    """
    W, H = params.W, params.H
    dtype = W.dtype
    rtol, atol = jnp.asarray(rank_rtol, dtype), jnp.asarray(rank_atol, dtype)
    extra = 1 if (spec.loss == "ce" and spec.bias == "free") else 0
    d = spec.d
    if spec.loss == "mse":
        rank, scale = orbit_rank_and_scale(_mse_tangents(spec, params), rtol, atol)
        return OrbitFacts((rank + extra).astype(jnp.int32), scale)
    sv = singular_values(jnp.concatenate([W, H.T], axis=0))[:d]
    sv = jnp.pad(sv, (0, d - sv.shape[0]))  # fewer than d rows: the rest is null
    keep = sv > jnp.maximum(rtol * sv[0], atol)
    r = jnp.sum(keep).astype(jnp.int32)
    m = jnp.where(keep, sv, 0.0) ** 2
    m_next = jnp.concatenate([m[1:], jnp.zeros((1,), dtype)])
    pair = jnp.sqrt(0.5 * (m + m_next))  # pair (i, i+1), i = r-1: the weakest counted tangent
    idx = jnp.clip(r - 1, 0, d - 1)
    scale = jnp.where(
        (r > 0) & (d > 1), jnp.where(r < d, pair[idx], pair[jnp.maximum(d - 2, 0)]), jnp.inf
    )
    count = d * (d - 1) // 2 - (d - r) * (d - r - 1) // 2
    return OrbitFacts((count + extra).astype(jnp.int32), scale.astype(dtype))


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
    if spec.f_convex is not None:  # no closed form: the convex program's value, attached on the
        f_star = jnp.where(jnp.isnan(f_star), c(spec.f_convex), f_star)  # host (section 10)
    rank = numerical_rank_of(params.W, c(tols.rank_rtol), c(tols.rank_atol))
    # a common null direction of W and H^T exists iff rank [W; H^T] < d (same thresholds)
    escape = (
        numerical_rank_of(
            jnp.concatenate([params.W, params.H.T], axis=0), c(tols.rank_rtol), c(tols.rank_atol)
        )
        < spec.d
    )
    orbit = orbit_facts(spec, params, tols.rank_rtol, tols.rank_atol)
    return ModelFacts(
        f_star,
        jnp.asarray(True),
        cert.sigma_1,
        cert.gap,
        cert.bound,
        jnp.where(escape, nc.bound, jnp.nan),
        rank,
        orbit.zero_modes,
        orbit.scale,
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
