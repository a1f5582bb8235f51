"""Frozen spec dataclasses registered as JAX pytrees (sizes static, lambdas traced)."""

from __future__ import annotations

import dataclasses

import jax

__all__ = ["register_spec"]


def register_spec(cls, data_fields: tuple[str, ...]):
    """Register a frozen spec dataclass as a pytree: ``data_fields`` are leaves, the rest static.

    Unflattening bypasses ``__init__`` (and its validation) so that tracers and batched leaves
    can flow through ``jit``/``vmap``.
    """
    names = tuple(f.name for f in dataclasses.fields(cls))
    meta_fields = tuple(n for n in names if n not in data_fields)

    def flatten(spec):
        return (
            tuple(getattr(spec, k) for k in data_fields),
            tuple(getattr(spec, k) for k in meta_fields),
        )

    def unflatten(meta, leaves):
        obj = object.__new__(cls)
        for k, v in zip(data_fields, leaves):
            object.__setattr__(obj, k, v)
        for k, v in zip(meta_fields, meta):
            object.__setattr__(obj, k, v)
        return obj

    jax.tree_util.register_pytree_node(cls, flatten, unflatten)
    return cls
