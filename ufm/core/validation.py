"""Validation helpers shared by every spec and settings object: one-line errors naming the field.

Every check raises :class:`SpecError` (a ``ValueError``) whose message names the offending field
and the expected form, so that a bad value never travels into a compiled function.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import numpy as np

__all__ = [
    "SpecError",
    "is_concrete",
    "check_int",
    "check_lambda",
    "check_choice",
    "dtype_ok",
    "require_x64",
    "check_dtype",
    "check_scale",
]


class SpecError(ValueError):
    """Invalid problem or sweep specification; the message names the offending field."""


def is_concrete(x: Any) -> bool:
    return isinstance(x, (numbers.Number, np.generic)) or (
        isinstance(x, np.ndarray) and x.ndim == 0
    )


def check_int(name: str, value: Any, minimum: int) -> int:
    """Return ``value`` as an int, or raise :class:`SpecError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            value = int(value)
        else:
            raise SpecError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise SpecError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_lambda(name: str, value: Any) -> Any:
    """Check a regularisation strength: a finite number >= 0, returned as a float.

    A numpy or jax array (a batch of lambdas to vmap over) is checked elementwise and returned as
    is; a traced value (inside ``jit``/``vmap``) passes unchecked (it was checked where it was
    made). Lists, dicts, strings, ``None`` and booleans are refused.
    """
    bad = SpecError(f"{name} must be a finite number >= 0, got {value!r}")
    if isinstance(value, (bool, np.bool_)) or value is None:
        raise bad
    if is_concrete(value):
        v = float(value)
        if not math.isfinite(v) or v < 0:
            raise bad
        return v
    if isinstance(value, jax.core.Tracer):
        return value
    if isinstance(value, (np.ndarray, jax.Array)):
        arr = np.asarray(value)
        if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.integer):
            raise bad
        if not (np.all(np.isfinite(arr)) and np.all(arr >= 0)):
            raise SpecError(f"{name} must be finite numbers >= 0, got {arr.tolist()!r}")
        return float(arr) if arr.ndim == 0 else value
    raise bad


def check_choice(name: str, value: Any, choices: tuple[str, ...], aliases=None) -> str:
    """``value`` (case and surrounding spaces ignored, ``aliases`` mapped) if it is one of
    ``choices``, else a ``SpecError`` listing them."""
    if isinstance(value, str):
        v = value.strip().lower()
        v = (aliases or {}).get(v, v)
        if v in choices:
            return v
    raise SpecError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def dtype_ok(x) -> bool:
    try:
        np.dtype(x)
        return True
    except TypeError:
        return False


def require_x64(spec) -> None:
    """Raise a clear error when ``spec.dtype`` is float64 but JAX runs in 32-bit mode."""
    if getattr(spec, "dtype", None) == "float64" and not jax.config.jax_enable_x64:
        raise SpecError(
            "dtype='float64' needs 64-bit JAX: call jax.config.update('jax_enable_x64', True) "
            "before creating arrays, or use dtype='float32'"
        )


def check_dtype(name: str, value: Any, choices: tuple[str, ...] = ("float32", "float64")) -> str:
    """A float dtype given as a name or a numpy dtype (``None`` is refused), as its name."""
    if value is None or isinstance(value, bool):
        raise SpecError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    if not isinstance(value, str) and dtype_ok(value):
        value = str(np.dtype(value))
    return check_choice(name, value, choices)


def check_scale(name: str, value: Any):
    """An initialisation scale: ``None`` (the system default), a finite number > 0, or a tuple of
    them (one per parameter group)."""
    if value is None:
        return None
    items = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    for v in items:
        ok = (
            isinstance(v, (int, float, np.integer, np.floating))
            and not isinstance(v, bool)
            and math.isfinite(float(v))
            and float(v) > 0
        )
        if not ok:
            raise SpecError(
                f"{name} must be a finite number > 0 (or a tuple of them), got "
                f"{value!r}; 0 would put every random start at the origin"
            )
    return tuple(float(v) for v in items) if isinstance(value, (list, tuple)) else float(value)
