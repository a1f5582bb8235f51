"""Generalised collapse metrics as the field reports them: GNC2, UNC3 and NC5.

Definitions and names follow rhubarbwu/neural-collapse (Wu & Papyan's measurement library), so a
number computed here reproduces the one a paper computed with it:

* **GNC2**, hyperspherical uniformity (Liu et al. 2023, "Generalizing and decoupling neural
  collapse via hyperspherical uniformity gap", arXiv 2303.06484): the centred class means are
  normalised to the unit sphere (``x / (||x|| + eps)``, ``eps`` the dtype's machine epsilon, as the
  library does) and a kernel is evaluated on every pair of classes: ``distance`` ``||a - b||`` or
  ``log`` ``log(1 / ||a - b||)``. The metric is the *variance* of the pair values over the
  ``K (K - 1) / 2`` pairs (the library's ``kernel_stats(...)[1]``: ``nc2g_dist``, ``nc2g_log``);
  their *mean* is returned too. Both vanish in spread only for a uniform (simplex-ETF-like)
  arrangement: zero variance at a simplex ETF.
* **UNC3**, uniform duality (the library's ``nc3u_uni_dual``): the variance (unbiased, ``ddof = 1``,
  as ``torch.var``) over classes of the dot products ``<w_k, mu_k - mu_G>`` of each classifier row
  with its centred class mean. Zero when every class has the same alignment.
* **NC5**, out-of-distribution orthogonality (Ammar et al. 2024, arXiv 2310.06823; the library's
  ``nc5_ood_dev``): the mean over classes of ``|cos(mu_k, mu_G^ood)|`` between the (uncentred, as
  the library passes them) class means of the training data and the global mean of features of
  out-of-distribution data. It applies only where there is such data (trained networks), not to
  the UFM.

All are pure jnp functions of class means (``(K, d)``, one row per class as the library stores
them), jit- and vmap-compatible.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

__all__ = ["gnc2_hyperspherical", "unc3_uniform_duality", "nc5_ood_orthogonality", "GNC2_KERNELS"]

GNC2_KERNELS = ("distance", "log")


def _normalize(x):
    eps = jnp.finfo(x.dtype).eps
    return x / (jnp.linalg.norm(x, axis=-1, keepdims=True) + eps)


def gnc2_hyperspherical(means, global_mean=0.0, kernel: str = "distance"):
    """GNC2: ``(mean, variance)`` of a kernel over all pairs of centred, normalised class means.

    Args:
        means: ``(K, d)`` class means (rows).
        global_mean: ``(d,)`` global mean subtracted first (``0``: the means are centred).
        kernel: ``"distance"`` (``nc2g_dist``) or ``"log"`` (``nc2g_log``, ``log 1/||a - b||``).

    Example:
        >>> import ufm, numpy as np
        >>> etf = np.asarray(ufm.simplex_etf(4, 5))   # rows: a simplex ETF
        >>> mean, var = ufm.metrics.gnc2_hyperspherical(etf)
        >>> round(float(mean), 6), float(var) < 1e-25      # all pair distances sqrt(2 K/(K-1))
        (1.632993, True)
    """
    if kernel not in GNC2_KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(GNC2_KERNELS)}, got {kernel!r}")
    M = jnp.asarray(means)
    if M.ndim != 2 or M.shape[0] < 2:
        raise ValueError(f"means must be (K, d) with K >= 2, got shape {M.shape}")
    X = _normalize(M - jnp.asarray(global_mean, M.dtype))
    K = X.shape[0]
    i, j = np.triu_indices(K, 1)
    dist = jnp.linalg.norm(X[i] - X[j], axis=-1)
    vals = dist if kernel == "distance" else -jnp.log(dist)
    mean = jnp.mean(vals)
    return mean, jnp.mean((vals - mean) ** 2)


def unc3_uniform_duality(W, means, global_mean=0.0):
    """UNC3: unbiased variance over classes of ``<w_k, mu_k - mu_G>`` (``nc3u_uni_dual``).

    Args:
        W: ``(K, d)`` classifier rows.
        means: ``(K, d)`` class means; ``global_mean`` ``(d,)`` subtracted first.

    Example:
        >>> import ufm, numpy as np
        >>> etf = np.asarray(ufm.simplex_etf(3, 3))
        >>> float(ufm.metrics.unc3_uniform_duality(2.0 * etf, etf))    # equal alignments
        0.0
    """
    W = jnp.asarray(W)
    M = jnp.asarray(means, W.dtype) - jnp.asarray(global_mean, W.dtype)
    if W.shape != M.shape or W.ndim != 2 or W.shape[0] < 2:
        raise ValueError(
            f"W and means must both be (K, d) with K >= 2, got {W.shape} and {M.shape}"
        )
    return jnp.var(jnp.sum(W * M, axis=1), ddof=1)


def nc5_ood_orthogonality(means, ood_global_mean):
    """NC5: mean over classes of ``|cos(mu_k, mu_G^ood)|`` (``nc5_ood_dev``); module docstring.

    Example:
        >>> import jax.numpy as jnp, ufm
        >>> float(ufm.metrics.nc5_ood_orthogonality(jnp.eye(3)[:2], jnp.array([0.0, 0.0, 1.0])))
        0.0
    """
    M = jnp.asarray(means)
    g = jnp.asarray(ood_global_mean, M.dtype)
    cos = (M @ g) / jnp.maximum(
        jnp.linalg.norm(M, axis=1) * jnp.linalg.norm(g), jnp.finfo(M.dtype).eps
    )
    return jnp.mean(jnp.abs(cos))
