"""Summaries of result rows: distance to the optimum, classes of critical points, statuses.

One implementation for every job (``ufm landscape``, ``ufm sweep report``, notebooks). Rows are
columns (a dict of arrays, a pandas DataFrame, or what :func:`rows_of` reads from a results
folder). Statistics are taken over *valid* rows only: a row is valid when its first-order status is
neither ``diverged`` nor ``nan`` and its end point is finite (``f`` and ``grad_norm``); every
summary says how many rows it excluded and why (``excluded_diverged``, ``excluded_nan``,
``excluded_nonfinite``), so a failed seed can neither leak an ``f - f*`` of ``1e16`` into a
quantile nor silently vanish from a count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..landscape.classes import CLASS_NAMES, COUNTEREXAMPLE_CLASSES
from ..runs.analyses import AT_OPTIMUM_RTOL

__all__ = [
    "columns",
    "valid_rows",
    "group_keys",
    "optimum_summary",
    "class_summary",
    "exclusions",
    "AT_OPTIMUM_RTOL",
    "FAILED_STATUSES",
]

#: First-order statuses whose end points are not used in statistics.
FAILED_STATUSES = ("diverged", "nan")

_COUNTEREXAMPLE_NAMES = tuple(CLASS_NAMES[int(c)] for c in COUNTEREXAMPLE_CLASSES)


def columns(rows) -> dict:
    """``rows`` (a dict of arrays, a pandas DataFrame or a ``pyarrow.Table``) as a dict of numpy
    arrays."""
    if hasattr(rows, "column_names") and hasattr(rows, "column"):  # pyarrow.Table
        return {k: rows.column(k).to_numpy(zero_copy_only=False) for k in rows.column_names}
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # pandas
        return {k: rows[k].to_numpy() for k in rows.columns}
    return {k: np.asarray(v) for k, v in rows.items()}


def _num(rows, key, default=np.nan) -> np.ndarray:
    n = len(next(iter(rows.values())))
    if key not in rows:
        return np.full(n, default, np.float64)
    v = np.asarray(rows[key])
    if v.dtype == object:
        v = np.array([np.nan if x is None else x for x in v], dtype=np.float64)
    return v.astype(np.float64)


def _str(rows, key, default="") -> np.ndarray:
    n = len(next(iter(rows.values())))
    if key not in rows:
        return np.full(n, default, dtype=object)
    return np.array(["" if x is None else str(x) for x in np.asarray(rows[key])], dtype=object)


def _finite_end(rows) -> np.ndarray:
    f = _num(rows, "f" if "f" in rows else "loss", 0.0)
    return np.isfinite(f) & np.isfinite(_num(rows, "grad_norm", 0.0))


def valid_rows(rows) -> np.ndarray:
    """Boolean mask of the rows used in statistics (module docstring)."""
    rows = columns(rows)
    status = _str(rows, "status", "converged")
    return ~np.isin(status, FAILED_STATUSES) & _finite_end(rows)


def exclusions(rows, mask=None) -> dict:
    """Counts of the rows (within ``mask``) left out of statistics, by reason."""
    rows = columns(rows)
    n = len(next(iter(rows.values())))
    mask = np.ones(n, bool) if mask is None else np.asarray(mask, bool)
    status = _str(rows, "status", "converged")
    finite = _finite_end(rows)
    failed = np.isin(status, FAILED_STATUSES)
    return {
        "excluded_diverged": int((mask & (status == "diverged")).sum()),
        "excluded_nan": int((mask & (status == "nan")).sum()),
        "excluded_nonfinite": int((mask & ~failed & ~finite).sum()),
    }


def group_keys(rows, by: Sequence[str]) -> list[tuple]:
    """The distinct values of the ``by`` columns, in order of first appearance."""
    rows = columns(rows)
    cols = [_str(rows, k) for k in by]
    return list(dict.fromkeys(zip(*(c.tolist() for c in cols))))


def _select(rows, by, key) -> np.ndarray:
    mask = np.ones(len(next(iter(rows.values()))), bool)
    for k, v in zip(by, key):
        mask &= _str(rows, k) == v
    return mask


def _label(rows, sel) -> str:
    for k in ("label", "config_hash"):
        if k in rows and sel.any():
            return str(np.asarray(rows[k])[sel][0])
    return ""


def optimum_summary(
    rows,
    *,
    by: Sequence[str] = ("config_hash",),
    source: str = "random",
    metrics: Sequence[str] = (),
) -> list[dict]:
    """Per configuration: how the ``source`` starts ended, judged on the polished end points.

    Entries: the group keys, ``label``, ``runs``; first-order statuses (``converged``,
    ``max_steps``, ``diverged``, ``nan``: what the optimiser reported, before polishing);
    ``critical`` (valid rows with ``grad_norm <= grad_tol`` after polishing; ``grad_tol`` from the
    ``hessian`` analysis, else ``1e-8``); ``at_optimum`` (valid rows with ``|f - f*| <=
    rtol max(1, |f*|)``, ``rtol`` the ``at_optimum_rtol`` column of the ``closed_form`` analysis,
    else ``AT_OPTIMUM_RTOL``, whatever the first-order status: a run that used its whole
    step budget but was polished onto the optimum is at the optimum; ``None`` when there is no
    closed form, 0 when no row is valid); ``max_abs_gap`` and ``max_grad_norm`` over the valid
    rows; the median of each name in ``metrics`` over the valid rows; and the exclusion counts of
    :func:`exclusions`.
    """
    rows = columns(rows)
    if not rows:
        return []
    src = _str(rows, "source", "random")
    valid = valid_rows(rows)
    status = _str(rows, "status", "converged")
    gap = _num(rows, "f_gap")
    f_star = _num(rows, "f_star")
    gnorm = _num(rows, "grad_norm")
    gtol = _num(rows, "grad_tol", 1e-8)
    gtol = np.where(np.isfinite(gtol), gtol, 1e-8)
    rtol = _num(rows, "at_optimum_rtol", AT_OPTIMUM_RTOL)
    rtol = np.where(np.isfinite(rtol), rtol, AT_OPTIMUM_RTOL)
    out = []
    for key in group_keys({k: v[src == source] for k, v in rows.items()}, by):
        sel = _select(rows, by, key) & (src == source)
        ok = sel & valid
        entry = dict(zip(by, key))
        entry["label"] = _label(rows, sel)
        entry["runs"] = int(sel.sum())
        for s in ("converged", "max_steps", "diverged", "nan"):
            entry[s] = int((sel & (status == s)).sum())
        entry["critical"] = int((ok & (gnorm <= gtol)).sum())
        known = ok & np.isfinite(f_star)
        tol = rtol * np.maximum(1.0, np.abs(np.where(np.isfinite(f_star), f_star, 0)))
        # None: no closed form (a valid row with nan f*); 0 when every row failed
        entry["at_optimum"] = (
            int((known & (np.abs(gap) <= tol)).sum()) if known.any() or not ok.any() else None
        )
        entry["max_abs_gap"] = float(np.max(np.abs(gap[known]))) if known.any() else float("nan")
        entry["max_grad_norm"] = float(np.max(gnorm[ok])) if ok.any() else float("nan")
        for m in metrics:
            v = _num(rows, m)[ok]
            v = v[np.isfinite(v)]
            entry[m] = float(np.median(v)) if v.size else float("nan")
        entry.update(exclusions(rows, sel))
        out.append(entry)
    return out


def class_summary(rows, *, by: Sequence[str] = ("config_hash", "source")) -> list[dict]:
    """Counts of the Hessian classes (the ``class`` column of the ``hessian`` analysis) per group.

    Entries: the group keys, ``label``, ``points``; one count per class name (those of
    :data:`ufm.CLASS_NAMES` and any other value found); ``counterexamples`` (``spurious_min`` or
    ``degenerate``); ``critical`` (``grad_norm <= grad_tol``); over the critical points the range
    of ``lambda_min`` of the strict saddles (``saddle_lambda_min``, most negative, and
    ``saddle_lambda_max``, the weakest escape curvature), the smallest ``lambda_min`` of the other
    critical points (``minima_lambda_min``: numerical zero modes, ``>= -zero_tol``), their
    smallest ``lambda_pos_min`` (``minima_lambda_pos_min``: the curvature after the zero modes,
    ``nan`` where no method gave it) and the largest
    ``lambda_min - curvature_bound`` over the planted / origin saddles (``bound_excess``, ``<= 0``
    up to round-off where the bound holds: positives of a few ``eps |curvature_bound|``, about
    ``1e-16`` in float64, are rounding); and the exclusion counts of :func:`exclusions`. Failed rows
    (:func:`valid_rows`) are counted in the exclusions, not in the classes.
    """
    rows = columns(rows)
    if not rows or "class" not in rows:
        return []
    cls = _str(rows, "class")
    valid = valid_rows(rows)
    names = list(CLASS_NAMES) + sorted(set(cls[valid].tolist()) - set(CLASS_NAMES) - {""})
    lam = _num(rows, "lambda_min")
    pos = _num(rows, "lambda_pos_min")
    bound = _num(rows, "curvature_bound")
    crit_all = _num(rows, "grad_norm") <= _num(rows, "grad_tol", 1e-8)
    src = _str(rows, "source", "random")
    out = []
    for key in group_keys(rows, by):
        sel = _select(rows, by, key)
        ok = sel & valid
        entry = dict(zip(by, key))
        entry["label"] = _label(rows, sel)
        entry["points"] = int(sel.sum())
        for name in names:
            entry[name] = int((ok & (cls == name)).sum())
        entry["counterexamples"] = int((ok & np.isin(cls, _COUNTEREXAMPLE_NAMES)).sum())
        crit = ok & crit_all
        saddle = crit & (cls == "strict_saddle")
        rest = crit & ~(cls == "strict_saddle")
        planted = saddle & np.isin(src, ("planted", "origin")) & np.isfinite(bound)
        entry["critical"] = int(crit.sum())
        entry["saddle_lambda_min"] = float(lam[saddle].min()) if saddle.any() else float("nan")
        entry["saddle_lambda_max"] = float(lam[saddle].max()) if saddle.any() else float("nan")
        entry["minima_lambda_min"] = float(lam[rest].min()) if rest.any() else float("nan")
        pos_rest = pos[rest & np.isfinite(pos)]
        entry["minima_lambda_pos_min"] = float(pos_rest.min()) if pos_rest.size else float("nan")
        entry["bound_excess"] = (
            float((lam[planted] - bound[planted]).max()) if planted.any() else float("nan")
        )
        entry.update(exclusions(rows, sel))
        out.append(entry)
    return out


def gap_quantiles(rows, mask, qs=(0.0, 0.05, 0.5, 0.95, 1.0)) -> list[float]:
    """Quantiles of ``f - f*`` over the valid rows within ``mask`` (``nan`` if there are none)."""
    rows = columns(rows)
    gap = _num(rows, "f_gap")
    v = gap[np.asarray(mask, bool) & valid_rows(rows) & np.isfinite(gap)]
    return [float(x) for x in np.quantile(v, qs)] if v.size else [float("nan")] * len(qs)


def as_mapping(entry: Mapping) -> dict:
    """A summary entry with plain Python values (for CSV / JSON)."""
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in entry.items()}
