"""Per-layer deep-neural-collapse (DNC) metrics of a deep-UFM point (docs/theory.md section 5,
"Deep").

For every layer ``l = 1..L`` the metrics are taken on the layer's input ``H_l`` (``H_1`` the free
features, ``H_l`` for ``l >= 2`` post-activation) and on its pre-activation ``Z_l = W_l H_l``
(``Z_L`` the output), see :class:`ufm.deep.DeepFeatures`. Keys (``X`` is ``H`` or ``Z``):

- ``dnc1_pinv_X{l}``: :func:`ufm.metrics.nc1_pinv`, ``Tr(Sigma_W Sigma_B^+)/K`` (threshold
``rtol``);
- ``dnc1_quot_X{l}``: :func:`ufm.metrics.nc1_quotient`, ``Tr Sigma_W / Tr Sigma_B`` (robust for low
rank);
- ``dnc2_X{l}``: for post-ReLU inputs (``H_l``, ``l >= 2``, activation ``relu``) the
  orthogonal-frame error of the *uncentred* class means
  (:func:`ufm.metrics.nc2_orthogonal_frame_means`),
  otherwise the simplex-ETF error of the centred means (:func:`ufm.metrics.nc2_etf_means`); both are
  0 at DNC;
- ``rank_X{l}``: :func:`ufm.metrics.numerical_rank` of the uncentred class-mean matrix (``d_l x
K``),
  ``#{sigma_i > tau sigma_1}`` with the stated ``tau``;
- ``dnc3_span_W{l}``: ``1 - ||W_l P_l||_F^2 / ||W_l||_F^2``, ``P_l`` the projector on the span of
  the uncentred class means of ``H_l`` (singular values above ``tau sigma_1``): 0 when the rows of
  ``W_l`` lie in that span (DNC, and the low-rank SRG solutions);
- ``dnc3_row_W{l}``: ``sum_i ||w_i||^2 (1 - max_c cos^2(w_i, mu_c)) / ||W_l||_F^2``: 0 when every
  row of ``W_l`` is zero or collinear with a class mean of ``H_l`` (the DNC3 of Sukenik et al. 2023,
  arXiv 2305.13165); positive at the SRG solutions;
- ``dnc3_papyan_W{L}``: ``||W_L^T/||W_L|| - M/||M|| ||_F^2`` with ``M`` the *uncentred* class means
of
  ``H_L`` (self-duality of the last layer, MSE without bias; Papyan et al. 2020's NC3 uses centred
  means, which do not match an orthogonal frame).

References: Sukenik, Mondelli, Lampert 2023 (arXiv 2305.13165); Sukenik, Lampert, Mondelli 2024
(arXiv 2405.14468), who plot DNC1 per layer and the singular values / rank of the class means.
"""

from __future__ import annotations

import jax.numpy as jnp

from ...metrics.class_stats import class_means
from ...metrics.collapse import nc1_pinv, nc1_quotient, nc2_etf_means, nc2_orthogonal_frame_means
from ...metrics.frames import fro_normalize, numerical_rank, safe_div
from ..ufm.objective import labels as _labels
from .model import NONNEGATIVE, DeepUFMParams, DeepUFMSpec, deep_features

__all__ = ["deep_metric_names", "deep_metrics"]

_PER_FEATURE = ("dnc1_pinv", "dnc1_quot", "dnc2", "rank")


def deep_metric_names(L: int) -> tuple:
    """Keys of :func:`deep_metrics` for ``L`` layers, in a stable order."""
    names = []
    for l in range(1, L + 1):
        for X in ("H", "Z"):
            names += [f"{m}_{X}{l}" for m in _PER_FEATURE]
        names += [f"dnc3_span_W{l}", f"dnc3_row_W{l}"]
    names.append(f"dnc3_papyan_W{L}")
    return tuple(names)


def _span_misalignment(W, U, keep):
    inside = jnp.sum(jnp.where(keep[None, :], (W @ U) ** 2, jnp.zeros((), W.dtype)))
    total = jnp.sum(W**2)
    return jnp.clip(safe_div(total - inside, total), 0.0, 1.0)


def _row_misalignment(W, means):
    mn2 = jnp.sum(means**2, axis=0)  # (K,)
    proj2 = safe_div((W @ means) ** 2, jnp.broadcast_to(mn2, (W.shape[0], mn2.shape[0])))
    best = jnp.max(proj2, axis=1)  # ||w_i||^2 max_c cos^2(w_i, mu_c)
    total = jnp.sum(W**2)
    return jnp.clip(safe_div(total - jnp.sum(best), total), 0.0, 1.0)


def _feature_metrics(A, lab, K, rtol, tau, post_relu):
    """NC1 (pinv, quotient), NC2 and rank of one feature matrix, its raw class means and their
    SVD."""
    means, _ = class_means(A, lab, K)
    dnc2 = (
        nc2_orthogonal_frame_means(A, lab, K, center=False)
        if post_relu
        else nc2_etf_means(A, lab, K)
    )
    U, sv, _ = jnp.linalg.svd(means, full_matrices=False)
    keep = sv > tau * sv[0]
    vals = (nc1_pinv(A, lab, K, rtol), nc1_quotient(A, lab, K), dnc2, numerical_rank(means, tau))
    return dict(zip(_PER_FEATURE, vals)), means, U, keep


def deep_metrics(
    spec: DeepUFMSpec, params: DeepUFMParams, *, tau: float = 1e-3, rtol: float | None = None
) -> dict:
    """Per-layer DNC metrics of one deep-UFM point, a dict of scalars (keys in the module
    docstring).

    ``tau`` is the relative singular-value threshold of the ranks and of ``dnc3_span``
    (default ``1e-3``); ``rtol`` that of the NC1 pseudo-inverse (default as
    :func:`ufm.metrics.nc1_pinv`).
    Built from the public primitives (:func:`ufm.metrics.nc1_pinv`,
    :func:`ufm.metrics.nc1_quotient`,
    :func:`ufm.metrics.nc2_orthogonal_frame_means`, :func:`ufm.metrics.nc2_etf_means`,
    :func:`ufm.metrics.numerical_rank`
    of :func:`ufm.metrics.class_means`) with the class-major labels :func:`ufm.systems.ufm.labels`.
    Pure and
    ``vmap``-able over a leading seed axis of ``params``, so it can be the ``record`` of
    :func:`ufm.optimize` (``record=ufm.deep.deep_metrics``). Also registered as
    ``ufm.nc_metrics(deep_spec, params)``. Ranks are ``int32``, the rest in the params' dtype.

    Example:
        >>> import ufm
        >>> spec = ufm.DeepUFMSpec(K=3, n=2, L=2, widths=4, lambda_H1=4e-3, lambda_W=4e-3)
        >>> m = ufm.deep.deep_metrics(spec, ufm.deep.dnc_point(spec))
        >>> int(m["rank_H2"]), round(float(m["dnc2_H2"]), 6), round(float(m["dnc1_quot_Z1"]), 6)
        (3, 0.0, 0.0)
    """
    if not tau >= 0:
        raise ValueError(f"tau must be >= 0, got {tau!r}")
    K = spec.K
    lab = _labels(K, spec.n)
    feats = deep_features(spec, params)
    out = {}
    for i in range(spec.L):
        for X, A in (("H", feats.H[i]), ("Z", feats.Z[i])):
            post_relu = X == "H" and i > 0 and spec.activation in NONNEGATIVE
            vals, means, U, keep = _feature_metrics(A, lab, K, rtol, tau, post_relu)
            out.update({f"{k}_{X}{i + 1}": v for k, v in vals.items()})
            if X == "H":
                W = params.Ws[i]
                out[f"dnc3_span_W{i + 1}"] = _span_misalignment(W, U, keep)
                out[f"dnc3_row_W{i + 1}"] = _row_misalignment(W, means)
                means_in = means
    W = params.Ws[-1]
    out[f"dnc3_papyan_W{spec.L}"] = jnp.sum((fro_normalize(W.T) - fro_normalize(means_in)) ** 2)
    return {k: out[k] for k in deep_metric_names(spec.L)}


def deep_metrics_hook(
    spec: DeepUFMSpec, params, *, rtol: float | None = None, tau: float = 1e-3
) -> dict:
    """The deep UFM's ``metrics`` hook (:func:`ufm.nc_metrics`): :func:`deep_metrics`."""
    return deep_metrics(spec, params, tau=tau, rtol=rtol)
