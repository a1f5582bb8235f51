"""``jax.jit`` for one-shot functions whose compile time dominates at small sizes.

XLA:CPU spends most of a compilation in LLVM's optimisation passes. For the functions a landscape
job calls once per configuration (random initialisation, Newton polish, Hessian classification,
NC metrics) at the sizes of the embedded default (``K <= 10``, a few samples per class), those
passes cost seconds and buy milliseconds: compiled with XLA's ``xla_backend_optimization_level=0``
they compile 2-3x faster (threefry initialisation 0.5 s instead of 1.6 s) while the same code on
large inputs runs 2-3x slower (block-arrow classification at ``N = 10^4``: 0.74 s against 0.35 s;
benchmarks/perf.py). :func:`adaptive_jit` therefore keeps two compiled versions and picks by the
total size of the array arguments: level 0 up to :data:`SMALL_BYTES`, XLA's default above. The
numerics are the same computation (both are tested in the suite, which runs at level 0); the hot
optimisation loop (:func:`ufm.optimize`) always uses the default.
"""

from __future__ import annotations

import functools

import jax

__all__ = ["QUICK_COMPILE", "SMALL_BYTES", "adaptive_jit", "array_bytes"]

#: Compiler options of the small-input version.
QUICK_COMPILE = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}

#: Inputs up to this many bytes (all array arguments together) take the quick-compiling version.
SMALL_BYTES = 1 << 20


def array_bytes(tree) -> int:
    """Total bytes of the array leaves of ``tree`` (other leaves count zero)."""
    return sum(int(getattr(x, "nbytes", 0)) for x in jax.tree_util.tree_leaves(tree))


def adaptive_jit(fun=None, **jit_kwargs):
    """``jax.jit(fun, **jit_kwargs)``, compiled at XLA optimisation level 0 when the array
    arguments total at most :data:`SMALL_BYTES` (module docstring). Use like ``jax.jit``, also as
    ``@adaptive_jit(static_argnames=...)``; ``.quick`` and ``.full`` are the two jitted versions.
    Inside a trace (an outer ``jit``, ``eval_shape``) the call is inlined as a plain ``jit``.

    >>> import jax.numpy as jnp
    >>> f = adaptive_jit(lambda x: x * 2)
    >>> int(f(jnp.arange(3)).sum())
    6
    """
    if fun is None:
        return functools.partial(adaptive_jit, **jit_kwargs)
    quick = jax.jit(fun, compiler_options=QUICK_COMPILE, **jit_kwargs)
    full = jax.jit(fun, **jit_kwargs)

    @functools.wraps(fun)
    def call(*args, **kwargs):
        leaves = jax.tree_util.tree_leaves((args, kwargs))
        if any(isinstance(x, jax.core.Tracer) for x in leaves) or array_bytes(leaves) > SMALL_BYTES:
            return call.full(*args, **kwargs)
        try:
            return call.quick(*args, **kwargs)
        except ValueError as err:  # called inside a trace (eval_shape, an outer jit): inlined
            if "compiler_options" not in str(err):
                raise
            return call.full(*args, **kwargs)

    call.quick, call.full = quick, full
    return call
