"""The landscape job: optimise many seeds per UFM variant and check them against the theory.

For every configuration (loss x bias x K x lambdas, ``d = K`` by default) the job

1. optimises all seeds at once (:func:`ufm.optimize`, NC metrics recorded along the way),
2. polishes every finite end point to ``||grad f|| <= 1e-10`` in float64 (:func:`ufm.polish`),
3. compares it with the closed-form optimum (:func:`ufm.optimal_value`) and the global-optimality
   certificate ``sigma_1(grad_Z g) <= sqrt(lambda_W lambda_H)`` (:func:`ufm.certificate`),
4. computes the final neural-collapse metrics (:func:`ufm.nc_metrics`),

and returns one row per configuration x seed. :func:`summarize` turns the rows into the table that
``ufm landscape`` prints. This is the numerical check of Shen & Gu 2024 (arXiv 2407.10702): at
``d = K`` every seed should end at the closed-form optimum of Zhu et al. 2021 / Zhou et al. 2022.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ._metrics import nc_metrics
from ._objective import init_batch
from ._optimize import STATUS_NAMES, Status, make_optimizer, optimize
from ._polish import polish
from ._saddles import certificate
from ._spec import SpecError, UFMSpec, check_choice, check_int, check_lambda
from ._theory import optimal_value

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
    ``seeds`` random initialisations. ``d=None`` means ``d = K`` (the case of Shen & Gu 2024);
    ``d_offset`` adds to it (``d = K + d_offset``, e.g. ``-2`` to probe ``d < K - 1``).
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
    base_seed: int = 0
    optimizer: str = "gd"
    learning_rate: float = 1.0
    max_steps: int = 4000
    tol: float = 1e-6
    chunk: int = 250
    record_every: int = 50
    init_scale: float = 0.1
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
        check_int("max_steps", self.max_steps, 1)
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
        for s in self.specs():  # validate every grid point up front
            pass

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
        return len(self.specs()) * self.seeds


def _tuple(x) -> tuple:
    return tuple(x) if isinstance(x, (list, tuple)) else (x,)


def run_config(spec: UFMSpec, config: LandscapeConfig, seeds: Optional[Sequence[int]] = None):
    """Optimise, polish and analyse every seed of one configuration.

    Returns ``(rows, trace)``: ``rows`` a dict of per-seed numpy columns, ``trace`` the
    :class:`ufm.OptimizeResult` trace (loss, gradient norm and :data:`TRACE_METRICS`).
    """
    seeds = np.arange(config.seeds) if seeds is None else np.asarray(seeds)
    key = jax.random.key(config.base_seed)
    p0 = init_batch(spec, key, seeds=seeds, scale=config.init_scale)
    opt = make_optimizer(config.optimizer, config.learning_rate)
    res = optimize(spec, p0, optimizer=opt, max_steps=config.max_steps, tol=config.tol,
                   chunk=config.chunk, record_every=config.record_every, record=trace_metrics)
    status = np.asarray(res.status)
    finite = (status != Status.NAN) & (status != Status.DIVERGED)
    pol = polish(spec, res.params, tol=config.polish_tol)
    # failed seeds keep their flagged end point; polishing never touches them
    params = jax.tree_util.tree_map(
        lambda a, b: jnp.where(finite.reshape((-1,) + (1,) * (a.ndim - 1)), a, b),
        pol.params, res.params)
    rows = analyse_points(spec, params)
    rows.update(
        seed=seeds,
        status=np.array([STATUS_NAMES[int(s)] for s in status]),
        steps=np.asarray(res.steps),
        first_order_grad_norm=np.asarray(res.grad_norm),
        polished=finite & np.asarray(pol.converged),
    )
    return rows, res.trace | {"step": res.trace_steps}


def analyse_points(spec: UFMSpec, params) -> dict:
    """Closed-form comparison, certificate and NC metrics of a batch of (polished) points."""
    try:
        f_star = float(optimal_value(spec))
    except ValueError:  # d below the minimiser's rank: no closed form (f* unknown)
        f_star = float("nan")
    vals = _analyse(spec, params)
    f = np.asarray(vals.pop("loss"))
    gap = f - f_star
    rows = dict(loss_value=f, grad_norm=np.asarray(vals.pop("grad_norm")), f_star=np.full_like(f, f_star),
                f_gap=gap, at_optimum=np.abs(gap) <= AT_OPTIMUM_RTOL * max(1.0, abs(f_star)))
    rows.update({k: np.asarray(v) for k, v in vals.items()})
    return rows


@jax.jit
def _analyse(spec, params):
    from ._objective import grad_norm, loss

    def one(p):
        cert = certificate(spec, p)
        out = {"loss": loss(spec, p), "grad_norm": grad_norm(spec, p),
               "sigma1_G": cert.sigma_1, "certificate_gap": cert.gap}
        out.update(nc_metrics(spec, p))
        return out

    return jax.vmap(one)(params)


def run_landscape(config: LandscapeConfig, *, progress: Optional[Callable] = None):
    """Run every configuration of ``config``; returns ``(rows, traces)``.

    ``rows`` is a dict of numpy columns (one row per configuration x seed, spec fields included);
    ``traces`` maps a configuration label to its optimisation trace. ``progress`` is called as
    ``progress(num_seeds_done)`` after each configuration.
    """
    columns: dict[str, list] = {}
    traces = {}
    for spec in config.specs():
        t0 = time.perf_counter()
        rows, trace = run_config(spec, config)
        m = len(rows["seed"])
        fields = dict(spec.as_dict(), config=config_label(spec), wall_time=time.perf_counter() - t0)
        for k, v in fields.items():
            rows.setdefault(k, np.full(m, v))
        for k, v in rows.items():
            columns.setdefault(k, []).append(np.asarray(v))
        traces[config_label(spec)] = trace
        if progress is not None:
            progress(m)
    return {k: np.concatenate(v) for k, v in columns.items()}, traces


def config_label(spec: UFMSpec) -> str:
    """Short human-readable label of a configuration, e.g. ``ce-free K=3 d=3 lW=0.005 lH=0.005``."""
    lab = f"{spec.loss}-{spec.bias} K={spec.K} n={spec.n} d={spec.d} lW={spec.lambda_W:g} lH={spec.lambda_H:g}"
    return lab + (f" lb={spec.lambda_b:g}" if spec.bias == "regularized" else "")


def summarize(rows: dict) -> list[dict]:
    """One summary row per configuration: runs, converged, at f*, max |f - f*|, final NC metrics."""
    labels = list(dict.fromkeys(rows["config"].tolist()))
    out = []
    for lab in labels:
        sel = rows["config"] == lab
        conv = sel & (rows["status"] == "converged")
        gaps = np.abs(rows["f_gap"][conv])
        entry = dict(config=lab, loss=rows["loss"][sel][0], bias=rows["bias"][sel][0],
                     K=int(rows["K"][sel][0]), d=int(rows["d"][sel][0]),
                     lambda_W=float(rows["lambda_W"][sel][0]), lambda_H=float(rows["lambda_H"][sel][0]),
                     runs=int(sel.sum()), converged=int(conv.sum()),
                     failed=int((sel & np.isin(rows["status"], ["nan", "diverged"])).sum()),
                     at_optimum=int((conv & rows["at_optimum"]).sum()),
                     max_abs_gap=float(gaps.max()) if gaps.size else float("nan"),
                     max_grad_norm=float(rows["grad_norm"][sel].max()))
        for k in TABLE_METRICS:
            entry[k] = float(np.median(rows[k][conv])) if conv.any() else float("nan")
        out.append(entry)
    return out


def format_table(summary: list[dict]) -> str:
    """Plain-text table of :func:`summarize` rows."""
    head = ["variant", "K", "d", "lW", "lH", "runs", "conv", "at f*", "max|f-f*|", "max|grad|"]
    head += [m.replace("nc1_pinv", "NC1").replace("nc2_etf_W", "NC2(W)").replace("nc3_zhu", "NC3")
             for m in TABLE_METRICS]
    lines = []
    for r in summary:
        lines.append([f"{r['loss']}-{r['bias']}", str(r["K"]), str(r["d"]), f"{r['lambda_W']:g}",
                      f"{r['lambda_H']:g}", str(r["runs"]), str(r["converged"]), str(r["at_optimum"]),
                      f"{r['max_abs_gap']:.1e}", f"{r['max_grad_norm']:.1e}"]
                     + [f"{r[m]:.1e}" for m in TABLE_METRICS])
    widths = [max(len(h), *(len(x[i]) for x in lines)) for i, h in enumerate(head)]
    fmt = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(x) for x in lines])
