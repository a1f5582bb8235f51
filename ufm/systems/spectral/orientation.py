"""Which covariance a batch transform acts on: the two sides of an embedding batch.

Every array of embeddings in :mod:`ufm.systems.spectral` has the **batch-major layout**
``z.shape == (m, d)``: ``m`` samples (rows), ``d`` features (columns). (The paper, Weng et al.
2024, writes ``Z`` as ``d x m``; ours is its transpose.)

A batch transform whitens or reshapes the spectrum of one of two covariance matrices:

=============  ==================  =====================================  ======================
``side``       official ``axis``   centring                               covariance
=============  ==================  =====================================  ======================
``"instance"`` ``0`` (default)     each sample over its ``d`` features    ``m x m`` batch Gram
``"feature"``  ``1``               each feature over the ``m`` samples    ``d x d`` feature cov.
=============  ==================  =====================================  ======================

The official INTL code (winci-ai/INTL, ``methods/whitening.py``, ``cfg.py``) selects these with an
integer ``axis`` whose help text calls axis 0 "channel whitening" and axis 1 "batch whitening"
(names from Weng et al. 2022, where "channel whitening" whitens the batch Gram). Those names read
backwards to most people, so this package uses ``side="instance"`` (the instances are the
variables being decorrelated) and ``side="feature"`` (the features are); :func:`side_from_axis`
converts the official integer.

Internally a batch is "oriented" into ``X`` of shape ``(n_obs, n_var)`` whose columns are the
variables, centred over the observations: ``X = z - mean_rows`` (feature side, ``n_obs = m``) or
``X = (z - mean_cols).T`` (instance side, ``n_obs = d``). The covariance is
``X^T X / (n_obs - ddof)``; the official code uses ``ddof = 1`` on both sides.
"""

from __future__ import annotations

import jax.numpy as jnp

from ufm.core import SpecError

SIDES = ("instance", "feature")


def check_side(side: str) -> str:
    """Return ``side`` if it is ``"instance"`` or ``"feature"``; raise ``ValueError`` otherwise."""
    if side not in SIDES:
        raise SpecError(f"side must be 'instance' or 'feature' (got side={side!r})")
    return side


def side_from_axis(axis: int) -> str:
    """Map the official INTL ``axis`` flag to a side name: ``0 -> "instance"``, ``1 -> "feature"``.

    >>> side_from_axis(0), side_from_axis(1)
    ('instance', 'feature')
    """
    if axis not in (0, 1) or isinstance(axis, bool):
        raise SpecError(f"axis must be 0 (instance side) or 1 (feature side) (got axis={axis!r})")
    return SIDES[axis]


def check_batch(z, name: str = "z") -> None:
    """Raise ``ValueError`` unless ``z`` is a 2-d floating array with at least 2 rows and
    columns."""
    shape = tuple(z.shape) if hasattr(z, "shape") else jnp.shape(z)
    if len(shape) != 2:
        raise SpecError(f"{name} must have shape (batch, dim) (got {name}.shape={shape})")
    if shape[0] < 2 or shape[1] < 2:
        raise SpecError(f"{name} needs batch >= 2 and dim >= 2 (got {name}.shape={shape})")
    dtype = z.dtype if hasattr(z, "dtype") else jnp.result_type(z)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise SpecError(f"{name} must be floating point (got dtype {dtype})")


def check_ddof(ddof: int, n_obs: int) -> None:
    """Raise ``ValueError`` unless ``0 <= ddof < n_obs``."""
    if not isinstance(ddof, int) or isinstance(ddof, bool) or not 0 <= ddof < n_obs:
        raise SpecError(f"ddof must be an int in [0, n_obs) (got ddof={ddof!r}, n_obs={n_obs})")


def orient(z, side: str):
    """Centred variables-in-columns matrix ``X`` (``n_obs x n_var``) of a batch ``z`` (``m x d``).

    Feature side: ``X = z - z.mean(0)`` (``m x d``). Instance side:
    ``X = (z - z.mean(1, keepdims=True)).T`` (``d x m``).
    """
    check_side(side)
    if side == "feature":
        return z - jnp.mean(z, axis=0, keepdims=True)
    return (z - jnp.mean(z, axis=1, keepdims=True)).T


def unorient(x, side: str):
    """Inverse of the layout change in :func:`orient`: back to ``(m, d)``."""
    check_side(side)
    return x if side == "feature" else x.T


def n_observations(z, side: str) -> int:
    """Number of observations the covariance on ``side`` averages over (``m`` or ``d``)."""
    check_side(side)
    m, d = z.shape if hasattr(z, "shape") else jnp.shape(z)
    return m if side == "feature" else d


def validate(z, side: str, ddof: int) -> None:
    """Raise ``ValueError`` unless ``z`` is a batch and ``side`` / ``ddof`` are valid for it."""
    check_batch(z)
    check_side(side)
    check_ddof(ddof, n_observations(z, side))


def oriented_covariance(z, side: str, ddof: int = 1):
    """Validated ``(X, Sigma)``: the oriented centred batch and ``Sigma = X^T X / (n_obs -
    ddof)``."""
    validate(z, side, ddof)
    n_obs = n_observations(z, side)
    x = orient(z, side)
    return x, x.T @ x / (n_obs - ddof)


def safe_trace(sigma):
    """``tr(sigma)`` floored at ``sqrt(tiny)`` (``tiny`` = the dtype's smallest normal number).

    Keeps divisions by the trace and powers ``tr^(-p)`` (``p <= 1``) finite for an exactly
    constant batch; any real batch has a far larger trace.
    """
    return jnp.maximum(jnp.trace(sigma), jnp.sqrt(jnp.finfo(sigma.dtype).tiny))


def covariance(z, side: str = "feature", ddof: int = 1):
    """Covariance of the batch ``z`` (``m x d``) on ``side`` with normaliser ``n_obs - ddof``.

    ``side="feature"`` gives the ``d x d`` feature covariance (``numpy.cov(z, rowvar=False,
    ddof=ddof)``); ``side="instance"`` gives the ``m x m`` Gram of the samples after centring each
    sample over its features (``numpy.cov(z, rowvar=True, ddof=ddof)``).

    >>> import jax.numpy as jnp
    >>> covariance(jnp.array([[0.0, 2.0], [2.0, 0.0], [1.0, 1.0]])).tolist()
    [[1.0, -1.0], [-1.0, 1.0]]
    """
    return oriented_covariance(z, side, ddof)[1]
