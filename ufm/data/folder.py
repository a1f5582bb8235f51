"""Load a user's data set from a folder of ``.npy`` files (the paper-scale path, e.g. CIFAR-10).

No data set is downloaded by ``ufm``: a user who has CIFAR-10 (or any classification data) on disk
saves it as four arrays and runs every analysis of the toolkit on it through
:func:`load_npy_folder`.
"""

from __future__ import annotations

import os

import numpy as np

from .dataset import Dataset, load_arrays

__all__ = ["NPY_FILES", "load_npy_folder"]

NPY_FILES = ("x_train.npy", "y_train.npy", "x_test.npy", "y_test.npy")


def load_npy_folder(
    path,
    *,
    num_classes: int | None = None,
    channels_last: bool = False,
    mmap: bool = False,
    dtype=np.float32,
) -> Dataset:
    """A :class:`Dataset` from ``path/{x_train,y_train,x_test,y_test}.npy``.

    The arrays are read with ``numpy.load(allow_pickle=False)`` (``mmap=True`` memory-maps them
    first, useful for large inputs) and checked by :func:`load_arrays` (same shape rules: flat
    ``(n, D)`` or images ``(n, C, H, W)``, ``channels_last=True`` for ``(n, H, W, C)``; labels
    ``(n,)`` or one-hot). The data set's name is the folder's name.

    For CIFAR-10 with torchvision (on the user's machine, once)::

        ds = torchvision.datasets.CIFAR10(root, train=True)   # and train=False
        np.save("cifar10/x_train.npy", ds.data / 255.0)        # (50000, 32, 32, 3)
        np.save("cifar10/y_train.npy", np.array(ds.targets))
        ...
        data = ufm.data.load_npy_folder("cifar10", channels_last=True)

    Errors: ``FileNotFoundError`` naming the folder or every missing file; ``ValueError`` naming
    the array for a shape or label mismatch.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> for name, a in [("x_train", np.ones((4, 3))), ("y_train", np.array([0, 1, 0, 1])),
        ...                 ("x_test", np.ones((2, 3))), ("y_test", np.array([1, 0]))]:
        ...     np.save(d / f"{name}.npy", a)
        >>> load_npy_folder(d).x_train.shape
        (4, 3)
        >>> (d / "y_test.npy").unlink()
        >>> load_npy_folder(d)
        Traceback (most recent call last):
        ...
        FileNotFoundError: ... missing y_test.npy
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"path {path!r} is not a folder (expected {', '.join(NPY_FILES)})")
    missing = [f for f in NPY_FILES if not os.path.isfile(os.path.join(path, f))]
    if missing:
        raise FileNotFoundError(f"folder {path!r}: missing {', '.join(missing)}")
    arrays = [
        np.load(os.path.join(path, f), mmap_mode="r" if mmap else None, allow_pickle=False)
        for f in NPY_FILES
    ]
    name = os.path.basename(os.path.normpath(path)) or "npy-folder"
    return load_arrays(
        *arrays, num_classes=num_classes, name=name, channels_last=channels_last, dtype=dtype
    )
