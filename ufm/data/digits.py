"""sklearn's bundled handwritten digits (no download) with a fixed stratified split.

The UCI optical-recognition digits as shipped inside scikit-learn
(``sklearn.datasets.load_digits``):
1797 grey-scale 8 x 8 images, pixel values 0..16, 10 classes of 174-183 samples each. It is the
CPU-scale data set of the trained-network systems (forward feature map, Nam et al. 2024,
arXiv 2410.04264: MLP 64-128-128-10 on digits).
"""

from __future__ import annotations

import numpy as np

from .dataset import Dataset

__all__ = ["load_digits", "stratified_split"]

_SCALINGS = ("unit", "standard", "none")


def stratified_split(labels, test_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` of a stratified split, independent of scikit-learn's version.

    For each class ``c`` with ``n_c`` samples, ``round(test_fraction * n_c)`` (halves rounded up)
    indices are drawn for the test split by ``numpy.random.default_rng(seed).permutation`` applied
    class by class in increasing class order; the rest go to the training split. Both index arrays
    are returned sorted (the data keep their original order).

    Example:
        >>> tr, te = stratified_split(np.array([0, 0, 0, 0, 1, 1, 1, 1]), 0.25, seed=0)
        >>> len(tr), len(te), sorted(np.array([0, 0, 0, 0, 1, 1, 1, 1])[te].tolist())
        (6, 2, [0, 1])
    """
    labels = np.asarray(labels)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1) (got {test_fraction})")
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = int(np.floor(test_fraction * idx.size + 0.5))
        test.append(idx[rng.permutation(idx.size)[:k]])
    test = np.sort(np.concatenate(test))
    train = np.setdiff1d(np.arange(labels.size), test)
    return train, test


def load_digits(
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    scaling: str = "unit",
    dtype=np.float32,
) -> Dataset:
    """sklearn's 8 x 8 digits (1797 x 64, 10 classes) with a fixed stratified train/test split.

    Split: :func:`stratified_split` with ``test_fraction=0.2, seed=0`` (the defaults) gives
    1438 training and 359 test samples (35-37 test samples per class); the split is a pure function
    of ``(test_fraction, seed)`` and numpy's ``default_rng``, not of scikit-learn's version.

    Scaling (``scaling``): ``"unit"`` (default) divides the 0..16 pixel values by 16, so inputs lie
    in ``[0, 1]``; ``"standard"`` standardises every pixel with the training split's mean and
    standard deviation (pixels constant on the training split, e.g. always-zero corners, get
    standard deviation 1, so they stay constant); ``"none"`` keeps 0..16.

    ``image_shape`` is ``(1, 8, 8)``: ``ds.images("train")`` is the ``(n, 1, 8, 8)`` view that
    :func:`ufm.nets.cnn` takes (it also takes the flat rows directly).

    Needs scikit-learn (the ``nets`` or ``test`` extra: ``pip install "ufm[nets]"``).

    Example:
        >>> ds = load_digits()
        >>> ds.n_train, ds.n_test, ds.input_dim, ds.num_classes, ds.image_shape
        (1438, 359, 64, 10, (1, 8, 8))
        >>> float(ds.x_train.min()), float(ds.x_train.max())
        (0.0, 1.0)
    """
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as err:
        raise ImportError(
            "ufm.data.load_digits needs scikit-learn (bundled digits data): "
            'pip install "ufm[nets]" (or scikit-learn>=1.3)'
        ) from err
    if scaling not in _SCALINGS:
        raise ValueError(f"scaling must be one of {_SCALINGS} (got {scaling!r})")
    raw = _sk_load_digits()
    x = np.asarray(raw.data, dtype=np.float64)
    y = np.asarray(raw.target, dtype=np.int32)
    train, test = stratified_split(y, test_fraction, seed)
    x_train, x_test = x[train], x[test]
    if scaling == "unit":
        x_train, x_test = x_train / 16.0, x_test / 16.0
    elif scaling == "standard":
        mean = x_train.mean(axis=0)
        std = x_train.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    return Dataset(
        np.ascontiguousarray(x_train, dtype=dtype),
        y[train],
        np.ascontiguousarray(x_test, dtype=dtype),
        y[test],
        10,
        "digits",
        (1, 8, 8),
    )
