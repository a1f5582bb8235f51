"""Compile time, measured apart from run time, from JAX's own monitoring events.

JAX reports the duration of tracing, lowering and XLA compilation of every compiled function
through ``jax.monitoring``; :class:`CompileTimer` sums them while it is active, so a job can
report how much of its wall time went to compilation (the part JAX's persistent compilation cache
removes on a second run).
"""

from __future__ import annotations

import threading

import jax.monitoring

__all__ = ["CompileTimer", "COMPILE_EVENTS"]

#: The ``jax.monitoring`` duration events counted as compilation.
COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)

_lock = threading.Lock()
_active: list[CompileTimer] = []
_installed = False


def _listener(event: str, duration: float, **kwargs) -> None:
    if event in COMPILE_EVENTS:
        with _lock:
            for timer in _active:
                timer.seconds += duration


def _install() -> None:
    global _installed
    if not _installed:
        jax.monitoring.register_event_duration_secs_listener(_listener)
        _installed = True


class CompileTimer:
    """Context manager summing compilation time (tracing + lowering + XLA) in ``seconds``.

    >>> import jax, jax.numpy as jnp
    >>> with CompileTimer() as t:
    ...     _ = jax.jit(lambda x: x * 2 + 1)(jnp.ones(3))
    >>> t.seconds > 0
    True
    """

    def __init__(self):
        self.seconds = 0.0

    def __enter__(self) -> CompileTimer:
        _install()
        with _lock:
            _active.append(self)
        return self

    def __exit__(self, *exc) -> None:
        with _lock:
            _active.remove(self)
