"""The figure set of landscape runs and sweeps: one implementation per quantity.

Every function takes result rows (a dict of arrays or a DataFrame; :func:`ufm.report.summaries.
columns`) or traces and returns a ``matplotlib.figure.Figure``; nothing is shown or saved
implicitly. Configurations are told apart by colour (one colour per configuration label, the same
in every figure); only valid rows (:func:`ufm.report.summaries.valid_rows`) are plotted and the
legend says how many were left out. matplotlib is imported lazily.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .summaries import _num, columns, valid_rows

__all__ = [
    "plt_module",
    "config_colors",
    "plot_gap_ecdf",
    "plot_nc_traces",
    "plot_lambda_min_vs_gap",
    "plot_lambda_pos_min",
    "plot_negative_counts",
    "plot_saddle_bound",
    "plot_status_counts",
    "FLOOR",
    "CLASS_COLORS",
]

#: ``|f - f*|`` below this is drawn at it (float64 round-off of the objective is ~1e-16).
FLOOR = 1e-17

CLASS_COLORS = {
    "global_min": "tab:green",
    "strict_saddle": "tab:blue",
    "local_min": "tab:olive",
    "spurious_min": "tab:red",
    "degenerate": "tab:purple",
    "not_critical": "tab:grey",
    "undecided": "tab:orange",  # zero modes unresolved at this precision: not a counterexample
}

_STATUS_COLORS = {
    "converged": "tab:green",
    "max_steps": "tab:orange",
    "diverged": "tab:red",
    "nan": "black",
}


def plt_module():
    """``matplotlib.pyplot`` with a non-interactive backend when there is no display."""
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        import os

        if not os.environ.get("DISPLAY") and not os.environ.get("MPLBACKEND"):
            matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _labels(rows) -> np.ndarray:
    key = "label" if "label" in rows else "config_hash"
    return np.asarray(rows[key]).astype(str)


def config_colors(labels: Sequence[str]) -> dict:
    """One colour per configuration label (tab10, then tab20, then viridis)."""
    plt = plt_module()
    labels = list(dict.fromkeys(labels))
    cmap = plt.get_cmap(
        "tab10" if len(labels) <= 10 else "tab20" if len(labels) <= 20 else "viridis"
    )
    n = max(len(labels) - 1, 1)
    return {lab: cmap(i if len(labels) <= 20 else i / n) for i, lab in enumerate(labels)}


def _new(figsize):
    plt = plt_module()
    return plt.figure(figsize=figsize, layout="constrained")


def _major_ticks_only(*axes) -> None:
    """No minor ticks on these (log or symlog) axes: matplotlib builds a tick object per minor
    tick and lays out their (empty) labels for the constrained layout; on the report's
    multi-decade axes they were half of the rendering time (measured: NC traces figure 2.2 s ->
    1.3 s) and carry no label."""
    from matplotlib.ticker import NullLocator

    for ax in axes:
        ax.xaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_minor_locator(NullLocator())


def _legend(fig, ax, n_items: int) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if not handles:  # nothing was drawn (e.g. no planted saddle): no empty legend
        return
    if n_items > 6:
        fig.legend(
            handles,
            labels,
            loc="outside lower center",
            ncols=2 if n_items <= 16 else 3,
            fontsize="small",
        )
    elif n_items:
        ax.legend(fontsize="small")


def plot_gap_ecdf(rows, *, source: str = "random"):
    """Empirical CDF of ``|f - f*|`` at the polished end points, one curve per configuration.

    Log x axis; values below :data:`FLOOR` are drawn at it. Failed runs (diverged, NaN) are left
    out and counted in the legend.
    """
    rows = columns(rows)
    lab = _labels(rows)
    src = np.asarray(rows.get("source", np.full(lab.size, source))).astype(str)
    gap = np.asarray(rows["f_gap"], np.float64)
    valid = valid_rows(rows)
    colors = config_colors(lab[src == source])
    fig = _new((6.8, 4.4 + 0.18 * len(colors)))
    ax = fig.add_subplot()
    for name, color in colors.items():
        sel = (lab == name) & (src == source)
        g = np.abs(gap[sel & valid])
        g = np.sort(np.maximum(g[np.isfinite(g)], FLOOR))
        excluded = int((sel & ~valid).sum())
        if g.size:
            ax.step(
                g,
                np.arange(1, g.size + 1) / g.size,
                where="post",
                color=color,
                label=name + (f" ({excluded} failed, excluded)" if excluded else ""),
            )
    ax.set_xscale("log")
    _major_ticks_only(ax)
    ax.set_ylim(0, 1.02)
    ax.set(
        xlabel=f"|f - f*| after polishing (values below {FLOOR:g} drawn at {FLOOR:g})",
        ylabel=f"fraction of {source} starts",
        title="Distance of the end points to the closed-form optimum",
    )
    _legend(fig, ax, len(colors))
    return fig


def plot_nc_traces(
    traces: Mapping[str, Mapping],
    metrics: Sequence[str] = ("nc1_pinv", "nc2_etf_W", "nc3_zhu", "grad_norm"),
    *,
    quantiles=(0.1, 0.9),
):
    """Neural-collapse metrics against the iteration: median over seeds (line) and a quantile
    band, one colour per configuration, log-log axes. ``traces`` maps a configuration label to a
    trace (``step`` and ``(R, S)`` arrays), as :func:`ufm.run_landscape` returns."""
    titles = {
        "nc1_pinv": "NC1: within-class variability",
        "nc2_etf_W": "NC2: distance of W to a simplex ETF",
        "nc2_orth_W": "NC2: distance of W to an orthogonal frame",
        "nc3_zhu": "NC3: self-duality of W and the class means",
        "grad_norm": "gradient norm",
        "loss": "objective",
    }
    plt = plt_module()
    colors = config_colors(list(traces))
    fig, axes = plt.subplots(
        1,
        len(metrics),
        figsize=(3.6 * len(metrics), 3.6 + 0.16 * len(colors)),
        layout="constrained",
        squeeze=False,
    )
    for label, tr in traces.items():
        x = np.maximum(np.asarray(tr["step"], float), 1.0)
        for ax, m in zip(axes[0], metrics):
            if m not in tr or np.asarray(tr[m]).size == 0:
                continue
            v = np.abs(np.asarray(tr[m], float))
            with np.errstate(all="ignore"):
                med = np.nanmedian(v, axis=1)
                lo, hi = np.nanquantile(v, quantiles, axis=1)
            ax.plot(x, np.maximum(med, FLOOR), color=colors[label], lw=1.2, label=label)
            ax.fill_between(
                x,
                np.maximum(lo, FLOOR),
                np.maximum(hi, FLOOR),
                color=colors[label],
                alpha=0.15,
                lw=0,
            )
    for ax, m in zip(axes[0], metrics):
        ax.set_xscale("log")
        ax.set_yscale("log")
        _major_ticks_only(ax)
        ax.set_xlabel("iteration")
        ax.set_ylabel(m)
        ax.set_title(titles.get(m, m), fontsize="medium")
    fig.suptitle(
        f"Metrics along gradient descent (median, {int(100 * quantiles[0])}-"
        f"{int(100 * quantiles[1])}% band over seeds)"
    )
    _legend(fig, axes[0][0], len(colors))
    return fig


def plot_lambda_min_vs_gap(rows, *, linthresh: float = 1e-12, max_panels: int = 12):
    """``lambda_min`` of the Hessian against ``f - f*``, one panel per configuration, points
    coloured by class. Symmetric-log axes (linear within ``+-linthresh``): global minima sit at
    ``(0, ~0)``, strict saddles at ``f - f* > 0`` and ``lambda_min < 0``; a point with
    ``f > f*`` and ``lambda_min >= 0`` would be a spurious minimum."""
    from matplotlib.ticker import SymmetricalLogLocator

    rows = columns(rows)
    plt = plt_module()
    valid = valid_rows(rows)
    lab = _labels(rows)
    names = list(dict.fromkeys(lab[valid].tolist()))[:max_panels]
    cols = min(3, max(len(names), 1))
    nrows = -(-max(len(names), 1) // cols)
    fig, axes = plt.subplots(
        nrows,
        cols,
        figsize=(4.2 * cols, 3.4 * nrows + 0.6),
        layout="constrained",
        squeeze=False,
        sharex=True,
        sharey=True,
    )
    cls = np.asarray(rows["class"]).astype(str)
    gap = np.asarray(rows["f_gap"], float)
    lam = np.asarray(rows["lambda_min"], float)
    seen = set()
    for ax, name in zip(axes.flat, names):
        sel = valid & (lab == name)
        for c in dict.fromkeys(cls[sel].tolist()):
            s = sel & (cls == c)
            ax.scatter(
                np.where(np.isfinite(gap[s]), gap[s], 0.0),
                lam[s],
                s=10,
                alpha=0.6,
                color=CLASS_COLORS.get(c, "k"),
                label=None if c in seen else c,
            )
            seen.add(c)
        ax.set_xscale("symlog", linthresh=linthresh)
        ax.set_yscale("symlog", linthresh=linthresh)
        _major_ticks_only(ax)
        for axis in (ax.xaxis, ax.yaxis):  # a label every third decade (1.6 s -> 1.0 s to draw)
            axis.set_major_locator(SymmetricalLogLocator(linthresh=linthresh, base=1000))
        ax.axhline(0, color="k", lw=0.5)
        ax.axvline(0, color="k", lw=0.5)
        ax.set_title(name, fontsize="small")
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("f - f* (nan: no closed form, drawn at 0)")
    for ax in axes[:, 0]:
        ax.set_ylabel("lambda_min of the Hessian")
    fig.suptitle(
        f"Critical points: curvature against suboptimality (symlog, linear within +-{linthresh:g})"
    )
    handles, labels = [], []
    for ax in axes.flat:
        h, lb = ax.get_legend_handles_labels()
        handles += h
        labels += lb
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize="small")
    return fig


def plot_lambda_pos_min(rows, *, max_strips: int = 24, jitter: float = 0.25):
    """``lambda_pos_min`` (the smallest Hessian eigenvalue above the zero band: the curvature left
    once the symmetry zero modes are removed) of every point classified as a global minimum, one
    horizontal strip per configuration, log x axis. Where the rows carry the closed-form value at
    collapse (``lambda_pos_star``, the ``collapse_spectrum`` analysis: balanced classes, docs/
    theory.md section 8) it is drawn as a black vertical tick on the strip, so agreement reads as
    the points sitting on the tick; a strip without a tick has no closed form (class sizes, the
    bias-dominated phase, ``d`` below the minimiser's rank).

    Returns ``None`` (no figure) when the rows have no ``lambda_pos_min`` or ``class`` column, or
    no global minimum with a finite value. Points are jittered vertically (a fixed-seed uniform
    offset within ``+-jitter``); their x coordinates are the values as recorded.
    """
    rows = columns(rows)
    if not rows or "lambda_pos_min" not in rows or "class" not in rows:
        return None
    lab = _labels(rows)
    pos = _num(rows, "lambda_pos_min")
    ref = _num(rows, "lambda_pos_star")  # nan where absent or None
    sel = valid_rows(rows) & (np.asarray(rows["class"]).astype(str) == "global_min")
    sel &= np.isfinite(pos) & (pos > 0)
    names = list(dict.fromkeys(lab[sel].tolist()))[:max_strips]
    if not names:
        return None
    colors = config_colors(names)
    fig = _new((8.8, 1.6 + 0.38 * len(names)))
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    ref_label = "closed form at collapse"
    for i, name in enumerate(names):
        x = pos[sel & (lab == name)]
        y = i + rng.uniform(-jitter, jitter, x.size)
        ax.scatter(x, y, s=12, alpha=0.6, color=colors[name], label=f"_{name}")
        r = ref[(lab == name) & np.isfinite(ref)]
        if r.size:
            ax.plot(
                [np.median(r)] * 2,
                [i - 1.6 * jitter, i + 1.6 * jitter],
                color="k",
                lw=1.6,
                label=ref_label,
            )
            ref_label = "_" + ref_label
    ax.set_yticks(range(len(names)), names, fontsize="small")
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xscale("log")
    ax.margins(x=0.08)
    ax.tick_params(axis="x", which="minor", labelsize="x-small")
    ax.set_xlabel("lambda_pos_min (smallest Hessian eigenvalue above the zero modes)")
    fig.suptitle("Global minima: curvature after the symmetry zero modes")
    if ref_label.startswith("_"):  # a reference was drawn
        ax.legend(fontsize="small", loc="best")
    return fig


def plot_negative_counts(rows):
    """Histogram of the Morse index (number of negative Hessian eigenvalues), stacked by start
    source, integer bins."""
    rows = columns(rows)
    valid = valid_rows(rows)
    n_neg = np.asarray(rows["n_neg"], float)
    src = np.asarray(rows.get("source", np.full(n_neg.size, "random"))).astype(str)
    ok = valid & np.isfinite(n_neg) & (n_neg >= 0)
    fig = _new((6.4, 3.8))
    ax = fig.add_subplot()
    top = int(n_neg[ok].max(initial=0))
    bins = np.arange(-0.5, top + 1.5)
    names = list(dict.fromkeys(src[ok].tolist()))
    if names:
        ax.hist([n_neg[ok & (src == s)] for s in names], bins=bins, label=names, stacked=True)
    ax.set_yscale("log")
    _major_ticks_only(ax)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(
        xlabel="number of negative Hessian eigenvalues (Morse index)",
        ylabel="critical points (log scale)",
        title="Morse index of the end points",
    )
    if names:
        ax.legend(fontsize="small", title="start")
    return fig


def plot_saddle_bound(rows):
    """Planted saddles and the origin: ``-lambda_min`` against ``-(curvature bound)``, one
    colour per configuration. The bound (docs/theory.md section 3) is an upper bound on
    ``lambda_min``, so every point lies on or above the diagonal; on it when ``lambda_W =
    lambda_H``, where the bound is attained."""
    rows = columns(rows)
    valid = valid_rows(rows)
    lab = _labels(rows)
    src = np.asarray(rows["source"]).astype(str)
    bound = np.asarray(rows["curvature_bound"], float)
    lam = np.asarray(rows["lambda_min"], float)
    sel = valid & np.isin(src, ["planted", "origin"]) & np.isfinite(bound) & (lam < 0)
    fig = _new((5.6, 4.6 + 0.16 * len(set(lab[sel]))))
    ax = fig.add_subplot()
    colors = config_colors(lab[sel])
    for name, color in colors.items():
        s = sel & (lab == name)
        ax.scatter(-bound[s], -lam[s], s=14, alpha=0.7, color=color, label=name)
    if sel.any():
        lo = max(np.min(-bound[sel]), 1e-8)
        hi = max(np.max(-lam[sel]), lo * 10)
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="lambda_min = bound")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _major_ticks_only(ax)
    ax.set(
        xlabel="- curvature bound",
        ylabel="- lambda_min",
        title="Planted saddles against the curvature bound",
    )
    _legend(fig, ax, len(colors) + 1)
    return fig


def plot_status_counts(rows):
    """First-order optimiser status per configuration (stacked horizontal bars)."""
    rows = columns(rows)
    lab = _labels(rows)
    status = np.asarray(rows["status"]).astype(str)
    names = list(dict.fromkeys(lab.tolist()))
    fig = _new((7.0, 1.6 + 0.32 * len(names)))
    ax = fig.add_subplot()
    left = np.zeros(len(names))
    for s, color in _STATUS_COLORS.items():
        c = np.array([np.sum((lab == n) & (status == s)) for n in names], dtype=float)
        ax.barh(range(len(names)), c, left=left, label=s, color=color)
        left += c
    ax.set_yticks(range(len(names)), names, fontsize="small")
    ax.invert_yaxis()
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="starts", title="First-order optimiser status per configuration")
    fig.legend(loc="outside lower center", ncols=4, fontsize="small")
    return fig
