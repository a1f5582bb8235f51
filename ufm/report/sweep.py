"""Status and reports of a results folder: progress per configuration, ETA, tables, figures.

``sweep_status`` counts finished / total starts per configuration of the latest run (random,
planted and origin starts; a row is a ``(source, seed)`` key), the failed seeds
(``diverged``/``nan``), and an ETA from the recorded chunk times *without* their compilation
(``chunk_seconds - compile_seconds`` per start, the median per configuration), plus the median
compile time of a configuration for each one not started yet. ``sweep_report`` tabulates per
configuration the statuses of the random starts and the quantiles of ``f - f*`` over the valid rows
(failed seeds are excluded and counted), the Hessian classes per start source when classified,
writes ``report.md`` and the figure set of :mod:`ufm.report.figures`. Both say when the folder
holds duplicate rows. Configuration labels name every spec field or setting that differs between
the folder's configurations, so runs with other settings (``--extend``) never read alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..core.progress import format_duration
from ..runs.store import ResultStore, StoreError, count_duplicates, load_results_arrow, load_traces
from .folder import write_report, write_text
from .summaries import class_summary, columns, gap_quantiles, optimum_summary, valid_rows
from .tables import format_table

__all__ = ["sweep_status", "sweep_report", "SweepStatus", "config_labels", "load_rows"]

_STATUSES = ("converged", "max_steps", "diverged", "nan")


class SweepStatus(NamedTuple):
    """Progress of a results folder (see :func:`sweep_status`)."""

    name: str
    rows: list  # per configuration: dict(hash, label, done, total, counts, failed_seeds, sps)
    done: int
    total: int
    failed: int
    eta_seconds: float | None
    duplicates: int
    stale_rows: int  # rows of configurations not in the latest run
    text: str


def _manifest(folder) -> dict:
    manifest = ResultStore(folder).read_manifest()
    if manifest is None:
        raise StoreError(f"{str(folder)!r} is not a results folder (no manifest.json)")
    return manifest


def _flat(entry: dict) -> dict:
    out = {"model": entry.get("model")}
    out.update({k: v for k, v in entry.get("spec", {}).items()})
    out.update({k: v for k, v in entry.get("settings", {}).items()})
    return out


def config_labels(manifest: dict) -> dict:
    """``{config_hash: label}``: the spec fields and settings that differ between the folder's
    configurations, ``key=value`` (the hash's first 8 digits when nothing differs)."""
    configs = manifest.get("configs", {})
    flats = {h: _flat(e) for h, e in configs.items()}
    keys = dict.fromkeys(k for f in flats.values() for k in f)
    varying = [
        k
        for k in keys
        if len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flats.values()}) > 1
    ]
    out = {}
    for h, f in flats.items():
        parts = [f"{k}={_short(f.get(k))}" for k in varying]
        out[h] = " ".join(parts) if parts else h[:8]
    return out


def _short(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "x".join(_short(x) for x in v)
    return str(v)


def load_rows(folder) -> dict:
    """All rows of a results folder as numpy columns, with a ``label`` column
    (:func:`config_labels`)."""
    manifest = _manifest(folder)
    rows = columns(load_results_arrow(folder))
    if rows and "config_hash" in rows:
        labels = config_labels(manifest)
        rows["label"] = np.array([labels.get(h, h[:8]) for h in rows["config_hash"]], dtype=object)
        if "source" not in rows:
            rows["source"] = np.full(len(rows["config_hash"]), "random", dtype=object)
    return rows


def _latest_configs(manifest) -> list[str]:
    runs = manifest.get("runs") or [{}]
    return runs[-1].get("configs") or list(manifest.get("configs", {}))


def sweep_status(folder) -> SweepStatus:
    """Done / total starts per configuration, failed seeds, and an ETA from recorded rates."""
    manifest = _manifest(folder)
    configs = manifest.get("configs", {})
    latest = _latest_configs(manifest)
    labels = config_labels(manifest)
    t = load_results_arrow(
        folder,
        columns=[
            "config_hash",
            "source",
            "seed",
            "status",
            "chunk_seconds",
            "compile_seconds",
            "chunk_size",
        ],
        duplicates="drop",
    )
    cols = columns(t)
    n = t.num_rows
    hashes = cols.get("config_hash", np.array([], dtype=object))
    seeds = cols.get("seed", np.array([], dtype=np.int64))
    sources = cols.get("source", np.full(n, "random", dtype=object))
    status = cols.get("status", np.full(n, "", dtype=object))
    if "chunk_seconds" in cols:
        comp = np.asarray(cols.get("compile_seconds", np.zeros(n)), float)
        comp = np.where(np.isfinite(comp), comp, 0.0)
        run_s = np.maximum(np.asarray(cols["chunk_seconds"], float) - comp, 0.0)
        sps_all = run_s / np.asarray(cols["chunk_size"], float)
        comp_per_chunk = comp
    else:
        sps_all = comp_per_chunk = None
    global_sps = float(np.median(sps_all)) if sps_all is not None and sps_all.size else None
    global_comp = (
        float(np.median(comp_per_chunk))
        if comp_per_chunk is not None and comp_per_chunk.size
        else 0.0
    )
    keys = list(zip(sources.tolist(), seeds.tolist()))
    duplicates = count_duplicates(folder)

    rows, done_all, total_all, failed_all, eta, eta_known = [], 0, 0, 0, 0.0, True
    for h in latest:
        info = configs.get(h, {})
        m = hashes == h
        extra = {k: v for k, v in info.get("starts", {}).items() if k != "random"}
        total = int(info.get("num_seeds", 0)) + int(sum(extra.values()))
        done = len({keys[i] for i in np.flatnonzero(m)})
        counts = {s: int(np.sum(status[m] == s)) for s in _STATUSES}
        bad = np.isin(status, ("diverged", "nan")) & m
        bad_keys = sorted(
            (keys[i] for i in np.flatnonzero(bad)), key=lambda k: (k[0] != "random", k[0], k[1])
        )
        failed_seeds = [s if src == "random" else f"{src}:{s}" for src, s in bad_keys]
        sps = float(np.median(sps_all[m])) if sps_all is not None and m.any() else global_sps
        left = max(total - done, 0)
        if left:
            if sps is None:
                eta_known = False
            else:
                eta += left * sps + (global_comp if not m.any() else 0.0)
        rows.append(
            {
                "hash": h,
                "label": labels.get(h, info.get("label", "")),
                "done": done,
                "total": total,
                "counts": counts,
                "failed_seeds": failed_seeds,
                "sps": sps,
            }
        )
        done_all, total_all = done_all + done, total_all + total
        failed_all += len(failed_seeds)
    nproc = max(int((manifest.get("runs") or [{}])[-1].get("process_count", 1)), 1)
    eta_s = (eta / nproc if eta_known else None) if done_all < total_all else 0.0
    stale = int(np.sum(~np.isin(hashes, latest))) if hashes.size else 0

    def fmt_failed(r):
        s = r["failed_seeds"]
        return ", ".join(map(str, s[:5])) + (", ..." if len(s) > 5 else "") if s else "-"

    table = format_table(
        ["config", "hash", "done/total", *_STATUSES, "s/seed", "failed seeds"],
        [
            [
                r["label"],
                r["hash"][:8],
                f"{r['done']}/{r['total']}",
                *(r["counts"][s] for s in _STATUSES),
                "?" if r["sps"] is None else f"{r['sps']:.3g}",
                fmt_failed(r),
            ]
            for r in rows
        ],
    )
    pct = 100.0 * done_all / total_all if total_all else 100.0
    head = (
        f"{manifest.get('name', '?')!r} in {folder}: {done_all}/{total_all} starts done "
        f"({pct:.1f}%), {failed_all} failed, ETA {format_duration(eta_s)} "
        f"({nproc} process{'es' if nproc > 1 else ''}; rate without compilation)"
    )
    notes = []
    if duplicates:
        notes.append(
            f"warning: {duplicates} duplicate (config_hash, source, seed) rows, written "
            "twice by concurrent writers; reports count each key once"
        )
    if stale:
        notes.append(f"{stale} rows belong to configurations not in the latest run")
    for p in manifest.get("invalid", []):
        notes.append(f"skipped invalid {p}")
    text = "\n".join([head, "", table, *([""] + notes if notes else [])])
    return SweepStatus(
        manifest.get("name", "?"),
        rows,
        done_all,
        total_all,
        failed_all,
        eta_s,
        duplicates,
        stale,
        text,
    )


def sweep_report(folder, *, figures: bool = True, gap_tol: float = 1e-6) -> str:
    """Summary tables of a results folder (returned and written to ``DIR/report.md``), and the
    figure set in ``DIR/figures``: per configuration the statuses of the random starts, the
    quantiles of ``f - f*`` over the valid rows and the fraction within ``gap_tol`` (failed seeds
    excluded and counted), and with a ``class`` column the Hessian classes per configuration and
    start source."""
    manifest = _manifest(folder)
    duplicates = count_duplicates(folder)
    rows = load_rows(folder)
    parts = [f"# Report: {manifest.get('name', '?')}", ""]
    if duplicates:
        parts += [
            f"Warning: {duplicates} duplicate rows (same configuration, source and seed), "
            "counted once.",
            "",
        ]
    if not rows:
        text = "\n".join(parts + ["No rows yet."])
        write_text(Path(folder) / "report.md", text)
        return text
    opt = optimum_summary(rows)
    src = np.asarray(rows["source"]).astype(str)
    has_gap = "f_gap" in rows
    lines = []
    for e in opt:
        sel = (np.asarray(rows["config_hash"]) == e["config_hash"]) & (src == "random")
        excluded = e["excluded_diverged"] + e["excluded_nan"] + e["excluded_nonfinite"]
        line = [e["label"], e["config_hash"][:8], e["runs"]] + [e[s] for s in _STATUSES]
        line.append(excluded)
        if has_gap:
            q = gap_quantiles(rows, sel)
            ok = sel & valid_rows(rows) & np.isfinite(np.asarray(rows["f_gap"], float))
            frac = (
                float(np.mean(np.abs(np.asarray(rows["f_gap"], float)[ok]) <= gap_tol))
                if ok.any()
                else float("nan")
            )
            line += q + [frac]
        lines.append(line)
    headers = ["config", "hash", "seeds", *_STATUSES, "excluded"]
    if has_gap:
        headers += ["gap min", "q05", "median", "q95", "max", f"P(|gap|<={gap_tol:g})"]
    parts += [
        "## Status and f - f* (random starts; statistics over valid rows, failed runs excluded)",
        "",
        "```",
        format_table(headers, lines),
        "```",
        "",
    ]
    classes = class_summary(rows, by=("config_hash", "source"))
    if classes:
        names = [
            k
            for k in classes[0]
            if k
            not in (
                "config_hash",
                "source",
                "label",
                "points",
                "counterexamples",
                "critical",
                "saddle_lambda_min",
                "saddle_lambda_max",
                "minima_lambda_min",
                "minima_lambda_pos_min",
                "bound_excess",
                "excluded_diverged",
                "excluded_nan",
                "excluded_nonfinite",
            )
        ]
        lines = [
            [e["label"], e["config_hash"][:8], e["source"], e["points"]]
            + [e[c] for c in names]
            + [
                e["counterexamples"],
                e["excluded_diverged"] + e["excluded_nan"] + e["excluded_nonfinite"],
                e["saddle_lambda_min"],
                e["saddle_lambda_max"],
            ]
            for e in classes
        ]
        parts += [
            "## Hessian classes (per configuration and start source)",
            "",
            "```",
            format_table(
                [
                    "config",
                    "hash",
                    "source",
                    "points",
                    *names,
                    "counterexamples",
                    "excluded",
                    "saddle lmin",
                    "weakest saddle",
                ],
                lines,
            ),
            "```",
            "",
        ]
    out = Path(folder)
    if figures:
        labels = config_labels(manifest)
        traces = {labels.get(h, h[:8]): tr for h, tr in load_traces(folder).items()}
        made = write_report(out, rows, traces, figures=True)
        figs = [p for p in made if p.suffix == ".png"]
        parts += ["## Figures", ""] + [f"- figures/{p.name}" for p in figs] + [""]
    text = "\n".join(parts)
    write_text(out / "report.md", text)
    return text
