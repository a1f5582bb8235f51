"""Classifier heads: the ordinary learned linear head and a fixed simplex-ETF head.

A head maps the penultimate features ``Phi(x)`` (``p``-dimensional) to the ``K`` outputs
``W Phi(x) + b``. The fixed head follows the "fix the classifier as a simplex ETF" experiments
(Hoffer et al. 2018, arXiv 1801.04540; Zhu et al. 2021, arXiv 2105.02375): at ``p = K`` the last
layer is not trained and only the features learn.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["ETFHead", "LinearHead", "etf_matrix"]


@functools.lru_cache(maxsize=64)
def _etf_numpy(num_classes: int) -> np.ndarray:
    K = num_classes
    return np.sqrt(K / (K - 1)) * (np.eye(K) - np.full((K, K), 1.0 / K))


def etf_matrix(num_classes: int, dtype=jnp.float32) -> jax.Array:
    """The ``K x K`` simplex ETF ``sqrt(K/(K-1)) (I - J/K)``: unit rows, cosines ``-1/(K-1)``.

    Its rows sum to zero and span ``1^perp`` (rank ``K - 1``); Gram ``K/(K-1) (I - J/K)``.

    Example:
        >>> import numpy as np
        >>> M = np.asarray(etf_matrix(3))
        >>> np.round(M @ M.T, 6).tolist()
        [[1.0, -0.5, -0.5], [-0.5, 1.0, -0.5], [-0.5, -0.5, 1.0]]
    """
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2 (got {num_classes!r})")
    return jnp.asarray(_etf_numpy(num_classes), dtype=dtype)


class LinearHead(eqx.Module):
    """The learned head ``W Phi + b`` (``eqx.nn.Linear``, PyTorch-style uniform initialisation).

    ``weight`` is ``(K, p)``, ``bias`` ``(K,)``; both are trainable arrays.
    """

    linear: eqx.nn.Linear

    def __init__(self, width: int, num_classes: int, *, key, dtype=jnp.float32):
        self.linear = eqx.nn.Linear(width, num_classes, use_bias=True, dtype=dtype, key=key)

    @property
    def weight(self) -> jax.Array:
        return self.linear.weight

    @property
    def bias(self) -> jax.Array:
        return self.linear.bias

    def __call__(self, phi: jax.Array) -> jax.Array:
        return self.linear(phi)


class ETFHead(eqx.Module):
    """A fixed head ``W = scale * etf_matrix(K)`` at ``p = K``, no bias; never trained.

    How it is kept out of training: ``W`` is not stored as an array leaf of the module at all (the
    module holds only the Python values ``num_classes`` and ``scale``, static fields) and is built
    from a numpy constant inside ``__call__``, cast to the features' dtype. It is therefore in
    neither part of ``eqx.partition``: no optimiser state, no weight decay, and the gradient of any
    loss with respect to the model has no entry for it (equivalent to, and stronger than, a
    ``jax.lax.stop_gradient`` on a stored ``W``). ``ETFHead(K)`` is identical in every seed of a
    vmapped construction.

    Example:
        >>> head = ETFHead(3, scale=2.0)
        >>> head(jnp.array([1.0, 0.0, 0.0])).tolist()  # 2 * sqrt(3/2) * (2/3, -1/3, -1/3)
        [1.632993..., -0.816496..., -0.816496...]
    """

    num_classes: int = eqx.field(static=True)
    scale: float = eqx.field(static=True)

    def __init__(self, num_classes: int, *, scale: float = 1.0):
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"etf_scale must be a finite positive number (got {scale})")
        etf_matrix(num_classes)  # validates num_classes
        self.num_classes = int(num_classes)
        self.scale = float(scale)

    @property
    def weight(self) -> jax.Array:
        """``scale * etf_matrix(K)`` (JAX's default float dtype; for inspection)."""
        return jnp.asarray(self.scale * _etf_numpy(self.num_classes))

    def __call__(self, phi: jax.Array) -> jax.Array:
        if phi.shape[-1] != self.num_classes:
            raise ValueError(
                f"ETFHead needs penultimate width = num_classes (got {phi.shape[-1]}, "
                f"num_classes={self.num_classes})"
            )
        W = jnp.asarray(self.scale * _etf_numpy(self.num_classes), dtype=phi.dtype)
        return W @ phi
