"""The per-configuration pipeline shared by ``ufm landscape`` and ``ufm sweep run``.

One configuration (a spec) and a batch of starting points go through

1. :func:`ufm.optimize` (``jit(vmap(lax.scan))`` chunks; a seed-sharded batch runs SPMD), with an
   optional trace (``record``);
2. a polish stage (:func:`ufm.polish`), always in float64 when 64-bit JAX is on: a float32 batch
   (``dtype="float32"``) is cast to float64 first, polished with the float64 method and tolerance
   (``polish = "auto"``: Newton with the exact Hessian up to 2500 parameters, L-BFGS above, to
   ``polish_tol``, default ``1e-10``) and analysed in float64 (the spec's ``dtype`` becomes
   ``"float64"`` for the analyses), as the README promises. Without 64-bit JAX a float32 batch
   is polished only if ``polish`` names a method, to the float32 tolerance (``1e-5``), and the
   analyses apply float32 tolerances. ``"none"`` skips the stage. Seeds that failed (``nan``,
   ``diverged``, or a non-finite end point) keep their flagged end point;
3. the analyses named in a list (:mod:`ufm.runs.analyses`: ``closed_form``, ``metrics``,
   ``hessian``, or any registered one), on the polished points. Failed seeds never reach an
   analysis (nor LAPACK): it sees a copy of a usable point in their place and their columns are
   masked afterwards (``nan`` for floats, ``-1`` for integers, ``False``, ``None``), unless the
   analysis was registered with ``handles_failed=True`` (``hessian``: non-finite end points are
   classified ``non_finite`` without any LAPACK call);

and comes back as per-point NumPy columns (:func:`run_points`). Starting points come from
:mod:`ufm.runs.starts` (:func:`ufm.make_starts`).

On CPU, jaxlib's LAPACK kernels (SVD, eigh) split a *batch* over a shared intra-op thread pool
and block until it is done, and several CPU devices running them at once can occupy every pool
thread and deadlock (seen with jax 0.10.2: ``ufm.nc_metrics`` on 2048 seeds over 2 devices, 2
cores). So on CPU the polish and the ``metrics`` and ``hessian`` analyses go through the points one
at a time (single-matrix LAPACK calls, which run inline), and a batch sharded over several CPU
devices keeps its layout for them: each device maps over its own points, all at once
(:func:`ufm.core.map_points`; analyses registered with ``device_parallel=True``). Every other
analysis gets the batch gathered on one device. Results are identical either way
(tests/runs/test_device_parallel.py).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..core.devices import on_one_cpu_device, seed_mesh_of
from ..core.model import evaluate_points
from ..core.trees import rows_where as _rows_where
from ..optim.optimize import OptimizeResult, optimize
from ..optim.polish import polish
from ..optim.settings import OptimizerSettings
from ..optim.status import STATUS_NAMES, Status
from .analyses import analysis_device_parallel, analysis_handles_failed, analysis_registry

__all__ = [
    "PointsResult",
    "BASE_COLUMNS",
    "run_points",
    "analyse",
    "points_result",
    "usable_rows",
    "analysis_spec",
]

#: Columns every :func:`run_points` batch has (analyses may not return them).
BASE_COLUMNS = (
    "status",
    "steps",
    "f",
    "grad_norm",
    "first_order_grad_norm",
    "polished",
    "polish_iterations",
    "error",
)

_STATUS_LOOKUP = np.array(
    [STATUS_NAMES.get(c, f"status_{c}") for c in range(max(Status) + 1)], dtype=object
)


# -- the pipeline ----------------------------------------------------------------------------


class PointsResult(NamedTuple):
    """Output of :func:`run_points`.

    Attributes:
        columns: per-point NumPy columns: ``status`` (``converged``, ``max_steps``, ``diverged``,
            ``nan``: the first-order run), ``steps``, ``f`` and ``grad_norm`` (of the final,
            polished point), ``first_order_grad_norm``, ``polished`` (``||grad f|| <=
            polish_tol`` after polishing), ``polish_iterations``, ``error`` (``None``, or the
            messages of failed analyses) and the analyses' columns.
        result: the first-order :class:`ufm.OptimizeResult` (trace, status, unpolished params).
        params: the final (polished) parameters.
    """

    columns: dict
    result: OptimizeResult
    params: Any


def usable_rows(status, loss, grad_norm, params) -> np.ndarray:
    """Per point: the first-order run did not fail (status neither ``nan`` nor ``diverged``) and
    the end point, its loss and gradient norm are finite (entries not overflowing when squared):
    the points the polish stage and the analyses may touch."""
    status = np.asarray(status)
    ok = (status != Status.NAN) & (status != Status.DIVERGED)
    ok &= np.isfinite(np.asarray(loss, np.float64)) & np.isfinite(np.asarray(grad_norm, np.float64))
    for x in jax.tree_util.tree_leaves(params):
        x = np.asarray(x)
        flat = x.reshape(x.shape[0], -1).astype(np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            big = np.sqrt(np.finfo(x.dtype).max)
            ok &= np.isfinite(flat).all(axis=1) & (np.sum(flat * flat, axis=1) <= big)
    return ok


def _float64_possible(spec, dtype) -> bool:
    """Whether a float32 batch can be polished and analysed in float64."""
    return (
        np.dtype(dtype) == np.float32
        and bool(jax.config.jax_enable_x64)
        and getattr(spec, "dtype", None) == "float32"
        and hasattr(spec, "replace")
    )


def analysis_spec(spec, params):
    """``(spec, params)`` of the polish stage and the analyses: float64 copies of a float32 batch
    when 64-bit JAX is on (module docstring), else unchanged."""
    dtype = jax.tree_util.tree_leaves(params)[0].dtype
    if not _float64_possible(spec, dtype):
        return spec, params
    up = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), params)
    return spec.replace(dtype="float64"), up


def _polish_stage(spec, params, loss, gnorm, status, settings: OptimizerSettings):
    """``(params, loss, grad_norm, polished, iterations)`` after the polish stage (``params`` in
    the polish dtype: float64 when possible)."""
    num = status.size
    dtype = jax.tree_util.tree_leaves(params)[0].dtype
    finite = usable_rows(status, loss, gnorm, params)
    if settings.polish != "none" and _float64_possible(spec, dtype):
        spec, params = analysis_spec(spec, params)
        dtype = np.float64
    method = settings.polish_method(dtype)
    if method == "none" or not finite.any():
        return params, loss, gnorm, np.zeros(num, bool), np.zeros(num, np.int64)
    src = params
    if not finite.all():  # failed seeds: polish a copy of a finite one instead (then dropped)
        first = int(np.flatnonzero(finite)[0])
        src = _rows_where(
            finite, params, jax.tree_util.tree_map(lambda x: x[first : first + 1], params)
        )
    pol = polish(
        spec,
        src,
        method=method,
        tol=settings.polish_tolerance(dtype),
        max_iter=settings.polish_max_iter,
    )
    params = pol.params if finite.all() else _rows_where(finite, pol.params, params)
    loss = np.where(finite, np.asarray(pol.loss, np.float64), loss)
    gnorm = np.where(finite, np.asarray(pol.grad_norm, np.float64), gnorm)
    polished = finite & np.asarray(pol.converged)
    iters = np.where(finite, np.asarray(pol.iterations), 0).astype(np.int64)
    return params, loss, gnorm, polished, iters


def run_points(
    spec,
    params0,
    *,
    optimizer: OptimizerSettings = OptimizerSettings(),
    analyses: Sequence = (),
    record: Callable | None = None,
    record_every: int | None = None,
    errors: str = "raise",
    on_phase: Callable[[str], None] | None = None,
) -> PointsResult:
    """Optimise, polish and analyse a batch of starting points of one configuration.

    Args:
        spec: a model spec (:class:`ufm.UFMSpec`, :class:`ufm.DeepUFMSpec`, ...).
        params0: starting parameters with a leading point axis (:func:`make_starts`,
            :func:`ufm.init_batch`), possibly sharded along it (``NamedSharding``).
        optimizer: :class:`OptimizerSettings` (optimiser, step budget, tolerance, polish stage).
        analyses: ``(name, options)`` pairs of registered analyses (:mod:`ufm.runs.analyses`), run
        in
            order on the polished points; ``options`` a mapping or ``(key, value)`` pairs.
        record, record_every: the trace of :func:`ufm.optimize` (e.g. NC metrics every 50 steps).
        errors: ``"raise"`` (default) or ``"record"``: an analysis that raises then fills the
            ``error`` column (and warns, ``RuntimeWarning``) instead of stopping a long sweep.
        on_phase: called with ``"optimise"``, ``"polish"`` and each analysis name as the batch
            enters that stage (progress displays).

    Returns:
        :class:`PointsResult`: per-point columns, the first-order result (trace), final params.

    Example:
        >>> import jax, ufm
        >>> spec = ufm.UFMSpec(K=3, n=2, d=3, loss="mse")
        >>> p0, meta = ufm.make_starts(spec, ["random", "random", "origin"], [0, 1, 0])
        >>> out = ufm.run_points(spec, p0, optimizer=ufm.OptimizerSettings(max_steps=3000),
        ...                      analyses=[("closed_form", ()), ("hessian", ())])
        >>> out.columns["class"].tolist(), bool(out.columns["polished"].all())
        (['global_min', 'global_min', 'strict_saddle'], True)
    """
    if errors not in ("raise", "record"):
        raise ValueError(f"errors must be 'raise' or 'record', got {errors!r}")
    phase = on_phase or (lambda name: None)
    phase("optimise")
    res = optimize(
        spec,
        params0,
        optimizer=optimizer.transform(),
        max_steps=optimizer.max_steps,
        tol=optimizer.tol,
        chunk=optimizer.chunk,
        record_every=record_every,
        record=record,
        divergence_threshold=optimizer.divergence_threshold,
    )
    status = np.asarray(res.status)
    first_gnorm = np.asarray(res.grad_norm, np.float64)
    phase("polish")
    params, loss, gnorm, polished, iters = _polish_stage(
        spec,
        res.params if seed_mesh_of(res.params) is not None else on_one_cpu_device(res.params),
        np.asarray(res.loss, np.float64),
        first_gnorm,
        status,
        optimizer,
    )
    cols = {
        "status": _STATUS_LOOKUP[status.astype(np.int64)],
        "steps": np.asarray(res.steps).astype(np.int64),
        "f": loss,
        "grad_norm": gnorm,
        "first_order_grad_norm": first_gnorm,
        "polished": polished,
        "polish_iterations": iters,
    }
    aspec, params = analysis_spec(spec, params)  # float64 analyses of a float32 batch
    if _dtype(params) == np.float64 and getattr(spec, "dtype", None) == "float32":
        aspec = spec.replace(dtype="float64")  # polished in float64: analysed in float64
    final = res._replace(params=params, loss=loss, grad_norm=gnorm)
    more, messages = analyse(aspec, final, analyses, errors=errors, on_phase=phase)
    cols["error"] = np.full(status.size, "; ".join(messages) if messages else None, dtype=object)
    cols.update(more)
    return PointsResult(cols, res, params)


def analyse(
    spec,
    result,
    analyses: Sequence,
    *,
    errors: str = "raise",
    on_phase: Callable[[str], None] | None = None,
) -> tuple[dict, list]:
    """Run the ``(name, options)`` analyses on ``result`` (an :class:`ufm.OptimizeResult` of the
    final points); returns ``(columns, error messages)`` (messages only with
    ``errors="record"``). Failed rows (:func:`usable_rows`) are replaced by a copy of a usable
    point before an analysis sees them and masked in its columns afterwards (module docstring),
    except for analyses registered with ``handles_failed=True``."""
    registry = analysis_registry()
    size = int(np.asarray(result.loss).shape[0])
    usable = usable_rows(result.status, result.loss, result.grad_norm, result.params)
    guarded = result
    if not usable.all():
        if usable.any():
            first = int(np.flatnonzero(usable)[0])
            stand_in = jax.tree_util.tree_map(lambda x: x[first : first + 1], result.params)
        else:
            stand_in = jax.tree_util.tree_map(lambda x: jnp.zeros_like(x[:1]), result.params)
        guarded = result._replace(params=_rows_where(usable, result.params, stand_in))
    gathered = {}  # the batch on one device, for analyses that are not device_parallel

    def batch_for(name, res):
        if analysis_device_parallel(name) or seed_mesh_of(res.params) is None:
            return res
        if id(res) not in gathered:
            gathered[id(res)] = res._replace(params=on_one_cpu_device(res.params))
        return gathered[id(res)]

    cols, messages = {}, []
    for name, options in analyses:
        if on_phase is not None:
            on_phase(name)
        if name not in registry:
            raise ValueError(
                f"unknown analysis {name!r}; registered: {', '.join(sorted(registry))}"
            )
        raw = analysis_handles_failed(name)
        try:
            out = dict(
                registry[name](spec, batch_for(name, result if raw else guarded), **dict(options))
            )
            out = {k: _column(name, k, v, size) for k, v in out.items()}
        except Exception as err:  # a failing analysis must not end an overnight sweep
            if errors == "raise":
                raise
            msg = f"analysis {name!r} failed: {type(err).__name__}: {err}"
            warnings.warn(msg + " (recorded in the `error` column)", RuntimeWarning, stacklevel=3)
            messages.append(msg)
            continue
        for k, v in out.items():
            if k in cols or k in BASE_COLUMNS:
                raise ValueError(f"analysis {name!r} returns column {k!r}, which is taken")
            cols[k] = v if raw else mask_rows(v, ~usable)
    return cols, messages


def mask_rows(values: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """``values`` with the ``bad`` rows blanked: ``nan`` (floats), ``-1`` (integers), ``False``
    (booleans), ``None`` (anything else)."""
    bad = np.asarray(bad, bool)
    if not bad.any():
        return values
    v = np.array(values, copy=True)
    if v.dtype.kind == "f" or v.dtype.kind == "c":
        v[bad] = np.nan
    elif v.dtype.kind in "iu":
        v[bad] = -1
    elif v.dtype.kind == "b":
        v[bad] = False
    else:
        v = v.astype(object)
        v[bad] = None
    return v


def _dtype(params):
    return jax.tree_util.tree_leaves(params)[0].dtype


def _column(analysis: str, key: str, value, size: int) -> np.ndarray:
    v = np.asarray(value)
    if v.ndim == 0:  # one value for the whole batch
        v = np.full(size, v.item())
    if v.shape != (size,):
        raise ValueError(
            f"analysis {analysis!r} column {key!r} has shape {v.shape}; "
            f"expected one value per point, ({size},)"
        )
    return v


def points_result(spec, params, loss=None, grad_norm=None, status=None) -> OptimizeResult:
    """An :class:`ufm.OptimizeResult` for given points (e.g. from a critical-point finder), to
    run analyses on them with :func:`analyse`; ``loss``/``grad_norm`` are evaluated if omitted."""
    if loss is None or grad_norm is None:
        loss, grad_norm = evaluate_points(spec, params)
    num = int(np.asarray(loss).shape[0])
    status = np.full(num, int(Status.CONVERGED), np.int8) if status is None else status
    return OptimizeResult(
        params,
        np.asarray(loss, np.float64),
        np.asarray(grad_norm, np.float64),
        np.asarray(status),
        np.zeros(num, np.int32),
        {},
        np.zeros(0, np.int64),
        0.0,
    )
