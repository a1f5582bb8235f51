"""NC2-NC4: geometry of the class means and the classifier, their self-duality, and the
nearest-class-centre behaviour.

NC2 (convergence of the centred class means / classifier rows to a simplex ETF, or to an orthogonal
frame for the MSE UFM without bias), NC3 (self-duality of classifier and class means, Papyan's and
Zhu's forms) and NC4 (agreement with the nearest-class-centre classifier; Zhu/Zhou's bias relation),
with the array kernels that :func:`ufm.metrics.collapse.nc_metrics_class_major` reuses.

Conventions (shapes, statistics, jit/vmap use) as in :mod:`ufm.metrics.collapse`; formulas and the
published variants in docs/metrics.md sections 8.2-8.4.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .class_stats import _check_b, _check_W, _inputs, _Stats, _stats
from .frames import _etf_error, _orthogonal_frame_error, as_float, fro_normalize, jit_call

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
