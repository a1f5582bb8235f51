"""The system registry: one registration per model system, the hooks the generic layers call.

A *system* is a family of problems with a frozen spec dataclass (sizes and kinds static, lambdas as
pytree leaves), a parameter pytree and a pure objective: the single-layer UFM, the deep UFM, the
feature-collapse network, ... Everything generic in the toolkit (the many-seed optimiser, polishing,
Hessians, critical-point classification, analyses, sweeps, the result store, reports) reaches a
system only through the hooks of its :class:`System` record, looked up from the spec's type with
:func:`system_of`. A new system is therefore one folder under ``ufm/systems/`` that builds a
:class:`System` and calls :func:`register_system`, plus one import line in
``ufm/systems/__init__.py``; no generic module changes (docs/adding_a_system.md).

Required hooks: ``loss(spec, params) -> scalar`` and ``init(spec, key, scale=None) -> params`` (one
seed; vmapped by :func:`ufm.init_batch`), and ``examples()`` (small valid specs, used by the
conformance test every registered system must pass). Optional hooks (``None`` = not supported, and
the generic layer says so in one line):

============================ ===================================================================
hook                         used by
============================ ===================================================================
``validate_params``          :func:`ufm.classify` and friends: shape checks of a point
``metrics``                  the ``metrics`` analysis, :func:`ufm.nc_metrics`
``reference_value``          the ``closed_form`` analysis (``f - f*``); raises if there is none
``classification``           :func:`ufm.classify`: reference value, certificate, rank, zero modes
``classification_check``     the ``hessian`` analysis: rejects specs it cannot classify, up front
``num_global_params``        :func:`ufm.classify_batch`'s memory heuristic
``split_features``           block-arrow Hessians (per-sample features), structured Newton steps
``block_arrow``              a closed-form block-arrow structure (fast path), else autodiff
``class_reduction``          the class-mean reduction of the block-arrow Hessian
                             (:mod:`ufm.hessian.reduction`: Weyl-certified counts near collapse)
``planted``                  planted starts (:class:`PlantedStarts`: optima of a smaller problem)
``invariants``               :func:`ufm.landscape.deduplicate` (orbit invariants of a point)
``label``                    short labels of a configuration in tables and messages
``prepare_spec``             sweeps: ``fn(spec) -> spec`` with host-side reference data attached,
                             once per configuration (the UFM's convex reference value for
                             imbalanced classes); the configuration hash is that of the spec
                             before it
``add_cli``                  the system's ``ufm <command>`` subcommand
============================ ===================================================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

__all__ = [
    "System",
    "PlantedStarts",
    "register_system",
    "system_of",
    "get_system",
    "registered_systems",
    "OPTIONAL_HOOKS",
]

Hook = Callable[..., Any] | None

#: Names of the optional hooks of :class:`System` (``None`` when a system does not provide one).
OPTIONAL_HOOKS = (
    "validate_params",
    "metrics",
    "reference_value",
    "classification",
    "classification_check",
    "num_global_params",
    "split_features",
    "block_arrow",
    "class_reduction",
    "planted",
    "invariants",
    "label",
    "add_cli",
    "prepare_spec",
)


class PlantedStarts(NamedTuple):
    """Planted starts of a system (the ``planted`` hook; used by :func:`ufm.make_starts`).

    ``dims(spec) -> tuple`` of the reduced dimensions ``d'`` whose optima, embedded, are known
    non-global critical points; ``embed(spec, params, dims)`` restricts a batch of random starts to
    the invariant subspace of dimension ``dims[i]`` (gradient descent stays there and converges to
    the embedded optimum); ``full_dim(spec)`` is the ``dim`` column of an ordinary random start.
    """

    dims: Callable[[Any], tuple]
    embed: Callable[..., Any]
    full_dim: Callable[[Any], int]


@dataclasses.dataclass(frozen=True)
class System:
    """A model system and its hooks (module docstring).

    Attributes:
        name: registry key, also the ``model`` of a sweep spec and the ``model`` column of the
            result rows (``"ufm"``, ``"deep_ufm"``, ...).
        spec_type: the frozen spec dataclass (registered as a pytree).
        loss, init, examples: required hooks.
        summary: one line shown by ``ufm systems`` and in the docs.
        metrics_names: ``fn(spec) -> tuple`` of the metric columns (for empty-column schemas).
        presets: named example specs or experiment settings (``ufm <command> --preset NAME``).
        sweepable: whether ``model = name`` is allowed in a sweep spec (the spec's dataclass fields
            are the grid keys).
        everything else: optional hooks, see :data:`OPTIONAL_HOOKS`.
    """

    name: str
    spec_type: type
    loss: Callable[..., Any]
    init: Callable[..., Any]
    examples: Callable[[], Sequence[Any]]
    summary: str = ""
    validate_params: Hook = None
    metrics: Hook = None
    metric_options: tuple = ()
    reference_value: Hook = None
    classification: Hook = None
    classification_check: Hook = None
    num_global_params: Hook = None
    split_features: Hook = None
    block_arrow: Hook = None
    class_reduction: Hook = None
    planted: PlantedStarts | None = None
    invariants: Hook = None
    label: Hook = None
    add_cli: Hook = None
    prepare_spec: Hook = None
    presets: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    sweepable: bool = True

    def has(self, hook: str) -> bool:
        """Whether the optional ``hook`` is provided."""
        return getattr(self, hook) is not None

    def require(self, hook: str, what: str) -> Callable[..., Any]:
        """The ``hook``, or a ``TypeError`` saying that ``what`` is not available for the system."""
        fn = getattr(self, hook)
        if fn is None:
            raise TypeError(
                f"{what} is not available for the {self.name!r} system "
                f"({self.spec_type.__name__} registers no {hook!r} hook)"
            )
        return fn


_BY_NAME: dict[str, System] = {}
_BY_TYPE: dict[type, System] = {}


def register_system(system: System) -> System:
    """Register ``system`` under its name and spec type (re-registering a name replaces it)."""
    if not isinstance(system, System):
        raise TypeError(f"register_system expects a System, got {type(system).__name__}")
    if not isinstance(system.spec_type, type):
        raise TypeError(f"System {system.name!r}: spec_type must be a class")
    for hook in ("loss", "init", "examples"):
        if not callable(getattr(system, hook)):
            raise TypeError(f"System {system.name!r}: the {hook!r} hook must be callable")
    old = _BY_NAME.get(system.name)
    if old is not None:
        _BY_TYPE.pop(old.spec_type, None)
    _BY_NAME[system.name] = system
    _BY_TYPE[system.spec_type] = system
    return system


def system_of(spec) -> System:
    """The :class:`System` of a spec (looked up along the spec type's MRO)."""
    for cls in type(spec).__mro__:
        system = _BY_TYPE.get(cls)
        if system is not None:
            return system
    raise TypeError(
        f"no system registered for {type(spec).__name__} (registered: "
        f"{', '.join(s.spec_type.__name__ for s in _BY_NAME.values()) or 'none'})"
    )


def get_system(name: str) -> System:
    """The :class:`System` registered as ``name`` (``ValueError`` listing the names if unknown)."""
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown system {name!r}; registered: {', '.join(sorted(_BY_NAME)) or 'none'}"
        ) from None


def registered_systems() -> dict[str, System]:
    """``{name: System}`` of every registered system (a copy, in registration order)."""
    return dict(_BY_NAME)
