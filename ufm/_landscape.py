"""The landscape job: optimise many seeds per UFM variant, plant saddles, classify every point.

For every configuration (loss x bias x K x lambdas, ``d = K`` by default) the job

1. builds one batch of starting points: ``seeds`` random initialisations (``source="random"``),
   ``saddle_seeds`` starts inside each coordinate subspace ``R^{d'}`` for every ``d'`` of
   :func:`ufm.saddle_dims` (``source="planted"``: gradient descent keeps the zero columns of ``W``
   and rows of ``H`` exactly zero, so it converges to the zero-padded ``d'``-dimensional optimum, a
   planted saddle) and the origin (``source="origin"``) (:func:`ufm.make_starts`);
2. optimises the whole batch at once (:func:`ufm.optimize`, NC metrics recorded on the way) and
   polishes every finite end point to ``||grad f|| <= 1e-10`` in float64 (:func:`ufm.polish`);
3. classifies every point from its Hessian (the ``hessian`` analysis, :func:`ufm.classify_batch`:
   global minimum, strict saddle, degenerate, spurious minimum, not critical), with the
   closed-form ``f*`` (the ``closed_form`` analysis, :func:`ufm.optimal_value`), the certificate
   ``sigma_1(grad_Z g) <= sqrt(lambda_W lambda_H)`` and the curvature bound of
   :func:`ufm.negative_curvature_direction`;
4. computes the final neural-collapse metrics (the ``metrics`` analysis, :func:`ufm.nc_metrics`);
5. optionally adds critical points of any index from the generic Newton finder
   (:func:`ufm.find_critical_points`, ``source="newton"``).

Steps 1-4 are :func:`ufm.run_points`, the pipeline ``ufm sweep run`` runs on every chunk, so a
sweep with the same settings gives the same rows (``tests/test_pipeline.py`` checks it).

One row per point. :func:`summarize_landscape` gives the closed-form table (random starts) and
:func:`summarize_classes` the class counts; ``ufm landscape`` prints both. This is the numerical
check of Shen & Gu 2024 (arXiv 2407.10702): at ``d = K`` every random start should end at the
closed-form optimum of Zhu et al. 2021 / Zhou et al. 2022, and every other critical point should be
a strict saddle. All starts of one configuration share one compiled optimiser, polisher and
classifier (same shapes; the lambdas are traced), so planted saddles cost no extra compilation.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from typing import Callable, Optional, Sequence

import jax
import numpy as np

from ._classify import CLASS_NAMES, warn_counterexamples
from ._metrics import nc_metrics
from ._pipeline import (POLISH_METHODS, OptimizerSettings, StartSettings, analyse, make_starts,
                        points_result, run_points, start_keys)
from ._spec import SpecError, UFMSpec, check_choice, check_int, check_lambda

VARIANTS = (
    ("ce", "none"),
    ("ce", "free"),
    ("ce", "regularized"),
    ("mse", "none"),
    ("mse", "free"),
    ("mse", "regularized"),
)

#: Relative tolerance for "reached f*": ``|f - f*| <= AT_OPTIMUM_RTOL * max(1, |f*|)``.
AT_OPTIMUM_RTOL = 1e-8

#: NC metrics recorded along the optimisation (cheap subset of :data:`ufm.NC_METRIC_NAMES`).
TRACE_METRICS = ("nc1_pinv", "nc2_etf_W", "nc2_orth_W", "nc3_zhu")

#: Final NC metrics shown in the summary table.
TABLE_METRICS = ("nc1_pinv", "nc2_etf_W", "nc3_zhu")


def trace_metrics(spec, params) -> dict:
    """The NC metrics recorded along an optimisation run (``record=`` of :func:`ufm.optimize`)."""
    m = nc_metrics(spec, params)
    return {k: m[k] for k in TRACE_METRICS}


@dataclasses.dataclass(frozen=True)
class LandscapeConfig:
    """Settings of a landscape run; the defaults are the embedded default of ``ufm landscape``.

    Every combination of ``variants x K x lambda_W x lambda_H`` is a configuration, run with
    ``seeds`` random initialisations, ``saddle_seeds`` planted starts per saddle dimension, the
    origin, and ``generic_seeds`` starts of the generic Newton finder. ``d=None`` means ``d = K``
    (the case of Shen & Gu 2024); ``d_offset`` adds to it (``d = K + d_offset``, e.g. ``-2`` to
    probe ``d < K - 1`` or ``2`` for ``d > K``).
    """

    K: tuple = (3, 5)
    n: int = 4
    d: Optional[int] = None
    d_offset: int = 0
    variants: tuple = VARIANTS
    lambda_W: tuple = (5e-3, 2e-2)
    lambda_H: tuple = (5e-3,)
    lambda_b: float = 1e-2
    seeds: int = 42
    saddle_seeds: int = 2
    include_origin: bool = True
    generic_seeds: int = 0
    hessian: bool = True
    hessian_method: str = "auto"
    base_seed: int = 0
    optimizer: str = "gd"
    learning_rate: float = 1.0
    max_steps: int = 4000
    tol: float = 1e-6
    chunk: int = 250
    record_every: int = 50
    init_scale: float = 0.1
    polish: str = "auto"
    polish_tol: float = 1e-10
    dtype: str = "float64"

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("K", tuple(check_int("K", k, 2) for k in _tuple(self.K)))
        set_("lambda_W", tuple(check_lambda("lambda_W", x) for x in _tuple(self.lambda_W)))
        set_("lambda_H", tuple(check_lambda("lambda_H", x) for x in _tuple(self.lambda_H)))
        check_lambda("lambda_b", self.lambda_b)
        check_int("n", self.n, 1)
        check_int("seeds", self.seeds, 1)
        check_int("saddle_seeds", self.saddle_seeds, 0)
        check_int("generic_seeds", self.generic_seeds, 0)
        check_int("max_steps", self.max_steps, 1)
        check_choice("hessian_method", self.hessian_method, ("auto", "dense", "block_arrow", "lanczos"))
        check_choice("polish", self.polish, POLISH_METHODS)
        if self.d is not None:
            check_int("d", self.d, 1)
        variants = []
        for v in self.variants:
            loss, bias = v.split("-") if isinstance(v, str) else v
            variants.append((check_choice("loss", loss, ("ce", "mse")),
                             check_choice("bias", bias, ("none", "free", "regularized"),
                                          {"regularised": "regularized", "reg": "regularized"})))
        set_("variants", tuple(variants))
        if not (self.K and self.lambda_W and self.lambda_H and self.variants):
            raise SpecError("K, lambda_W, lambda_H and variants must each have at least one value")
        self.specs()  # validate every grid point up front

    def specs(self) -> list[UFMSpec]:
        """All configurations, in a stable order."""
        out = []
        for (loss, bias), K, lw, lh in itertools.product(self.variants, self.K, self.lambda_W,
                                                         self.lambda_H):
            d = self.d if self.d is not None else K + self.d_offset
            if d < 1:
                raise SpecError(f"d = K + d_offset = {d} must be >= 1 (K={K})")
            lb = self.lambda_b if bias == "regularized" else 0.0
            out.append(UFMSpec(K=K, n=self.n, d=d, loss=loss, bias=bias, lambda_W=lw,
                               lambda_H=lh, lambda_b=lb, dtype=self.dtype))
        return out

    @property
    def total_seeds(self) -> int:
        """Random starts over all configurations (the progress unit)."""
        return len(self.specs()) * self.seeds

    def optimizer_settings(self) -> OptimizerSettings:
        """The optimiser and polish settings of :func:`ufm.run_points`."""
        return OptimizerSettings(name=self.optimizer, learning_rate=self.learning_rate,
                                 max_steps=self.max_steps, tol=self.tol, chunk=self.chunk,
                                 polish=self.polish, polish_tol=self.polish_tol)

    def start_settings(self) -> StartSettings:
        """The planted and origin starts of :func:`ufm.start_keys`."""
        return StartSettings(planted_per_dim=self.saddle_seeds, origin=self.include_origin)

    def analyses(self) -> tuple:
        """The analyses of every point (:func:`landscape_analyses`)."""
        return landscape_analyses(self.hessian, self.hessian_method)


def landscape_analyses(hessian: bool = True, method: str = "auto") -> tuple:
    """The analyses of the landscape job: closed form, Hessian classification (candidate
    counterexamples are warned about per configuration by :func:`run_landscape`), NC metrics."""
    hess = (("hessian", (("method", method), ("warn", False))),) if hessian else ()
    return (("closed_form", ()),) + hess + (("metrics", ()),)


def _tuple(x) -> tuple:
    return tuple(x) if isinstance(x, (list, tuple)) else (x,)


def starting_points(spec: UFMSpec, config: LandscapeConfig, seeds: Optional[Sequence[int]] = None):
    """One batch of starts: random, planted (coordinate subspaces ``R^{d'}``) and the origin.

    ``seeds`` are the random seeds (default ``0..config.seeds-1``); planted start ``i`` (``i <
    config.saddle_seeds * len(saddle_dims(spec))``) lies in ``R^{d'}`` with ``d' =
    saddle_dims(spec)[i % len]``. Returns ``(params0, meta)`` with ``meta`` the columns
    ``source``, ``seed`` and ``dim`` (``d`` for random starts, ``d'`` for planted ones, ``0`` for
    the origin); :func:`ufm.start_keys` and :func:`ufm.make_starts` do the work.
    """
    seeds = config.seeds if seeds is None else np.asarray(seeds)
    source, seed = start_keys(spec, seeds, config.start_settings())
    return make_starts(spec, source, seed, base_seed=config.base_seed, init_scale=config.init_scale)


def run_config(spec: UFMSpec, config: LandscapeConfig, seeds: Optional[Sequence[int]] = None):
    """Optimise, polish, classify and analyse every start of one configuration.

    Returns ``(rows, trace)``: ``rows`` a dict of per-point numpy columns (those of
    :func:`ufm.run_points` and ``source``, ``seed``, ``dim``, ``at_optimum``), ``trace`` the
    optimisation trace of the random starts (loss, gradient norm and :data:`TRACE_METRICS`).
    """
    params0, meta = starting_points(spec, config, seeds)
    out = run_points(spec, params0, optimizer=config.optimizer_settings(),
                     analyses=config.analyses(), record=trace_metrics,
                     record_every=config.record_every)
    rows = _finish(dict(meta, **out.columns))
    if config.generic_seeds:
        rows = _concat_rows(rows, _generic_rows(spec, config))
    random = meta["source"] == "random"
    trace = {k: v[:, random] for k, v in out.result.trace.items()}
    return rows, trace | {"step": out.result.trace_steps}


def _finish(rows: dict) -> dict:
    """Drop the (always empty: errors raise) ``error`` column, add ``at_optimum``."""
    rows.pop("error", None)
    gap, f_star = rows["f_gap"], rows["f_star"]
    with np.errstate(invalid="ignore"):
        rows["at_optimum"] = np.abs(gap) <= AT_OPTIMUM_RTOL * np.maximum(1.0, np.abs(f_star))
    return rows


def _generic_rows(spec: UFMSpec, config: LandscapeConfig) -> dict:
    from ._critical import find_critical_points

    pts = find_critical_points(spec, config.generic_seeds,
                               jax.random.fold_in(jax.random.key(config.base_seed), 2),
                               tol=config.polish_tol, drop_failed=False)
    cols, _ = analyse(spec, points_result(spec, pts.params, pts.loss, pts.grad_norm),
                      config.analyses())
    n = pts.num_points
    rows = dict(source=pts.source, seed=pts.seed, dim=np.full(n, spec.d),
                status=np.where(pts.converged, "converged", "max_steps").astype(object),
                steps=np.zeros(n, np.int64), f=np.asarray(pts.loss, np.float64),
                grad_norm=np.asarray(pts.grad_norm, np.float64),
                first_order_grad_norm=np.asarray(pts.grad_norm, np.float64),
                polished=np.asarray(pts.converged), polish_iterations=np.zeros(n, np.int64))
    return _finish(dict(rows, **cols))


def _concat_rows(a: dict, b: dict) -> dict:
    return {k: np.concatenate([np.asarray(a[k]), np.asarray(b[k])]) for k in a}


def analyse_points(spec: UFMSpec, params, *, hessian: bool = True, method: str = "auto") -> dict:
    """Closed-form comparison, Hessian classification and NC metrics of a batch of points.

    Columns: ``f`` and ``grad_norm``; ``f_star``, ``f_gap`` (the ``closed_form`` analysis) and
    ``at_optimum``; the :func:`ufm.classify_batch` record (``class``, ``lambda_min``, ...,
    ``counterexample``) when ``hessian``; every :func:`ufm.nc_metrics` key. The analyses are those
    of :func:`ufm.run_points`.
    """
    res = points_result(spec, params)
    cols, _ = analyse(spec, res, landscape_analyses(hessian, method))
    return _finish(dict(f=np.asarray(res.loss), grad_norm=np.asarray(res.grad_norm), **cols))


def run_landscape(config: LandscapeConfig, *, progress: Optional[Callable] = None, warn: bool = True):
    """Run every configuration of ``config``; returns ``(rows, traces)``.

    ``rows`` is a dict of numpy columns (one row per point, spec fields included); ``traces`` maps
    a configuration label to the trace of its random starts. ``progress(num_random_starts_done)``
    is called after each configuration. Candidate counterexamples (degenerate or spurious critical
    points) raise a :class:`ufm.CounterexampleWarning` naming the configuration.
    """
    columns: dict[str, list] = {}
    traces = {}
    for spec in config.specs():
        t0 = time.perf_counter()
        rows, trace = run_config(spec, config)
        m = len(rows["seed"])
        fields = dict(spec.as_dict(), config=config_label(spec), wall_time=time.perf_counter() - t0)
        fields["loss"] = spec.loss
        for k, v in fields.items():
            rows.setdefault(k, np.full(m, v, dtype=object if isinstance(v, str) else None))
        for k, v in rows.items():
            columns.setdefault(k, []).append(np.asarray(v))
        traces[config_label(spec)] = trace
        if warn and config.hessian:
            warn_counterexamples(rows, context=f"in {config_label(spec)} ")
        if progress is not None:
            progress(config.seeds)
    return {k: np.concatenate(v) for k, v in columns.items()}, traces


def config_label(spec: UFMSpec) -> str:
    """Short human-readable label of a configuration, e.g. ``ce-free K=3 d=3 lW=0.005 lH=0.005``."""
    lab = f"{spec.loss}-{spec.bias} K={spec.K} n={spec.n} d={spec.d} lW={spec.lambda_W:g} lH={spec.lambda_H:g}"
    return lab + (f" lb={spec.lambda_b:g}" if spec.bias == "regularized" else "")


def _first(rows, key, sel):
    return rows[key][sel][0]


def summarize_landscape(rows: dict) -> list[dict]:
    """Closed-form check of the random starts, one entry per configuration.

    runs, converged, failed (NaN/diverged), at f*, max |f - f*| over converged runs, largest
    gradient norm after polishing, and the median final NC metrics of the converged runs.
    """
    out = []
    random = rows["source"] == "random"
    for lab in dict.fromkeys(rows["config"].tolist()):
        sel = (rows["config"] == lab) & random
        conv = sel & (rows["status"] == "converged")
        gaps = np.abs(rows["f_gap"][conv].astype(float))
        entry = dict(config=lab, loss=_first(rows, "loss", sel), bias=_first(rows, "bias", sel),
                     K=int(_first(rows, "K", sel)), d=int(_first(rows, "d", sel)),
                     lambda_W=float(_first(rows, "lambda_W", sel)),
                     lambda_H=float(_first(rows, "lambda_H", sel)),
                     runs=int(sel.sum()), converged=int(conv.sum()),
                     failed=int((sel & np.isin(rows["status"], ["nan", "diverged"])).sum()),
                     at_optimum=int((conv & rows["at_optimum"]).sum()),
                     max_abs_gap=float(gaps.max()) if gaps.size else float("nan"),
                     max_grad_norm=float(rows["grad_norm"][sel].max()))
        for k in TABLE_METRICS:
            entry[k] = float(np.median(rows[k][conv])) if conv.any() else float("nan")
        out.append(entry)
    return out


def summarize_classes(rows: dict) -> list[dict]:
    """Hessian classification of every point, one entry per configuration.

    Counts per class (:data:`ufm.CLASS_NAMES`) over all sources, the number of planted/origin
    points, the extreme ``lambda_min`` over strict saddles (most negative and weakest), the smallest
    ``lambda_min`` over the other critical points (numerical zero modes: ``>= -zero_tol``), and the
    largest ``lambda_min - curvature_bound`` over planted saddles (``<= 0``: the bound holds).
    """
    out = []
    for lab in dict.fromkeys(rows["config"].tolist()):
        sel = rows["config"] == lab
        cls = rows["class"][sel]
        lam = rows["lambda_min"][sel].astype(float)
        crit = rows["grad_norm"][sel] <= rows["grad_tol"][sel]
        saddle = cls == "strict_saddle"
        planted = np.isin(rows["source"][sel], ["planted", "origin"])
        bound = rows["curvature_bound"][sel].astype(float)
        check = planted & saddle & np.isfinite(bound)
        entry = dict(config=lab, points=int(sel.sum()), planted=int(planted.sum()))
        entry.update({name: int((cls == name).sum()) for name in CLASS_NAMES})
        entry.update(
            saddle_lambda_min=float(lam[saddle].min()) if saddle.any() else float("nan"),
            saddle_lambda_max=float(lam[saddle].max()) if saddle.any() else float("nan"),
            minima_lambda_min=float(lam[crit & ~saddle].min()) if (crit & ~saddle).any() else float("nan"),
            bound_excess=float((lam[check] - bound[check]).max()) if check.any() else float("nan"),
        )
        out.append(entry)
    return out


def _table(head: list[str], lines: list[list[str]]) -> str:
    widths = [max(len(h), *(len(x[i]) for x in lines)) for i, h in enumerate(head)]
    fmt = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(x) for x in lines])


def format_landscape_table(summary: list[dict]) -> str:
    """Plain-text table of :func:`summarize_landscape` rows."""
    head = ["variant", "K", "d", "lW", "lH", "runs", "conv", "at f*", "max|f-f*|", "max|grad|"]
    head += [m.replace("nc1_pinv", "NC1").replace("nc2_etf_W", "NC2(W)").replace("nc3_zhu", "NC3")
             for m in TABLE_METRICS]
    lines = [[f"{r['loss']}-{r['bias']}", str(r["K"]), str(r["d"]), f"{r['lambda_W']:g}",
              f"{r['lambda_H']:g}", str(r["runs"]), str(r["converged"]), str(r["at_optimum"]),
              f"{r['max_abs_gap']:.1e}", f"{r['max_grad_norm']:.1e}"]
             + [f"{r[m]:.1e}" for m in TABLE_METRICS] for r in summary]
    return _table(head, lines)


def format_class_table(summary: list[dict]) -> str:
    """Plain-text table of :func:`summarize_classes` rows."""
    short = {"global_min": "global", "strict_saddle": "saddle", "local_min": "local",
             "spurious_min": "SPURIOUS", "degenerate": "DEGEN", "not_critical": "noncrit"}
    head = ["configuration", "points", "planted"] + [short[c] for c in CLASS_NAMES]
    head += ["saddle lmin", "weakest saddle", "minima lmin", "lmin-bound"]
    lines = [[r["config"], str(r["points"]), str(r["planted"])] + [str(r[c]) for c in CLASS_NAMES]
             + [f"{r['saddle_lambda_min']:.2e}", f"{r['saddle_lambda_max']:.2e}",
                f"{r['minima_lambda_min']:.1e}", f"{r['bound_excess']:.1e}"] for r in summary]
    return _table(head, lines)


def verdict(rows: dict, config: LandscapeConfig) -> str:
    """A two-line conclusion: closed-form agreement, and the strict-saddle check."""
    random = rows["source"] == "random"
    conv = random & (rows["status"] == "converged")
    at = int((conv & rows["at_optimum"]).sum())
    lines = [f"{int(random.sum())} random starts: {int(conv.sum())} converged, {at} of them at the "
             f"closed-form optimum (|f - f*| <= {AT_OPTIMUM_RTOL:g} max(1, |f*|))."]
    counts = {k: int((random & (rows["status"] == k)).sum()) for k in ("diverged", "nan", "max_steps")}
    if any(counts.values()):
        lines.append(
            f"Not converged: {counts['diverged']} diverged, {counts['nan']} NaN, {counts['max_steps']} "
            f"at the step budget ({config.max_steps}). Diverged / NaN / oscillating runs mean the "
            f"learning rate ({config.learning_rate:g}) is too large for those configurations (GD on "
            "MSE needs lr < 2 / (1 + lambda_b) at least): try a smaller --lr, or more --steps.")
    if config.hessian:
        cls = rows["class"]
        crit = rows["grad_norm"] <= rows["grad_tol"]
        bad = int(np.isin(cls, ["spurious_min", "degenerate"]).sum())
        lines.append(
            f"{int(crit.sum())} critical points classified: {int((cls == 'global_min').sum())} global "
            f"minima, {int((cls == 'strict_saddle').sum())} strict saddles, "
            f"{int((cls == 'local_min').sum())} undecided local minima (no closed form at this d), "
            f"{bad} spurious or degenerate" + (" -- CANDIDATE COUNTEREXAMPLES, see the warnings."
                                               if bad else "."))
    return "\n".join(lines)
