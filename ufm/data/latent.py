"""Synthetic latent-factor data of known rank, where dimensional collapse is unambiguous.

Import path: ``from ufm.data.latent import latent_factor_data``.

Model (all draws from ``numpy.random.default_rng(seed)``)::

    Q      = orthonormal basis of a random r-dim subspace of R^dim   (QR of a Gaussian matrix)
    A      = Q diag(factor_scales)                                   (dim x r mixing)
    mu_c   = class_sep * g_c / ||g_c||,  g_c ~ N(0, I_r)             (class means; 0 if n_classes =
    1)
    y_i    = balanced labels (i mod n_classes), randomly permuted
    s_i    = mu_{y_i} + N(0, I_r)                                    (latent factors)
    x_i    = A s_i + noise_std * N(0, I_dim)

With ``noise_std = 0`` every sample lies in the ``r``-dimensional column space of ``A``: the
data covariance has exactly ``r`` nonzero eigenvalues (for ``n_samples > r``) and an embedding
that keeps fewer directions has collapsed. ``factor_scales`` (default all ones: isotropic within
the subspace) set the signal spectrum ``scale_k^2`` (plus the between-class part when
``n_classes > 1``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class LatentFactorData(NamedTuple):
    """``features`` ``(n, dim)`` float64, ``labels`` ``(n,)`` int64, ``rank`` (the true rank
    ``r`` of the noise-free signal), ``mixing`` ``A`` ``(dim, r)``, ``factors`` ``s`` ``(n, r)``."""

    features: np.ndarray
    labels: np.ndarray
    rank: int
    mixing: np.ndarray
    factors: np.ndarray


def _check_int(name: str, value, low: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an int >= {low} (got {name}={value!r})")


def latent_factor_data(
    n_samples: int,
    dim: int,
    rank: int,
    *,
    n_classes: int = 1,
    class_sep: float = 3.0,
    factor_scales=None,
    noise_std: float = 0.0,
    seed: int = 0,
) -> LatentFactorData:
    """Draw a latent-factor data set ``x = A s + noise`` of known rank (see the module docstring).

    >>> data = latent_factor_data(200, 16, 4, n_classes=3, seed=0)
    >>> data.features.shape, data.labels.shape, data.rank
    ((200, 16), (200,), 4)
    >>> int(np.linalg.matrix_rank(data.features))
    4
    """
    _check_int("n_samples", n_samples, 2)
    _check_int("dim", dim, 1)
    _check_int("rank", rank, 1)
    if rank > dim:
        raise ValueError(f"rank must be <= dim (got rank={rank}, dim={dim})")
    _check_int("n_classes", n_classes, 1)
    if n_classes > n_samples:
        raise ValueError(
            f"n_classes must be <= n_samples (got n_classes={n_classes}, n_samples={n_samples})"
        )
    _check_int("seed", seed, 0)
    for name, v in (("class_sep", class_sep), ("noise_std", noise_std)):
        if not isinstance(v, (int, float)) or not v >= 0.0 or not np.isfinite(v):
            raise ValueError(f"{name} must be a finite float >= 0 (got {name}={v!r})")
    scales = np.ones(rank) if factor_scales is None else np.asarray(factor_scales, dtype=float)
    if scales.shape != (rank,) or not np.all(scales > 0) or not np.all(np.isfinite(scales)):
        raise ValueError(
            f"factor_scales must be {rank} positive finite numbers "
            f"(got factor_scales={factor_scales!r})"
        )

    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((dim, rank)))
    mixing = q * scales
    labels = rng.permutation(np.arange(n_samples) % n_classes).astype(np.int64)
    if n_classes > 1:
        g = rng.standard_normal((n_classes, rank))
        means = class_sep * g / np.linalg.norm(g, axis=1, keepdims=True)
    else:
        means = np.zeros((1, rank))
    factors = means[labels] + rng.standard_normal((n_samples, rank))
    features = factors @ mixing.T
    if noise_std > 0:
        features = features + noise_std * rng.standard_normal((n_samples, dim))
    return LatentFactorData(features, labels, rank, mixing, factors)
