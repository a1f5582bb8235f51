"""Status and reports of a sweep folder: progress per configuration, ETA, summary tables, figures.

Both read the store through :func:`ufm.load_results_arrow` and the manifest, with NumPy only
(no pandas). ``sweep_status`` counts finished / total starts per configuration of the latest
run (random, planted and origin starts; a row is a ``(source, seed)`` key), the failed seeds
(``diverged``/``nan``), and an ETA from the recorded chunk times (the median seconds per start
of each configuration, divided by the latest run's process count). ``sweep_report`` tabulates
per configuration the counts per status of the random starts, the quantiles of ``f - f*``
(``f_gap``, from the ``closed_form`` analysis) and the fraction within ``gap_tol``, and, when a
``class`` column exists (the ``hessian`` analysis), the class counts per configuration and
start source with the candidate counterexamples and the range of ``lambda_min`` over strict
saddles; figures go to ``DIR/figures`` and the text to ``DIR/report.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from ._progress import format_duration
from ._store import ResultStore, StoreError, load_results_arrow

__all__ = ["sweep_status", "sweep_report", "SweepStatus"]

_STATUSES = ("converged", "max_steps", "diverged", "nan")


class SweepStatus(NamedTuple):
    """Progress of a sweep folder (see :func:`sweep_status`)."""

    name: str
    rows: list  # per configuration: dict(hash, label, done, total, counts, failed_seeds, sps)
    done: int
    total: int
    failed: int
    eta_seconds: float | None
    duplicates: int
    stale_rows: int  # rows of configurations not in the latest run's spec
    text: str


def _table(headers, rows) -> str:
    cells = [list(map(str, headers))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _load(folder):
    store = ResultStore(folder)
    manifest = store.read_manifest()
    if manifest is None:
        raise StoreError(f"{str(store.folder)!r} is not a sweep folder (no manifest.json)")
    t = load_results_arrow(folder)
    cols = {k: t.column(k).to_numpy(zero_copy_only=False) for k in t.column_names
            if k in ("config_hash", "source", "seed", "status", "f_gap", "class", "lambda_min",
                     "counterexample", "chunk_seconds", "chunk_size")}
    if "source" not in cols:  # stores from before planted starts: random starts only
        cols["source"] = np.full(t.num_rows, "random", dtype=object)
    return manifest, cols, t.num_rows


def _latest_configs(manifest) -> list[str]:
    runs = manifest.get("runs") or [{}]
    return runs[-1].get("configs") or list(manifest.get("configs", {}))


def sweep_status(folder) -> SweepStatus:
    """Done / total seeds per configuration, failed seeds, and an ETA from recorded rates."""
    manifest, cols, nrows = _load(folder)
    configs = manifest.get("configs", {})
    latest = _latest_configs(manifest)
    hashes = cols.get("config_hash", np.array([], dtype=object))
    seeds = cols.get("seed", np.array([], dtype=np.int64))
    sources = cols["source"]
    status = cols.get("status", np.array([], dtype=object))
    sps_all = (cols["chunk_seconds"] / cols["chunk_size"]) if "chunk_seconds" in cols else None
    global_sps = float(np.median(sps_all)) if sps_all is not None and sps_all.size else None
    keys = list(zip(sources.tolist(), seeds.tolist()))
    duplicates = nrows - len(set(zip(hashes.tolist(), keys)))

    rows, done_all, total_all, failed_all, eta, eta_known = [], 0, 0, 0, 0.0, True
    for h in latest:
        info = configs.get(h, {})
        m = hashes == h
        extra = {k: v for k, v in info.get("starts", {}).items() if k != "random"}
        total = int(info.get("num_seeds", 0)) + int(sum(extra.values()))
        done = len({keys[i] for i in np.flatnonzero(m)})
        counts = {s: int(np.sum(status[m] == s)) for s in _STATUSES}
        bad = np.isin(status, ("diverged", "nan")) & m
        bad_keys = sorted((keys[i] for i in np.flatnonzero(bad)),
                          key=lambda k: (k[0] != "random", k[0], k[1]))
        failed_seeds = [s if src == "random" else f"{src}:{s}" for src, s in bad_keys]
        sps = float(np.median(sps_all[m])) if sps_all is not None and m.any() else global_sps
        left = max(total - done, 0)
        if left:
            if sps is None:
                eta_known = False
            else:
                eta += left * sps
        rows.append({"hash": h, "label": info.get("label", ""), "done": done, "total": total,
                     "counts": counts, "failed_seeds": failed_seeds, "sps": sps})
        done_all, total_all, failed_all = done_all + done, total_all + total, \
            failed_all + len(failed_seeds)
    nproc = max(int((manifest.get("runs") or [{}])[-1].get("process_count", 1)), 1)
    eta_s = (eta / nproc if eta_known else None) if done_all < total_all else 0.0
    stale = int(np.sum(~np.isin(hashes, latest))) if hashes.size else 0

    def fmt_failed(r):
        s = r["failed_seeds"]
        return ", ".join(map(str, s[:5])) + (", ..." if len(s) > 5 else "") if s else "-"

    table = _table(
        ["config", "hash", "done/total", *_STATUSES, "s/seed", "failed seeds"],
        [[r["label"], r["hash"][:8], f"{r['done']}/{r['total']}",
          *(r["counts"][s] for s in _STATUSES),
          "?" if r["sps"] is None else f"{r['sps']:.3g}", fmt_failed(r)] for r in rows])
    pct = 100.0 * done_all / total_all if total_all else 100.0
    head = (f"sweep {manifest.get('name', '?')!r} in {folder}: {done_all}/{total_all} seeds "
            f"done ({pct:.1f}%), {failed_all} failed, ETA {format_duration(eta_s)} "
            f"({nproc} process{'es' if nproc > 1 else ''})")
    notes = []
    if duplicates:
        notes.append(f"warning: {duplicates} duplicate (config_hash, source, seed) rows")
    if stale:
        notes.append(f"{stale} rows belong to configurations not in the latest spec")
    for p in manifest.get("invalid", []):
        notes.append(f"skipped invalid {p}")
    text = "\n".join([head, "", table, *([""] + notes if notes else [])])
    return SweepStatus(manifest.get("name", "?"), rows, done_all, total_all, failed_all,
                       eta_s, duplicates, stale, text)


def _quantiles(x: np.ndarray) -> list[str]:
    x = x[np.isfinite(x)]
    if not x.size:
        return ["-"] * 5
    return [f"{v:.2e}" for v in np.quantile(x, [0.0, 0.05, 0.5, 0.95, 1.0])]


def sweep_report(folder, *, figures: bool = True, gap_tol: float = 1e-6) -> str:
    """Summary tables of a sweep folder (returned and written to ``DIR/report.md``), and
    matplotlib figures in ``DIR/figures``: the ECDF of ``f - f*`` per configuration (random
    starts), status counts, and ``lambda_min`` against ``f - f*`` when the ``hessian`` analysis
    provided it. With a ``class`` column, a table of class counts per configuration and start
    source (``random``, ``planted``, ``origin``)."""
    manifest, cols, _ = _load(folder)
    configs = manifest.get("configs", {})
    hashes = cols.get("config_hash", np.array([], dtype=object))
    present = set(hashes.tolist())
    order = [h for h in dict.fromkeys(_latest_configs(manifest) + list(configs)) if h in present]
    status = cols.get("status")
    gap = cols.get("f_gap")
    random = cols["source"] == "random"

    parts = [f"# Sweep report: {manifest.get('name', '?')}", ""]
    rows = []
    for h in order:
        m = (hashes == h) & random
        row = [configs[h].get("label", ""), h[:8], int(m.sum())]
        row += [int(np.sum(status[m] == s)) for s in _STATUSES]
        if gap is not None:
            g = gap[m].astype(np.float64)
            row += _quantiles(g) + ([f"{np.mean(np.abs(g) <= gap_tol):.3f}"] if g.size else ["-"])
        rows.append(row)
    headers = ["config", "hash", "seeds", *_STATUSES]
    if gap is not None:
        headers += ["gap min", "q05", "median", "q95", "max", f"P(|gap|<={gap_tol:g})"]
    title = "## Status and f - f*" + (" (random starts)" if not random.all() else "")
    parts += [title, "", "```", _table(headers, rows), "```", ""]
    if "class" in cols:
        parts += _class_table(order, configs, hashes, cols)
    out = Path(folder)
    if figures and order:
        made = _figures(out / "figures", order, configs, hashes, cols)
        parts += ["## Figures", ""] + [f"- figures/{p.name}" for p in made] + [""]
    text = "\n".join(parts)
    (out / "report.md").write_text(text)
    return text


def _class_table(order, configs, hashes, cols) -> list[str]:
    """Class counts of the ``hessian`` analysis per configuration and start source."""
    from ._classify import CLASS_NAMES

    cls = cols["class"]
    src = cols["source"]
    lmin = cols.get("lambda_min")
    cex = cols.get("counterexample")
    names = list(CLASS_NAMES) + sorted({str(c) for c in cls if c is not None} - set(CLASS_NAMES))
    rows = []
    for h in order:
        for s in ("random", "planted", "origin"):
            m = (hashes == h) & (src == s)
            if not m.any():
                continue
            row = [configs[h].get("label", ""), h[:8], s, int(m.sum())]
            row += [int(np.sum(cls[m] == c)) for c in names]
            row.append(int(np.sum(cex[m] == True)) if cex is not None else "-")  # noqa: E712
            sad = m & (cls == "strict_saddle")
            if lmin is not None and sad.any():
                lam = lmin[sad].astype(np.float64)
                row.append(f"[{lam.min():.2e}, {lam.max():.2e}]")
            else:
                row.append("-")
            rows.append(row)
    headers = ["config", "hash", "source", "points", *names, "counterexamples",
               "saddle lambda_min range"]
    return ["## Hessian classes (per configuration and start source)", "", "```",
            _table(headers, rows), "```", ""]


def _figures(figdir: Path, order, configs, hashes, cols) -> list[Path]:
    from matplotlib.figure import Figure  # lazy: matplotlib is slow to import

    figdir.mkdir(parents=True, exist_ok=True)
    made = []
    label = lambda h: configs[h].get("label", "") or h[:8]  # noqa: E731
    gap = cols.get("f_gap")
    if gap is not None:
        fig = Figure(figsize=(6.4, 4.6 + 0.2 * len(order)), layout="constrained")
        ax = fig.add_subplot()
        for h in order:
            g = np.abs(gap[(hashes == h) & (cols["source"] == "random")].astype(np.float64))
            g = np.sort(np.maximum(g[np.isfinite(g)], 1e-17))
            if g.size:
                ax.step(g, np.arange(1, g.size + 1) / g.size, where="post", label=label(h))
        ax.set_xscale("log")
        ax.set(xlabel="|f - f*| at the end", ylabel="fraction of random starts (ECDF)",
               title="Distance to the global optimum")
        fig.legend(loc="outside lower center", ncols=2, fontsize="small")
        made.append(figdir / "f_gap_ecdf.png")
        fig.savefig(made[-1], dpi=120)
    status = cols.get("status")
    if status is not None:
        fig = Figure(figsize=(6.4, 1.8 + 0.35 * len(order)), layout="constrained")
        ax = fig.add_subplot()
        left = np.zeros(len(order))
        for s in _STATUSES:
            c = np.array([np.sum((hashes == h) & (status == s)) for h in order], dtype=float)
            ax.barh(range(len(order)), c, left=left, label=s)
            left += c
        ax.set_yticks(range(len(order)), [label(h) for h in order], fontsize="small")
        ax.invert_yaxis()  # first configuration on top, as in the tables
        ax.set(xlabel="seeds", title="Optimiser status per configuration")
        fig.legend(loc="outside lower center", ncols=len(_STATUSES), fontsize="small")
        made.append(figdir / "status_counts.png")
        fig.savefig(made[-1], dpi=120)
    lmin = cols.get("lambda_min")
    if lmin is not None and gap is not None:
        fig = Figure(figsize=(6.4, 4.6 + 0.2 * len(order)), layout="constrained")
        ax = fig.add_subplot()
        for h in order:
            m = hashes == h
            ax.scatter(np.maximum(np.abs(gap[m].astype(float)), 1e-17),
                       lmin[m].astype(float), s=6, label=label(h))
        ax.set_xscale("log")
        ax.axhline(0.0, color="k", lw=0.5)
        ax.set(xlabel="|f - f*|", ylabel="lambda_min(Hessian)",
               title="Curvature at the end point")
        fig.legend(loc="outside lower center", ncols=2, fontsize="small")
        made.append(figdir / "lambda_min_vs_gap.png")
        fig.savefig(made[-1], dpi=120)
    return made
