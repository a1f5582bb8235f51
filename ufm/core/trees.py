"""Small pytree helpers used by the optimisers, Hessian routines and pipelines."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["tree_norm", "tree_where", "rows_where", "leading_size", "tree_dtype"]


def tree_norm(tree) -> jax.Array:
    """Euclidean norm of all leaves of a pytree together."""
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.sqrt(sum(jnp.sum(jnp.abs(x) ** 2) for x in leaves))


def tree_where(pred, a, b):
    """Leafwise ``jnp.where(pred, a, b)`` with a scalar predicate."""
    return jax.tree_util.tree_map(lambda x, y: jnp.where(pred, x, y), a, b)


def rows_where(mask, a, b):
    """Per point: ``a`` where ``mask`` else ``b`` (pytrees with a leading point axis)."""
    m = jnp.asarray(mask)
    return jax.tree_util.tree_map(
        lambda x, y: jnp.where(m.reshape((-1,) + (1,) * (x.ndim - 1)), x, y), a, b
    )


def leading_size(tree) -> int:
    """Size of the leading (seed / point) axis of a batched pytree."""
    return int(jax.tree_util.tree_leaves(tree)[0].shape[0])


def tree_dtype(tree):
    """dtype of the first leaf (parameter pytrees share one dtype)."""
    return jax.tree_util.tree_leaves(tree)[0].dtype
