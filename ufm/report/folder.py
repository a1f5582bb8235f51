"""Writing a report into a results folder: summary tables, CSV and the figure set.

Files are written atomically (a temporary file renamed into place), so an interrupted run or a
full disk never leaves a truncated table or PNG behind.
"""

from __future__ import annotations

import csv
import io
import pathlib
from collections.abc import Mapping

from ..runs.store import atomic_write
from . import figures as F
from .summaries import class_summary, columns, optimum_summary

__all__ = ["save_figure", "write_text", "write_csv", "write_report", "write_landscape_report"]


def save_figure(fig, path, *, dpi: int = 120) -> pathlib.Path:
    """Save ``fig`` as a PNG atomically and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write(buf.getvalue()), "report")
    return path


def write_text(path, text: str) -> pathlib.Path:
    """Write a text file atomically."""
    path = pathlib.Path(path)
    atomic_write(path, lambda f: f.write(text.encode()), "report")
    return path


def write_csv(path, entries) -> pathlib.Path | None:
    """Write summary entries (dicts with the same keys) as CSV, atomically."""
    if not entries:
        return None
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(entries[0]), extrasaction="ignore")
    w.writeheader()
    w.writerows(entries)
    return write_text(path, buf.getvalue())


def write_report(
    folder, rows, traces: Mapping | None = None, *, text: str = "", figures: bool = True
) -> list[pathlib.Path]:
    """The report of a results folder: ``summary.txt`` (``text``), ``summary.csv`` (per
    configuration: how the random starts ended), ``classes.csv`` (Hessian classes, when
    classified) and the figure set in ``figures/`` (the figures whose columns exist)."""
    folder = pathlib.Path(folder)
    rows = columns(rows)
    made = []
    if text:
        made.append(write_text(folder / "summary.txt", text + "\n"))
    if rows and "f" in rows:
        made.append(write_csv(folder / "summary.csv", optimum_summary(rows)))
    if rows and "class" in rows:
        made.append(write_csv(folder / "classes.csv", class_summary(rows)))
    if figures and rows:
        figdir = folder / "figures"
        if "f_gap" in rows:
            made.append(save_figure(F.plot_gap_ecdf(rows), figdir / "f_gap_ecdf.png"))
        if "status" in rows:
            made.append(save_figure(F.plot_status_counts(rows), figdir / "status_counts.png"))
        if traces:
            made.append(save_figure(F.plot_nc_traces(traces), figdir / "nc_vs_iteration.png"))
        if "class" in rows and "f_gap" in rows:
            made.append(
                save_figure(F.plot_lambda_min_vs_gap(rows), figdir / "lambda_min_vs_gap.png")
            )
            made.append(save_figure(F.plot_negative_counts(rows), figdir / "negative_counts.png"))
            if "curvature_bound" in rows:
                made.append(save_figure(F.plot_saddle_bound(rows), figdir / "saddle_bound.png"))
        fig = F.plot_lambda_pos_min(rows)  # None without the column or a finite global minimum
        if fig is not None:
            made.append(save_figure(fig, figdir / "lambda_pos_min.png"))
    return [p for p in made if p is not None]


def write_landscape_report(folder, rows, traces, text: str, *, figures: bool = True):
    """:func:`write_report` for ``ufm landscape``."""
    return write_report(folder, rows, traces, text=text, figures=figures)
