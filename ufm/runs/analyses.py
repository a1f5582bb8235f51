"""Per-point analyses of optimised (and polished) batches: the registry and the builtins.

An analysis is a function ``fn(spec, result, **options) -> {column: values}`` of a problem spec and
an :class:`ufm.OptimizeResult` whose ``params``, ``loss`` and ``grad_norm`` are those of the end
points after the polish stage (leading point axis; each value has one entry per point, or is a
scalar for the whole batch). :func:`ufm.run_points` runs the analyses named in a list, in order;
``ufm landscape`` and ``ufm sweep run`` both go through it. Builtins:

* ``closed_form``: ``f_star`` and ``f_gap = f - f_star``, the reference value from the system's
  ``reference_value`` hook: for the UFM the closed-form global optimum :func:`ufm.optimal_value`
  (docs/theory.md section 2); for the deep UFM the deep neural-collapse loss
  :func:`ufm.deep.dnc_loss` (docs/theory.md section 4; MSE, no bias, an activation with
  ``sigma(x) = x`` for ``x >= 0``, every width ``>= K``). ``L_DNC`` is the global optimum only for
  ``L <= 2``; for ``L >= 3`` low-rank solutions beat it (Sukenik et al. 2024, arXiv 2405.14468), so
  ``f_gap < 0`` there means "below DNC", not an error. Called directly on a spec without a
  reference value it returns ``nan``; a sweep rejects such grid points up front (its ``check``),
  except where only the dimension is too small for a closed form (UFM, ``d`` below the
  minimiser's rank): those run with ``f_star = nan``.
* ``metrics``: :func:`ufm.nc_metrics` of every end point (the system's ``metrics`` hook), one
  column per metric; options ``rtol``, ``tau``.
* ``hessian``: :func:`ufm.classify_batch` (the systems with a ``classification`` hook: the UFM and
  the deep UFM): ``class``, ``class_code``, ``lambda_min``,
  ``lambda_max``, ``n_neg``, ``n_zero``, ``n_pos``, ``sigma_1``, ``certificate_gap``,
  ``curvature_bound``, ``rank``, ``zero_modes_predicted``, the tolerances (``grad_tol``,
  ``zero_tol``, ``f_tol``, ``cert_tol``), ... and ``counterexample`` (``spurious_min`` or
  ``degenerate``: no negative curvature, not a certified global minimum; never ``undecided`` or
  ``non_finite``, nor a seed whose first-order run diverged or went NaN: such a seed keeps its
  ``class``, ``non_finite`` for a non-finite end point, and every other column is masked, ``nan``
  or ``-1``). Candidate
  counterexamples raise one :class:`ufm.CounterexampleWarning` per call (per sweep chunk) naming
  the configuration. Options: ``method`` (``auto``, ``dense``, ``block_arrow``, ``lanczos``),
  ``batch_size``, ``num_matvecs``, ``warn`` and the tolerances of :func:`ufm.classify`. Polish
  first (``polish = "auto"``, the float64 default): the classification needs ``||grad f||``
  below ``grad_tol = 1e-8``.

On CPU, ``metrics`` and ``hessian`` go through the points one at a time (``lax.map``; for
``hessian`` the default ``batch_size=1``) instead of as one batch. jaxlib's CPU LAPACK kernels
(SVD, eigh) split a *batch* of matrices over XLA's intra-op thread pool and block until it is done;
when independent batched decompositions run at once on every pool thread (the thunk executor runs
independent operations concurrently, and loop bodies run on pool threads), no thread is left to do
the work and the process hangs for good. Seen with jax 0.10.2 on 2 cores: ``ufm.classify_batch``
with its default batch of 800 points deadlocked in ``lapack_dgesdd`` on the first chunk of a
``d = K`` sweep, one CPU device. Unbatched decompositions run inline; one point at a time is also
faster on CPU here (2048 points of ``K = d = 4, n = 5``: 1.2 s classified). A batch sharded over
several CPU devices (a sweep with ``--devices``, one per core by default) goes through the points
of every device at once (:func:`ufm.core.map_points`): analyses registered with
``device_parallel=True`` (``metrics``, ``hessian``) get the sharded batch, the others a copy
gathered on one device.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from ..core.devices import map_points, on_cpu, seed_mesh_of
from ..core.jitting import adaptive_jit
from ..core.model import nc_metrics, spec_label
from ..core.registry import system_of
from ..landscape.classes import COUNTEREXAMPLE_CLASSES, RECORD_DOCS, warn_counterexamples
from ..landscape.classify import METHODS, classify_batch
from ..metrics.collapse import NC_METRIC_DOCS
from ..optim.status import Status
from .schema import register_column_docs

__all__ = [
    "register_analysis",
    "analysis_registry",
    "analysis_options",
    "analysis_handles_failed",
    "at_optimum_rtol",
]

_ANALYSES: dict[str, Callable[..., Mapping[str, Any]]] = {}
_CHECKS: dict[str, Callable[[Any], Any] | None] = {}
_OPTIONS: dict[str, tuple[str, ...] | None] = {}
_VALIDATORS: dict[str, Callable[[dict], Any] | None] = {}
_HANDLES_FAILED: dict[str, bool] = {}
_DEVICE_PARALLEL: dict[str, bool] = {}


def register_analysis(
    name: str,
    fn: Callable[..., Mapping[str, Any]] | None = None,
    *,
    check: Callable[[Any], Any] | None = None,
    options: tuple[str, ...] | None = None,
    columns: Mapping[str, str] | None = None,
    validate: Callable[[dict], Any] | None = None,
    handles_failed: bool = False,
    device_parallel: bool = False,
):
    """Register a per-point analysis ``fn(spec, result, **options) -> {column: (S,) values}``.

    ``result`` is the batch's :class:`ufm.OptimizeResult` after the polish stage (leading seed
    axis; ``params``, ``loss`` and ``grad_norm`` of the polished points); each returned value
    must have one entry per point (numbers, bools or strings). ``check(spec)``, if given, runs on
    every grid point of a sweep before any compute and raises (``SpecError``/``ValueError``/
    ``TypeError``) for configurations the analysis cannot handle, which are then reported as
    invalid points. ``options``, if given, lists the option names a sweep spec may set in
    ``[analyses.NAME]`` (others are rejected when the spec is read); ``validate(options)``, if
    given, checks their values then (raising ``ValueError`` naming the option). ``columns``
    documents the returned columns (``{column: meaning (unit)}``: docs/results.md and the Parquet
    metadata).
    Failed points (first-order status ``nan``/``diverged``, or a non-finite end point) never
    reach ``fn``: :func:`ufm.run_points` passes a copy of a usable point in their place and masks
    their values (``nan``, ``-1``, ``False``, ``None``); ``handles_failed=True`` passes them
    as they are (``fn`` must then guard every LAPACK call itself: jaxlib's CPU ``svd`` can spin
    forever on ``inf``). ``device_parallel=True`` declares that ``fn`` takes a batch spread over
    several CPU devices and keeps its LAPACK calls to one point at a time
    (:func:`ufm.core.map_points`); other analyses get the batch gathered on one device (module
    docstring). Usable as a decorator: ``@register_analysis("my_analysis")``.
    """
    if fn is None:
        return lambda f: register_analysis(
            name,
            f,
            check=check,
            options=options,
            columns=columns,
            validate=validate,
            handles_failed=handles_failed,
            device_parallel=device_parallel,
        )
    if not callable(fn):
        raise TypeError(f"analysis {name!r} must be callable")
    _ANALYSES[name] = fn
    _CHECKS[name] = check
    _OPTIONS[name] = None if options is None else tuple(options)
    _VALIDATORS[name] = validate
    _HANDLES_FAILED[name] = bool(handles_failed)
    _DEVICE_PARALLEL[name] = bool(device_parallel)
    register_column_docs(dict(columns or {}))
    return fn


def analysis_registry() -> dict:
    """``{name: fn}`` of the registered analyses (a copy)."""
    return dict(_ANALYSES)


def analysis_options(name: str) -> tuple[str, ...] | None:
    """The option names analysis ``name`` accepts (``None``: not declared, anything goes)."""
    return _OPTIONS.get(name)


def analysis_validator(name: str):
    """The option-value check of analysis ``name`` (or ``None``)."""
    return _VALIDATORS.get(name)


def _number_option(opts: dict, key: str, *, minimum=0.0, none_ok=True) -> None:
    v = opts.get(key)
    if v is None and none_ok:
        return
    ok = (
        isinstance(v, (int, float))
        and not isinstance(v, bool)
        and math.isfinite(v)
        and v >= minimum
    )
    if not ok:
        raise ValueError(f"option {key!r} must be a finite number >= {minimum:g}, got {v!r}")


def _int_option(opts: dict, key: str, minimum: int = 1) -> None:
    v = opts.get(key)
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ValueError(f"option {key!r} must be an integer >= {minimum}, got {v!r}")


def analysis_handles_failed(name: str) -> bool:
    """Whether analysis ``name`` receives failed points as they are (:func:`register_analysis`)."""
    return _HANDLES_FAILED.get(name, False)


def analysis_device_parallel(name: str) -> bool:
    """Whether analysis ``name`` takes a batch spread over several CPU devices
    (:func:`register_analysis`)."""
    return _DEVICE_PARALLEL.get(name, False)


def analysis_check(name: str):
    """The up-front check of analysis ``name`` (or ``None``)."""
    return _CHECKS.get(name)


# -- closed_form ---------------------------------------------------------------------------------


def reference_value(spec) -> float:
    """The reference objective value of ``closed_form`` (the system's ``reference_value`` hook);
    raises ``SpecError``/``TypeError`` naming the reason if there is none."""
    fn = system_of(spec).require("reference_value", "a reference value (closed_form analysis)")
    return float(fn(spec))


def _check_closed_form(spec):
    """Reject grid points whose system has no reference value for this kind of spec. A point
    whose reference value fails only because its dimension ``d`` is too small (the UFM with
    ``d`` below the rank of the minimiser: a valid problem without closed form, ``ufm landscape
    --d-offset -2``) is kept: it gets ``f_star = nan`` and its end points are judged by the
    Hessian alone."""
    try:
        reference_value(spec)
    except (ValueError, TypeError):
        d, K = getattr(spec, "d", None), getattr(spec, "K", None)
        if not (isinstance(d, int) and isinstance(K, int) and hasattr(spec, "replace")):
            raise
        reference_value(spec.replace(d=max(d, K)))  # raises unless d alone was the reason


#: ``|f - f*| <= AT_OPTIMUM_RTOL * max(1, |f*|)`` counts as "at the optimum" (after polishing),
#: for float64 end points (the classifier's ``f_rtol``); float32 end points (a float32 run
#: without 64-bit JAX, so not polished in float64) use ``AT_OPTIMUM_RTOL_FLOAT32``.
AT_OPTIMUM_RTOL = 1e-8
AT_OPTIMUM_RTOL_FLOAT32 = 1e-4


def at_optimum_rtol(dtype) -> float:
    """The ``at_optimum`` tolerance for end points of ``dtype``."""
    return AT_OPTIMUM_RTOL if np.dtype(dtype) == np.float64 else AT_OPTIMUM_RTOL_FLOAT32


@register_analysis(
    "closed_form",
    check=_check_closed_form,
    options=(),
    columns={
        "f_star": "reference value: the closed-form global optimum (UFM), L_DNC (deep UFM); nan "
        "where the system has none",
        "f_gap": "f - f_star",
        "at_optimum": "|f - f_star| <= at_optimum_rtol max(1, |f_star|) at the polished end "
        "point (bool; false where f_star is nan or the run failed)",
        "at_optimum_rtol": "tolerance of at_optimum: 1e-8 for float64 end points (every point "
        "when 64-bit JAX is on), 1e-4 for float32 ones",
    },
)
def closed_form_gap(spec, result):
    """``f_star`` (:func:`reference_value`; ``nan`` where there is none), ``f_gap = f - f_star``
    and ``at_optimum`` (``|f_gap| <= rtol max(1, |f_star|)``, ``rtol`` of :func:`at_optimum_rtol`
    for the end points' dtype, recorded in ``at_optimum_rtol``)."""
    try:
        f_star = reference_value(spec)
    except (ValueError, TypeError):
        f_star = float("nan")
    f = np.asarray(result.loss, dtype=np.float64)
    gap = f - f_star
    rtol = at_optimum_rtol(jax.tree_util.tree_leaves(result.params)[0].dtype)
    with np.errstate(invalid="ignore"):
        at = np.abs(gap) <= rtol * max(1.0, abs(f_star))
    return {
        "f_star": np.full(f.shape, f_star),
        "f_gap": gap,
        "at_optimum": at,
        "at_optimum_rtol": np.full(f.shape, rtol),
    }


# -- metrics -------------------------------------------------------------------------------------


def _check_metrics(spec):
    system_of(spec).require("metrics", "collapse metrics (the metrics analysis)")


@adaptive_jit(static_argnames=("options", "one_by_one", "mesh"), setup=True)
def _nc_batch(spec, params, options, one_by_one, mesh=None):
    fn = lambda p: nc_metrics(spec, p, **dict(options))  # noqa: E731
    return map_points(fn, params, mesh) if one_by_one else jax.vmap(fn)(params)


def _validate_metrics(opts: dict) -> None:
    _number_option(opts, "rtol")
    _number_option(opts, "tau", none_ok=False) if "tau" in opts else None


@register_analysis(
    "metrics",
    check=_check_metrics,
    options=("rtol", "tau"),
    validate=_validate_metrics,
    columns=NC_METRIC_DOCS,
    device_parallel=True,
)
def nc_metric_columns(spec, result, **options):
    """Neural-collapse metrics of the end points (``ufm.nc_metrics(spec, p, **options)``, e.g.
    ``tau``, ``rtol``), one column each; compiled once per spec shape. On CPU one point at a
    time (module docstring), else ``vmap``."""
    one_by_one = on_cpu(result.params)
    mesh = seed_mesh_of(result.params) if one_by_one else None
    out = _nc_batch(spec, result.params, tuple(sorted(options.items())), one_by_one, mesh)
    out = out._asdict() if hasattr(out, "_asdict") else dict(out)
    return {k: np.asarray(v) for k, v in out.items()}


# -- hessian -------------------------------------------------------------------------------------

#: ``classify_batch`` columns the ``hessian`` analysis leaves to others: ``f`` and ``grad_norm``
#: are the pipeline's (the polished point), ``f_star`` and ``f_gap`` the ``closed_form`` analysis's.
_HESSIAN_DROPPED = ("loss", "grad_norm", "f_star", "f_gap")

HESSIAN_OPTIONS = (
    "method",
    "batch_size",
    "num_matvecs",
    "warn",
    "grad_tol",
    "undecided_factor",
    "zero_rtol",
    "zero_gtol",
    "f_rtol",
    "cert_rtol",
    "cert_gtol",
    "rank_rtol",
    "rank_atol",
)


def _check_hessian(spec):
    """Reject specs :func:`ufm.classify_batch` has no classification rules for (the system's
    ``classification`` hook) or cannot classify (its ``classification_check`` hook)."""
    system = system_of(spec)
    system.require("classification", "the Hessian classification (ufm.classify_batch)")
    if system.classification_check is not None:
        system.classification_check(spec)


def _validate_hessian(opts: dict) -> None:
    method = opts.get("method", "auto")
    if method not in METHODS:
        raise ValueError(f"option 'method' must be one of {', '.join(METHODS)}, got {method!r}")
    _int_option(opts, "batch_size")
    _int_option(opts, "num_matvecs")
    if not isinstance(opts.get("warn", True), bool):
        raise ValueError(f"option 'warn' must be true or false, got {opts['warn']!r}")
    for k in HESSIAN_OPTIONS[4:]:
        _number_option(opts, k)


def _masked(values: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """``values`` with the ``bad`` rows set to ``nan`` (floats) or ``-1`` (integers)."""
    v = np.array(values, copy=True)
    if v.dtype.kind == "f":
        v[bad] = np.nan
    elif v.dtype.kind in "iu":
        v[bad] = -1
    return v


@register_analysis(
    "hessian",
    check=_check_hessian,
    options=HESSIAN_OPTIONS,
    validate=_validate_hessian,
    columns={k: v for k, v in RECORD_DOCS.items() if k not in _HESSIAN_DROPPED},
    handles_failed=True,  # classify_batch guards every point: non-finite ones are non_finite
    device_parallel=True,  # one point at a time on each device (classify_batch)
)
def hessian_classification(
    spec, result, *, method: str = "auto", batch_size=None, warn: bool = True, **tolerances
):
    """:func:`ufm.classify_batch` of the end points (module docstring), with a
    ``counterexample`` column and one :class:`ufm.CounterexampleWarning` per call. ``batch_size``
    as in classify_batch (1 on CPU: no batched LAPACK calls, module docstring)."""
    _check_hessian(spec)
    cols = classify_batch(
        spec, result.params, method=method, batch_size=batch_size, warn=False, **tolerances
    )
    cols["counterexample"] = np.isin(cols["class_code"], [int(c) for c in COUNTEREXAMPLE_CLASSES])
    # a seed whose first-order run failed (diverged / NaN) is never a counterexample, whatever
    # its (finite, unpolished) end point looks like: it is left out of every statistic
    status = np.asarray(result.status)
    failed = (status == Status.NAN) | (status == Status.DIVERGED)
    cols["counterexample"] &= ~failed
    if failed.any():  # their Hessian facts would look valid: masked, only the class is kept
        for k, v in cols.items():
            if k not in ("class", "class_code", "counterexample"):
                cols[k] = _masked(v, failed)
    if warn:
        shown = dict(cols, class_code=np.where(cols["counterexample"], cols["class_code"], -1))
        warn_counterexamples(shown, context=f"in {spec_label(spec)} ")
    for k in _HESSIAN_DROPPED:
        cols.pop(k, None)
    return cols
