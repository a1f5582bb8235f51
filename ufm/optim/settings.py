"""The optimiser settings object: one definition, one set of defaults, used everywhere.

:class:`OptimizerSettings` is what :func:`ufm.optimize`, :func:`ufm.run_points`, ``ufm sweep`` (the
``[optimizer]`` table) and ``ufm landscape`` (its ``--lr``, ``--steps``, ... flags) read: the
first-order optimiser (a name and a learning rate for :func:`ufm.make_optimizer`), its step budget,
tolerance, chunk length and divergence threshold, and the polish stage.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np

from ..core.validation import SpecError, check_int
from .transforms import check_learning_rate, make_optimizer

__all__ = ["OptimizerSettings", "POLISH_METHODS", "MAX_STEPS"]

POLISH_METHODS = ("auto", "newton", "lbfgs", "none")

#: Upper bound of step counts (the step counter is an int32 inside the compiled chunk).
MAX_STEPS = 2**31 - 1


def _name(name) -> str:
    if not isinstance(name, str) or not name.strip():
        raise SpecError(f"optimizer name must be a non-empty string, got {name!r}")
    return name.strip().lower()


def _bounded_int(name: str, value, minimum: int, maximum: int) -> int:
    value = check_int(name, value, minimum)
    if value > maximum:
        raise SpecError(f"{name} must be an integer in [{minimum}, {maximum}], got {value!r}")
    return value


def _number(name: str, value, *, positive: bool) -> float:
    ok = (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > 0 if positive else value >= 0)
    )
    if not ok:
        raise SpecError(
            f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}"
        )
    return float(value)


@dataclasses.dataclass(frozen=True)
class OptimizerSettings:
    """First-order optimiser and polish settings: the one place their defaults are defined.

    :func:`ufm.optimize` uses ``make_optimizer(name, learning_rate, **options)`` for ``max_steps``
    steps per seed (a seed converges at gradient norm ``<= tol``; loss or gradient norm above
    ``divergence_threshold`` flags it ``diverged``), in compiled chunks of ``chunk`` steps;
    :func:`ufm.run_points` then polishes with ``polish`` (``"auto"``: float64 ->
    :func:`ufm.polish`'s
    automatic choice, float32 -> none; ``"newton"``, ``"lbfgs"``, ``"none"``) to ``polish_tol``
    (default ``1e-10`` in float64, ``1e-5`` in float32) within ``polish_max_iter`` iterations
    (default: :func:`ufm.polish`'s). Every field is validated on construction (one-line
    ``SpecError`` naming it); ``options`` are checked against the optimiser's signature.

    Recommended for the UFM at ``d = K`` with lambdas ~1e-3 to 1e-2: ``gd`` with learning rate
    0.5 to 1.0 (the ``ufm landscape`` preset is 1.0 with 4000 steps and ``tol = 1e-6``, then
    Newton polishing); GD on MSE needs ``learning_rate < 2 / (1 + lambda_b)`` at least.

    Example:
        >>> OptimizerSettings(name="momentum", learning_rate=0.5, options={"beta": 0.9}).options
        (('beta', 0.9),)
        >>> OptimizerSettings(max_steps=0)
        Traceback (most recent call last):
        ...
        ufm.core.validation.SpecError: max_steps must be an integer >= 1, got 0
    """

    name: str = "gd"
    learning_rate: float = 0.5
    max_steps: int = 10_000
    tol: float = 1e-8
    chunk: int = 500
    divergence_threshold: float = 1e10
    options: tuple = ()  # sorted (key, value) pairs passed to make_optimizer
    polish: str = "auto"
    polish_tol: float | None = None
    polish_max_iter: int | None = None

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("name", _name(self.name))
        set_("learning_rate", check_learning_rate(self.learning_rate))
        set_("max_steps", _bounded_int("max_steps", self.max_steps, 1, MAX_STEPS))
        set_("tol", _number("tol", self.tol, positive=False))
        set_("chunk", _bounded_int("chunk", self.chunk, 1, MAX_STEPS))
        set_(
            "divergence_threshold",
            _number("divergence_threshold", self.divergence_threshold, positive=True),
        )
        options = self.options
        if isinstance(options, dict):
            options = tuple(sorted(options.items()))
        if not isinstance(options, tuple) or not all(
            isinstance(o, tuple) and len(o) == 2 and isinstance(o[0], str) for o in options
        ):
            raise SpecError(f"options must be (name, value) pairs or a dict, got {options!r}")
        set_("options", tuple(sorted(options)))
        if self.polish not in POLISH_METHODS:
            raise SpecError(
                f"polish must be one of {', '.join(POLISH_METHODS)}; got {self.polish!r}"
            )
        if self.polish_tol is not None:
            set_("polish_tol", _number("polish_tol", self.polish_tol, positive=True))
        if self.polish_max_iter is not None:
            set_(
                "polish_max_iter",
                _bounded_int("polish_max_iter", self.polish_max_iter, 1, MAX_STEPS),
            )
        self.transform()  # unknown optimiser names and options fail here, naming them

    def replace(self, **changes) -> OptimizerSettings:
        """A copy with fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def transform(self):
        """The optax transformation (cached by :func:`ufm.make_optimizer`: no recompilation)."""
        return make_optimizer(self.name, self.learning_rate, **dict(self.options))

    def polish_method(self, dtype) -> str:
        """The polish method for parameters of ``dtype`` (``"none"``: no polish)."""
        if self.polish == "auto":
            return "auto" if np.dtype(dtype) == np.float64 else "none"
        return self.polish

    def polish_tolerance(self, dtype) -> float:
        if self.polish_tol is not None:
            return float(self.polish_tol)
        return 1e-10 if np.dtype(dtype) == np.float64 else 1e-5

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["options"] = dict(self.options)
        return d

    def hash_dict(self) -> dict:
        """:meth:`as_dict` without the polish keys when ``polish == "none"`` (the settings of a
        sweep without a polish stage hash as before the stage existed)."""
        d = self.as_dict()
        if self.polish == "none":
            for k in ("polish", "polish_tol", "polish_max_iter"):
                d.pop(k)
        return d
