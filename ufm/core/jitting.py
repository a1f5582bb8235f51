"""``jax.jit`` for one-shot functions whose compile time dominates at small sizes.

XLA:CPU spends most of a compilation in LLVM's optimisation passes. For the functions a landscape
job calls once per configuration (random initialisation, Newton polish, Hessian classification,
NC metrics, optimiser state) at the sizes of the embedded default (``K <= 10``, a few samples per
class), those passes cost seconds and buy milliseconds: compiled with XLA's
``xla_backend_optimization_level=0`` they compile 2-3x faster (threefry initialisation 0.5 s
instead of 1.6 s) while the same code on large problems runs 2-3x slower (block-arrow
classification at ``N = 10^4``: 0.74 s against 0.35 s; benchmarks/perf.py).
:func:`adaptive_jit` therefore keeps two compiled versions and picks one per *spec* (the first
argument): level 0 when the spec's ``num_params`` (parameters of one point) is at most
:data:`SMALL_PARAMS`, XLA's default otherwise or when the spec does not say. The choice never
depends on how many points are in the batch, so a seed's result does not depend on its batch,
chunk or device count (the bit-for-bit guarantees of :mod:`ufm.runs`). A caller that knows the
job is large switches every :func:`adaptive_jit` to XLA's default with :func:`full_optimisation`:
:func:`ufm.run_sweep` does so for a configuration with at least
:data:`ufm.runs.sweep.LARGE_CONFIGURATION` starts (a property of the sweep spec, not of its
chunks), where the runtime of thousands of points outweighs the compile time: on 2048
near-critical ``d = K`` points (``K = d = 4``, float64; ``python benchmarks/perf.py --parts
dense``) the Newton polish took 0.17 ms per point instead of 0.88 ms and the dense
classification 0.66 ms instead of 1.33 ms. :func:`jit_when_eager`
makes a public function (``ufm.loss``, the Hessian routines) one compiled program when it is
called eagerly, instead of one small program per primitive. The hot optimisation loop
(:func:`ufm.optimize`) always uses XLA's default. XLA:CPU's older loop emitters
(``xla_cpu_use_fusion_emitters=false``) would halve these compile times again, but they make
batched and single-point results differ in the last bit, so they are not used.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools

import jax

__all__ = [
    "QUICK_COMPILE",
    "SMALL_PARAMS",
    "adaptive_jit",
    "array_bytes",
    "full_optimisation",
    "is_small",
    "jit_when_eager",
]

#: Compiler options of the small-input version.
QUICK_COMPILE = {"xla_backend_optimization_level": 0}

#: Specs with at most this many parameters per point take the quick-compiling version.
SMALL_PARAMS = 20_000


_FULL = contextvars.ContextVar("ufm_full_optimisation", default=False)


@contextlib.contextmanager
def full_optimisation(enabled: bool = True):
    """Within the block every :func:`adaptive_jit` function uses XLA's default optimisation
    level (``enabled=False``: the per-spec choice). For large jobs of small specs: the programs
    run 2-4x faster and compile somewhat slower (module docstring).

    >>> import jax.numpy as jnp
    >>> import ufm
    >>> f = adaptive_jit(lambda spec, x: x * spec.K)
    >>> with full_optimisation():
    ...     int(f(ufm.UFMSpec(K=3, n=2, d=3), jnp.arange(3)).sum())
    9
    >>> f.full._cache_size(), f.quick._cache_size()
    (1, 0)
    """
    token = _FULL.set(bool(enabled))
    try:
        yield
    finally:
        _FULL.reset(token)


def array_bytes(tree) -> int:
    """Total bytes of the array leaves of ``tree`` (other leaves count zero)."""
    return sum(int(getattr(x, "nbytes", 0)) for x in jax.tree_util.tree_leaves(tree))


def is_small(spec) -> bool:
    """Whether ``spec`` (a system spec with ``num_params``) takes the quick-compiling version."""
    n = getattr(spec, "num_params", None)
    return isinstance(n, int) and n <= SMALL_PARAMS


def adaptive_jit(fun=None, *, setup: bool = False, **jit_kwargs):
    """``jax.jit(fun, **jit_kwargs)``, compiled at XLA optimisation level 0 when the spec (the
    first argument) is small (:func:`is_small`; module docstring). Use like ``jax.jit``, also as
    ``@adaptive_jit(static_argnames=...)``; ``.quick`` and ``.full`` are the two jitted versions.
    Inside a trace (an outer ``jit``, ``eval_shape``) the call is inlined as a plain ``jit``.
    ``setup=True``: work done once per batch whose run time is negligible next to what follows
    (random starts, the optimiser's initial state) ignores :func:`full_optimisation`, so a small
    spec always takes level 0: in the ``d = K`` sweep the threefry initialisation of 2004 starts
    compiled in 1.65 s at the default level, once per configuration, against 0.57 s (BENCHMARKS.md,
    ``JAX_LOG_COMPILES=1 python benchmarks/sweep_stages.py``). Large specs keep the default level,
    where the draws themselves take time and level 0 runs them slower.

    >>> import jax.numpy as jnp
    >>> import ufm
    >>> f = adaptive_jit(lambda spec, x: x * spec.K)
    >>> int(f(ufm.UFMSpec(K=3, n=2, d=3), jnp.arange(3)).sum())
    9
    """
    if fun is None:
        return functools.partial(adaptive_jit, setup=setup, **jit_kwargs)
    quick = jax.jit(fun, compiler_options=QUICK_COMPILE, **jit_kwargs)
    full = jax.jit(fun, **jit_kwargs)

    @functools.wraps(fun)
    def call(*args, **kwargs):
        leaves = jax.tree_util.tree_leaves((args, kwargs))
        if (
            (_FULL.get() and not setup)
            or not args
            or not is_small(args[0])
            or any(isinstance(x, jax.core.Tracer) for x in leaves)
        ):
            return call.full(*args, **kwargs)
        try:
            return call.quick(*args, **kwargs)
        except ValueError as err:  # called inside a trace (eval_shape, an outer jit): inlined
            if "compiler_options" not in str(err):
                raise
            return call.full(*args, **kwargs)

    call.quick, call.full = quick, full
    return call


def _tracing(args, kwargs) -> bool:
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves((args, kwargs)))


def jit_when_eager(fun=None, **jit_kwargs):
    """Compile ``fun`` as one program when it is called outside a trace; inside one (an outer
    ``jit``, ``vmap``, ``grad``) call it as it is.

    Without it, a public function called eagerly (a notebook cell, a test's oracle) runs op by op,
    and JAX lowers and compiles one small program per primitive and shape: the dense Hessian
    spectrum of a 27-parameter UFM took 8.8 s eagerly against 0.9 s as one program, ``ufm.loss``
    and ``ufm.grad_norm`` 1-3 s each. The compiled version is :func:`adaptive_jit`'s (XLA level 0
    for small specs); ``jit_kwargs`` as for ``jax.jit`` (``static_argnames`` for the options that
    are not arrays). ``.jitted`` is the compiled version, ``.plain`` the function itself.

    >>> import jax.numpy as jnp
    >>> import ufm
    >>> f = jit_when_eager(lambda spec, x: (x * spec.K).sum())
    >>> int(f(ufm.UFMSpec(K=3, n=2, d=3), jnp.arange(3)))
    9
    """
    if fun is None:
        return functools.partial(jit_when_eager, **jit_kwargs)
    jitted = adaptive_jit(fun, **jit_kwargs)

    @functools.wraps(fun)
    def call(*args, **kwargs):
        if _tracing(args, kwargs):
            return call.plain(*args, **kwargs)
        return call.jitted(*args, **kwargs)

    call.jitted, call.plain = jitted, fun
    return call
