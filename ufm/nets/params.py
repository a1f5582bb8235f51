"""Many seeds at once and the (trainable arrays, static) split for a vmapped trainer.

Recipe (one model per seed, trained by a trainer vmapped over a leading seed axis)::

    keys = jax.random.split(jax.random.key(0), S)
    models = ufm.nets.init_models(lambda k: ufm.nets.mlp(64, key=k), keys)  # arrays (S, ...)
    params, static = ufm.nets.split(models)          # eqx.partition(models, eqx.is_inexact_array)
    mask = ufm.nets.trainable_mask(models, last_layer_only=False)
    loss_fn = ufm.nets.ce_loss(static, mask=mask)    # loss_fn(params_one_seed, (x, y), key)
    optimizer = ufm.nets.freeze(optax.adamw(1e-3), mask)  # frozen arrays never move

``params`` holds every floating-point array of the models, each with the leading seed axis;
``static`` holds everything else (activations, shapes, ``alpha``, the ETF head's constants) and
is shared by all seeds, so the loss closes over it. Arrays that must not train (the body under
``last_layer_only``, the initial copy ``f_0`` of :class:`ufm.nets.Lazy`) stay in ``params``
because they differ between seeds; ``mask`` marks them ``False``: :func:`combine` wraps them in
``jax.lax.stop_gradient`` (zero gradient) and :func:`freeze` zeroes their optimiser updates
(so weight decay cannot move them either). The fixed ETF head has no arrays at all.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import optax

from .model import Lazy, Net

__all__ = ["combine", "freeze", "init_models", "split", "trainable_mask"]


def init_models(make: Callable, keys: jax.Array):
    """``S`` models at once: ``eqx.filter_vmap(make)(keys)``; arrays get a leading seed axis.

    ``make(key) -> model``. Seed ``s``'s arrays equal ``make(keys[s])``'s (the construction is
    vmapped, not re-seeded), so a seed's model depends only on its key.
    """
    return eqx.filter_vmap(make)(keys)


def split(model):
    """``(params, static) = eqx.partition(model, eqx.is_inexact_array)``; undo with
    :func:`combine`."""
    return eqx.partition(model, eqx.is_inexact_array)


def _all_false(tree):
    return jax.tree.map(lambda _: False, tree)


def trainable_mask(model, *, last_layer_only: bool = False):
    """Booleans with the structure of ``split(model)[0]``: ``True`` = trained.

    ``last_layer_only=True`` trains the head only (coefficient learning on frozen random
    features). :class:`ufm.nets.Lazy`'s ``f_0`` is always frozen. ``ValueError`` when nothing is
    left to train (e.g. the fixed ETF head with ``last_layer_only``).
    """
    params, _ = split(model)
    mask = jax.tree.map(lambda _: True, params)
    if isinstance(model, Lazy):
        mask = eqx.tree_at(lambda m: m.model0, mask, replace_fn=_all_false)

        def inner(m):
            return m.model
    elif isinstance(model, Net):

        def inner(m):
            return m
    else:
        raise TypeError(f"model must be a ufm.nets.Net or Lazy (got {type(model).__name__})")
    if last_layer_only:
        mask = eqx.tree_at(lambda m: inner(m).body, mask, replace_fn=_all_false)
    if not any(jax.tree.leaves(mask)):
        raise ValueError(
            "trainable_mask: nothing to train (last_layer_only with a fixed ETF head?)"
        )
    return mask


def combine(params, static, mask=None):
    """The model from :func:`split`'s parts, frozen arrays (``mask`` False) under stop_gradient."""
    if mask is not None:
        params = jax.tree.map(lambda p, m: p if m else jax.lax.stop_gradient(p), params, mask)
    return eqx.combine(params, static)


def freeze(optimizer: optax.GradientTransformation, mask) -> optax.GradientTransformation:
    """``optimizer`` whose updates of frozen arrays (``mask`` False) are exactly zero."""
    frozen = jax.tree.map(lambda m: not m, mask)
    return optax.chain(optimizer, optax.masked(optax.set_to_zero(), frozen))
