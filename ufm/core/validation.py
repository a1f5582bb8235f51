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
    """Check a regularisation strength: finite and >= 0 (skipped for traced values)."""
    if isinstance(value, bool):
        raise SpecError(f"{name} must be a finite number >= 0, got {value!r}")
    if is_concrete(value):
        v = float(value)
        if not math.isfinite(v) or v < 0:
            raise SpecError(f"{name} must be a finite number >= 0, got {value!r}")
        return v
    if isinstance(value, (str, bytes)) or value is None:
        raise SpecError(f"{name} must be a finite number >= 0, got {value!r}")
    return value  # a traced or batched array: validated where it was made


def check_choice(name: str, value: Any, choices: tuple[str, ...], aliases=None) -> str:
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
