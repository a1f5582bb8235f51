"""Two-view augmentations for small images (8 x 8 digits) and flat latent-factor vectors.

Pure functions of ``(key, x)``: jit- and vmap-friendly, configured by frozen dataclasses whose
fields are Python values. Images are passed flat (``channels * h * w`` values, channels first, e.g.
sklearn digits rows of 64 values, or CIFAR rows of 3 * 32 * 32); the defaults assume pixel values
scaled to ``[0, 1]`` (digits / 16). All channels of an image are shifted by the same offset.

Image view (:func:`image_view`), in this order:

1. **shift**: integer offsets ``dy, dx`` drawn uniformly from ``{-max_shift, ..., max_shift}``;
   ``out[i, j] = x[i - dy, j - dx]`` with zero fill (pixels shifted in from outside are 0);
2. **noise**: ``+ noise_std * N(0, 1)`` per pixel;
3. **pixel dropout**: each pixel set to 0 independently with probability ``drop_prob``
   (no ``1 / (1 - q)`` rescaling: this is an augmentation, not a regulariser).

Vector view (:func:`vector_view`): Gaussian noise then coordinate dropout, same conventions.

:func:`make_views` draws ``n_views`` views of every sample of a batch; view ``v`` of sample ``i``
uses the key ``fold_in(fold_in(key, v), i)``, so it depends only on ``(key, v, i)``, never on the
batch size.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from ufm.core import SpecError


def _check_prob(name: str, q: float) -> None:
    if not isinstance(q, (int, float)) or not 0.0 <= q < 1.0:
        raise SpecError(f"{name} must be a float in [0, 1) (got {name}={q!r})")


def _check_std(name: str, s: float) -> None:
    if not isinstance(s, (int, float)) or not s >= 0.0:
        raise SpecError(f"{name} must be a float >= 0 (got {name}={s!r})")


@dataclasses.dataclass(frozen=True)
class ImageAugment:
    """Image augmentation settings (defaults: 8 x 8 digits scaled to ``[0, 1]``; ``channels``
    for colour images stored channels-first)."""

    height: int = 8
    width: int = 8
    max_shift: int = 1
    noise_std: float = 0.1
    drop_prob: float = 0.1
    channels: int = 1

    @property
    def size(self) -> int:
        """Values of one flat image: ``channels * height * width``."""
        return self.channels * self.height * self.width

    def __post_init__(self):
        for name in ("height", "width", "channels"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise SpecError(f"{name} must be an int >= 1 (got {name}={v!r})")
        k = self.max_shift
        if (
            not isinstance(k, int)
            or isinstance(k, bool)
            or not 0 <= k < min(self.height, self.width)
        ):
            raise SpecError(
                f"max_shift must be an int in [0, min(height, width)) (got max_shift={k!r})"
            )
        _check_std("noise_std", self.noise_std)
        _check_prob("drop_prob", self.drop_prob)


@dataclasses.dataclass(frozen=True)
class VectorAugment:
    """Flat-vector augmentation settings: Gaussian noise and coordinate dropout."""

    noise_std: float = 0.1
    drop_prob: float = 0.1

    def __post_init__(self):
        _check_std("noise_std", self.noise_std)
        _check_prob("drop_prob", self.drop_prob)


def shift_image(img, dy, dx, max_shift: int):
    """Shift a ``(h, w)`` image by ``(dy, dx)`` pixels with zero fill (``|dy|, |dx| <= max_shift``).

    ``out[i, j] = img[i - dy, j - dx]`` (positive ``dy`` moves content down, ``dx`` right).

    >>> import jax.numpy as jnp
    >>> shift_image(jnp.arange(1.0, 5.0).reshape(2, 2), 1, 0, 1).tolist()
    [[0.0, 0.0], [1.0, 2.0]]
    """
    h, w = img.shape
    k = max_shift
    padded = jnp.pad(img, k)
    return jax.lax.dynamic_slice(padded, (k - dy, k - dx), (h, w))


def _check_float(x) -> None:
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise SpecError(f"x must be floating point (got dtype {jnp.result_type(x)})")


def _view(key, x, noise_std, drop_prob, image_shape, max_shift):
    """One view of a flat sample ``x`` from a single uniform draw (one PRNG call per view).

    ``u[0:2]`` pick the shift, ``u[2:2+D]`` the dropout mask, ``u[2+D:]`` the noise
    (``sqrt(2) erfinv(2u - 1)``, the inverse-CDF construction ``jax.random.normal`` uses).
    """
    dim = x.shape[0]
    u = jax.random.uniform(key, (2 + 2 * dim,), x.dtype)
    if image_shape is not None and max_shift > 0:
        width = 2 * max_shift + 1
        dy, dx = jnp.minimum(jnp.floor(u[:2] * width), width - 1).astype(jnp.int32) - max_shift
        shift = jax.vmap(shift_image, (0, None, None, None))  # same offset for every channel
        x = shift(x.reshape(image_shape), dy, dx, max_shift).reshape(-1)
    lo = jnp.nextafter(jnp.asarray(-1.0, x.dtype), jnp.asarray(0.0, x.dtype))
    noise = jnp.sqrt(jnp.asarray(2.0, x.dtype)) * jax.scipy.special.erfinv(
        jnp.maximum(2.0 * u[2 + dim :] - 1.0, lo)
    )
    x = x + jnp.asarray(noise_std, x.dtype) * noise
    return jnp.where(u[2 : 2 + dim] < jnp.asarray(drop_prob, x.dtype), jnp.zeros_like(x), x)


def image_view(key, x, aug: ImageAugment = ImageAugment()):
    """One augmented view of a flat image ``x`` (``channels * height * width`` values); same shape
    out."""
    if jnp.shape(x) != (aug.size,):
        raise SpecError(f"x must be a flat image of {aug.size} values (got x.shape={jnp.shape(x)})")
    _check_float(x)
    shape = (aug.channels, aug.height, aug.width)
    return _view(key, x, aug.noise_std, aug.drop_prob, shape, aug.max_shift)


def vector_view(key, x, aug: VectorAugment = VectorAugment()):
    """One augmented view of a flat vector ``x``: noise then coordinate dropout."""
    if jnp.ndim(x) != 1:
        raise SpecError(f"x must be a 1-d vector (got x.shape={jnp.shape(x)})")
    _check_float(x)
    return _view(key, x, aug.noise_std, aug.drop_prob, None, 0)


@functools.partial(jax.jit, static_argnames=("image_shape", "max_shift", "n_views"))
def _make_views(key, batch, noise_std, drop_prob, image_shape, max_shift, n_views):
    idx = jnp.arange(batch.shape[0])

    def one(v, i, x):
        k = jax.random.fold_in(jax.random.fold_in(key, v), i)
        return _view(k, x, noise_std, drop_prob, image_shape, max_shift)

    per_sample = jax.vmap(one, (None, 0, 0))
    return jax.vmap(per_sample, (0, None, None))(jnp.arange(n_views), idx, batch)


def make_views(key, batch, aug: ImageAugment | VectorAugment, n_views: int = 2):
    """``(n_views, n, D)`` augmented views of a batch ``(n, D)`` of flat images or vectors.

    Compiled once per batch shape, dtype, image shape, ``max_shift`` and ``n_views``; the noise
    level and dropout rate are traced (changing them does not recompile).

    Example: ``make_views(jax.random.key(0), digits / 16.0, ImageAugment())`` has shape
    ``(2, n, 64)`` for ``n`` flat 8 x 8 digits.
    """
    if not isinstance(n_views, int) or isinstance(n_views, bool) or n_views < 1:
        raise SpecError(f"n_views must be an int >= 1 (got n_views={n_views!r})")
    if jnp.ndim(batch) != 2:
        raise SpecError(f"batch must have shape (n, D) (got batch.shape={jnp.shape(batch)})")
    _check_float(batch)
    if isinstance(aug, ImageAugment):
        if jnp.shape(batch)[1] != aug.size:
            raise SpecError(
                f"batch rows must be flat images of {aug.size} values "
                f"(got batch.shape={jnp.shape(batch)})"
            )
        shape, shift = (aug.channels, aug.height, aug.width), aug.max_shift
    elif isinstance(aug, VectorAugment):
        shape, shift = None, 0
    else:
        raise SpecError(  # noqa: TRY004 (bad input is a SpecError, a ValueError)
            f"aug must be ImageAugment or VectorAugment (got {type(aug).__name__})"
        )
    dtype = jnp.result_type(batch)
    noise_std, drop_prob = jnp.asarray(aug.noise_std, dtype), jnp.asarray(aug.drop_prob, dtype)
    return _make_views(key, batch, noise_std, drop_prob, shape, shift, n_views)
