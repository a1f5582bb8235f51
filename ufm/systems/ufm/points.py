"""One table of classified critical points per UFM configuration, for ``ufm landscape``.

:func:`landscape_points` runs the finders of :mod:`ufm.systems.ufm.critical` (minima from random
starts,
planted saddles, the generic Newton finder, rank-restricted starts), classifies every point with
:func:`ufm.classify_batch` and deduplicates modulo rotations (:func:`ufm.landscape.deduplicate`);
:func:`summarize_points` condenses the rows into per-source class counts and extreme curvatures.
"""

from __future__ import annotations

import time

import jax
import numpy as np

from ...landscape.classes import warn_counterexamples
from ...landscape.classify import classify_batch
from ...landscape.dedup import deduplicate
from ...landscape.points import concat_points
from ...report.summaries import class_summary
from .critical import (
    _check_spec,
    find_critical_points,
    find_minima,
    planted_saddles,
    rank_restricted_points,
)
from .spec import UFMSpec

__all__ = ["landscape_points", "summarize_points"]


def landscape_points(
    spec: UFMSpec,
    key,
    num_seeds: int,
    *,
    saddle_seeds_per_dim: int = 2,
    generic_seeds: int | None = None,
    rank_restricted: tuple = (),
    rank_seeds: int | None = None,
    method: str = "auto",
    init_scale=None,
    optimizer=None,
    max_steps: int = 5000,
    tol: float = 1e-7,
    polish_tol: float = 1e-10,
    generic_scales=(0.3, 1.0, 3.0),
    warn: bool = True,
    **tolerances,
) -> dict:
    """Find and classify critical points of one UFM configuration; one row per point.

    Sources (the ``source`` column): ``random`` (:func:`find_minima`, ``num_seeds`` starts),
    ``planted`` (:func:`planted_saddles`, ``saddle_seeds_per_dim`` per ``d'``, plus the origin),
    ``newton`` (:func:`find_critical_points`, ``generic_seeds`` starts, default ``num_seeds``,
    failed starts kept so that their fraction shows as ``not_critical``) and, for every ``r`` in
    ``rank_restricted``, ``rank_restricted`` (:func:`rank_restricted_points`, ``rank_seeds``
    starts, default ``num_seeds``). Independent sub-keys ``fold_in(key, j)`` per source.

    Every point is classified by :func:`ufm.classify_batch` (``method``, ``tolerances``); the
    columns are its record fields plus ``source``, ``seed``, ``dim``, ``scale``, ``unique_id`` and
    ``multiplicity`` (:func:`deduplicate` over all points of the configuration), and
    ``find_time`` (seconds of the source's finder, divided by its number of points). Ready for
    ``pandas.DataFrame(rows)``; count classes per source with
    ``df.groupby(["source", "class"]).size()``.
    """
    spec = _check_spec(spec)
    generic_seeds = num_seeds if generic_seeds is None else generic_seeds
    parts = []

    def timed(fn, *a, **kw):
        t0 = time.perf_counter()
        pts = fn(*a, **kw)
        parts.append((pts, (time.perf_counter() - t0) / max(1, pts.num_points)))

    common = dict(optimizer=optimizer, max_steps=max_steps, tol=tol, polish_tol=polish_tol)
    timed(find_minima, spec, num_seeds, jax.random.fold_in(key, 0), scale=init_scale, **common)
    timed(
        planted_saddles,
        spec,
        jax.random.fold_in(key, 1),
        saddle_seeds_per_dim,
        scale=init_scale,
        **common,
    )
    if generic_seeds:
        timed(
            find_critical_points,
            spec,
            generic_seeds,
            jax.random.fold_in(key, 2),
            scales=generic_scales,
            tol=polish_tol,
            drop_failed=False,
        )
    for j, r in enumerate(rank_restricted):
        timed(
            rank_restricted_points,
            spec,
            r,
            rank_seeds or num_seeds,
            jax.random.fold_in(key, 3 + j),
            scale=init_scale,
            **common,
        )
    pts = concat_points(*(p for p, _ in parts))
    find_time = np.concatenate([np.full(p.num_points, t) for p, t in parts])
    rows = classify_batch(spec, pts.params, method=method, warn=False, **tolerances)
    dedup = deduplicate(spec, pts)
    rows.update(
        source=pts.source,
        seed=pts.seed,
        dim=pts.dim,
        scale=pts.scale,
        unique_id=dedup.labels,
        multiplicity=dedup.counts[dedup.labels],
        find_time=find_time,
    )
    if warn:
        warn_counterexamples(rows, context=f"in {spec.loss}-{spec.bias} K={spec.K} d={spec.d} ")
    return rows


def summarize_points(rows: dict, by=("source",)) -> list[dict]:
    """Condense :func:`landscape_points` rows: :func:`ufm.report.summaries.class_summary` per group
    of the ``by`` columns, plus ``unique`` (distinct ``unique_id`` among the critical points) and
    ``find_time`` (mean seconds per point of the finders).

    Example:
        >>> import numpy as np
        >>> rows = dict(source=np.array(["random", "planted"]),
        ...             **{"class": np.array(["global_min", "strict_saddle"])},
        ...             grad_norm=np.array([1e-12, 1e-12]), grad_tol=np.array([1e-8, 1e-8]),
        ...             lambda_min=np.array([1e-17, -0.2]), f_gap=np.array([0.0, 0.3]))
        >>> [(s["source"], s["global_min"], s["strict_saddle"]) for s in summarize_points(rows)]
        [('random', 1, 0), ('planted', 0, 1)]
    """
    by = (by,) if isinstance(by, str) else tuple(by)
    out = class_summary(rows, by=by)
    crit = np.asarray(rows["grad_norm"]) <= np.asarray(rows["grad_tol"])
    for entry in out:
        sel = np.ones(crit.size, bool)
        for k in by:
            sel &= np.asarray(rows[k]).astype(str) == entry[k]
        if "unique_id" in rows:
            entry["unique"] = int(np.unique(np.asarray(rows["unique_id"])[sel & crit]).size)
        if "find_time" in rows:
            entry["find_time"] = float(np.mean(np.asarray(rows["find_time"])[sel]))
    return out
