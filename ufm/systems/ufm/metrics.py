"""Neural-collapse metrics of a UFM point: the system's ``metrics`` hook
(:func:`ufm.nc_metrics`)."""

from __future__ import annotations

from ...metrics.collapse import NC_METRIC_NAMES, nc_metrics_class_major
from .spec import UFMSpec

__all__ = ["ufm_nc_metrics", "NC_METRIC_NAMES"]


def ufm_nc_metrics(spec: UFMSpec, params, *, rtol: float | None = None, tau: float = 1e-3) -> dict:
    """All NC metrics of a UFM point (keys :data:`ufm.NC_METRIC_NAMES`; class-major balanced
    labels ``ufm.systems.ufm.labels(K, n)``): :func:`ufm.metrics.nc_metrics_class_major` of ``(W, H,
    b)``."""
    return nc_metrics_class_major(params.W, params.H, params.b, spec.K, spec.n, rtol=rtol, tau=tau)
