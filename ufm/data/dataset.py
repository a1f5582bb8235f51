"""The :class:`Dataset` container and the loader for user-supplied arrays.

Every data source in :mod:`ufm.data` (sklearn's bundled digits, the Gaussian-mixture generator,
arrays or ``.npy`` folders supplied by the user, e.g. CIFAR-10 at paper scale) returns the same
frozen container, so an analysis written for the 8 x 8 digits runs unchanged on user data.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["Dataset", "load_arrays", "one_hot"]


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A classification data set as numpy arrays (train and test split fixed at construction).

    Attributes:
        x_train: inputs ``(n_train, D)``, flattened (row-major) to one vector per sample.
        y_train: integer labels ``(n_train,)`` in ``[0, num_classes)`` (``int32``).
        x_test: inputs ``(n_test, D)``.
        y_test: labels ``(n_test,)``.
        num_classes: the number of classes ``C``.
        name: a short name (``"digits"``, ``"gaussian-mixture"``, ``"arrays"``, a folder name).
        image_shape: channels-first ``(C_in, H, W)`` shape of one image when the inputs are
            images (``(1, 8, 8)`` for digits), else ``None``; ``prod(image_shape) == D``.

    Use :meth:`images` for the image view that convolutional networks take, and :func:`one_hot`
    for one-hot targets.

    Example:
        >>> import numpy as np
        >>> ds = load_arrays(np.zeros((4, 6)), [0, 1, 0, 1], np.zeros((2, 6)), [1, 0])
        >>> ds.n_train, ds.n_test, ds.input_dim, ds.num_classes, ds.y_train.dtype
        (4, 2, 6, 2, dtype('int32'))
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    name: str
    image_shape: tuple[int, ...] | None = None

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    @property
    def input_dim(self) -> int:
        return int(self.x_train.shape[1])

    def images(self, split: str = "train") -> np.ndarray:
        """The inputs of ``split`` (``"train"`` or ``"test"``) as ``(n, *image_shape)``."""
        if self.image_shape is None:
            raise ValueError(f"image_shape is None: data set {self.name!r} holds no images")
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test' (got {split!r})")
        x = self.x_train if split == "train" else self.x_test
        return x.reshape((x.shape[0], *self.image_shape))

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, n_train={self.n_train}, n_test={self.n_test}, "
            f"input_dim={self.input_dim}, num_classes={self.num_classes}, "
            f"image_shape={self.image_shape}, dtype={self.x_train.dtype})"
        )


def one_hot(labels, num_classes: int, dtype=np.float64) -> np.ndarray:
    """One-hot targets ``(n, num_classes)`` from integer labels ``(n,)``.

    Example:
        >>> one_hot(np.array([0, 2]), 3).tolist()
        [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-d integer array (got {labels.dtype}{labels.shape})")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, num_classes={num_classes})")
    return np.eye(num_classes, dtype=dtype)[labels]


def _labels(y, field: str, n_rows: int, x_field: str) -> np.ndarray:
    """Integer labels from ``(n,)`` integers or ``(n, C)`` one-hot rows."""
    y = np.asarray(y)
    if y.ndim == 2:
        ok = np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1)
        if not ok:
            raise ValueError(f"{field} is 2-d but its rows are not one-hot (shape {y.shape})")
        y = np.argmax(y, axis=1)
    elif y.ndim != 1:
        raise ValueError(f"{field} must be (n,) labels or (n, C) one-hot (got shape {y.shape})")
    if y.size and not np.issubdtype(y.dtype, np.integer) and not np.all(np.mod(y, 1) == 0):
        raise ValueError(f"{field} must hold integer class labels (got dtype {y.dtype})")
    if y.shape[0] != n_rows:
        raise ValueError(
            f"{field} must have one label per row of {x_field} "
            f"(got {x_field} with {n_rows} rows, {field} with {y.shape[0]})"
        )
    if y.size and y.min() < 0:
        raise ValueError(f"{field} holds a negative label ({y.min()})")
    return y.astype(np.int32)


def load_arrays(
    x_train,
    y_train,
    x_test,
    y_test,
    *,
    num_classes: int | None = None,
    name: str = "arrays",
    channels_last: bool = False,
    dtype=np.float32,
) -> Dataset:
    """A :class:`Dataset` from user arrays (e.g. CIFAR-10 already in memory), checked.

    Inputs ``x_*`` of shape ``(n, D)`` are kept; ``(n, *image_shape)`` with more than one trailing
    axis are flattened row-major and ``image_shape`` is recorded (channels-first; pass
    ``channels_last=True`` for ``(n, H, W, C)`` arrays such as CIFAR's usual layout: they are
    transposed to ``(n, C, H, W)`` first; ``(n, H, W)`` gets one channel). Labels are ``(n,)``
    integers or ``(n, C)`` one-hot rows.
    ``num_classes`` defaults to ``max label + 1`` over both splits. Inputs are cast to ``dtype``
    (default float32; values are kept as given: scale or standardise them yourself).

    Errors (``ValueError`` naming the field): row counts of ``x`` and ``y`` differ, train and test
    samples differ in shape, labels not integers, outside ``[0, num_classes)``, or a class missing
    from the training split.
    """
    xs = {}
    for field, x in (("x_train", x_train), ("x_test", x_test)):
        x = np.asarray(x)
        if x.ndim < 2:
            raise ValueError(f"{field} must have a sample axis and features (got shape {x.shape})")
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
            raise ValueError(f"{field} must be numeric (got dtype {x.dtype})")
        if channels_last:
            if x.ndim != 4:
                raise ValueError(f"channels_last needs (n, H, W, C) arrays ({field}: {x.shape})")
            x = np.moveaxis(x, -1, 1)
        xs[field] = x
    if xs["x_train"].shape[1:] != xs["x_test"].shape[1:]:
        raise ValueError(
            "x_test samples must have the shape of x_train samples "
            f"(got x_train {xs['x_train'].shape[1:]}, x_test {xs['x_test'].shape[1:]})"
        )
    sample_shape = xs["x_train"].shape[1:]
    image_shape = tuple(int(s) for s in sample_shape) if len(sample_shape) > 1 else None
    if image_shape is not None and len(image_shape) == 2:
        image_shape = (1, *image_shape)  # one channel
    ytr = _labels(y_train, "y_train", xs["x_train"].shape[0], "x_train")
    yte = _labels(y_test, "y_test", xs["x_test"].shape[0], "x_test")
    top = int(max(ytr.max(initial=-1), yte.max(initial=-1))) + 1
    if num_classes is None:
        num_classes = top
    if not isinstance(num_classes, int | np.integer) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2 (got {num_classes})")
    if top > num_classes:
        raise ValueError(f"labels must lie in [0, num_classes={num_classes}) (max label {top - 1})")
    missing = np.setdiff1d(np.arange(num_classes), ytr)
    if missing.size:
        raise ValueError(f"y_train has no sample of class(es) {missing.tolist()}")

    def flat(x):
        return np.ascontiguousarray(x.reshape(x.shape[0], -1), dtype=dtype)

    return Dataset(
        flat(xs["x_train"]), ytr, flat(xs["x_test"]), yte, int(num_classes), name, image_shape
    )
