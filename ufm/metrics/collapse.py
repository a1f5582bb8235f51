"""Neural-collapse metrics NC1-NC4 from features and labels (docs/metrics.md): the conventions,
and all of them at once for a balanced class-major point.

Conventions: features ``H`` of shape ``(d, N)`` (columns are samples), integer ``labels`` of shape
``(N,)`` with values in ``[0, K)``, ``num_classes = K`` a static Python int, classifier ``W`` of
shape ``(K, d)``, bias ``b`` of shape ``(K,)`` or ``None``. Class statistics use one-hot matrix
products (no per-sample loops, no data-dependent shapes), so every metric is ``jit``- and
``vmap``-compatible (mark ``num_classes`` static under ``jit``; vmap over a leading seed axis of
``H, W, b`` with the labels shared) and returns the input dtype.

Statistics as in :mod:`ufm.metrics.class_stats` (Papyan, Han & Donoho 2020, arXiv 2008.08186): class
means ``mu_c``, global mean ``mu_G`` (mean of all samples), centred means ``M = [mu_c - mu_G]``,
``Sigma_W``, ``Sigma_B = M M^T / K``. An empty class (mean 0) is left out of the NCC classifier and
of the CDNV pairs. Each public function validates its inputs in Python (errors name the argument)
and runs one compiled implementation (``jit_call``), so eager calls are cheap too.

The single metrics live in :mod:`ufm.metrics.nc1` (NC1 variants) and :mod:`ufm.metrics.nc2_nc4`
(NC2-NC4) and are importable from here too. :func:`nc_metrics_class_major` evaluates all of them
for balanced class-major features (the UFM layout), cheaply (class-major reshapes, one thin SVD),
for recording along training; the UFM's ``metrics`` hook (:func:`ufm.nc_metrics`) calls it.
"""

from __future__ import annotations

import jax.numpy as jnp

from ..core.validation import check_int
from .class_stats import _check_b, _check_W, _stats_class_major
from .frames import (
    _equiangularity,
    _equinorm,
    _etf_error,
    _max_angle_deviation,
    _numerical_rank,
    _orthogonal_frame_error,
    as_float,
    jit_call,
)
from .nc1 import NC1_RCOND as NC1_RCOND
from .nc1 import _cdnv, _nc1_inverse, _nc1_scale, _nc1_spectrum, _quotient, _rtol
from .nc1 import nc1_cdnv as nc1_cdnv
from .nc1 import nc1_pinv as nc1_pinv
from .nc1 import nc1_quotient as nc1_quotient
from .nc1 import nc1_svd as nc1_svd
from .nc2_nc4 import _bias_relation, _center_rows, _ncc_agreement, _papyan
from .nc2_nc4 import nc2_etf_means as nc2_etf_means
from .nc2_nc4 import nc2_etf_weights as nc2_etf_weights
from .nc2_nc4 import nc2_orthogonal_frame_means as nc2_orthogonal_frame_means
from .nc2_nc4 import nc2_orthogonal_frame_weights as nc2_orthogonal_frame_weights
from .nc2_nc4 import nc3_papyan as nc3_papyan
from .nc2_nc4 import nc3_zhu as nc3_zhu
from .nc2_nc4 import nc4_bias_relation as nc4_bias_relation
from .nc2_nc4 import nc4_ncc_agreement as nc4_ncc_agreement

# -- all metrics of a UFM point --------------------------------------------------------------

NC_METRIC_NAMES = (
    "nc1_pinv",
    "nc1_svd",
    "nc1_quotient",
    "nc1_cdnv",
    "nc2_equinorm_M",
    "nc2_equinorm_W",
    "nc2_equiangular_M",
    "nc2_equiangular_W",
    "nc2_maxangle_M",
    "nc2_maxangle_W",
    "nc2_etf_M",
    "nc2_etf_W",
    "nc2_orth_M",
    "nc2_orth_W",
    "nc3_papyan",
    "nc3_zhu",
    "nc4_ncc",
    "nc4_bias",
    "rank_M",
    "rank_W",
)
"""Keys of :func:`nc_metrics_class_major` (and of :func:`ufm.nc_metrics` for the UFM), in order."""


def nc_metrics_class_major(
    W, H, b, num_classes: int, n: int, *, rtol: float | None = None, tau: float = 1e-3
) -> dict:
    """All NC metrics of balanced class-major features ``H (d, K n)`` with classifier ``W``, ``b``.

    Keys (:data:`NC_METRIC_NAMES`); ``M`` centred class means, ``M_raw`` uncentred, ``W`` as given:

    - ``nc1_pinv``, ``nc1_svd`` (threshold ``rtol``, default as in :func:`nc1_pinv`),
      ``nc1_quotient``, ``nc1_cdnv``;
    - ``nc2_equinorm_M``/``_W`` (:func:`equinorm` of ``M`` and ``W^T``, ``ddof=0``),
      ``nc2_equiangular_M``/``_W`` (:func:`equiangularity`), ``nc2_maxangle_M``/``_W``
      (:func:`max_angle_deviation`), ``nc2_etf_M`` (:func:`nc2_etf_means`), ``nc2_etf_W``
      (:func:`nc2_etf_weights`, centred), ``nc2_orth_M`` (:func:`nc2_orthogonal_frame_means`,
      uncentred), ``nc2_orth_W`` (:func:`nc2_orthogonal_frame_weights`, uncentred);
    - ``nc3_papyan`` (uncentred ``W``), ``nc3_zhu``;
    - ``nc4_ncc`` (:func:`nc4_ncc_agreement`: 1 at collapse; plot ``1 - x`` on log axes),
      ``nc4_bias`` (:func:`nc4_bias_relation`);
    - ``rank_M``, ``rank_W``: :func:`numerical_rank` of ``M`` and ``W`` with threshold ``tau``
      (default ``1e-3``), ``int32``.

    Everything else is in the dtype of ``params.H``. Pure and cheap (class-major reshapes, a thin
    SVD
    of ``M`` and of ``W``): ``jax.vmap(lambda p: nc_metrics(spec, p))`` over a leading seed axis.
    Which metrics vanish at which optimum: all but ``nc2_orth_*`` at the CE optimum (and
    ``nc4_bias``
    needs ``b = 0``); for the MSE no-bias optimum ``nc2_orth_M``, ``nc2_orth_W`` and the centred or
    ``W M`` based ones vanish, not ``nc3_papyan``, ``nc2_maxangle_W`` or ``nc4_bias``.

    Example:
        >>> import jax, ufm
        >>> spec = ufm.UFMSpec(K=3, n=2, d=4, dtype="float32")
        >>> m = ufm.nc_metrics(spec, ufm.init_params(spec, jax.random.key(0)))
        >>> tuple(m) == ufm.NC_METRIC_NAMES
        True
    """
    K = check_int("num_classes", num_classes, 2)
    n = check_int("n", n, 1)
    H = as_float(H)
    if H.ndim != 2 or H.shape[1] != K * n:
        raise ValueError(f"H must have shape (d, K n) = (d, {K * n}), got {H.shape}")
    W = _check_W(W, H.shape[0], K, H.dtype)
    b = _check_b(b, K, H.dtype)
    if not float(tau) >= 0:
        raise ValueError(f"tau must be >= 0, got {tau!r}")
    out = jit_call(_class_major_metrics, W, H, b, K=K, n=n, rtol=_rtol(rtol, H, K), tau=float(tau))
    return {k: out[k] for k in NC_METRIC_NAMES}  # jit returns dicts in sorted-key order


def _class_major_metrics(W, H, b, K, n, rtol, tau):
    st = _stats_class_major(H, K, n)
    N = H.shape[1]

    s, e = _nc1_spectrum(st)
    ref = _nc1_scale(st)
    G_M = st.M.T @ st.M
    Wc = _center_rows(W)
    out = {
        "nc1_pinv": _nc1_inverse(s, e, N, rtol, None, ref),
        "nc1_svd": _nc1_inverse(s, e, N, rtol, K - 1, ref),
        "nc1_quotient": _quotient(st, N, K),
        "nc1_cdnv": _cdnv(st, K),
        "nc2_equinorm_M": _equinorm(st.M),
        "nc2_equinorm_W": _equinorm(W.T),
        "nc2_equiangular_M": _equiangularity(st.M),
        "nc2_equiangular_W": _equiangularity(W.T),
        "nc2_maxangle_M": _max_angle_deviation(st.M),
        "nc2_maxangle_W": _max_angle_deviation(W.T),
        "nc2_etf_M": _etf_error(G_M),
        "nc2_etf_W": _etf_error(Wc @ Wc.T),
        "nc2_orth_M": _orthogonal_frame_error(st.means.T @ st.means),
        "nc2_orth_W": _orthogonal_frame_error(W @ W.T),
        "nc3_papyan": _papyan(W, st.M, False),
        "nc3_zhu": _etf_error(W @ st.M),
        "nc4_ncc": _ncc_agreement(W, b, H, st),
        "nc4_bias": _bias_relation(W, b, st.mu_G),
        "rank_M": jnp.sum(s > tau * s[0]).astype(jnp.int32),
        "rank_W": _numerical_rank(W, tau),
    }
    return out


#: Meaning of the columns of :func:`nc_metrics_class_major` (docs/metrics.md).
NC_METRIC_DOCS = {
    "nc1_pinv": "NC1 Tr(Sigma_W Sigma_B^+)/K (Papyan et al. 2020)",
    "nc1_svd": "NC1 with the top K-1 inverse of Sigma_B (Han et al. 2022)",
    "nc1_quotient": "NC1 Tr Sigma_W / Tr Sigma_B (Tirer et al.)",
    "nc1_cdnv": "class-distance normalised variance, mean over class pairs (Galanti et al.)",
    "nc2_equinorm_M": "std/mean of the centred class-mean norms",
    "nc2_equinorm_W": "std/mean of the classifier row norms",
    "nc2_equiangular_M": "std of the pairwise cosines of the centred class means",
    "nc2_equiangular_W": "std of the pairwise cosines of the classifier rows",
    "nc2_maxangle_M": "mean |cos + 1/(K-1)| of the centred class means",
    "nc2_maxangle_W": "mean |cos + 1/(K-1)| of the classifier rows",
    "nc2_etf_M": "simplex-ETF error of the centred class-mean Gram",
    "nc2_etf_W": "simplex-ETF error of the centred classifier Gram (Zhou et al.)",
    "nc2_orth_M": "orthogonal-frame error of the uncentred class-mean Gram",
    "nc2_orth_W": "orthogonal-frame error of W W^T",
    "nc3_papyan": "self-duality || W^T/||W|| - M/||M|| ||_F^2 (Papyan et al.)",
    "nc3_zhu": "simplex-ETF error of W M (Zhu et al.)",
    "nc4_ncc": "agreement of argmax(W h + b) with the nearest class centre (fraction)",
    "nc4_bias": "||W mu_G + b|| (the bias relation of Zhu et al.)",
    "rank_M": "numerical rank of the centred class means (count, threshold tau)",
    "rank_W": "numerical rank of W (count, threshold tau)",
}
