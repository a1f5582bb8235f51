"""Which fast path a model spec uses: a registry of fused value-and-gradient kernels.

The generic layers (the many-seed optimiser) ask :func:`value_and_grad` for ``(f, grad f)`` of a
spec's objective. A system may register a fused kernel for its spec type
(:func:`register_value_and_grad`; the UFM registers :func:`ufm.kernels.ufm_value_and_grad` through
an adapter); every other spec gets ``jax.value_and_grad`` of its registered loss
(:func:`ufm.loss`), the plain path. ``plain=True`` forces the plain path (the reference the
tests compare the kernels with).
"""

from __future__ import annotations

from collections.abc import Callable

import jax

from ..core.model import loss as _loss

__all__ = [
    "register_value_and_grad",
    "value_and_grad",
    "has_fast_value_and_grad",
    "register_chunk",
    "chunk_kernel",
]

_KERNELS: dict[type, Callable] = {}
_CHUNKS: dict[type, Callable] = {}


def register_value_and_grad(spec_type: type, fn: Callable) -> Callable:
    """Register ``fn(spec, params) -> (value, grads)`` (grads: the params pytree) as the fused
    value-and-gradient kernel of ``spec_type``. It must agree with ``jax.value_and_grad`` of
    :func:`ufm.loss` to rounding (a test per kernel says so)."""
    if not isinstance(spec_type, type) or not callable(fn):
        raise TypeError("register_value_and_grad(spec_type, fn) needs a class and a callable")
    _KERNELS[spec_type] = fn
    return fn


def _kernel_of(spec, table=_KERNELS):
    for cls in type(spec).__mro__:
        if cls in table:
            return table[cls]
    return None


def register_chunk(spec_type: type, fn: Callable) -> Callable:
    """Register a whole-chunk kernel of the many-seed optimiser for ``spec_type``.

    ``fn(spec, rule, dtype)`` returns ``None`` when it does not apply (sizes, dtype, optimiser,
    platform), else a callable ``run(spec, params, trace, loss, grad_norm, status, steps, limits,
    *, num_records, record_every)`` with the step and status rules of :func:`ufm.optimize`'s
    plain path, returning ``(params, trace, loss, grad_norm, status, steps, records)`` (records:
    ``{"loss", "grad_norm"}`` of shape ``(S, num_records)``). ``rule`` is ``("gd", lr)`` or
    ``("momentum", lr, beta)``; ``trace`` the heavy-ball trace (a params pytree) or ``None``."""
    if not isinstance(spec_type, type) or not callable(fn):
        raise TypeError("register_chunk(spec_type, fn) needs a class and a callable")
    _CHUNKS[spec_type] = fn
    return fn


def chunk_kernel(spec, rule, dtype):
    """The registered chunk kernel of ``spec`` for this update ``rule`` and dtype, or ``None``."""
    fn = _kernel_of(spec, _CHUNKS)
    return None if fn is None or rule is None else fn(spec, rule, dtype)


def has_fast_value_and_grad(spec) -> bool:
    """Whether a fused kernel is registered for ``spec``'s type."""
    return _kernel_of(spec) is not None


def value_and_grad(spec, params, *, plain: bool = False):
    """``(f(params), grad f(params))`` of ``ufm.loss(spec, .)``: the registered kernel, or
    ``jax.value_and_grad`` (``plain=True``, or no kernel registered)."""
    fn = None if plain else _kernel_of(spec)
    if fn is None:
        return jax.value_and_grad(_loss, argnums=1)(spec, params)
    return fn(spec, params)
