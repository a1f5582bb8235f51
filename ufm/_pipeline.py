"""The per-configuration pipeline shared by ``ufm landscape`` and ``ufm sweep run``.

One configuration (a spec) and a batch of starting points go through

1. :func:`ufm.optimize` (``jit(vmap(lax.scan))`` chunks; a seed-sharded batch runs SPMD), with an
   optional trace (``record``);
2. a polish stage (:func:`ufm.polish`): ``polish = "auto"`` (the default) polishes in float64
   (Newton with the exact Hessian up to 2500 parameters, L-BFGS above) and skips it in float32;
   ``"newton"``, ``"lbfgs"`` or ``"none"`` force a choice. Seeds that failed (``nan``,
   ``diverged``) keep their flagged end point;
3. the analyses named in a list (:mod:`ufm._analyses`: ``closed_form``, ``metrics``,
   ``hessian``, or any registered one), on the polished points;

and comes back as per-point NumPy columns (:func:`run_points`). Starting points are built by
:func:`make_starts` from ``(source, seed)`` keys (:func:`start_keys`): ``random`` starts
(:func:`ufm.init_batch`, seed ``i`` from ``fold_in(key(base), i)``), ``planted`` starts (a random
start masked to the coordinate subspace ``R^{d'}``: gradient descent keeps the zero columns of
``W`` and rows of ``H`` exactly zero, so it converges to the zero-padded ``d'``-dimensional
optimum, a planted saddle; planted start ``i`` has ``d' = saddle_dims(spec)[i % len(dims)]`` and
its own key ``fold_in(fold_in(key(base), 1), i)``) and the ``origin``. A start depends only on its
key, never on its batch, chunk, device or process.

On CPU, a batch sharded over several devices is gathered on one device before the polish and the
analyses: jaxlib's CPU LAPACK kernels (SVD, eigh) split a batch over a shared intra-op thread pool
and block until it is done, and several CPU devices running them at once can occupy every pool
thread and deadlock (seen with jax 0.10.2: ``ufm.nc_metrics`` on 2048 seeds over 2 devices, 2
cores). Results are identical. The same can happen on one device when independent batched
decompositions run concurrently, so on CPU the ``metrics`` and ``hessian`` analyses go through the
points one at a time (:mod:`ufm._analyses`).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ._analyses import analysis_registry
from ._objective import grad_norm as _grad_norm
from ._objective import init_batch
from ._objective import loss as _loss
from ._optimize import STATUS_NAMES, OptimizeResult, Status, make_optimizer, optimize
from ._polish import polish
from ._spec import UFMSpec, check_int

__all__ = [
    "OptimizerSettings", "StartSettings", "PointsResult", "SOURCES", "POLISH_METHODS",
    "start_keys", "start_dims", "make_starts", "run_points", "analyse", "evaluate_points",
    "points_result",
]

SOURCES = ("random", "planted", "origin")
POLISH_METHODS = ("auto", "newton", "lbfgs", "none")

#: Columns every :func:`run_points` batch has (analyses may not return them).
BASE_COLUMNS = ("status", "steps", "f", "grad_norm", "first_order_grad_norm", "polished",
                "polish_iterations", "error")

_STATUS_LOOKUP = np.array([STATUS_NAMES.get(c, f"status_{c}") for c in range(max(Status) + 1)],
                          dtype=object)


@dataclasses.dataclass(frozen=True)
class OptimizerSettings:
    """First-order optimiser and polish settings of :func:`run_points`.

    ``make_optimizer(name, learning_rate, **options)`` then ``optimize(..., max_steps, tol,
    chunk, divergence_threshold)``; then ``polish`` (``"auto"``: float64 -> :func:`ufm.polish`'s
    automatic choice, float32 -> none; ``"newton"``, ``"lbfgs"``, ``"none"``) to
    ``polish_tol`` (default ``1e-10`` in float64, ``1e-5`` in float32) within
    ``polish_max_iter`` iterations (default: :func:`ufm.polish`'s).
    """

    name: str = "gd"
    learning_rate: float = 0.5
    max_steps: int = 10_000
    tol: float = 1e-8
    chunk: int = 500
    divergence_threshold: float = 1e10
    options: tuple = ()  # sorted (key, value) pairs passed to make_optimizer
    polish: str = "auto"
    polish_tol: Optional[float] = None
    polish_max_iter: Optional[int] = None

    def __post_init__(self):
        if self.polish not in POLISH_METHODS:
            raise ValueError(f"polish must be one of {', '.join(POLISH_METHODS)}; "
                             f"got {self.polish!r}")
        if self.polish_tol is not None and not (self.polish_tol > 0
                                                and math.isfinite(self.polish_tol)):
            raise ValueError(f"polish_tol must be a finite number > 0, got {self.polish_tol!r}")
        if self.polish_max_iter is not None:
            check_int("polish_max_iter", self.polish_max_iter, 1)

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


@dataclasses.dataclass(frozen=True)
class StartSettings:
    """Starting points besides the random ones: ``planted_per_dim`` planted starts per saddle
    dimension ``d'`` of :func:`ufm.saddle_dims` (UFM only) and the ``origin``."""

    planted_per_dim: int = 0
    origin: bool = False

    def __post_init__(self):
        check_int("planted_per_dim", self.planted_per_dim, 0)
        if not isinstance(self.origin, bool):
            raise ValueError(f"origin must be true or false, got {self.origin!r}")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# -- starting points ---------------------------------------------------------------------------


def _saddle_dims(spec) -> tuple:
    from ._saddles import saddle_dims

    if not isinstance(spec, UFMSpec):
        raise ValueError(f"planted starts need a UFMSpec (ufm.saddle_dims), got "
                         f"{type(spec).__name__}")
    return saddle_dims(spec)


def start_keys(spec, seeds, starts: StartSettings = StartSettings()):
    """All start keys of one configuration: ``(source, seed)`` arrays, in the canonical order
    (random ``seeds`` (an array, or a count), then planted ``0..P-1``, then the origin).

    ``P = planted_per_dim * len(ufm.saddle_dims(spec))`` (``0`` when there is no saddle).
    """
    seeds = np.arange(seeds) if np.ndim(seeds) == 0 else np.asarray(seeds, np.int64)
    parts_src, parts_seed = [np.full(seeds.size, "random", dtype=object)], [seeds]
    if starts.planted_per_dim:
        num = starts.planted_per_dim * len(_saddle_dims(spec))
        parts_src.append(np.full(num, "planted", dtype=object))
        parts_seed.append(np.arange(num, dtype=np.int64))
    if starts.origin:
        parts_src.append(np.array(["origin"], dtype=object))
        parts_seed.append(np.zeros(1, np.int64))
    return np.concatenate(parts_src), np.concatenate(parts_seed).astype(np.int64)


def start_dims(spec, source, seed) -> np.ndarray:
    """The ``dim`` column: ``d`` for random starts (``-1`` for non-UFM specs), ``d'`` for planted
    starts, ``0`` for the origin."""
    source, seed = np.asarray(source, dtype=object), np.asarray(seed, np.int64)
    dims = np.full(source.shape, spec.d if isinstance(spec, UFMSpec) else -1, np.int64)
    planted = source == "planted"
    if planted.any():
        sd = np.asarray(_saddle_dims(spec), np.int64)
        if not sd.size:
            raise ValueError("planted starts requested but ufm.saddle_dims(spec) is empty "
                             "(collapse-to-zero regime, or d too small)")
        dims[planted] = sd[seed[planted] % sd.size]
    dims[source == "origin"] = 0
    return dims


def _subspace_mask(params, dims):
    """Zero the columns ``>= dims[i]`` of ``W[i]`` and rows ``>= dims[i]`` of ``H[i]``."""
    d = params.W.shape[-1]
    keep = (jnp.arange(d)[None, :] < jnp.asarray(dims)[:, None]).astype(params.W.dtype)
    return params._replace(W=params.W * keep[:, None, :], H=params.H * keep[:, :, None])


def make_starts(spec, source, seed, *, base_seed: int = 0, init_scale=None):
    """Starting parameters for the keys ``(source[i], seed[i])`` (module docstring).

    Returns ``(params0, meta)``: the batch (leading axis in the order of the keys) and ``meta``
    with the columns ``source``, ``seed`` and ``dim`` (:func:`start_dims`).
    """
    source = np.asarray(source, dtype=object)
    seed = np.asarray(seed, np.int64)
    if source.shape != seed.shape or source.ndim != 1 or not source.size:
        raise ValueError("source and seed must be non-empty 1-D arrays of the same length")
    unknown = set(source.tolist()) - set(SOURCES)
    if unknown:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}; got {sorted(unknown)}")
    dims = start_dims(spec, source, seed)
    key = jax.random.key(base_seed)
    groups = []
    for name in dict.fromkeys(source.tolist()):
        idx = np.flatnonzero(source == name)
        if name == "random":
            p = init_batch(spec, key, seeds=seed[idx], scale=init_scale)
        elif name == "planted":
            p = init_batch(spec, jax.random.fold_in(key, 1), seeds=seed[idx], scale=init_scale)
            p = _subspace_mask(p, dims[idx])
        else:
            zeros = np.zeros(idx.size, np.int64)
            shapes = jax.eval_shape(lambda: init_batch(spec, key, seeds=zeros, scale=init_scale))
            p = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        groups.append((idx, p))
    if len(groups) == 1:
        params = groups[0][1]
    else:
        order = np.concatenate([idx for idx, _ in groups])
        inverse = np.empty_like(order)
        inverse[order] = np.arange(order.size)
        params = jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs)[inverse],
                                        *(p for _, p in groups))
    return params, {"source": source, "seed": seed, "dim": dims}


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


def on_one_cpu_device(tree):
    """``tree`` moved to one device if it is spread over several CPU devices (module docstring)."""
    devs = set()
    for x in jax.tree_util.tree_leaves(tree):
        devs |= set(getattr(getattr(x, "sharding", None), "device_set", ()) or ())
    if len(devs) > 1 and all(d.platform == "cpu" for d in devs):
        return jax.device_put(tree, min(devs, key=lambda d: d.id))
    return tree


def _rows_where(mask, a, b):
    """Per point: ``a`` where ``mask`` else ``b`` (pytrees with a leading point axis)."""
    m = jnp.asarray(mask)
    return jax.tree_util.tree_map(
        lambda x, y: jnp.where(m.reshape((-1,) + (1,) * (x.ndim - 1)), x, y), a, b)


def _polish_stage(spec, params, loss, gnorm, status, settings: OptimizerSettings):
    """``(params, loss, grad_norm, polished, iterations)`` after the polish stage."""
    num = status.size
    dtype = jax.tree_util.tree_leaves(params)[0].dtype
    method = settings.polish_method(dtype)
    finite = (status != Status.NAN) & (status != Status.DIVERGED)
    if method == "none" or not finite.any():
        return params, loss, gnorm, np.zeros(num, bool), np.zeros(num, np.int64)
    src = params
    if not finite.all():  # failed seeds: polish a copy of a finite one instead (then dropped)
        first = int(np.flatnonzero(finite)[0])
        src = _rows_where(finite, params,
                          jax.tree_util.tree_map(lambda x: x[first:first + 1], params))
    pol = polish(spec, src, method=method, tol=settings.polish_tolerance(dtype),
                 max_iter=settings.polish_max_iter)
    params = _rows_where(finite, pol.params, params)
    loss = np.where(finite, np.asarray(pol.loss, np.float64), loss)
    gnorm = np.where(finite, np.asarray(pol.grad_norm, np.float64), gnorm)
    polished = finite & np.asarray(pol.converged)
    iters = np.where(finite, np.asarray(pol.iterations), 0).astype(np.int64)
    return params, loss, gnorm, polished, iters


def run_points(spec, params0, *, optimizer: OptimizerSettings = OptimizerSettings(),
               analyses: Sequence = (), record: Optional[Callable] = None,
               record_every: Optional[int] = None, errors: str = "raise") -> PointsResult:
    """Optimise, polish and analyse a batch of starting points of one configuration.

    Args:
        spec: a model spec (:class:`ufm.UFMSpec`, :class:`ufm.DeepUFMSpec`, ...).
        params0: starting parameters with a leading point axis (:func:`make_starts`,
            :func:`ufm.init_batch`), possibly sharded along it (``NamedSharding``).
        optimizer: :class:`OptimizerSettings` (optimiser, step budget, tolerance, polish stage).
        analyses: ``(name, options)`` pairs of registered analyses (:mod:`ufm._analyses`), run in
            order on the polished points; ``options`` a mapping or ``(key, value)`` pairs.
        record, record_every: the trace of :func:`ufm.optimize` (e.g. NC metrics every 50 steps).
        errors: ``"raise"`` (default) or ``"record"``: an analysis that raises then fills the
            ``error`` column (and warns, ``RuntimeWarning``) instead of stopping a long sweep.

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
    res = optimize(spec, params0, optimizer=optimizer.transform(), max_steps=optimizer.max_steps,
                   tol=optimizer.tol, chunk=optimizer.chunk, record_every=record_every,
                   record=record, divergence_threshold=optimizer.divergence_threshold)
    status = np.asarray(res.status)
    first_gnorm = np.asarray(res.grad_norm, np.float64)
    params, loss, gnorm, polished, iters = _polish_stage(
        spec, on_one_cpu_device(res.params), np.asarray(res.loss, np.float64), first_gnorm,
        status, optimizer)
    cols = {
        "status": _STATUS_LOOKUP[status.astype(np.int64)],
        "steps": np.asarray(res.steps).astype(np.int64),
        "f": loss,
        "grad_norm": gnorm,
        "first_order_grad_norm": first_gnorm,
        "polished": polished,
        "polish_iterations": iters,
    }
    final = res._replace(params=params, loss=loss, grad_norm=gnorm)
    more, messages = analyse(spec, final, analyses, errors=errors)
    cols["error"] = np.full(status.size, "; ".join(messages) if messages else None, dtype=object)
    cols.update(more)
    return PointsResult(cols, res, params)


def analyse(spec, result, analyses: Sequence, *, errors: str = "raise") -> tuple[dict, list]:
    """Run the ``(name, options)`` analyses on ``result`` (an :class:`ufm.OptimizeResult` of the
    final points); returns ``(columns, error messages)`` (messages only with
    ``errors="record"``)."""
    registry = analysis_registry()
    size = int(np.asarray(result.loss).shape[0])
    cols, messages = {}, []
    for name, options in analyses:
        if name not in registry:
            raise ValueError(f"unknown analysis {name!r}; registered: "
                             f"{', '.join(sorted(registry))}")
        try:
            out = dict(registry[name](spec, result, **dict(options)))
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
            cols[k] = v
    return cols, messages


def _column(analysis: str, key: str, value, size: int) -> np.ndarray:
    v = np.asarray(value)
    if v.ndim == 0:  # one value for the whole batch
        v = np.full(size, v.item())
    if v.shape != (size,):
        raise ValueError(f"analysis {analysis!r} column {key!r} has shape {v.shape}; "
                         f"expected one value per point, ({size},)")
    return v


@jax.jit
def _evaluate(spec, params):
    return jax.vmap(lambda p: (_loss(spec, p), _grad_norm(spec, p)))(params)


def evaluate_points(spec, params) -> tuple[np.ndarray, np.ndarray]:
    """``(f, ||grad f||)`` of a batch of points (leading axis), as float64 NumPy arrays."""
    f, g = _evaluate(spec, params)
    return np.asarray(f, np.float64), np.asarray(g, np.float64)


def points_result(spec, params, loss=None, grad_norm=None, status=None) -> OptimizeResult:
    """An :class:`ufm.OptimizeResult` for given points (e.g. from a critical-point finder), to
    run analyses on them with :func:`analyse`; ``loss``/``grad_norm`` are evaluated if omitted."""
    if loss is None or grad_norm is None:
        loss, grad_norm = evaluate_points(spec, params)
    num = int(np.asarray(loss).shape[0])
    status = np.full(num, int(Status.CONVERGED), np.int8) if status is None else status
    return OptimizeResult(params, np.asarray(loss, np.float64), np.asarray(grad_norm, np.float64),
                          np.asarray(status), np.zeros(num, np.int32), {}, np.zeros(0, np.int64),
                          0.0)
