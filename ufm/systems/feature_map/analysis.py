"""One call from (features, outputs, targets) to every forward-feature-map quantity.

Nam, Mingard, Lee, Hayou & Louis 2024 (arXiv 2410.04264). The result feeds :func:`verdict`
("minimal" vs "extended" features); docs/feature_map.md gives every formula.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .alignment import d_lr
from .spectrum import (
    _check_features,
    _spectrum,
    centred_gap,
    cumulative_mass,
    effective_rank,
    participation_ratio,
    projections,
)

__all__ = ["FeatureMapAnalysis", "analyse", "at_k"]


class FeatureMapAnalysis(NamedTuple):
    """Forward-feature-map quantities (all JAX arrays in the features' dtype; jit/vmap-friendly).

    Uncentred operator of the readout (``M`` of ``[Phi, 1]`` with ``bias=True``, of ``Phi``
    otherwise), ``q`` eigen-directions:

    Attributes:
        rho: eigenvalues ``(q,)``, descending.
        rho_ratio: ``rho_k / rho_1``.
        a_target: ``a_{k,c} = <e_k | y_c>``, ``(q, C)``.
        a_output: ``<e_k | f_hat_c>``, ``(q, C)``.
        pi_star: cumulative target mass ``Pi*(k)``, ``(q,)``.
        pi_hat: utilisation ``Pi_hat(k)`` (the same for the outputs), ``(q,)``.
        rank: number of non-zero eigenvalues (see :func:`feature_spectrum`'s ``rtol``).
        rho_centred: eigenvalues of the centred operator (features centred over samples).
        participation_ratio: ``(sum rho^c)^2 / sum (rho^c)^2``.
        effective_rank: ``exp(H(rho^c / sum rho^c))``.
        centred_gap: ``rho^c_C / rho^c_{C-1}`` (:func:`centred_gap`).
        d_lr: ``1 - CKA(F_c F_c^T, Q Q^T)`` (:func:`d_lr`).
        pi_star_C: ``Pi*(C)``; pi_hat_C: ``Pi_hat(C)``.
    """

    rho: jax.Array
    rho_ratio: jax.Array
    a_target: jax.Array
    a_output: jax.Array
    pi_star: jax.Array
    pi_hat: jax.Array
    rank: jax.Array
    rho_centred: jax.Array
    participation_ratio: jax.Array
    effective_rank: jax.Array
    centred_gap: jax.Array
    d_lr: jax.Array
    pi_star_C: jax.Array
    pi_hat_C: jax.Array

    @property
    def num_classes(self) -> int:
        return int(self.a_target.shape[1])


def at_k(curve, k: int) -> jax.Array:
    """``curve(k)`` (1-based) of a cumulative curve; beyond its length, its last value."""
    curve = jnp.asarray(curve)
    return curve[min(k, curve.shape[0]) - 1]


def analyse(
    F,
    f_hat,
    Y,
    *,
    bias: bool = True,
    method: str = "svd",
    rtol: float | None = None,
) -> FeatureMapAnalysis:
    """Spectrum, projections, mass curves, centred concentration and ``D_LR`` of one network.

    Args:
        F: penultimate features ``Phi(x_i)``, ``(n, p)``.
        f_hat: outputs ``(n, C)`` on the same samples.
        Y: targets ``(n, C)`` (one-hot or any real targets) or integer labels ``(n,)``
            (one-hot with ``C = f_hat.shape[1]``).
        bias: the readout has a trained bias (``f = W Phi + b``): analyse the operator of
            ``[Phi, 1]`` (the gradient-descent operator of ``(W, b)``). ``False`` for a head
            without bias (e.g. the fixed ETF head).
        method, rtol: see :func:`feature_spectrum`.

    ``f_hat`` and ``Y`` are cast to ``F``'s dtype.

    Example:
        >>> import jax.numpy as jnp
        >>> F = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])  # one-hot features
        >>> r = analyse(F, F, jnp.array([0, 1, 0, 1]), bias=False)
        >>> float(r.pi_star_C), float(r.d_lr), r.rho.tolist()
        (1.0, 0.0, [0.5, 0.5])
    """
    F = _check_features(F)
    f_hat = jnp.asarray(f_hat).astype(F.dtype)
    Y = jnp.asarray(Y)
    if f_hat.ndim != 2 or f_hat.shape[0] != F.shape[0]:
        raise ValueError(f"f_hat must be (n, C) with n = {F.shape[0]} rows (got {f_hat.shape})")
    C = f_hat.shape[1]
    if Y.ndim == 1 and jnp.issubdtype(Y.dtype, jnp.integer):
        Y = jax.nn.one_hot(Y, C, dtype=F.dtype)
    if Y.shape != f_hat.shape:
        raise ValueError(f"Y must be (n, C) = {f_hat.shape} or (n,) labels (got {Y.shape})")
    if C < 2:
        raise ValueError(f"f_hat must have C >= 2 output columns (got {C})")
    if method not in ("svd", "eigh"):
        raise ValueError(f"method must be one of ('svd', 'eigh') (got {method!r})")
    return _analyse(F, f_hat, Y.astype(F.dtype), bias, method, rtol)


@functools.partial(jax.jit, static_argnums=(3, 4, 5))
def _analyse(F, f_hat, Y, bias: bool, method: str, rtol) -> FeatureMapAnalysis:
    C = f_hat.shape[1]
    spec = _spectrum(F, False, bias, method, rtol)
    a_t = projections(spec.efuns, Y)
    a_o = projections(spec.efuns, f_hat)
    pi_star = cumulative_mass(a_t, Y)
    pi_hat = cumulative_mass(a_o, f_hat)
    rho_c = _spectrum(F, True, False, method, rtol).rho
    return FeatureMapAnalysis(
        rho=spec.rho,
        rho_ratio=spec.rho / spec.rho[0],
        a_target=a_t,
        a_output=a_o,
        pi_star=pi_star,
        pi_hat=pi_hat,
        rank=jnp.sum(spec.valid),
        rho_centred=rho_c,
        participation_ratio=participation_ratio(rho_c),
        effective_rank=effective_rank(rho_c),
        centred_gap=centred_gap(rho_c, C),
        d_lr=d_lr(F, f_hat, rtol=rtol),
        pi_star_C=at_k(pi_star, C),
        pi_hat_C=at_k(pi_hat, C),
    )
