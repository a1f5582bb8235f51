"""Figures of feature-map results: spectra over epochs, Pi*/Pi_hat curves, D_LR vs epoch, and the
fixed-ETF comparison. Each takes result rows (a dict of arrays or :func:`ufm.load_results`'s
DataFrame, with the list columns ``rho_centred``, ``pi_star``, ``pi_hat``) and returns a
``matplotlib`` figure; :func:`write_figures` saves them atomically into ``DIR/figures``.
Curves are medians over the seeds whose training status is neither ``diverged`` nor ``nan``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from ...report.figures import config_colors, plt_module
from ...report.folder import save_figure
from ...report.summaries import columns
from .tables import config_order

__all__ = [
    "plot_spectra",
    "plot_pi_curves",
    "plot_d_lr",
    "plot_etf_comparison",
    "write_figures",
]

_FAILED = ("diverged", "nan")


def _rows(rows, role=None) -> dict:
    rows = columns(rows)
    keep = ~np.isin(np.asarray(rows["status"]).astype(str), _FAILED)
    if role is not None and "role" in rows:
        keep &= np.asarray(rows["role"]).astype(str) == role
    return {k: v[keep] for k, v in rows.items()}


def _median(values, axis=0):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (short curves)
        return np.nanmedian(values, axis=axis)


def _stack(curves, length: int | None = None) -> np.ndarray:
    """Rows of unequal length padded with NaN (``length``: cut or pad to it)."""
    n = max(len(c) for c in curves) if length is None else length
    out = np.full((len(curves), n), np.nan)
    for i, c in enumerate(curves):
        c = np.asarray(c, np.float64)[:n]
        out[i, : c.size] = c
    return out


def _grid(n: int, width=4.0, height=3.2):
    plt = plt_module()
    cols = min(3, max(n, 1))
    nrows = -(-max(n, 1) // cols)
    fig, axes = plt.subplots(
        nrows,
        cols,
        figsize=(width * cols, height * nrows + 0.7),
        layout="constrained",
        squeeze=False,
    )
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def _num_classes(rows, sel) -> int:
    return int(np.asarray(rows["num_classes"])[sel][0])


def plot_spectra(rows, *, max_k: int = 40, role: str | None = "spectra"):
    """Centred feature spectrum ``rho^c_k / sum_j rho^c_j`` against ``k`` (log y), one panel
    per configuration, one line per checkpoint epoch (median over seeds; colour = epoch); the
    dashed line marks ``k = C - 1`` (the span of the centred class means)."""
    rows = _rows(rows, role)
    plt = plt_module()
    names = config_order(rows)
    fig, axes = _grid(len(names))
    cmap = plt.get_cmap("viridis")
    for ax, name in zip(axes, names):
        sel = rows["config"].astype(str) == name
        epochs = sorted(set(rows["epoch"][sel].tolist()))
        for j, e in enumerate(epochs):
            m = sel & (rows["epoch"] == e)
            spec = _stack([c / np.sum(c) for c in rows["rho_centred"][m]], max_k)
            med = _median(spec)
            k = np.arange(1, med.size + 1)
            ax.plot(
                k,
                np.maximum(med, 1e-12),
                color=cmap(j / max(len(epochs) - 1, 1)),
                lw=1.2,
                label=f"epoch {e}",
            )
        ax.axvline(_num_classes(rows, sel) - 1, color="k", ls="--", lw=0.8)
        ax.set_yscale("log")
        ax.set_title(name, fontsize="medium")
        ax.set_xlabel("k")
        ax.set_ylabel("rho^c_k / sum rho^c")
        ax.legend(fontsize="x-small", ncols=2)
    fig.suptitle("Centred feature spectrum over epochs (median over seeds; dashed: k = C - 1)")
    return fig


def plot_pi_curves(rows, *, max_k: int | None = None, role: str | None = "spectra"):
    """``Pi*(k)`` (targets, solid) and ``Pi_hat(k)`` (outputs, dashed) against ``k`` at the first
    and the last checkpoint (grey: epoch 0), one panel per configuration, median over seeds;
    dotted lines at ``k = C`` and at the MF criterion's target mass."""
    rows = _rows(rows, role)
    names = config_order(rows)
    fig, axes = _grid(len(names))
    for ax, name in zip(axes, names):
        sel = rows["config"].astype(str) == name
        C = _num_classes(rows, sel)
        kmax = max_k or 4 * C
        epochs = sorted(set(rows["epoch"][sel].tolist()))
        for e, color in ((epochs[0], "0.6"), (epochs[-1], "tab:blue")):
            m = sel & (rows["epoch"] == e)
            for col, ls, what in (("pi_star", "-", "Pi*"), ("pi_hat", "--", "Pi_hat")):
                med = _median(_stack(list(rows[col][m]), kmax))
                ax.plot(
                    np.arange(1, med.size + 1), med, color=color, ls=ls, label=f"{what}, epoch {e}"
                )
        ax.axvline(C, color="k", ls=":", lw=0.8)
        if "mf_criterion" in rows:
            tm = json.loads(str(rows["mf_criterion"][sel][0]))["target_mass"]
            ax.axhline(tm, color="tab:red", ls=":", lw=0.8)
        ax.set_ylim(0, 1.02)
        ax.set_title(name, fontsize="medium")
        ax.set_xlabel("k (eigenfunctions, by decreasing rho)")
        ax.set_ylabel("cumulative mass")
        ax.legend(fontsize="x-small")
    fig.suptitle("Target mass Pi*(k) and utilisation Pi_hat(k) (median over seeds)")
    return fig


def _band(ax, x, values, color, label):
    med = _median(values, axis=1)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanmin(values, axis=1), np.nanmax(values, axis=1)
    ax.plot(x, med, color=color, lw=1.3, marker="o", ms=2.5, label=label)
    ax.fill_between(x, lo, hi, color=color, alpha=0.15, lw=0)


def _by_epoch(rows, sel, col):
    epochs = np.array(sorted(set(rows["epoch"][sel].tolist())))
    seeds = sorted(set(rows["seed"][sel].tolist()))
    out = np.full((epochs.size, len(seeds)), np.nan)
    for j, s in enumerate(seeds):
        for i, e in enumerate(epochs):
            m = sel & (rows["seed"] == s) & (rows["epoch"] == e)
            if m.any():
                out[i, j] = float(np.asarray(rows[col], np.float64)[m][0])
    return epochs, out


def plot_d_lr(rows, *, role: str | None = "spectra"):
    """``D_LR``, ``Pi*(C)``, the centred effective rank and the test accuracy against the epoch,
    one colour per configuration (median and min-max band over seeds; symlog epoch axis)."""
    rows = _rows(rows, role)
    plt = plt_module()
    names = config_order(rows)
    colors = config_colors(names)
    panels = (
        ("d_lr", "D_LR (0 = minimal projection)"),
        ("pi_star_C", "Pi*(C)"),
        ("effective_rank", "centred effective rank"),
        ("test_acc", "test accuracy"),
    )
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(3.9 * len(panels), 3.9 + 0.18 * len(names)),
        layout="constrained",
        squeeze=False,
    )
    for name in names:
        sel = rows["config"].astype(str) == name
        for ax, (col, _title) in zip(axes[0], panels):
            x, v = _by_epoch(rows, sel, col)
            _band(ax, x, v, colors[name], name)
    for ax, (_col, title) in zip(axes[0], panels):
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlabel("epoch")
        ax.set_title(title, fontsize="medium")
    fig.legend(
        *axes[0][0].get_legend_handles_labels(),
        loc="outside lower center",
        ncols=min(len(names), 4),
        fontsize="small",
    )
    fig.suptitle("Feature-map summaries over training (median, min-max band over seeds)")
    return fig


def plot_etf_comparison(rows):
    """The fixed-ETF comparison: final test accuracy per configuration (dots: seeds, bar:
    mean), trained parameters and compiled-step memory (log scale), and NC1 against the epoch."""
    rows = _rows(rows, "etf")
    plt = plt_module()
    names = config_order(rows)
    colors = config_colors(names)
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.2), layout="constrained")
    ax_acc, ax_mem, ax_nc = axes
    last_epoch = {n: rows["epoch"][rows["config"].astype(str) == n].max() for n in names}
    x = np.arange(len(names))
    finals = []
    for i, name in enumerate(names):
        sel = (rows["config"].astype(str) == name) & (rows["epoch"] == last_epoch[name])
        acc = np.asarray(rows["test_acc"], np.float64)[sel]
        finals.extend(acc.tolist())
        ax_acc.bar(i, np.mean(acc), color=colors[name], alpha=0.4)
        ax_acc.scatter(np.full(acc.size, i), acc, color=colors[name], s=14, zorder=3)
        ep, v = _by_epoch(rows, rows["config"].astype(str) == name, "nc1_quotient")
        _band(ax_nc, ep, v, colors[name], name)
    ax_acc.set_xticks(x, names, rotation=20, fontsize="small")
    ax_acc.set_ylabel("test accuracy (last epoch)")
    lo = float(np.nanmin(finals)) if finals else 0.0
    ax_acc.set_ylim(max(0.0, lo - 0.05), 1.0)
    firsts = [np.flatnonzero(rows["config"].astype(str) == n)[0] for n in names]
    params = np.asarray(rows["params_trainable"], np.float64)[firsts]
    ax_mem.bar(x - 0.2, params, width=0.4, color="tab:blue", label="trained parameters")
    if "step_bytes" in rows:
        mem = np.asarray(rows["step_bytes"], np.float64)[firsts]
        ax_mem.bar(
            x + 0.2, mem / 4, width=0.4, color="tab:orange", label="training-step memory / 4 bytes"
        )
    ax_mem.set_yscale("log")
    ax_mem.set_xticks(x, names, rotation=20, fontsize="small")
    ax_mem.set_ylabel("count (float32 words)")
    ax_mem.legend(fontsize="small")
    ax_nc.set_xscale("symlog", linthresh=1)
    ax_nc.set_yscale("log")
    ax_nc.set_xlabel("epoch")
    ax_nc.set_ylabel("NC1 = Tr Sigma_W / Tr Sigma_B")
    ax_nc.legend(fontsize="small")
    fig.suptitle("Learned classifier at large width vs fixed simplex-ETF classifier at d = K")
    return fig


def write_figures(folder, rows) -> list:
    """Save every figure that the rows support into ``folder/figures`` (atomic PNGs); returns
    the paths."""
    rows = columns(rows)
    out = []
    figdir = Path(folder) / "figures"
    role = np.asarray(rows.get("role", np.full(len(rows["config"]), "spectra"))).astype(str)
    if (role == "spectra").any():
        out.append(save_figure(plot_spectra(rows), figdir / "spectra.png"))
        out.append(save_figure(plot_pi_curves(rows), figdir / "pi_curves.png"))
        out.append(save_figure(plot_d_lr(rows), figdir / "d_lr.png"))
    if (role == "etf").any():
        out.append(save_figure(plot_etf_comparison(rows), figdir / "etf_comparison.png"))
        out.append(save_figure(plot_d_lr(rows, role="etf"), figdir / "etf_d_lr.png"))
    return out
