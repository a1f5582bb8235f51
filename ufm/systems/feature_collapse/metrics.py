"""Collapse metrics of the feature-collapse system, as numbers (the paper shows PCA pictures).

Paper: Laurent, von Brecht, Bresson (2023), "Feature collapse", arXiv 2305.16162.

Pure ``jax.numpy`` functions of one seed's arrays (they run under ``jit``/``vmap`` inside the
trainer's checkpoint evaluation). Rows ``X`` (``(N, d)``) are grouped by an integer label
``groups`` (``(N,)`` in ``[0, G)``); an optional boolean ``mask`` keeps a subset of rows (e.g. the
words seen at least once in training). Every kept row counts once.

* :func:`trace_ratio`: ``tr(Sigma_W) / tr(Sigma_B)``, within-group over between-group scatter
  (0 at exact collapse of every group onto its mean).
* :func:`directional_collapse`: mean of ``1 - cos(x_i, m_{g_i})`` (0 when every row points along
  its group mean, whatever its norm: type-III collapse has this but not a zero trace ratio).
* :func:`etf_error`: ``||G/||G||_F - (I - J/G)/sqrt(G-1)||_F`` of the Gram matrix of the centred
  group means (0 for a simplex equiangular tight frame).
* :func:`pca_ratio`: ``sigma_k / sigma_{k-1}`` of the centred rows (``k = n_c``: 0 when the rows
  span the ``n_c - 1`` dimensions of the collapsed simplex; the paper prints sigma_1..3).
* :func:`spearman`: Spearman rank correlation (average ranks for ties; NaN if either input is
  constant), e.g. of embedding norms against the word law ``mu_beta``.
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = [
    "average_ranks",
    "directional_collapse",
    "etf_error",
    "group_means",
    "pca_ratio",
    "spearman",
    "trace_ratio",
]


def _weights(X, mask):
    if mask is None:
        return jnp.ones(X.shape[0], X.dtype)
    return jnp.asarray(mask).astype(X.dtype)


def group_means(X, groups, num_groups: int, mask=None):
    """``(G, d)`` group means over the kept rows and ``(G,)`` counts (empty groups: zero mean)."""
    w = _weights(X, mask)
    groups = jnp.asarray(groups)
    onehot = (groups[:, None] == jnp.arange(num_groups, dtype=groups.dtype)[None, :]).astype(
        X.dtype
    ) * w[:, None]
    counts = onehot.sum(0)
    means = (onehot.T @ X) / jnp.maximum(counts, 1)[:, None]
    return means, counts


def trace_ratio(X, groups, num_groups: int, mask=None):
    """``tr(Sigma_W) / tr(Sigma_B)`` over the kept rows of ``X`` grouped by ``groups``.

    >>> import jax.numpy as jnp
    >>> X = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    >>> float(trace_ratio(X, jnp.array([0, 0, 1, 1]), 2))
    0.0
    """
    w = _weights(X, mask)
    means, counts = group_means(X, groups, num_groups, mask)
    total = w.sum()
    within = jnp.sum(w * jnp.sum((X - means[groups]) ** 2, axis=1)) / total
    grand = (w @ X) / total
    between = jnp.sum(counts * jnp.sum((means - grand) ** 2, axis=1)) / total
    return within / between


def directional_collapse(X, groups, num_groups: int, mask=None):
    """Mean over the kept rows of ``1 - cos(x_i, m_{g_i})``, ``m_g`` the group mean."""
    w = _weights(X, mask)
    means, _ = group_means(X, groups, num_groups, mask)
    m = means[groups]
    cos = jnp.sum(X * m, axis=1) / (jnp.linalg.norm(X, axis=1) * jnp.linalg.norm(m, axis=1))
    cos = jnp.where(w > 0, cos, 1.0)  # dropped rows (possibly 0/0) do not count
    return jnp.sum(w * (1.0 - cos)) / w.sum()


def etf_error(X, groups, num_groups: int, mask=None):
    """Distance of the normalised Gram matrix of the centred group means to the simplex ETF's.

    The group means are centred by their plain average (each group counts once).
    """
    means, _ = group_means(X, groups, num_groups, mask)
    M = means - means.mean(0)
    G = M @ M.T
    n = num_groups
    target = (jnp.eye(n, dtype=X.dtype) - 1.0 / n) / jnp.sqrt(jnp.asarray(n - 1, X.dtype))
    return jnp.linalg.norm(G / jnp.linalg.norm(G) - target)


def pca_ratio(X, k: int, mask=None):
    """``sigma_k / sigma_{k-1}`` (1-based) of the kept rows after centring; NaN if ``X`` has fewer
    than ``k`` rows or columns."""
    if min(X.shape) < k or k < 2:
        return jnp.asarray(jnp.nan, X.dtype)
    w = _weights(X, mask)
    mean = (w @ X) / w.sum()
    Xc = (X - mean) * w[:, None]
    s = jnp.linalg.svd(Xc, compute_uv=False)
    return s[k - 1] / s[k - 2]


def average_ranks(x, mask=None):
    """1-based ranks of the kept entries of ``x`` among themselves, ties averaged (scipy's
    ``rankdata(method="average")``); dropped entries get rank 0. O(N^2) comparisons."""
    dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.dtype(jnp.float32)
    w = jnp.ones(x.shape, bool) if mask is None else jnp.asarray(mask, bool)
    less = jnp.sum((x[None, :] < x[:, None]) & w[None, :], axis=1).astype(dtype)
    equal = jnp.sum((x[None, :] == x[:, None]) & w[None, :], axis=1).astype(dtype)
    return jnp.where(w, less + (equal + 1) / 2, 0)


def spearman(x, y, mask=None):
    """Spearman rank correlation of ``x`` and ``y`` over the kept entries.

    >>> import jax.numpy as jnp
    >>> float(spearman(jnp.array([1.0, 2.0, 3.0, 4.0]), jnp.array([10.0, 20.0, 20.0, 50.0])))
    0.9486...
    """
    w = jnp.ones(x.shape, x.dtype) if mask is None else jnp.asarray(mask).astype(x.dtype)
    rx = average_ranks(x, mask)
    ry = average_ranks(y.astype(x.dtype), mask)
    n = w.sum()
    rx = (rx - jnp.sum(w * rx) / n) * w
    ry = (ry - jnp.sum(w * ry) / n) * w
    return jnp.sum(rx * ry) / jnp.sqrt(jnp.sum(rx**2) * jnp.sum(ry**2))
