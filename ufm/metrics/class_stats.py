"""Class statistics of labelled features: class means, within- and between-class covariances.

Shared by the neural-collapse metrics (``ufm/_metrics.py``) and the deep-UFM metrics. Features
``H`` are ``(d, N)`` (columns are samples), ``labels`` integers ``(N,)`` in ``[0, K)``,
``num_classes
= K`` a static Python int. Class sums are one-hot matrix products (no per-sample loops, no
data-dependent shapes): ``jit``- and ``vmap``-compatible, dtype in = dtype out.

Definitions (Papyan, Han & Donoho 2020, arXiv 2008.08186): class means ``mu_c``, global mean
``mu_G`` (the mean of all samples), centred means ``M = [mu_c - mu_G]`` ``(d, K)``,
``Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T``,
``Sigma_B = (1/K) sum_c (mu_c - mu_G)(mu_c - mu_G)^T = M M^T / K``. An empty class has mean 0.
Labels outside ``[0, K)`` are rejected when the labels are concrete; traced out-of-range labels
belong to no class.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..core.validation import check_int
from .frames import as_float, jit_call

# -- inputs and class statistics --------------------------------------------------------------


def _check_labels(labels, N: int) -> jax.Array:
    try:  # concrete labels (numpy, list or a non-traced jax array): full check, incl. range
        lab = np.asarray(labels)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        lab = None
    shape, dtype = (lab.shape, lab.dtype) if lab is not None else (labels.shape, labels.dtype)
    if len(shape) != 1 or shape[0] != N:
        raise ValueError(f"labels must have shape (N,) = ({N},) to match H (d, N), got {shape}")
    if not np.issubdtype(dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {dtype}")
    return lab if lab is not None else labels


def _check_range(lab, K: int) -> None:
    if isinstance(lab, np.ndarray) and lab.size and (lab.min() < 0 or lab.max() >= K):
        raise ValueError(
            f"labels must lie in [0, num_classes) = [0, {K}), got [{lab.min()}, {lab.max()}]"
        )


def _inputs(H, labels, num_classes):
    K = check_int("num_classes", num_classes, 2)
    H = as_float(H)
    if H.ndim != 2:
        raise ValueError(f"H must have shape (d, N) (columns are samples), got shape {H.shape}")
    lab = _check_labels(labels, H.shape[1])
    _check_range(lab, K)
    return H, jnp.asarray(lab), K


def _check_W(W, d: int, K: int, dtype) -> jax.Array:
    W = as_float(W)
    if W.shape != (K, d):
        raise ValueError(f"W must have shape (K, d) = ({K}, {d}), got {W.shape}")
    return W.astype(dtype) if W.dtype != dtype else W


def _check_b(b, K: int, dtype) -> jax.Array | None:
    if b is None:
        return None
    b = as_float(b)
    if b.shape != (K,):
        raise ValueError(f"b must have shape (K,) = ({K},) or be None, got {b.shape}")
    return b.astype(dtype) if b.dtype != dtype else b


class _Stats:
    """Class statistics shared by the metrics (a plain container built inside the traced function).

    ``class_sum(v)`` sums a per-sample vector ``v`` (N,) over each class, giving (K,).
    """

    __slots__ = ("means", "mu_G", "M", "R", "counts", "class_sum")

    def __init__(self, means, mu_G, R, counts, class_sum):
        self.means, self.mu_G, self.R, self.counts = means, mu_G, R, counts
        self.class_sum = class_sum
        self.M = means - mu_G[:, None]


def _stats(H: jax.Array, labels: jax.Array, K: int) -> _Stats:
    Y = jax.nn.one_hot(labels, K, dtype=H.dtype)  # (N, K); all-zero row for an out-of-range label
    counts = jnp.sum(Y, axis=0)
    means = (H @ Y) / jnp.where(counts > 0, counts, jnp.ones_like(counts))
    return _Stats(means, jnp.mean(H, axis=1), H - means @ Y.T, counts, lambda v: v @ Y)


def _stats_class_major(H: jax.Array, K: int, n: int) -> _Stats:
    """Balanced class-major columns (the UFM layout): reshapes instead of one-hot products."""
    d = H.shape[0]
    Hr = H.reshape(d, K, n)
    means = jnp.mean(Hr, axis=2)
    R = (Hr - means[:, :, None]).reshape(d, K * n)
    counts = jnp.full((K,), n, H.dtype)
    return _Stats(means, jnp.mean(means, axis=1), R, counts, lambda v: v.reshape(K, n).sum(1))


def class_means(H, labels, num_classes: int) -> tuple[jax.Array, jax.Array]:
    """Class means ``M_raw`` ``(d, K)`` (uncentred; an empty class gives 0) and global mean ``mu_G``
    ``(d,)``.

    ``mu_G`` is the mean of all samples (equal to the mean of the class means for balanced classes).

    Example:
        >>> import numpy as np
        >>> H = np.array([[0.0, 2.0, 5.0, 7.0]])
        >>> M_raw, mu_G = class_means(H, np.array([0, 0, 1, 1]), 2)
        >>> np.asarray(M_raw).round(6).tolist(), np.asarray(mu_G).round(6).tolist()
        ([[1.0, 6.0]], [3.5])
    """
    H, labels, K = _inputs(H, labels, num_classes)
    return jit_call(_class_means, H, labels, K=K)


def _class_means(H, labels, K):
    st = _stats(H, labels, K)
    return st.means, st.mu_G


def within_class_cov(H, labels, num_classes: int) -> jax.Array:
    """``Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T``, shape ``(d, d)``."""
    H, labels, K = _inputs(H, labels, num_classes)
    return jit_call(_within_class_cov, H, labels, K=K)


def _within_class_cov(H, labels, K):
    R = _stats(H, labels, K).R
    return (R @ R.T) / H.shape[1]


def between_class_cov(H, labels, num_classes: int) -> jax.Array:
    """``Sigma_B = (1/K) sum_c (mu_c - mu_G)(mu_c - mu_G)^T = M M^T / K``, shape ``(d, d)``."""
    H, labels, K = _inputs(H, labels, num_classes)
    return jit_call(_between_class_cov, H, labels, K=K)


def _between_class_cov(H, labels, K):
    M = _stats(H, labels, K).M
    return (M @ M.T) / K
