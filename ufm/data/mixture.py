"""A seeded Gaussian-mixture classification task with many sub-clusters per class.

Each class is a union of ``clusters_per_class`` isotropic Gaussian blobs whose centres are drawn
independently (so blobs of different classes interleave): the classes are far from linearly
separable and a network needs many more than ``C`` feature directions to fit them. It is the
"extended features" candidate of the forward-feature-map system (Nam et al. 2024,
arXiv 2410.04264, observe extended features for wide fully connected networks on hard data).
"""

from __future__ import annotations

import numpy as np

from .dataset import Dataset

__all__ = ["gaussian_mixture"]


def gaussian_mixture(
    *,
    num_classes: int = 10,
    clusters_per_class: int = 8,
    dim: int = 16,
    n_train_per_class: int = 200,
    n_test_per_class: int = 100,
    cluster_std: float = 0.5,
    seed: int = 0,
    dtype=np.float32,
) -> Dataset:
    """Balanced Gaussian-mixture classification data (a pure function of its arguments).

    Generative model: ``C * m`` centres ``mu_{c,j} ~ N(0, I_dim)`` (``m = clusters_per_class``);
    sample ``i`` of class ``c`` belongs to sub-cluster ``j = i mod m`` (as equal as possible) and is
    ``x = mu_{c,j} + cluster_std * N(0, I_dim)``. Centres and both splits come from one
    ``numpy.random.default_rng(seed)`` stream in the order: centres, training noise, test noise.
    Training and test samples are ordered class by class (class-major). Distances between centres
    are about ``sqrt(2 dim)``, so ``cluster_std`` well below that keeps blobs apart while the
    classes interleave.

    Example:
        >>> ds = gaussian_mixture(num_classes=3, clusters_per_class=4, dim=5,
        ...                       n_train_per_class=8, n_test_per_class=4, seed=1)
        >>> ds.x_train.shape, ds.x_test.shape, np.bincount(ds.y_train).tolist()
        ((24, 5), (12, 5), [8, 8, 8])
    """
    for field, value, low in (
        ("num_classes", num_classes, 2),
        ("clusters_per_class", clusters_per_class, 1),
        ("dim", dim, 1),
        ("n_train_per_class", n_train_per_class, 1),
        ("n_test_per_class", n_test_per_class, 1),
    ):
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < low:
            raise ValueError(f"{field} must be an integer >= {low} (got {value!r})")
    if not (np.isfinite(cluster_std) and cluster_std >= 0):
        raise ValueError(f"cluster_std must be finite and >= 0 (got {cluster_std})")
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((num_classes, clusters_per_class, dim))

    def split(n_per_class):
        y = np.repeat(np.arange(num_classes, dtype=np.int32), n_per_class)
        sub = np.tile(np.arange(n_per_class) % clusters_per_class, num_classes)
        x = centres[y, sub] + cluster_std * rng.standard_normal((y.size, dim))
        return np.ascontiguousarray(x, dtype=dtype), y

    x_train, y_train = split(n_train_per_class)
    x_test, y_test = split(n_test_per_class)
    return Dataset(x_train, y_train, x_test, y_test, num_classes, "gaussian-mixture", None)
