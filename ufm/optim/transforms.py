"""Optimisers by name: gradient descent, momentum and any optax optimiser, validated and cached.

Cached so that equal settings give the *same* transformation object: it is a static argument of
the compiled optimiser chunk, and a new object would recompile. Every option is checked against
the optimiser's signature: an unknown or misspelt option (``betta=0.9``) is an error naming it,
never silently dropped.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers

import optax

from ..core.validation import SpecError

__all__ = [
    "gd",
    "momentum",
    "make_optimizer",
    "optimizer_options",
    "check_learning_rate",
    "update_rule",
]

#: Optimisers with their own names and the options they take (everything else: optax by name).
NAMED = {"gd": (), "sgd": (), "momentum": ("beta",), "nesterov": ("beta",)}


def check_learning_rate(learning_rate) -> float:
    """``learning_rate`` as a float, or a ``SpecError``: it must be a finite number > 0."""
    ok = (
        isinstance(learning_rate, numbers.Real)
        and not isinstance(learning_rate, bool)
        and math.isfinite(learning_rate)
        and learning_rate > 0
    )
    if not ok:
        raise SpecError(f"learning_rate must be a finite number > 0, got {learning_rate!r}")
    return float(learning_rate)


#: ``id(optimizer) -> (optimizer, rule)`` for the cached optimisers of :func:`gd` and
#: :func:`momentum`: the update rules a native chunk kernel can run (:func:`update_rule`).
_RULES: dict[int, tuple] = {}


def _remember(opt, rule):
    _RULES[id(opt)] = (opt, rule)
    return opt


def update_rule(optimizer) -> tuple | None:
    """``("gd", lr)`` or ``("momentum", lr, beta)`` for an optimiser made by :func:`gd` or
    :func:`momentum` (heavy ball, no Nesterov); ``None`` for any other optax transformation.

    >>> update_rule(momentum(0.5, 0.9)), update_rule(gd(1.0))
    (('momentum', 0.5, 0.9), ('gd', 1.0))
    """
    entry = _RULES.get(id(optimizer))
    return entry[1] if entry is not None and entry[0] is optimizer else None


@functools.cache
def _gd(learning_rate: float) -> optax.GradientTransformation:
    return _remember(optax.sgd(learning_rate), ("gd", learning_rate))


def gd(learning_rate: float) -> optax.GradientTransformation:
    """Plain full-batch gradient descent, ``x <- x - lr grad f`` (``optax.sgd``).

    >>> gd(0.5) is gd(0.5)
    True
    """
    return _gd(check_learning_rate(learning_rate))


@functools.cache
def _momentum(learning_rate: float, beta: float, nesterov: bool):
    opt = optax.sgd(learning_rate, momentum=beta, nesterov=nesterov)
    return opt if nesterov else _remember(opt, ("momentum", learning_rate, beta))


def momentum(learning_rate: float, beta: float = 0.9, nesterov: bool = False):
    """Heavy-ball (or Nesterov) momentum gradient descent (``optax.sgd(lr, momentum=beta)``),
    ``0 <= beta < 1``."""
    lr = check_learning_rate(learning_rate)
    ok = isinstance(beta, numbers.Real) and not isinstance(beta, bool) and 0 <= beta < 1
    if not ok:
        raise SpecError(f"beta (momentum) must be a number in [0, 1), got {beta!r}")
    return _momentum(lr, float(beta), bool(nesterov))


def optimizer_options(name: str) -> tuple:
    """The options (keyword arguments besides the learning rate) optimiser ``name`` accepts."""
    key = _name(name)
    if key in NAMED:
        return NAMED[key]
    params = list(_optax_signature(key).parameters.values())
    return tuple(p.name for p in params[1:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def make_optimizer(name: str, learning_rate: float, **options) -> optax.GradientTransformation:
    """An optimiser by name: ``gd``, ``momentum`` (option ``beta``), ``nesterov`` (``beta``) or any
    optax optimiser constructor whose first argument is the learning rate (``adam``, ``lbfgs``...)
    with its keyword options. Unknown names and options raise ``SpecError`` naming them.

    Example:
        >>> make_optimizer("momentum", 0.5) is make_optimizer("momentum", 0.5)
        True
        >>> make_optimizer("momentum", 0.5, betta=0.9)
        Traceback (most recent call last):
        ...
        ufm.core.validation.SpecError: optimizer 'momentum' has no option 'betta'; its options: beta
    """
    key = _name(name)
    lr = check_learning_rate(learning_rate)
    allowed = optimizer_options(key)
    for k in options:
        if k not in allowed:
            raise SpecError(
                f"optimizer {key!r} has no option {k!r}; its options: "
                f"{', '.join(allowed) or '(none)'}"
            )
    if key in ("gd", "sgd"):
        return _gd(lr)
    if key in ("momentum", "nesterov"):
        return momentum(lr, options.get("beta", 0.9), key == "nesterov")
    for k, v in options.items():
        try:
            hash(v)
        except TypeError:
            raise SpecError(
                f"optimizer {key!r} option {k!r} must be a number, bool or string, got {v!r}"
            ) from None
    try:
        return _optax_by_name(key, lr, tuple(sorted(options.items())))
    except (TypeError, ValueError) as err:
        raise SpecError(f"optimizer {key!r}: {err}") from None


def _name(name) -> str:
    if not isinstance(name, str) or not name.strip():
        raise SpecError(f"optimizer name must be a non-empty string, got {name!r}")
    return name.strip().lower()


def _optax_signature(name: str) -> inspect.Signature:
    ctor = getattr(optax, name, None)
    bad = SpecError(
        f"optimizer must be gd, momentum, nesterov or an optax optimiser taking a "
        f"learning rate (adam, adamw, rmsprop, lbfgs, ...); got {name!r}"
    )
    if ctor is None or name.startswith("_") or not callable(ctor) or isinstance(ctor, type):
        raise bad
    try:
        sig = inspect.signature(ctor)
    except (TypeError, ValueError):
        raise bad from None
    params = list(sig.parameters.values())
    if not params or params[0].name != "learning_rate":
        raise bad
    return sig


@functools.cache
def _optax_by_name(name, learning_rate, options):
    out = getattr(optax, name)(learning_rate, **dict(options))
    if not isinstance(out, optax.GradientTransformation):
        raise TypeError(f"optax.{name} did not return a GradientTransformation")
    return out
