"""Neural-collapse metrics NC1-NC4 from features and labels (docs/metrics.md).

Conventions: features ``H`` of shape ``(d, N)`` (columns are samples), integer ``labels`` of shape
``(N,)`` with values in ``[0, K)``, ``num_classes = K`` a static Python int, classifier ``W`` of
shape
``(K, d)``, bias ``b`` of shape ``(K,)`` or ``None``. Class statistics use one-hot matrix products
(no per-sample loops, no data-dependent shapes), so every metric is ``jit``- and ``vmap``-compatible
(mark ``num_classes`` static under ``jit``; vmap over a leading seed axis of ``H, W, b`` with the
labels shared) and returns the input dtype.

Statistics as in :mod:`ufm.metrics.class_stats` (Papyan, Han & Donoho 2020, arXiv 2008.08186): class
means ``mu_c``, global mean ``mu_G`` (mean of all samples), centred means ``M = [mu_c - mu_G]``,
``Sigma_W``, ``Sigma_B = M M^T / K``. An empty class (mean 0) is left out of the NCC classifier and
of the CDNV pairs. Each public function validates its inputs in Python (errors name the argument)
and runs one compiled implementation (``jit_call``), so eager calls are cheap too.

:func:`nc_metrics_class_major` evaluates all of them for balanced class-major features (the UFM
layout), cheaply (class-major reshapes, one thin SVD), for recording along training; the UFM's
``metrics`` hook (:func:`ufm.nc_metrics`) calls it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..core.validation import check_int
from .class_stats import _check_b, _check_W, _inputs, _Stats, _stats, _stats_class_major
from .frames import (
    _equiangularity,
    _equinorm,
    _etf_error,
    _max_angle_deviation,
    _numerical_rank,
    _orthogonal_frame_error,
    as_float,
    fro_normalize,
    jit_call,
    safe_div,
)

# -- NC1: within-class variability collapse -------------------------------------------------


def _default_rtol(d: int, K: int, dtype) -> float:
    """Default NC1 threshold ``max(d, K) * eps`` (relative, on singular values of the means)."""
    return float(max(d, K) * jnp.finfo(dtype).eps)


def _rtol(rtol, H, K: int) -> float:
    if rtol is None:
        return _default_rtol(H.shape[0], K, H.dtype)
    rtol = float(rtol)
    if not rtol >= 0:
        raise ValueError(f"rtol must be >= 0, got {rtol!r}")
    return rtol


#: Named pseudo-inverse cut-offs of the published NC1 codes (docs/metrics.md section 8.1): the
#: default relative cut-off ``c`` of the library ``pinv`` they call on the ``d x d`` matrix
#: ``Sigma_B`` (eigenvalues ``lambda_i`` kept when ``lambda_i > c lambda_1``), as a function of the
#: feature dimension ``d`` and ``eps`` of the features' dtype. ``"published"`` is the one of Zhu et
#: al.'s ``tding1/Neural-Collapse``, Zhou et al.'s code and ``rhubarbwu/neural-collapse``
#: (``scipy.linalg.pinv`` / ``torch.linalg.pinv``).
NC1_RCOND = {
    "published": lambda d, eps: d * eps,
    "scipy": lambda d, eps: d * eps,
    "torch": lambda d, eps: d * eps,
    "numpy": lambda d, eps: 1e-15,
    "jax": lambda d, eps: 10 * d * eps,
}


def _cutoff(rtol, rcond, H, K: int) -> tuple[float, bool]:
    """``(relative cut-off on sigma_i(M), relative to sigma_1?)``: ours (``rtol``, relative to
    ``||M_raw||_F``) or a published one (``rcond``, relative to ``sigma_1``)."""
    if rcond is None:
        return _rtol(rtol, H, K), False
    if rtol is not None:
        raise ValueError("give rtol or rcond, not both")
    if isinstance(rcond, str):
        if rcond not in NC1_RCOND:
            raise ValueError(
                f"rcond must be a number >= 0 or one of {sorted(NC1_RCOND)}; got {rcond!r}"
            )
        c = NC1_RCOND[rcond](H.shape[0], float(jnp.finfo(H.dtype).eps))
    else:
        c = float(rcond)
        if not c >= 0:
            raise ValueError(
                f"rcond must be a number >= 0 or one of {sorted(NC1_RCOND)}; got {rcond!r}"
            )
    return float(np.sqrt(c)), True  # lambda_i = sigma_i^2 / K: the cut-off on sigma is sqrt(c)


def _nc1_spectrum(st: _Stats):
    """Singular values ``s`` of ``M`` and energies ``e_i = N u_i^T Sigma_W u_i`` along its left
    vectors.

    ``Sigma_B = U diag(s^2/K) U^T``, so ``Tr(Sigma_W Sigma_B^+)/K = sum_i e_i / (N s_i^2)`` over the
    kept directions: one thin SVD of the ``(d, K)`` matrix ``M``, no ``d x d`` pseudo-inverse. Since
    ``M n = 0`` exactly (``n`` the class counts), ``M`` is first projected onto ``n^perp``: this
    removes
    the spurious K-th direction that rounding of the centring creates (of size ``eps |mu_G|``,
    large for features with a common offset).
    """
    n = st.counts
    M = st.M - jnp.outer(st.M @ n, n) / jnp.maximum(jnp.sum(n**2), 1)
    U, s, _ = jnp.linalg.svd(M, full_matrices=False)
    e = jnp.sum((U.T @ st.R) ** 2, axis=1)
    return s, e


def _nc1_scale(st: _Stats) -> jax.Array:
    """``||M_raw||_F``: bounds the rounding error of the centred means (the threshold's
    reference)."""
    return jnp.sqrt(jnp.sum(st.means**2))


def _nc1_inverse(s, e, N: int, rtol, top: int | None, ref=None) -> jax.Array:
    """``sum_i e_i / (N s_i^2)`` over ``s_i > rtol * ref`` (``ref`` default ``s_1``), top ``top``
    only."""
    ref = s[0] if ref is None else ref
    keep = s > rtol * ref  # ref = 0 (all means 0) keeps nothing
    if top is not None:
        keep = keep & (jnp.arange(s.shape[0]) < top)
    lam = s**2  # K * eigenvalues of Sigma_B
    terms = e / jnp.where(keep, lam, jnp.ones_like(lam))
    return jnp.sum(jnp.where(keep, terms, jnp.zeros_like(terms))) / N


def nc1_pinv(H, labels, num_classes: int, rtol: float | None = None, rcond=None) -> jax.Array:
    """NC1, pseudo-inverse variant ``Tr(Sigma_W Sigma_B^+) / K``.

    Papyan, Han & Donoho 2020 (arXiv 2008.08186); used by Zhu et al. 2021 (arXiv 2105.02375) and
    Zhou et al. 2022 (arXiv 2203.01238). Zero iff the within-class scatter has no component in the
    span of the centred means. Scale-, rotation- and translation-invariant.

    Threshold: with ``sigma_i`` the singular values of the centred means ``M`` (``lambda_i(Sigma_B)
    = sigma_i^2 / K``), directions with ``sigma_i <= rtol * ||M_raw||_F`` count as zero (``M_raw``
    the
    uncentred class means, whose size bounds the rounding error of the centring). Default
    ``rtol = max(d, K) * eps`` (``eps`` of the dtype; ``numpy.linalg.matrix_rank``'s tolerance), so
    rounding-level directions are dropped even when the features share a large offset (post-ReLU
    layers). For centred features this is ``numpy.linalg.pinv(Sigma_B, rcond=r)`` with
    ``r ~ rtol**2``. The exact identity ``M n = 0`` (``n`` the class counts) is imposed before the
    SVD,
    so ``rank Sigma_B <= K - 1`` holds numerically too. If ``Sigma_B = 0`` (all class means equal,
    e.g. zero features) then ``Sigma_B^+ = 0`` and the value is 0; :func:`nc1_quotient` is ``inf``
    there (unless ``Sigma_W = 0`` too). The value is large and unstable when a kept ``sigma_i`` is
    small (nearly rank-deficient means); :func:`nc1_quotient` is the robust alternative.

    Published cut-offs (``rcond``, instead of ``rtol``): ``rcond="published"`` (the same as
    ``"scipy"`` and ``"torch"``) keeps the eigenvalues ``lambda_i(Sigma_B) > d eps lambda_1``, the
    default of ``scipy.linalg.pinv(Sigma_B)`` used by Zhu et al.'s ``tding1/Neural-Collapse``,
    Zhou et al.'s code and ``torch.linalg.pinv`` in ``rhubarbwu/neural-collapse``;
    ``"numpy"`` (``1e-15 lambda_1``, ``numpy.linalg.pinv``'s default) and ``"jax"`` (``10 d eps
    lambda_1``) likewise; a number ``c`` keeps ``lambda_i > c lambda_1``. ``eps`` is that of the
    features' dtype: pass float32 features to reproduce a float32 computation. These cut-offs drop
    genuine weak directions of the means (``sigma_i < sqrt(d eps) sigma_1``, ``3.7e-8`` for
    ``d = 6`` in float64, ``8e-3`` for ``d = 512`` in float32), where the default keeps them; the
    rank-``K - 1`` projection above is applied in every case (docs/metrics.md section 8.1).

    Example:
        >>> import numpy as np
        >>> H = np.array([[-1.0, 1.0, 9.0, 11.0]])  # class means 0 and 10, within variance 1
        >>> round(float(nc1_pinv(H, np.array([0, 0, 1, 1]), 2)), 6)  # (1) / (25) / 2
        0.02
        >>> round(float(nc1_pinv(H, np.array([0, 0, 1, 1]), 2, rcond="published")), 6)
        0.02
    """
    H, labels, K = _inputs(H, labels, num_classes)
    cut, top_ref = _cutoff(rtol, rcond, H, K)
    return jit_call(_nc1_pinv, H, labels, K=K, rtol=cut, top=None, top_ref=top_ref)


def nc1_svd(H, labels, num_classes: int, rtol: float | None = None, rcond=None) -> jax.Array:
    """NC1, truncated variant: ``Tr(Sigma_W Sigma_B^+)/K`` over the top ``K-1`` eigenvectors of
    ``Sigma_B``.

    Han, Papyan & Donoho 2022 (arXiv 2106.02073) invert ``Sigma_B`` on its top ``K-1`` eigenvectors
    (``scipy.sparse.linalg.svds(Sigma_B, k=K-1)``), because ``rank Sigma_B <= K-1``. Among those,
    directions below the threshold of :func:`nc1_pinv` (same ``rtol`` and default) are still
    dropped,
    so with the default it equals :func:`nc1_pinv` (this implementation already enforces the rank
    bound). ``rtol=0`` reproduces Han's code, which inverts every positive one of the top ``K-1``
    eigenvalues however small: unstable when ``rank Sigma_B < K-1``. ``Sigma_B = 0`` gives 0.
    ``rcond`` applies a published cut-off instead, as in :func:`nc1_pinv`.

    Example:
        >>> import numpy as np
        >>> H = np.array([[-1.0, 1.0, 9.0, 11.0]])
        >>> round(float(nc1_svd(H, np.array([0, 0, 1, 1]), 2)), 6)
        0.02
    """
    H, labels, K = _inputs(H, labels, num_classes)
    cut, top_ref = _cutoff(rtol, rcond, H, K)
    return jit_call(_nc1_pinv, H, labels, K=K, rtol=cut, top=K - 1, top_ref=top_ref)


def _nc1_pinv(H, labels, K, rtol, top, top_ref=False):
    st = _stats(H, labels, K)
    ref = None if top_ref else _nc1_scale(st)
    return _nc1_inverse(*_nc1_spectrum(st), H.shape[1], rtol, top, ref)


def _quotient(st: _Stats, N: int, K: int) -> jax.Array:
    return safe_div(jnp.sum(st.R**2) / N, jnp.sum(st.M**2) / K)


def nc1_quotient(H, labels, num_classes: int) -> jax.Array:
    """NC1, trace quotient ``Tr Sigma_W / Tr Sigma_B``.

    Tirer, Huang & Niles-Weed 2023 (arXiv 2210.16658). Needs no pseudo-inverse, so it stays
    meaningful when ``rank Sigma_B < K-1`` (planted saddles, low-rank deep layers). Scale- and
    rotation-invariant. Defined as ``0`` when both traces vanish (all features equal) and ``inf``
    when
    only ``Tr Sigma_B`` does.

    Example:
        >>> import numpy as np
        >>> H = np.array([[-1.0, 1.0, 9.0, 11.0]])
        >>> round(float(nc1_quotient(H, np.array([0, 0, 1, 1]), 2)), 6)  # 1 / 25
        0.04
    """
    H, labels, K = _inputs(H, labels, num_classes)
    return jit_call(_nc1_quotient, H, labels, K=K)


def _nc1_quotient(H, labels, K):
    return _quotient(_stats(H, labels, K), H.shape[1], K)


def _cdnv(st: _Stats, K: int) -> jax.Array:
    sq = jnp.sum(st.R**2, axis=0)  # (N,)
    var = st.class_sum(sq) / jnp.where(st.counts > 0, st.counts, jnp.ones_like(st.counts))
    G = st.M.T @ st.M
    g = jnp.diag(G)
    iu = np.triu_indices(K, 1)
    dist2 = jnp.maximum(g[:, None] + g[None, :] - 2 * G, 0)[iu]
    ratio = safe_div((var[:, None] + var[None, :])[iu], 2 * dist2)
    valid = ((st.counts[:, None] > 0) & (st.counts[None, :] > 0))[iu]
    total = jnp.sum(jnp.where(valid, ratio, jnp.zeros_like(ratio)))
    return safe_div(total, jnp.sum(valid).astype(ratio.dtype))


def nc1_cdnv(H, labels, num_classes: int) -> jax.Array:
    """NC1, class-distance normalised variance (CDNV), averaged over class pairs.

    Galanti, Gyorgy & Hutter 2022 (arXiv 2112.15121):
    ``V(c, c') = (var_c + var_c') / (2 ||mu_c - mu_c'||^2)`` with ``var_c = E_{i in c} ||h_i -
    mu_c||^2``
    (total variance, the trace of the class covariance), averaged over the ``K(K-1)/2`` unordered
    pairs of non-empty classes. Scale- and rotation-invariant, needs no inverse. A pair with equal
    means contributes ``0`` if both variances vanish and ``inf`` otherwise.

    Example:
        >>> import numpy as np
        >>> H = np.array([[-1.0, 1.0, 9.0, 11.0]])  # var 1 in each class, distance 10
        >>> round(float(nc1_cdnv(H, np.array([0, 0, 1, 1]), 2)), 6)  # (1 + 1) / (2 * 100)
        0.01
    """
    H, labels, K = _inputs(H, labels, num_classes)
    return jit_call(_nc1_cdnv, H, labels, K=K)


def _nc1_cdnv(H, labels, K):
    return _cdnv(_stats(H, labels, K), K)


# -- NC2: convergence to a simplex ETF / orthogonal frame -----------------------------------


def _center_rows(W: jax.Array) -> jax.Array:
    return W - jnp.mean(W, axis=0, keepdims=True)


def _classifier(W) -> jax.Array:
    W = as_float(W)
    if W.ndim != 2 or W.shape[0] < 2:
        raise ValueError(f"W must have shape (K, d) with K >= 2, got {W.shape}")
    return W


def nc2_etf_weights(W, center: bool = True) -> jax.Array:
    """NC2 for the classifier: :func:`etf_error` of ``W_c W_c^T``, ``W_c = W - 1 w_bar^T`` if
    ``center``, else ``W`` itself.

    Which published variant is which (docs/metrics.md section 8.2):

    * ``center=True`` (the default, and ``nc_metrics``' ``nc2_etf_W``): rows centred (the mean
      classifier ``w_bar`` subtracted) before comparing with the simplex ETF. Of the published
      codes only Zhou et al. 2022's (arXiv 2203.01238) centres ``W``. It vanishes at every
      non-zero UFM optimum, including the MSE no-bias one (an uncentred orthogonal frame).
    * ``center=False``: ``W`` as it is, ``||W W^T/||W W^T||_F - (I - J/K)/sqrt(K-1)||_F``:
      exactly ``compute_ETF`` of Zhu et al. 2021 (``tding1/Neural-Collapse``, arXiv
      2105.02375) and ``rhubarbwu``'s ``simplex_etf_error`` applied to ``W`` with ``m_G = 0``.

    The two agree when ``w_bar = 0`` (every CE optimum); at the MSE no-bias optimum the uncentred
    value is 0.5176 for ``K = 4``. ``W`` is ``(K, d)``. Scale- and rotation-invariant
    (``W -> c W Q^T``).

    Example:
        >>> import jax.numpy as jnp
        >>> W = jnp.eye(4)  # the MSE no-bias optimum's classifier, up to scale and rotation
        >>> round(float(nc2_etf_weights(W)), 6), round(float(nc2_etf_weights(W, center=False)), 4)
        (0.0, 0.5176)
    """
    return jit_call(_nc2_weights, _classifier(W), center=bool(center), target="etf")


def nc2_orthogonal_frame_weights(W, center: bool = False) -> jax.Array:
    """NC2 for the MSE UFM without bias: :func:`orthogonal_frame_error` of ``W W^T``.

    Rows uncentred by default (the optimum's ``W`` is an uncentred orthogonal frame, Zhou et al.
    2022, arXiv 2203.01238); ``center=True`` centres them first.
    """
    return jit_call(_nc2_weights, _classifier(W), center=bool(center), target="orth")


def _nc2_weights(W, center, target):
    Wc = _center_rows(W) if center else W
    G = Wc @ Wc.T
    return _etf_error(G) if target == "etf" else _orthogonal_frame_error(G)


def nc2_etf_means(H, labels, num_classes: int) -> jax.Array:
    """NC2 for the features: :func:`etf_error` of ``G = M^T M``, ``M`` the centred class means.

    Zero at the non-zero optimum of every UFM variant (also of the MSE UFM without bias: centring
    an orthogonal frame gives a simplex ETF).
    """
    H, labels, K = _inputs(H, labels, num_classes)
    return jit_call(_nc2_means, H, labels, K=K, center=True, target="etf")


def nc2_orthogonal_frame_means(H, labels, num_classes: int, center: bool = False) -> jax.Array:
    """NC2 orthogonal-frame error of the class means: :func:`orthogonal_frame_error` of ``M_raw^T
    M_raw``.

    Uncentred means by default (``center=False``): the collapse geometry of the MSE UFM without bias
    and of post-ReLU deep-UFM layers (Sukenik et al. 2023, arXiv 2305.13165).
    """
    H, labels, K = _inputs(H, labels, num_classes)
    return jit_call(_nc2_means, H, labels, K=K, center=bool(center), target="orth")


def _nc2_means(H, labels, K, center, target):
    st = _stats(H, labels, K)
    A = st.M if center else st.means
    G = A.T @ A
    return _etf_error(G) if target == "etf" else _orthogonal_frame_error(G)


# -- NC3: self-duality of classifier and class means ----------------------------------------


def _papyan(W: jax.Array, M: jax.Array, center: bool) -> jax.Array:
    A = _center_rows(W) if center else W
    return jnp.sum((fro_normalize(A.T) - fro_normalize(M)) ** 2)


def nc3_papyan(W, H, labels, num_classes: int, center: bool = False) -> jax.Array:
    """NC3 (Papyan et al. 2020, arXiv 2008.08186, Fig. 3): ``|| W^T/||W||_F - M/||M||_F ||_F^2``
    (squared).

    ``M`` the centred class means ``(d, K)``, ``W`` ``(K, d)`` as it is (``center=True`` centres its
    rows first). Zero at the CE optimum; not at the MSE no-bias optimum unless ``center=True``,
    since
    there ``W`` is an uncentred orthogonal frame. In ``[0, 4]``; a zero ``W`` or ``M`` normalises to
    0.
    """
    H, labels, K = _inputs(H, labels, num_classes)
    W = _check_W(W, H.shape[0], K, H.dtype)
    return jit_call(_nc3_papyan, W, H, labels, K=K, center=bool(center))


def _nc3_papyan(W, H, labels, K, center):
    return _papyan(W, _stats(H, labels, K).M, center)


def nc3_zhu(W, H, labels, num_classes: int) -> jax.Array:
    """NC3 of Zhu et al. 2021 (arXiv 2105.02375): ``|| W M/||W M||_F - (I - J/K)/sqrt(K-1) ||_F``.

    :func:`etf_error` of the ``K x K`` matrix ``W M``, with ``W`` ``(K, d)`` as it is (rows not
    centred) and ``M = M_raw - mu_G 1^T`` the class means minus the global mean of all samples:
    exactly ``compute_W_H_relation`` of ``tding1/Neural-Collapse`` and ``rhubarbwu``'s
    ``self_duality_error``. Zhou et al. 2022 (arXiv 2203.01238) report the same quantity with the
    rows of ``W`` centred first (``W - 1 w_bar^T``); the two agree at the UFM optima
    (``w_bar^T M = 0`` there), not in general (docs/metrics.md section 8.3). Zero at the non-zero
    optimum of every UFM variant of docs/theory.md section 2 (``W M = c (I - J/K)``); 1 at the zero
    solution (``W M = 0``, normalised to 0).
    """
    H, labels, K = _inputs(H, labels, num_classes)
    W = _check_W(W, H.shape[0], K, H.dtype)
    return jit_call(_nc3_zhu, W, H, labels, K=K)


def _nc3_zhu(W, H, labels, K):
    return _etf_error(W @ _stats(H, labels, K).M)


# -- NC4: nearest-class-centre behaviour; Zhu/Zhou's bias relation ---------------------------


def _ncc_agreement(W, b, H, st: _Stats) -> jax.Array:
    Z = W @ H
    if b is not None:
        Z = Z + b[:, None]
    # nearest centre: argmin_c ||h - mu_c||^2 = argmax_c (2 mu_c.h - ||mu_c||^2); empty classes
    # excluded
    score = 2 * (st.means.T @ H) - jnp.sum(st.means**2, axis=0)[:, None]
    score = jnp.where(st.counts[:, None] > 0, score, jnp.full_like(score, -jnp.inf))
    agree = jnp.argmax(Z, axis=0) == jnp.argmax(score, axis=0)
    return jnp.mean(agree.astype(H.dtype))


def nc4_ncc_agreement(W, b, H, labels, num_classes: int) -> jax.Array:
    """NC4: fraction of samples whose prediction ``argmax(W h + b)`` is the nearest class centre.

    Papyan et al. 2020 (arXiv 2008.08186), Fig. 7 plots the mismatch ``1 - agreement``. Nearest
    centre in Euclidean distance to the (uncentred) class means; ties go to the lower class index
    in both predictions. ``b`` may be ``None`` (no bias). Tends to 1 under collapse.

    With the bias (the default in ``nc_metrics``' ``nc4_ncc``): the network's prediction, as the
    Papyan/Han notebook uses it. ``b=None``: ``argmax(W h)``, exactly ``rhubarbwu``'s
    ``clf_ncc_agreement`` (``DecAccumulator``), which leaves the bias out
    (docs/metrics.md section 8.4).
    """
    H, labels, K = _inputs(H, labels, num_classes)
    W = _check_W(W, H.shape[0], K, H.dtype)
    return jit_call(_nc4_ncc, W, _check_b(b, K, H.dtype), H, labels, K=K)


def _nc4_ncc(W, b, H, labels, K):
    return _ncc_agreement(W, b, H, _stats(H, labels, K))


def _bias_relation(W, b, mu_G) -> jax.Array:
    v = W @ mu_G
    if b is not None:
        v = v + b
    return jnp.sqrt(jnp.sum(v**2))


def nc4_bias_relation(W, b, H, labels, num_classes: int) -> jax.Array:
    """Zhu/Zhou's bias relation ``|| W mu_G + b ||`` (their plots' "NC4";
    ``compute_Wh_b_relation``).

    Zhu et al. 2021 (arXiv 2105.02375); Zhou et al. 2022 (arXiv 2203.01238). Zero at the CE optimum
    with ``b = 0``; at the MSE optimum with free bias it is ``||b*|| = 1/sqrt(K)`` (mean logit
    ``1/K``), so read it against the theory of the variant. ``mu_G`` is the mean of all samples
    (``labels`` only validate the input). ``b`` may be ``None``.
    """
    H, labels, K = _inputs(H, labels, num_classes)
    W = _check_W(W, H.shape[0], K, H.dtype)
    return jit_call(_nc4_bias, W, _check_b(b, K, H.dtype), H)


def _nc4_bias(W, b, H):
    return _bias_relation(W, b, jnp.mean(H, axis=1))


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
