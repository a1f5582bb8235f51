"""Ctrl-C and a scheduler's SIGTERM that are never lost.

Python delivers a signal as a ``KeyboardInterrupt`` raised at whatever bytecode runs next. When
that is a finaliser or a garbage-collector callback (JAX registers one), Python prints
"Exception ignored in ..." and carries on: the interrupt is swallowed and the run goes on to the
end (seen in CI on ``ufm landscape``). So the CLI's handler does two things: it records the
request, then raises as usual. Long loops call :func:`raise_if_stop_requested` between units of
work (every :meth:`ufm.core.Progress.update` does), so a swallowed interrupt still stops the run
at the next chunk boundary, where the results folder is consistent.

Library use (notebooks, scripts) is unchanged: nothing is installed unless the CLI calls
:func:`install_stop_handlers`.

Example (without handlers installed, nothing is ever requested):
    >>> stop_requested()
    False
    >>> raise_if_stop_requested()
"""

from __future__ import annotations

import signal

__all__ = [
    "install_stop_handlers",
    "raise_if_stop_requested",
    "request_stop",
    "stop_requested",
]

_requested = False


def request_stop(signum=None, frame=None) -> None:
    """The signal handler: remember the request, then raise ``KeyboardInterrupt``."""
    global _requested
    _requested = True
    raise KeyboardInterrupt


def stop_requested() -> bool:
    """Whether a stop (Ctrl-C, SIGTERM) arrived since the handlers were installed."""
    return _requested


def raise_if_stop_requested() -> None:
    """Raise ``KeyboardInterrupt`` if a stop was requested (and perhaps swallowed on the way)."""
    if _requested:
        raise KeyboardInterrupt


def install_stop_handlers() -> None:
    """Route SIGTERM, and SIGINT where it has Python's default handler, to :func:`request_stop`.

    A SIGINT that the parent set to be ignored (``nohup``, a background job) stays ignored.
    """
    global _requested
    _requested = False
    signal.signal(signal.SIGTERM, request_stop)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, request_stop)
