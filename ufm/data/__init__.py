"""Datasets that ship with packages, generators and loaders for user data on disk.

* :func:`load_digits`: sklearn's bundled 8 x 8 digits (1797 x 64, 10 classes), fixed stratified
  split (needs scikit-learn: the ``nets`` extra).
* :func:`gaussian_mixture`: a seeded mixture with many sub-clusters per class (hard, "extended
  features" candidate).
* :func:`load_arrays`, :func:`load_npy_folder`: user data (e.g. CIFAR-10 at paper scale).

All return a :class:`Dataset` (numpy arrays, integer labels, optional channels-first image shape).
"""

from .dataset import Dataset as Dataset
from .dataset import load_arrays as load_arrays
from .dataset import one_hot as one_hot
from .digits import load_digits as load_digits
from .digits import stratified_split as stratified_split
from .folder import NPY_FILES as NPY_FILES
from .folder import load_npy_folder as load_npy_folder
from .mixture import gaussian_mixture as gaussian_mixture
