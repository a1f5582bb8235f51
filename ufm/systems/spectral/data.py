"""The data of an SSL experiment: the data set of a spec, its augmentation and the fixed batches.

* :func:`spec_data`: the train / test split of ``spec.data`` as an :class:`SSLData` (NumPy arrays in
  ``spec.dtype``, cached per data setting):

  - ``"digits"``: :func:`ufm.data.load_digits` (unit scaling, the fixed stratified 1438 / 359
    split);
  - ``"latent"``: :func:`ufm.data.latent.latent_factor_data` with ``latent_samples`` samples in
    ``latent_dim`` dimensions of rank ``latent_rank``, ``latent_classes`` classes (class
    separation 3), noise ``latent_noise``, seed ``data_seed``; stratified 80 / 20 split
    (:func:`ufm.data.stratified_split`, seed ``data_seed``);
  - ``"folder"``: :func:`ufm.data.load_npy_folder` on ``data_dir`` (values as stored: scale them
    to ``[0, 1]`` yourself), e.g. CIFAR-10 saved as described there.

* :func:`augmentation`: :class:`ImageAugment` for images (digits, image folders; all channels
  shifted together) or :class:`VectorAugment` for vectors (latent data, flat folders), with
  the spec's ``max_shift``, ``noise_std`` and ``drop_prob``.
* :func:`fixed_views`: the deterministic two views of the system's ``loss`` hook: the first
  ``batch_size`` training samples, views from the key ``fold_in(key(data_seed), FIXED_VIEWS_TAG)``.
* :func:`eval_batches`: the fixed batches on which the spectra of ``Z`` and ``Z_hat`` are measured:
  ``B = n_eval // batch_size`` disjoint batches of a permutation (``default_rng(data_seed)``) of the
  first ``n_eval = min(n_train, EVAL_MAX_TRAIN)`` training samples.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import numpy as np

from ufm.core import SpecError
from ufm.data import load_digits, load_npy_folder, stratified_split
from ufm.data.latent import latent_factor_data
from ufm.systems.spectral.augment import ImageAugment, VectorAugment, make_views
from ufm.systems.spectral.spec import LATENT_TEST_FRACTION, SpectralSpec

#: Training samples used for the evaluation (probes, spectra) at most (large user data sets).
EVAL_MAX_TRAIN = 10_000
#: Tag folded into ``key(data_seed)`` for the fixed views of the loss hook.
FIXED_VIEWS_TAG = 0x5EC7
#: Class separation of the latent-factor data (``latent_factor_data``'s default).
LATENT_CLASS_SEP = 3.0


class SSLData(NamedTuple):
    """Train / test split of one data setting (NumPy, float64 inputs; cast on use)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    image_shape: tuple | None
    name: str
    rank: int | None  # the known rank of the latent data (None otherwise)


@functools.lru_cache(maxsize=8)
def _load(data, latent, data_dir, data_seed) -> SSLData:
    if data == "digits":
        ds = load_digits(dtype=np.float64)
        return SSLData(
            ds.x_train, ds.y_train, ds.x_test, ds.y_test, 10, ds.image_shape, "digits", None
        )
    if data == "latent":
        n, dim, rank, classes, noise = latent
        lf = latent_factor_data(
            n,
            dim,
            rank,
            n_classes=classes,
            class_sep=LATENT_CLASS_SEP,
            noise_std=noise,
            seed=data_seed,
        )
        tr, te = stratified_split(lf.labels, LATENT_TEST_FRACTION, data_seed)
        y = lf.labels.astype(np.int32)
        x = lf.features
        return SSLData(x[tr], y[tr], x[te], y[te], classes, None, "latent", rank)
    ds = load_npy_folder(data_dir, dtype=np.float32)
    return SSLData(
        ds.x_train,
        ds.y_train,
        ds.x_test,
        ds.y_test,
        ds.num_classes,
        ds.image_shape,
        ds.name,
        None,
    )


def spec_data(spec: SpectralSpec) -> SSLData:
    """The data set of ``spec`` (cached); inputs cast to ``spec.dtype``."""
    latent = (
        spec.latent_samples,
        spec.latent_dim,
        spec.latent_rank,
        spec.latent_classes,
        spec.latent_noise,
    )
    d = _load(spec.data, latent, spec.data_dir, spec.data_seed)
    if spec.batch_size > d.x_train.shape[0]:
        raise SpecError(
            f"batch_size must be <= the {d.x_train.shape[0]} training samples of {d.name!r} "
            f"(got batch_size={spec.batch_size})"
        )
    if spec.encoder == "cnn" and d.image_shape is None:
        raise SpecError(f"encoder='cnn' needs image data; {d.name!r} holds flat vectors")
    dt = np.dtype(spec.dtype)
    return d._replace(x_train=d.x_train.astype(dt), x_test=d.x_test.astype(dt))


def augmentation(spec: SpectralSpec, data: SSLData) -> ImageAugment | VectorAugment:
    """The two-view augmentation of ``spec`` for ``data`` (module docstring)."""
    if data.image_shape is None:
        return VectorAugment(noise_std=spec.noise_std, drop_prob=spec.drop_prob)
    c, h, w = data.image_shape
    if spec.max_shift >= min(h, w):
        raise SpecError(
            f"max_shift must be < min(height, width) = {min(h, w)} (got {spec.max_shift})"
        )
    return ImageAugment(
        height=h,
        width=w,
        channels=c,
        max_shift=spec.max_shift,
        noise_std=spec.noise_std,
        drop_prob=spec.drop_prob,
    )


@functools.lru_cache(maxsize=32)
def fixed_views(spec: SpectralSpec) -> np.ndarray:
    """``(2, batch_size, D)`` views of the first ``batch_size`` training samples (the loss hook's
    fixed batch), NumPy in ``spec.dtype``."""
    data = spec_data(spec)
    aug = augmentation(spec, data)
    with jax.ensure_compile_time_eval():
        key = jax.random.fold_in(jax.random.key(spec.data_seed), FIXED_VIEWS_TAG)
        views = make_views(key, data.x_train[: spec.batch_size], aug, 2)
    return np.asarray(views)


def eval_batches(spec: SpectralSpec, n_train: int) -> np.ndarray:
    """``(B, batch_size)`` indices of the evaluation batches (module docstring)."""
    n_eval = min(n_train, EVAL_MAX_TRAIN)
    b = n_eval // spec.batch_size
    perm = np.random.default_rng(spec.data_seed).permutation(n_eval)
    return perm[: b * spec.batch_size].reshape(b, spec.batch_size)


def eval_train_indices(spec: SpectralSpec, n_train: int) -> np.ndarray:
    """Training samples used by the probes and full-set spectra: the first ``EVAL_MAX_TRAIN``."""
    return np.arange(min(n_train, EVAL_MAX_TRAIN))
