"""The landscape job: optimise many seeds per UFM variant, plant saddles, classify every point.

For every configuration (loss x bias x K x lambdas, ``d = K`` by default) the job runs, through the
sweep runner (:func:`ufm.run_sweep`) and into the common result store, one batch of starting points:
``seeds`` random initialisations (``source="random"``), ``starts.planted_per_dim`` starts inside
each coordinate subspace ``R^{d'}`` for every ``d'`` of :func:`ufm.saddle_dims` (``source=
"planted"``: gradient descent keeps the zero columns of ``W`` and rows of ``H`` exactly zero, so it
converges to the zero-padded ``d'``-dimensional optimum, a planted saddle) and the origin
(``source="origin"``). Each batch is optimised at once (:func:`ufm.optimize`, NC metrics recorded
every ``record_every`` steps into ``DIR/traces``), polished to ``||grad f|| <= 1e-10`` in float64
(:func:`ufm.polish`), compared with the closed-form ``f*`` (the ``closed_form`` analysis),
classified from its Hessian (the ``hessian`` analysis, :func:`ufm.classify_batch`: global minimum,
strict saddle, degenerate, spurious minimum, not critical) and measured (the ``metrics`` analysis,
:func:`ufm.nc_metrics`). Optionally the generic Newton finder adds critical points of any index
(:func:`ufm.systems.ufm.find_critical_points`, ``source="newton"``).

This is the numerical check of Shen & Gu 2024 (arXiv 2407.10702): at ``d = K`` every random start
should end at the closed-form optimum of Zhu et al. 2021 / Zhou et al. 2022, and every other
critical point should be a strict saddle. The folder is an ordinary results folder
(:func:`ufm.load_results` reads it; a killed run resumes where it stopped); the default folder is
named by the settings' hash, so rerunning the same command resumes (or just reports) instead of
starting over.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from ...core.model import nc_metrics
from ...core.timing import CompileTimer
from ...core.validation import SpecError, check_choice, check_int, check_lambda
from ...landscape.classify import METHODS
from ...optim.settings import OptimizerSettings
from ...report.summaries import (
    columns,
)
from ...runs.pipeline import analyse, points_result
from ...runs.provenance import provenance
from ...runs.schema import column_docs_for
from ...runs.starts import StartSettings
from ...runs.store import ResultStore, load_results_arrow, load_traces
from ...runs.sweep import chunk_table, run_sweep, settings_columns
from ...runs.sweep_spec import SweepConfig, SweepSpec, check_seed_count, spec_fields
from .landscape_text import _label, landscape_tables, verdict
from .spec import UFMSpec

__all__ = [
    "LandscapeConfig",
    "LANDSCAPE_OPTIMIZER",
    "VARIANTS",
    "DEFAULT_VARIANTS",
    "DEFAULT_K",
    "TRACE_METRICS",
    "LandscapeRun",
    "trace_metrics",
    "landscape_analyses",
    "run_landscape",
    "load_landscape",
    "landscape_tables",
    "verdict",
    "default_landscape_out",
]

VARIANTS = (
    ("ce", "none"),
    ("ce", "free"),
    ("ce", "regularized"),
    ("mse", "none"),
    ("mse", "free"),
    ("mse", "regularized"),
)

#: The variants of the embedded default: CE and MSE with a free bias (two shape families, so that
#: the README's first command finishes in well under a minute; the full check of every variant
#: is ``LandscapeConfig(K=(3, 5), variants=VARIANTS)``, ``ufm landscape --K 3,5 --bias
#: none,free,regularized``).
DEFAULT_VARIANTS = (("ce", "free"), ("mse", "free"))

#: The class counts of the embedded default (``d = K``).
DEFAULT_K = (4,)

#: The optimiser preset of ``ufm landscape`` (an :class:`ufm.OptimizerSettings`; its class defaults
#: are those of :func:`ufm.optimize`): plain GD with step 1.0 for 4000 steps to ``||grad|| <=
#: 1e-6``, then Newton polishing to ``1e-10`` in float64.
LANDSCAPE_OPTIMIZER = OptimizerSettings(
    name="gd",
    learning_rate=1.0,
    max_steps=4000,
    tol=1e-6,
    chunk=250,
    polish="auto",
    polish_tol=1e-10,
)

#: NC metrics recorded along the optimisation (cheap subset of :data:`ufm.NC_METRIC_NAMES`).
TRACE_METRICS = ("nc1_pinv", "nc2_etf_W", "nc2_orth_W", "nc3_zhu")


def trace_metrics(spec, params) -> dict:
    """The NC metrics recorded along an optimisation run (``record=`` of :func:`ufm.optimize`)."""
    m = nc_metrics(spec, params)
    return {k: m[k] for k in TRACE_METRICS}


@dataclasses.dataclass(frozen=True)
class LandscapeConfig:
    """Settings of a landscape run; the defaults are the embedded default of ``ufm landscape``.

    Every combination of ``variants x K x lambda_W x lambda_H`` is a configuration, run with
    ``seeds`` random initialisations, the planted and origin starts of ``starts``
    (:class:`ufm.StartSettings`) and ``generic_seeds`` starts of the generic Newton finder, all
    optimised with ``optimizer`` (:class:`ufm.OptimizerSettings`, default
    :data:`LANDSCAPE_OPTIMIZER`). ``d=None`` means ``d = K`` (the case of Shen & Gu 2024);
    ``d_offset`` adds to it (``d = K + d_offset``, e.g. ``-2`` to probe ``d < K - 1`` or ``2`` for
    ``d > K``).

    Class sizes (docs/theory.md section 10): ``n`` is the number of samples per class (an int, with
    ``K`` the class counts, default :data:`DEFAULT_K`), or one vector of class sizes ``(10, 10, 2,
    2)``, or several ``((10, 10, 2, 2), (10, 10, 5, 5))``; each vector is a configuration axis and
    sets its own ``K`` (then leave ``K`` unset, or list exactly those lengths). Configurations
    without a closed form get the convex program's value as ``f*`` (the system's ``prepare_spec``
    hook, :func:`ufm.systems.ufm.with_convex_reference`, solved once per configuration on the host),
    so their minima are certified global; planted saddles lie below the rank of the minimiser
    (:func:`ufm.saddle_dims`, from the closed form or the convex program's solution).

    Example:
        >>> cfg = LandscapeConfig(n=(10, 10, 2, 2), variants=("ce-none",), lambda_W=(5e-3,))
        >>> cfg.K, [s.class_sizes for s in cfg.specs()]
        ((4,), [(10, 10, 2, 2)])
        >>> LandscapeConfig(n=(10, 0))
        Traceback (most recent call last):
        ...
        ufm.core.validation.SpecError: n: class sizes must be positive, got (10, 0)
    """

    K: tuple | None = None
    n: int | tuple = 4
    d: int | None = None
    d_offset: int = 0
    variants: tuple = DEFAULT_VARIANTS
    lambda_W: tuple = (5e-3, 2e-2)
    lambda_H: tuple = (5e-3,)
    lambda_b: float = 1e-2
    seeds: int = 42
    starts: StartSettings = StartSettings(planted_per_dim=2, origin=True)
    generic_seeds: int = 0
    hessian: bool = True
    hessian_method: str = "auto"
    base_seed: int = 0
    init_scale: float | None = 0.1
    optimizer: OptimizerSettings = LANDSCAPE_OPTIMIZER
    record_every: int = 50
    dtype: str = "float64"

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        vectors = _size_vectors(self.n)
        if vectors is None:
            check_int("n", self.n, 1)
            K = DEFAULT_K if self.K is None else self.K
        else:
            set_("n", vectors)
            K = tuple(dict.fromkeys(len(v) for v in vectors))
            if self.K is not None and set(_tuple(self.K)) != set(K):
                raise SpecError(
                    f"K={self.K!r} does not match the class-size vectors of n (K = "
                    f"{', '.join(map(str, K))}); leave K unset with class sizes"
                )
        set_("K", tuple(check_int("K", k, 2) for k in _tuple(K)))
        set_("lambda_W", tuple(check_lambda("lambda_W", x) for x in _tuple(self.lambda_W)))
        set_("lambda_H", tuple(check_lambda("lambda_H", x) for x in _tuple(self.lambda_H)))
        check_lambda("lambda_b", self.lambda_b)
        check_int("seeds", self.seeds, 1)
        check_int("generic_seeds", self.generic_seeds, 0)
        check_int("base_seed", self.base_seed, 0)
        check_int("record_every", self.record_every, 1)
        if self.base_seed >= 2**32:
            raise SpecError(f"base_seed must be an integer in [0, 2**32), got {self.base_seed}")
        if not isinstance(self.optimizer, OptimizerSettings):
            raise SpecError("optimizer must be an ufm.OptimizerSettings")
        if not isinstance(self.starts, StartSettings):
            raise SpecError("starts must be an ufm.StartSettings")
        if self.optimizer.chunk % self.record_every:
            raise SpecError(
                f"record_every ({self.record_every}) must divide the optimizer's "
                f"chunk ({self.optimizer.chunk})"
            )
        if self.init_scale is not None:
            s = self.init_scale
            if (
                isinstance(s, bool)
                or not isinstance(s, (int, float))
                or not (s > 0)
                or s == float("inf")
            ):
                raise SpecError(
                    f"init_scale must be a finite number > 0, got {s!r} (0 would put "
                    "every random start at the origin)"
                )
        check_choice("hessian_method", self.hessian_method, METHODS)
        if self.d is not None:
            check_int("d", self.d, 1)
        variants = []
        for v in self.variants:
            loss, bias = v.split("-") if isinstance(v, str) else v
            variants.append(
                (
                    check_choice("loss", loss, ("ce", "mse")),
                    check_choice(
                        "bias",
                        bias,
                        ("none", "free", "regularized"),
                        {"regularised": "regularized", "reg": "regularized"},
                    ),
                )
            )
        set_("variants", tuple(dict.fromkeys(variants)))
        if not (self.K and self.lambda_W and self.lambda_H and self.variants):
            raise SpecError("K, lambda_W, lambda_H and variants must each have at least one value")
        n = len(self.specs())  # validates every grid point
        check_seed_count(f"seeds ({self.seeds} per configuration x {n})", self.seeds * n)

    def replace(self, **changes) -> LandscapeConfig:
        """A copy with fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def _dim(self, K: int) -> int:
        d = self.d if self.d is not None else K + self.d_offset
        if d < 1:
            raise SpecError(f"d = K + d_offset = {d} must be >= 1 (K={K})")
        return d

    def specs(self) -> list[UFMSpec]:
        """All configurations, in a stable order."""
        out = []
        for (loss, bias), (K, n), lw, lh in itertools.product(
            self.variants, self._classes(), self.lambda_W, self.lambda_H
        ):
            lb = self.lambda_b if bias == "regularized" else 0.0
            out.append(
                UFMSpec(
                    K=K,
                    n=n,
                    d=self._dim(K),
                    loss=loss,
                    bias=bias,
                    lambda_W=lw,
                    lambda_H=lh,
                    lambda_b=lb,
                    dtype=self.dtype,
                )
            )
        return out

    def _classes(self) -> list[tuple]:
        """``(K, n)`` of every class-count / class-size configuration."""
        if isinstance(self.n, tuple):
            return [(len(v), v) for v in self.n]
        return [(K, self.n) for K in self.K]

    @property
    def total_seeds(self) -> int:
        """Random starts over all configurations."""
        return len(self.specs()) * self.seeds

    def analyses(self) -> tuple:
        """The analyses of every point (:func:`landscape_analyses`)."""
        return landscape_analyses(self.hessian, self.hessian_method)

    def sweep_spec(self, name: str = "landscape") -> SweepSpec:
        """The same run as a :class:`ufm.runs.SweepSpec` (one sub-grid per variant and ``K`` or
        class-size vector)."""
        grid = []
        for (loss, bias), (K, n) in itertools.product(self.variants, self._classes()):
            axes = [
                ("K", (K,)),
                ("n", (n,)),
                ("d", (self._dim(K),)),
                ("loss", (loss,)),
                ("bias", (bias,)),
                ("lambda_W", self.lambda_W),
                ("lambda_H", self.lambda_H),
            ]
            if bias == "regularized":
                axes.append(("lambda_b", (self.lambda_b,)))
            axes.append(("dtype", (self.dtype,)))
            grid.append(tuple(axes))
        return SweepSpec(
            name=name,
            model="ufm",
            grid=tuple(grid),
            num_seeds=self.seeds,
            base_seed=self.base_seed,
            init_scale=self.init_scale,
            optimizer=self.optimizer,
            analyses=self.analyses(),
            starts=self.starts,
        )

    def settings_hash(self) -> str:
        """8-hex-digit hash of every setting (the default folder's name)."""
        doc = dataclasses.asdict(self)
        blob = json.dumps(doc, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:8]


def landscape_analyses(hessian: bool = True, method: str = "auto") -> tuple:
    """The analyses of the landscape job: closed form, Hessian classification (with the
    closed-form spectrum at collapse as its reference, ``lambda_pos_star``), NC metrics."""
    hess = (("hessian", (("method", method), ("warn", True))),) if hessian else ()
    spectrum = (("collapse_spectrum", ()),) if hessian else ()
    return (("closed_form", ()),) + hess + spectrum + (("metrics", ()),)


def _tuple(x) -> tuple:
    return tuple(x) if isinstance(x, (list, tuple)) else (x,)


def _size_vectors(n) -> tuple | None:
    """``None`` for an int ``n``; else the class-size vectors of ``n`` (one vector or several),
    validated with one-line errors naming ``n``."""
    if not isinstance(n, (list, tuple, np.ndarray)):
        return None
    n = tuple(n)
    if not n:
        raise SpecError("n: expected an int or class sizes, got an empty tuple")
    if all(isinstance(v, (list, tuple, np.ndarray)) for v in n):
        vectors = [tuple(v) for v in n]
    elif any(isinstance(v, (list, tuple, np.ndarray)) for v in n):
        raise SpecError(f"n: expected one class-size vector or several, got a mix: {n!r}")
    else:
        vectors = [n]
    out = []
    for v in vectors:
        if len(v) < 2:
            raise SpecError(f"n: a class-size vector needs at least 2 sizes, got {v!r}")
        if any(isinstance(x, bool) or not isinstance(x, (int, np.integer)) for x in v):
            raise SpecError(f"n: class sizes must be integers, got {v!r}")
        if min(v) < 1:
            raise SpecError(f"n: class sizes must be positive, got {v!r}")
        out.append(tuple(int(x) for x in v))
    return tuple(dict.fromkeys(out))


def default_landscape_out(config: LandscapeConfig) -> Path:
    """``ufm-results/landscape-<settings hash>``: the same settings resume the same folder."""
    return Path("ufm-results") / f"landscape-{config.settings_hash()}"


class LandscapeRun(NamedTuple):
    """What :func:`run_landscape` returns."""

    rows: dict  # numpy columns, one row per point of the run's configurations (+ ``label``)
    traces: dict  # {label: {"step": (R,), name: (R, S) of the random starts}}
    folder: Path
    seconds: float
    compile_seconds: float  # of ``seconds``: compilation (0 when JAX's cache had everything)
    starts_run: int  # starts computed in this call
    starts_skipped: int  # starts found in the folder already (a resumed run)


def run_landscape(
    config: LandscapeConfig = LandscapeConfig(),
    out=None,
    *,
    devices=1,
    progress: bool | None = None,
    log=None,
    extend: bool = False,
) -> LandscapeRun:
    """Run (or resume) the landscape job into a results folder (:class:`LandscapeRun`).

    ``rows`` is a dict of numpy columns (one row per point of this run's configurations, the
    store's schema plus ``label``); ``traces`` maps a configuration label to its optimisation
    trace (``step`` and ``(R, S)`` arrays of the loss, gradient norm and :data:`TRACE_METRICS`
    of the random starts). ``out`` defaults to :func:`default_landscape_out`; ``devices`` local
    devices share the seeds. Candidate counterexamples raise a :class:`ufm.CounterexampleWarning`
    naming the configuration.
    """
    if config.dtype == "float64" and not jax.config.jax_enable_x64:
        raise SpecError(
            "dtype 'float64' needs 64-bit JAX: call "
            "jax.config.update('jax_enable_x64', True) first (the CLI does)"
        )
    out = Path(out) if out is not None else default_landscape_out(config)
    spec = config.sweep_spec()
    summary = run_sweep(
        spec,
        out,
        devices=devices,
        progress=progress,
        log=log,
        extend=extend,
        record=trace_metrics,
        record_every=config.record_every,
        job="landscape",
    )
    compile_s = summary.compile_seconds
    if config.generic_seeds:
        compile_s += _generic_chunks(config, spec, summary.configs, out)
    rows, traces = load_landscape(out, [c.hash for c in summary.configs])
    return LandscapeRun(
        rows, traces, out, summary.seconds, compile_s, summary.seeds_run, summary.seeds_skipped
    )


def _generic_chunks(config: LandscapeConfig, spec: SweepSpec, configs, out) -> float:
    """Rows of the generic Newton finder (``source="newton"``), one chunk per configuration;
    returns the compile seconds."""
    store = ResultStore(out)
    compile_s = 0.0
    store.prepare()
    try:
        done = store.done_keys()
        prov = provenance(jax.local_devices()[:1])
        run = settings_columns(spec)
        for c in configs:
            if ("newton", 0) in done.get(c.hash, set()):
                continue
            t0 = time.perf_counter()
            with CompileTimer() as ct:
                cols = _generic_rows(c, config)
            compile_s += ct.seconds
            table = chunk_table(
                c, cols, run, prov, time.perf_counter() - t0, ct.seconds, store.writer
            )
            store.write_chunk(table, column_docs_for(table.column_names, spec_fields(c.spec)))
    finally:
        store.release()
    return compile_s


def _generic_rows(c: SweepConfig, config: LandscapeConfig) -> dict:
    from .critical import find_critical_points

    pts = find_critical_points(
        c.spec,
        config.generic_seeds,
        jax.random.fold_in(jax.random.key(config.base_seed), 2),
        tol=config.optimizer.polish_tolerance(c.spec.dtype),
        drop_failed=False,
    )
    cols, messages = analyse(
        c.spec,
        points_result(c.spec, pts.params, pts.loss, pts.grad_norm),
        config.analyses(),
        errors="record",
    )
    n = pts.num_points
    rows = dict(
        source=pts.source,
        seed=pts.seed,
        dim=np.full(n, c.spec.d),
        status=np.where(pts.converged, "converged", "max_steps").astype(object),
        steps=np.zeros(n, np.int64),
        f=np.asarray(pts.loss, np.float64),
        grad_norm=np.asarray(pts.grad_norm, np.float64),
        first_order_grad_norm=np.asarray(pts.grad_norm, np.float64),
        polished=np.asarray(pts.converged),
        polish_iterations=np.zeros(n, np.int64),
        error=np.full(n, "; ".join(messages) if messages else None, dtype=object),
    )
    return dict(rows, **cols)


def load_landscape(folder, hashes: Sequence[str] | None = None):
    """``(rows, traces)`` of a landscape (or sweep) results folder, restricted to ``hashes``.

    ``rows`` gets a ``label`` column from the manifest; ``traces`` maps that label to the trace
    of the random starts."""
    store = ResultStore(folder)
    manifest = store.read_manifest() or {}
    rows = columns(load_results_arrow(folder))
    if hashes is not None and rows:
        keep = np.isin(rows["config_hash"], list(hashes))
        rank = {h: i for i, h in enumerate(hashes)}  # the run's order of configurations
        order = np.argsort([rank.get(h, 0) for h in rows["config_hash"][keep]], kind="stable")
        rows = {k: v[keep][order] for k, v in rows.items()}
    labels = {h: _label(e) for h, e in manifest.get("configs", {}).items()}
    if rows:
        rows["label"] = np.array([labels.get(h, h) for h in rows["config_hash"]], dtype=object)
    traces = {}
    for h, tr in load_traces(folder).items():
        if hashes is not None and h not in hashes:
            continue
        random = np.asarray(tr.get("source", np.array([]))) == "random"
        traces[labels.get(h, h)] = {
            k: (v[:, random] if getattr(v, "ndim", 0) == 2 else v)
            for k, v in tr.items()
            if k not in ("seed", "source")
        }
    return rows, traces
