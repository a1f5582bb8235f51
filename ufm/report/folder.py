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
from .summaries import class_summary, columns, optimum_summary

__all__ = [
    "save_figure",
    "write_text",
    "write_csv",
    "figure_jobs",
    "render_figures",
    "write_report",
    "write_landscape_report",
]


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


def figure_jobs(folder, rows, traces: Mapping | None = None) -> list[tuple]:
    """The figure set of a results folder as jobs ``(plotting function name, args, path)`` of
    :mod:`ufm.report.figures` (the figures whose columns exist; :func:`write_report`)."""
    rows = columns(rows)
    figdir = pathlib.Path(folder) / "figures"
    jobs = []
    if not rows:
        return jobs
    if "f_gap" in rows:
        jobs.append(("plot_gap_ecdf", (rows,), figdir / "f_gap_ecdf.png"))
    if "status" in rows:
        jobs.append(("plot_status_counts", (rows,), figdir / "status_counts.png"))
    if traces:
        jobs.append(("plot_nc_traces", (dict(traces),), figdir / "nc_vs_iteration.png"))
    if "class" in rows and "f_gap" in rows:
        jobs.append(("plot_lambda_min_vs_gap", (rows,), figdir / "lambda_min_vs_gap.png"))
        jobs.append(("plot_negative_counts", (rows,), figdir / "negative_counts.png"))
        if "curvature_bound" in rows:
            jobs.append(("plot_saddle_bound", (rows,), figdir / "saddle_bound.png"))
    # None without the column or a finite global minimum: no file
    jobs.append(("plot_lambda_pos_min", (rows,), figdir / "lambda_pos_min.png"))
    return jobs


def render_figures(jobs, worker=None) -> list[pathlib.Path]:
    """Render figure jobs (:func:`figure_jobs`), about half of the work in ``worker`` (a started
    :class:`ufm.report.worker.FigureWorker`, or ``None``: all here). A job the worker could not
    render is rendered here, so the result does not depend on the worker."""
    from .worker import render_job, split_jobs

    jobs = list(jobs)
    theirs = split_jobs(jobs) if worker is not None and len(jobs) > 1 else []
    if theirs and not worker.submit([jobs[i] for i in theirs]):
        theirs = []
    done = {}
    try:
        for i, job in enumerate(jobs):
            if i not in theirs:
                done[i] = render_job(job)
    except BaseException:
        if worker is not None:
            worker.close()
        raise
    if theirs:
        got = worker.collect() or []
        for j, path, error in got:
            if error is None and 0 <= j < len(theirs):
                done[theirs[j]] = None if path is None else pathlib.Path(path)
        for i in theirs:
            if i not in done:  # the worker failed on it: render it here
                done[i] = render_job(jobs[i])
    elif worker is not None:
        worker.close()
    return [done[i] for i in sorted(done) if done[i] is not None]


def write_report(
    folder,
    rows,
    traces: Mapping | None = None,
    *,
    text: str = "",
    figures: bool = True,
    worker=None,
) -> list[pathlib.Path]:
    """The report of a results folder: ``summary.txt`` (``text``), ``summary.csv`` (per
    configuration: how the random starts ended), ``classes.csv`` (Hessian classes, when
    classified) and the figure set in ``figures/`` (the figures whose columns exist; with a
    ``worker``, half of them rendered by it: :func:`render_figures`)."""
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
        made += render_figures(figure_jobs(folder, rows, traces), worker)
    elif worker is not None:
        worker.close()
    return [p for p in made if p is not None]


def write_landscape_report(folder, rows, traces, text: str, *, figures: bool = True, worker=None):
    """:func:`write_report` for ``ufm landscape``."""
    return write_report(folder, rows, traces, text=text, figures=figures, worker=worker)
