"""Minority collapse in the UFM: sweep the imbalance ratio and lambda, locate the thresholds.

``K_major`` classes of ``n_major`` samples and ``K_minor`` classes of ``n_major / R`` samples
(``R`` the imbalance ratio; sizes may be real: the convex program takes any positive weights).
For every ``(lambda, R)`` with ``lambda_W = lambda_H = lambda`` the UFM's global minimiser comes
from the convex program (:func:`ufm.systems.ufm.solve_convex`, vmapped over the ratios; its
duality gap is recorded), and its class-mean Gram from :func:`ufm.systems.ufm.class_mean_gram`.
Recorded per point: the mean norm of the minority class means relative to the majority ones, the
angle between two minority class means, and the distance between them. Two thresholds are
located numerically (first on the ratio grid, then refined on finer geometric grids inside the
bracket):

* ``merge``: the minority class means coincide (distance ``<= tol`` times the majority mean norm):
  the minority collapse of Fang et al. 2021 (PNAS, arXiv 2101.12699) and Hong & Ling 2023
  (arXiv 2309.09725, who prove a sharp threshold for CE in a two-cluster setting);
* ``vanish``: the minority class means are zero (norm ``<= tol`` times the majority norm;
  beyond the merge point for CE with a free bias and MSE with a free bias).

Closed forms (docs/theory.md section 10, :func:`minority_threshold`): with ``K_minor >= 2``
the minority means merge exactly when ``n_minor <= lambda^2 N^2``, for CE and MSE with any bias;
for MSE without bias they vanish at the same point. The sweep reports the closed-form ratio
next to each numerical bracket. Optional optimiser checks run the
UFM itself (random starts, gradient descent, Newton polishing) at ratios with integer minority
sizes and compare their end points with the convex program (value gap and minority geometry).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import numpy as np

from ...core.validation import SpecError, check_choice, check_int, check_lambda
from ...optim import OptimizerSettings, optimize, polish
from ...report.figures import plt_module
from .convex import solve_convex
from .imbalance import class_mean_gram, minority_threshold
from .objective import ufm_init, ufm_loss
from .spec import UFMSpec

__all__ = [
    "MinorityConfig",
    "MinorityResult",
    "MINORITY_PRESETS",
    "minority_collapse",
    "minority_geometry",
    "plot_minority_collapse",
]


@dataclasses.dataclass(frozen=True)
class MinorityConfig:
    """Settings of a minority-collapse sweep (:func:`minority_collapse`).

    ``ratios`` are the imbalance ratios ``R`` of the grid (``>= 1``), ``lambdas`` the values of
    ``lambda_W = lambda_H``; ``iterations`` the FISTA iterations of each convex solve;
    ``refine`` rounds of ``refine_points`` ratios narrow each threshold's bracket; ``tol`` the
    relative threshold of ``merge`` and ``vanish``; ``check_seeds`` random starts of the UFM
    optimiser at up to ``max_checks`` ratios of the grid with an integer minority size
    (``0`` to skip), each ``check_steps`` gradient steps then Newton polishing, ``d = K``.
    """

    K_major: int = 2
    K_minor: int = 2
    n_major: int = 20
    ratios: tuple = tuple(float(r) for r in np.geomspace(1.0, 1000.0, 25))
    lambdas: tuple = (5e-3, 1e-2, 2e-2)
    loss: str = "ce"
    bias: str = "none"
    iterations: int = 5000
    refine: int = 2
    refine_points: int = 12
    tol: float = 1e-6
    check_seeds: int = 4
    max_checks: int = 3
    check_steps: int = 3000

    def __post_init__(self):
        check_int("K_major", self.K_major, 1)
        check_int("K_minor", self.K_minor, 1)
        check_int("n_major", self.n_major, 1)
        if self.K_major + self.K_minor < 2:
            raise SpecError("K_major + K_minor must be >= 2")
        ratios = tuple(float(r) for r in self.ratios)
        if not ratios or not all(math.isfinite(r) and r >= 1 for r in ratios):
            raise SpecError(f"ratios must be numbers >= 1, got {self.ratios!r}")
        object.__setattr__(self, "ratios", tuple(sorted(set(ratios))))
        lams = tuple(check_lambda("lambdas", x) for x in self.lambdas)
        if not lams or min(lams) <= 0:
            raise SpecError(f"lambdas must be positive numbers, got {self.lambdas!r}")
        object.__setattr__(self, "lambdas", lams)
        check_choice("loss", self.loss, ("ce", "mse"))
        check_choice("bias", self.bias, ("none", "free"))
        check_int("iterations", self.iterations, 1)
        check_int("refine", self.refine, 0)
        check_int("refine_points", self.refine_points, 2)
        check_int("check_seeds", self.check_seeds, 0)
        check_int("max_checks", self.max_checks, 0)
        check_int("check_steps", self.check_steps, 1)
        if not (0 < float(self.tol) < 1):
            raise SpecError(f"tol must be in (0, 1), got {self.tol!r}")

    @property
    def K(self) -> int:
        return self.K_major + self.K_minor

    def sizes(self, ratio: float) -> np.ndarray:
        """Class sizes at ratio ``R`` (majority first), real-valued."""
        return np.array([self.n_major] * self.K_major + [self.n_major / ratio] * self.K_minor)

    def replace(self, **changes) -> MinorityConfig:
        return dataclasses.replace(self, **changes)


#: Presets of ``ufm minority-collapse`` (``tiny``: a few seconds, for tests and the notebook).
MINORITY_PRESETS = {
    "tiny": MinorityConfig(
        ratios=tuple(float(r) for r in np.geomspace(1.0, 100.0, 9)),
        lambdas=(2e-2,),
        iterations=3000,
        refine=1,
        refine_points=8,
        check_seeds=2,
        max_checks=1,
        check_steps=2000,
    ),
    "default": MinorityConfig(),
}


def minority_geometry(M, sizes, lam: float, K_major: int) -> dict:
    """Minority geometry of the minimiser with class logits ``M`` (docs/theory.md section 10):
    ``norm_ratio`` (mean minority / mean majority class-mean norm), ``angle_deg`` (between the
    first two minority class means; ``nan`` with one minority class or a zero mean) and
    ``merge_distance`` (their distance over the majority norm; ``nan`` with one minority class)."""
    G = class_mean_gram(M, sizes, lam, lam)
    norms = np.sqrt(np.maximum(np.diag(G), 0.0))
    major = float(np.mean(norms[:K_major]))
    minor = float(np.mean(norms[K_major:]))
    scale = major if major > 0 else 1.0
    a, b = K_major, K_major + 1
    if b < G.shape[0]:
        dist = math.sqrt(max(G[a, a] + G[b, b] - 2 * G[a, b], 0.0)) / scale
        denom = norms[a] * norms[b]
        angle = (
            math.degrees(math.acos(min(max(G[a, b] / denom, -1.0), 1.0))) if denom > 0 else math.nan
        )
    else:
        dist = angle = math.nan
    return {"norm_ratio": minor / scale, "angle_deg": angle, "merge_distance": dist}


class MinorityResult(NamedTuple):
    """What :func:`minority_collapse` returns."""

    rows: dict  # numpy columns, one row per (lambda, ratio) of the grid and its refinements
    thresholds: list  # one dict per lambda: merge/vanish brackets, closed form, max gap
    checks: list  # one dict per optimiser check: lambda, ratio, sizes, max f - lower bound, ...
    config: MinorityConfig


def _solve(config: MinorityConfig, lam: float, ratios) -> list[dict]:
    width = max(len(config.ratios), config.refine_points)  # one compiled batch size
    padded = list(ratios) + [ratios[-1]] * (width - len(ratios))
    sizes = np.stack([config.sizes(r) for r in padded])
    sol = solve_convex(
        config.K,
        sizes,
        loss=config.loss,
        bias=config.bias,
        lambda_W=lam,
        lambda_H=lam,
        iterations=config.iterations,
    )
    out = []
    for i, r in enumerate(ratios):
        geo = minority_geometry(np.asarray(sol.M[i]), sizes[i], lam, config.K_major)
        out.append(
            dict(
                geo,
                lam=lam,
                ratio=float(r),
                n_minor=float(sizes[i, -1]),
                value=float(sol.value[i]),
                lower_bound=float(sol.lower_bound[i]),
                gap=float(sol.gap[i]),
            )
        )
    return out


def _flags(row: dict, config: MinorityConfig) -> tuple[bool, bool]:
    vanish = row["norm_ratio"] <= config.tol
    merge = vanish or (row["merge_distance"] <= config.tol)  # nan (one class): False
    return merge, vanish


def _bracket(rows: list[dict], which: int, config: MinorityConfig):
    """``(R_lo, R_hi)``: last ratio without the property, first with it (``None`` if absent)."""
    rows = sorted(rows, key=lambda r: r["ratio"])
    hit = [_flags(r, config)[which] for r in rows]
    if not any(hit):
        return None
    i = hit.index(True)
    return (rows[i - 1]["ratio"] if i > 0 else None, rows[i]["ratio"])


def minority_collapse(config: MinorityConfig = MINORITY_PRESETS["tiny"]) -> MinorityResult:
    """Sweep the imbalance ratio and lambda, locate the merge and vanish thresholds (module
    docstring) and compare them with the closed form where one exists (MSE).

    Example:
        >>> import ufm
        >>> cfg = ufm.systems.ufm.MINORITY_PRESETS["tiny"].replace(loss="mse", check_seeds=0)
        >>> th = ufm.systems.ufm.minority_collapse(cfg).thresholds[0]
        >>> lo, hi = th["vanish"]
        >>> bool(lo < th["vanish_closed_form"] <= hi), round(th["vanish_closed_form"], 3)
        (True, 29.216)
    """
    if not jax.config.jax_enable_x64:
        raise SpecError(
            "minority_collapse needs 64-bit JAX: jax.config.update('jax_enable_x64', True)"
        )
    rows, thresholds, checks = [], [], []
    for lam in config.lambdas:
        mine = _solve(config, lam, config.ratios)
        entry = {"lam": lam}
        for which, name in ((0, "merge"), (1, "vanish")):
            br = _bracket(mine, which, config)
            for _ in range(config.refine if br is not None and br[0] is not None else 0):
                fine = np.geomspace(br[0], br[1], config.refine_points + 2)[1:-1]
                mine += _solve(config, lam, fine)
                br = _bracket(mine, which, config)
            entry[name] = br
        closed = minority_threshold(config.n_major, config.K_major, config.K_minor, lam, lam)
        entry["merge_closed_form"] = closed if config.K_minor >= 2 else math.nan
        entry["vanish_closed_form"] = (
            closed if (config.loss, config.bias) == ("mse", "none") else math.nan
        )
        entry["max_gap"] = max(r["gap"] for r in mine)
        thresholds.append(entry)
        rows += mine
        checks += _optimizer_checks(config, lam, mine)
    rows.sort(key=lambda r: (r["lam"], r["ratio"]))
    cols = {k: np.asarray([r[k] for r in rows]) for k in rows[0]}
    return MinorityResult(cols, thresholds, checks, config)


def _optimizer_checks(config: MinorityConfig, lam: float, rows: list[dict]) -> list[dict]:
    """The UFM optimiser at grid ratios with an integer minority size (largest ratios first)."""
    if config.check_seeds == 0 or config.max_checks == 0:
        return []
    picks = [r for r in rows if r["ratio"] in config.ratios and float(r["n_minor"]).is_integer()]
    picks = sorted(picks, key=lambda r: -r["ratio"])[: config.max_checks]
    out = []
    for r in picks:
        sizes = tuple(int(round(v)) for v in config.sizes(r["ratio"]))
        spec = UFMSpec(
            K=config.K,
            n=sizes,
            d=config.K,
            loss=config.loss,
            bias=config.bias,
            lambda_W=lam,
            lambda_H=lam,
        )
        keys = jax.random.split(jax.random.key(0), config.check_seeds)
        p0 = jax.vmap(lambda k: ufm_init(spec, k))(keys)
        res = optimize(
            spec, p0, OptimizerSettings(learning_rate=1.0, max_steps=config.check_steps, tol=1e-8)
        )
        pts = polish(spec, res.params).params
        f = np.asarray(jax.vmap(lambda q: ufm_loss(spec, q))(pts))
        geos = []
        for s in range(config.check_seeds):
            H = np.asarray(pts.H[s])
            start = np.concatenate([[0], np.cumsum(sizes)])
            Hbar = np.stack([H[:, start[k] : start[k + 1]].mean(1) for k in range(config.K)], 1)
            # the class-mean Gram of the end point, in the logit parametrisation of the program
            geos.append(_geometry_of_means(Hbar, config.K_major))
        out.append(
            dict(
                lam=lam,
                ratio=r["ratio"],
                sizes=sizes,
                max_f_minus_lower=float(np.max(f - r["lower_bound"])),
                norm_ratio=float(np.median([g["norm_ratio"] for g in geos])),
                convex_norm_ratio=r["norm_ratio"],
                angle_deg=float(np.median([g["angle_deg"] for g in geos])),
                convex_angle_deg=r["angle_deg"],
            )
        )
    return out


def _geometry_of_means(Hbar, K_major: int) -> dict:
    norms = np.linalg.norm(Hbar, axis=0)
    major = float(np.mean(norms[:K_major]))
    a, b = K_major, K_major + 1
    angle = math.nan
    if b < Hbar.shape[1] and norms[a] * norms[b] > 0:
        c = float(Hbar[:, a] @ Hbar[:, b] / (norms[a] * norms[b]))
        angle = math.degrees(math.acos(min(max(c, -1.0), 1.0)))
    return {
        "norm_ratio": float(np.mean(norms[K_major:])) / (major if major > 0 else 1.0),
        "angle_deg": angle,
    }


def plot_minority_collapse(result: MinorityResult):
    """Two panels against the imbalance ratio ``R`` (log axis), one line per lambda: the minority
    class-mean norm relative to the majority one, and the angle between two minority class means;
    numerical thresholds dashed (merge) and dash-dotted (vanish), the MSE closed form dotted,
    optimiser end points as markers."""
    plt = plt_module()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    rows, cfg = result.rows, result.config
    for i, th in enumerate(result.thresholds):
        color = f"C{i}"
        sel = rows["lam"] == th["lam"]
        R = rows["ratio"][sel]
        lab = f"lambda = {th['lam']:g}"
        ax1.plot(R, rows["norm_ratio"][sel], "-", color=color, label=lab)
        ax2.plot(R, rows["angle_deg"][sel], "-", color=color, label=lab)
        for name, style in (("merge", "--"), ("vanish", "-.")):
            if th[name] is not None:
                for ax in (ax1, ax2):
                    ax.axvline(th[name][1], color=color, ls=style, lw=0.8)
        for key in ("merge_closed_form", "vanish_closed_form"):
            if math.isfinite(th[key]):
                for ax in (ax1, ax2):
                    ax.axvline(th[key], color=color, ls=":", lw=1.5)
        for c in result.checks:
            if c["lam"] == th["lam"]:
                ax1.plot(c["ratio"], c["norm_ratio"], "o", color=color, mfc="none")
                ax2.plot(c["ratio"], c["angle_deg"], "o", color=color, mfc="none")
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_xlabel("imbalance ratio R = n_major / n_minor")
    ax1.set_ylabel("minority / majority class-mean norm")
    ax2.set_ylabel("angle between minority class means (deg)")
    ax1.legend(fontsize=8)
    fig.suptitle(
        f"minority collapse: {cfg.loss}, bias {cfg.bias}, {cfg.K_major} x {cfg.n_major} majority,"
        f" {cfg.K_minor} minority classes (dashed: merge, dash-dot: vanish, dotted: closed form)",
        fontsize=9,
    )
    return fig
