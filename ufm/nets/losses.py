"""Loss factories ``loss_fn(params, batch, key)`` for a trainer vmapped over seeds.

The static part of the model (:func:`ufm.nets.split`) sits in the closure, so ``params`` is a
pytree of arrays only (one seed's slice when the trainer vmaps). ``batch = (x, y)`` with ``x`` of
shape ``(B, ...)`` and ``y`` integer labels ``(B,)`` or float targets ``(B, K)``; ``key`` is
accepted for the trainer's signature and unused (the networks are deterministic).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .params import combine

__all__ = ["ce_loss", "mse_loss"]


def _outputs(params, static, mask, x):
    return jax.vmap(combine(params, static, mask))(x)


def _targets(y, out):
    if jnp.issubdtype(y.dtype, jnp.integer):
        return jax.nn.one_hot(y, out.shape[-1], dtype=out.dtype)
    return y.astype(out.dtype)


def mse_loss(static, *, mask=None, scale: float = 1.0):
    """``scale * (1/(2B)) sum_i ||f(x_i) - y_i||^2`` (one-hot ``y_i`` for integer labels).

    Same normalisation as the UFM's ``g(Z) = ||Z - Y||_F^2 / (2N)``. ``scale = 1/alpha^2`` gives
    Chizat et al.'s lazy normalisation for :class:`ufm.nets.Lazy`.
    """

    def loss_fn(params, batch, key):
        del key
        x, y = batch
        out = _outputs(params, static, mask, x)
        return scale * 0.5 * jnp.mean(jnp.sum((out - _targets(y, out)) ** 2, axis=-1))

    return loss_fn


def ce_loss(static, *, mask=None, scale: float = 1.0):
    """``scale * (1/B) sum_i [logsumexp(f(x_i)) - <y_i, f(x_i)>]`` (soft targets allowed)."""

    def loss_fn(params, batch, key):
        del key
        x, y = batch
        out = _outputs(params, static, mask, x)
        t = _targets(y, out)
        return scale * jnp.mean(jax.nn.logsumexp(out, axis=-1) - jnp.sum(t * out, axis=-1))

    return loss_fn
