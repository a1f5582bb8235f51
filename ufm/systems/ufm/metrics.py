"""Neural-collapse metrics of a UFM point: the system's ``metrics`` hook
(:func:`ufm.nc_metrics`).

Balanced classes use the class-major fast path :func:`ufm.metrics.nc_metrics_class_major`.
Imbalanced classes (``spec.n`` a tuple of class sizes) evaluate the same keys from the labelled
metrics of :mod:`ufm.metrics` (class means over unequal classes, ``mu_G`` the mean of all ``N``
samples), with the same definitions (docs/metrics.md).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ...metrics import (
    NC_METRIC_NAMES,
    class_means,
    equiangularity,
    equinorm,
    max_angle_deviation,
    nc1_cdnv,
    nc1_pinv,
    nc1_quotient,
    nc1_svd,
    nc2_etf_means,
    nc2_etf_weights,
    nc2_orthogonal_frame_means,
    nc2_orthogonal_frame_weights,
    nc3_papyan,
    nc3_zhu,
    nc4_bias_relation,
    nc4_ncc_agreement,
    nc_metrics_class_major,
    numerical_rank,
)
from .objective import labels
from .spec import UFMSpec

__all__ = ["ufm_nc_metrics", "NC_METRIC_NAMES"]


def ufm_nc_metrics(spec: UFMSpec, params, *, rtol: float | None = None, tau: float = 1e-3) -> dict:
    """All NC metrics of a UFM point (keys :data:`ufm.NC_METRIC_NAMES`; class-major labels
    ``ufm.systems.ufm.labels(K, n)``): :func:`ufm.metrics.nc_metrics_class_major` of ``(W, H,
    b)`` for balanced classes, the labelled metrics of :mod:`ufm.metrics` for class sizes."""
    W, H, b, K = params.W, params.H, params.b, spec.K
    if spec.balanced:
        return nc_metrics_class_major(W, H, b, K, spec.n, rtol=rtol, tau=tau)
    return _labelled(W, H, b, K=K, sizes=spec.n, rtol=rtol, tau=float(tau))


@functools.partial(jax.jit, static_argnames=("K", "sizes", "rtol", "tau"))
def _labelled(W, H, b, *, K, sizes, rtol, tau):
    """The metrics over class-major labels of the given class sizes (one compiled call)."""
    y = labels(K, sizes)
    means, mu_G = class_means(H, y, K)
    M = means - mu_G[:, None]
    out = {
        "nc1_pinv": nc1_pinv(H, y, K, rtol=rtol),
        "nc1_svd": nc1_svd(H, y, K, rtol=rtol),
        "nc1_quotient": nc1_quotient(H, y, K),
        "nc1_cdnv": nc1_cdnv(H, y, K),
        "nc2_equinorm_M": equinorm(M),
        "nc2_equinorm_W": equinorm(W.T),
        "nc2_equiangular_M": equiangularity(M),
        "nc2_equiangular_W": equiangularity(W.T),
        "nc2_maxangle_M": max_angle_deviation(M),
        "nc2_maxangle_W": max_angle_deviation(W.T),
        "nc2_etf_M": nc2_etf_means(H, y, K),
        "nc2_etf_W": nc2_etf_weights(W, center=True),
        "nc2_orth_M": nc2_orthogonal_frame_means(H, y, K),
        "nc2_orth_W": nc2_orthogonal_frame_weights(W),
        "nc3_papyan": nc3_papyan(W, H, y, K),
        "nc3_zhu": nc3_zhu(W, H, y, K),
        "nc4_ncc": nc4_ncc_agreement(W, b, H, y, K),
        "nc4_bias": nc4_bias_relation(W, b, H, y, K),
        "rank_M": numerical_rank(M, tau),
        "rank_W": numerical_rank(W, tau),
    }
    return {k: jnp.asarray(out[k]) for k in NC_METRIC_NAMES}
