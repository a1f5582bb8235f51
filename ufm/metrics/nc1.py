"""NC1, within-class variability collapse: four variants from features and labels.

``nc1_pinv`` (``Tr(Sigma_W Sigma_B^+)/K``, Papyan, Han & Donoho 2020, arXiv 2008.08186), ``nc1_svd``
(its top-``K-1`` truncation, Han, Papyan & Donoho 2022, arXiv 2106.02073), ``nc1_quotient``
(``Tr Sigma_W / Tr Sigma_B``, Tirer, Huang & Niles-Weed 2023, arXiv 2210.16658) and ``nc1_cdnv``
(class-distance normalised variance, Galanti, Gyorgy & Hutter 2022, arXiv 2112.15121), with the
pseudo-inverse thresholds (``rtol``, the published ``rcond`` cut-offs :data:`NC1_RCOND`) and the
spectral kernels that :func:`ufm.metrics.collapse.nc_metrics_class_major` reuses.

Conventions (shapes, statistics, jit/vmap use) as in :mod:`ufm.metrics.collapse`; formulas and the
published variants in docs/metrics.md.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .class_stats import _inputs, _Stats, _stats
from .frames import jit_call, safe_div


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
