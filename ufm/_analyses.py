"""Per-point analyses of optimised (and polished) batches: the registry and the builtins.

An analysis is a function ``fn(spec, result, **options) -> {column: values}`` of a problem spec and
an :class:`ufm.OptimizeResult` whose ``params``, ``loss`` and ``grad_norm`` are those of the end
points after the polish stage (leading point axis; each value has one entry per point, or is a
scalar for the whole batch). :func:`ufm.run_points` runs the analyses named in a list, in order;
``ufm landscape`` and ``ufm sweep run`` both go through it. Builtins:

* ``closed_form``: ``f_star`` and ``f_gap = f - f_star``. The UFM reference is the closed-form
  global optimum :func:`ufm.optimal_value` (theory.md section 2); the deep UFM's is the deep
  neural-collapse loss :func:`ufm.dnc_loss` (theory.md section 4; MSE, no bias, an activation with
  ``sigma(x) = x`` for ``x >= 0``, every width ``>= K``). ``L_DNC`` is the global optimum only for
  ``L <= 2``; for ``L >= 3`` low-rank solutions beat it (Sukenik et al. 2024, arXiv 2405.14468), so
  ``f_gap < 0`` there means "below DNC", not an error. Called directly on a spec without a
  reference value it returns ``nan``; a sweep rejects such grid points up front (its ``check``).
* ``metrics``: :func:`ufm.nc_metrics` of every end point, one column per metric (the deep UFM
  dispatches to :func:`ufm.deep_metrics`); options ``rtol``, ``tau``.
* ``hessian``: :func:`ufm.classify_batch` (the models it has rules for; the UFM, and the deep
  UFM where :mod:`ufm._classify_deep` registers them): ``class``, ``class_code``, ``lambda_min``,
  ``lambda_max``, ``n_neg``, ``n_zero``, ``n_pos``, ``sigma_1``, ``certificate_gap``,
  ``curvature_bound``, ``rank``, ``zero_modes_predicted``, the tolerances (``grad_tol``,
  ``zero_tol``, ``f_tol``, ``cert_tol``), ... and ``counterexample`` (``spurious_min`` or
  ``degenerate``: no negative curvature, not a certified global minimum). Candidate
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
faster on CPU here (2048 points of ``K = d = 4, n = 5``: 1.2 s classified).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

import jax
import numpy as np

from ._spec import SpecError, UFMSpec


def on_cpu(tree) -> bool:
    """Whether the arrays of ``tree`` live on CPU devices (numpy arrays count as CPU)."""
    for x in jax.tree_util.tree_leaves(tree):
        devs = getattr(getattr(x, "sharding", None), "device_set", None)
        if devs and any(d.platform != "cpu" for d in devs):
            return False
    return True

__all__ = ["register_analysis", "analysis_registry", "analysis_options"]

_ANALYSES: dict[str, Callable[..., Mapping[str, Any]]] = {}
_CHECKS: dict[str, Callable[[Any], Any] | None] = {}
_OPTIONS: dict[str, tuple[str, ...] | None] = {}


def register_analysis(name: str, fn: Callable[..., Mapping[str, Any]] | None = None, *,
                      check: Callable[[Any], Any] | None = None,
                      options: tuple[str, ...] | None = None):
    """Register a per-point analysis ``fn(spec, result, **options) -> {column: (S,) values}``.

    ``result`` is the batch's :class:`ufm.OptimizeResult` after the polish stage (leading seed
    axis; ``params``, ``loss`` and ``grad_norm`` of the polished points); each returned value
    must have one entry per point (numbers, bools or strings). ``check(spec)``, if given, runs on
    every grid point of a sweep before any compute and raises (``SpecError``/``ValueError``/
    ``TypeError``) for configurations the analysis cannot handle, which are then reported as
    invalid points. ``options``, if given, lists the option names a sweep spec may set in
    ``[analyses.NAME]`` (others are rejected when the spec is read). Usable as a decorator:
    ``@register_analysis("my_analysis")``.
    """
    if fn is None:
        return lambda f: register_analysis(name, f, check=check, options=options)
    if not callable(fn):
        raise TypeError(f"analysis {name!r} must be callable")
    _ANALYSES[name] = fn
    _CHECKS[name] = check
    _OPTIONS[name] = None if options is None else tuple(options)
    return fn


def analysis_registry() -> dict:
    """``{name: fn}`` of the registered analyses (a copy)."""
    return dict(_ANALYSES)


def analysis_options(name: str) -> tuple[str, ...] | None:
    """The option names analysis ``name`` accepts (``None``: not declared, anything goes)."""
    return _OPTIONS.get(name)


def analysis_check(name: str):
    """The up-front check of analysis ``name`` (or ``None``)."""
    return _CHECKS.get(name)


def spec_label(spec) -> str:
    """A short label of a spec for messages, e.g. ``ufm ce-free K=3 n=2 d=3 lW=0.005``."""
    if isinstance(spec, UFMSpec):
        lab = (f"{spec.loss}-{spec.bias} K={spec.K} n={spec.n} d={spec.d} "
               f"lW={float(spec.lambda_W):g} lH={float(spec.lambda_H):g}")
        return lab + (f" lb={float(spec.lambda_b):g}" if spec.bias == "regularized" else "")
    fields = spec.as_dict() if hasattr(spec, "as_dict") else {}
    return type(spec).__name__ + "(" + ", ".join(f"{k}={v}" for k, v in fields.items()) + ")"


# -- closed_form ---------------------------------------------------------------------------------


def reference_value(spec) -> float:
    """The reference objective value of ``closed_form``; raises naming the reason if there is none.

    UFM: :func:`ufm.optimal_value`. Deep UFM: :func:`ufm.dnc_loss` (module docstring).
    """
    from ._deep import POSITIVE_LINEAR, DeepUFMSpec

    if isinstance(spec, DeepUFMSpec):
        from ._deep_theory import dnc_loss

        if spec.loss != "mse" or spec.bias != "none":
            raise SpecError("the deep-UFM reference ufm.dnc_loss needs loss = 'mse' and bias = "
                            f"'none' (got loss={spec.loss!r}, bias={spec.bias!r})")
        if spec.activation not in POSITIVE_LINEAR:
            raise SpecError(f"the deep-UFM reference ufm.dnc_loss is attained only for activation "
                            f"in {', '.join(POSITIVE_LINEAR)}; got {spec.activation!r}")
        if min(spec.widths) < spec.K:
            raise SpecError(f"the deep-UFM reference ufm.dnc_loss needs every width >= K = "
                            f"{spec.K} (orthogonal class means); got widths={spec.widths}")
        return float(dnc_loss(spec))
    from ._theory import optimal_value

    return float(optimal_value(spec))  # raises ValueError naming d (TypeError: other specs)


def _check_closed_form(spec):
    reference_value(spec)


@register_analysis("closed_form", check=_check_closed_form, options=())
def closed_form_gap(spec, result):
    """``f_star`` (:func:`reference_value`; ``nan`` where there is none), ``f_gap = f - f_star``."""
    try:
        f_star = reference_value(spec)
    except (ValueError, TypeError):
        f_star = float("nan")
    f = np.asarray(result.loss, dtype=np.float64)
    return {"f_star": np.full(f.shape, f_star), "f_gap": f - f_star}


# -- metrics -------------------------------------------------------------------------------------


def _check_metrics(spec):
    from ._metrics import nc_metrics

    if nc_metrics.dispatch(type(spec)) is nc_metrics.dispatch(object):
        raise TypeError(f"no neural-collapse metrics registered for {type(spec).__name__}")


@functools.partial(jax.jit, static_argnames=("options", "one_by_one"))
def _nc_batch(spec, params, options, one_by_one):
    from ._metrics import nc_metrics

    fn = lambda p: nc_metrics(spec, p, **dict(options))  # noqa: E731
    return jax.lax.map(fn, params) if one_by_one else jax.vmap(fn)(params)


@register_analysis("metrics", check=_check_metrics, options=("rtol", "tau"))
def nc_metric_columns(spec, result, **options):
    """Neural-collapse metrics of the end points (``ufm.nc_metrics(spec, p, **options)``, e.g.
    ``tau``, ``rtol``), one column each; compiled once per spec shape. On CPU one point at a
    time (module docstring), else ``vmap``."""
    out = _nc_batch(spec, result.params, tuple(sorted(options.items())), on_cpu(result.params))
    out = out._asdict() if hasattr(out, "_asdict") else dict(out)
    return {k: np.asarray(v) for k, v in out.items()}


# -- hessian -------------------------------------------------------------------------------------

#: ``classify_batch`` columns the ``hessian`` analysis leaves to others: ``f`` and ``grad_norm``
#: are the pipeline's (the polished point), ``f_star`` and ``f_gap`` the ``closed_form`` analysis's.
_HESSIAN_DROPPED = ("loss", "grad_norm", "f_star", "f_gap")

HESSIAN_OPTIONS = ("method", "batch_size", "num_matvecs", "warn", "grad_tol", "zero_rtol",
                   "zero_gtol", "f_rtol", "cert_rtol", "cert_gtol", "rank_rtol", "rank_atol")


def _check_hessian(spec):
    """Reject specs :func:`ufm.classify_batch` has no classification rules for."""
    from . import _classify

    facts = getattr(_classify, "_model_facts", None)  # the per-model hook of ufm.classify
    if facts is not None:
        supported = facts.dispatch(type(spec)) is not facts.dispatch(object)
    else:
        supported = isinstance(spec, UFMSpec)
    if not supported:
        raise TypeError("the Hessian classification (ufm.classify_batch) has no rules for "
                        f"{type(spec).__name__}")
    from ._classify_deep import KINKED

    if getattr(spec, "activation", None) in KINKED:
        raise ValueError(f"activation={spec.activation!r}: trained end points sit at its kink "
                         "(dead units, exact zeros), where the Hessian is not defined; the hessian "
                         "analysis needs a smooth activation (identity, tanh, softplus, gelu, ...). "
                         "Classify single ReLU points away from kinks with ufm.classify")


@register_analysis("hessian", check=_check_hessian, options=HESSIAN_OPTIONS)
def hessian_classification(spec, result, *, method: str = "auto", batch_size=None,
                           warn: bool = True, **tolerances):
    """:func:`ufm.classify_batch` of the end points (module docstring), with a
    ``counterexample`` column and one :class:`ufm.CounterexampleWarning` per call. ``batch_size``
    as in classify_batch (1 on CPU: no batched LAPACK calls, module docstring)."""
    from ._classify import COUNTEREXAMPLE_CLASSES, classify_batch, warn_counterexamples

    _check_hessian(spec)
    cols = classify_batch(spec, result.params, method=method, batch_size=batch_size, warn=False,
                          **tolerances)
    cols["counterexample"] = np.isin(cols["class_code"], [int(c) for c in COUNTEREXAMPLE_CLASSES])
    if warn:
        warn_counterexamples(cols, context=f"in {spec_label(spec)} ")
    for k in _HESSIAN_DROPPED:
        cols.pop(k, None)
    return cols
