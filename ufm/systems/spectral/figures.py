"""Figures of an SSL comparison (matplotlib, imported lazily through ``ufm.report``).

* :func:`plot_spectra`: the normalised covariance spectrum of ``Z`` on the training batches
  before (solid) and after (dashed) the method's transform, at the last checkpoint, one panel per
  method (mean over the finished seeds; at initialisation dotted);
* :func:`plot_erank_over_training`: effective rank of ``Z`` (full training set) and of ``Z_hat``
  (per batch) against the epoch, one line per method (mean, band = +- sd over seeds);
* :func:`plot_accuracy_vs_p`: linear-probe and kNN accuracy (on ``H``) and the effective rank of
  ``Z`` against the power ``p``, the stable range shaded, the other methods as reference lines.

:func:`write_figures` writes the three into ``DIR/figures`` atomically
(:func:`ufm.report.save_figure`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ufm.report.figures import config_colors, plt_module
from ufm.report.folder import save_figure
from ufm.systems.spectral.summary import (
    FAILED,
    columns,
    configs,
    final_rows,
    power_sweep,
    stable_range,
)

FLOOR = 1e-12  # normalised eigenvalues below this are drawn at it (log axis)


def _spectra(sub, col) -> np.ndarray | None:
    ok = ~np.isin(np.asarray(sub["status"]).astype(str), FAILED)
    vals = [np.asarray(v, np.float64) for v, good in zip(sub[col], ok) if good]
    return np.mean(np.stack(vals), axis=0) if vals else None


def plot_spectra(rows):
    """Spectra of ``Z`` before / after the transform per method (module docstring)."""
    plt = plt_module()
    rows = columns(rows)
    labels = configs(rows)
    n = len(labels)
    ncol = min(4, n)
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(3.2 * ncol, 2.6 * nrow), squeeze=False, sharey=True
    )
    colors = config_colors(labels)
    for ax, label in zip(axes.flat, labels):
        sub = final_rows(rows, label)
        keep = np.asarray(rows["label"]).astype(str) == label
        first = {k: np.asarray(v)[keep] for k, v in rows.items()}
        first = {k: v[first["epoch"] == 0] for k, v in first.items()}
        for data, col, style, name in (
            (first, "spectrum_zb", ":", "Z at init"),
            (sub, "spectrum_zb", "-", "Z"),
            (sub, "spectrum_zhat", "--", "Z_hat"),
        ):
            s = _spectra(data, col)
            if s is not None:
                k = np.arange(1, s.size + 1)
                c = "0.5" if name == "Z at init" else colors[label]
                ax.semilogy(k, np.maximum(s, FLOOR), style, color=c, label=name)
        ax.set_title(f"{label} (epoch {int(sub['epoch'].max())})", fontsize=8)
        ax.set_xlabel("index k", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    axes[0, 0].set_ylabel("lambda_k / sum lambda")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Covariance spectrum of Z before (solid) and after (dashed) the transform")
    fig.tight_layout()
    return fig


def _curve(rows, label, col):
    keep = np.asarray(rows["label"]).astype(str) == label
    ep = np.asarray(rows["epoch"])[keep]
    val = np.asarray(rows[col], np.float64)[keep]
    ok = ~np.isin(np.asarray(rows["status"]).astype(str)[keep], FAILED)
    epochs = np.unique(ep)
    mean = np.array(
        [np.mean(val[(ep == e) & ok]) if ((ep == e) & ok).any() else np.nan for e in epochs]
    )
    sd = np.array(
        [np.std(val[(ep == e) & ok]) if ((ep == e) & ok).any() else np.nan for e in epochs]
    )
    return epochs, mean, sd


def plot_erank_over_training(rows):
    """Effective rank of ``Z`` and ``Z_hat`` over training, one line per method."""
    plt = plt_module()
    rows = columns(rows)
    labels = configs(rows)
    colors = config_colors(labels)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for ax, col, title in (
        (axes[0], "erank_z", "effective rank of Z (training set)"),
        (axes[1], "erank_zhat", "effective rank of Z_hat (per batch)"),
    ):
        for label in labels:
            ep, m, s = _curve(rows, label, col)
            ax.plot(ep, m, "o-", ms=3, color=colors[label], label=label)
            ax.fill_between(ep, m - s, m + s, color=colors[label], alpha=0.15)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(title)
    axes[1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def plot_accuracy_vs_p(rows, entries=None):
    """Accuracy and effective rank against ``p`` with the stable range marked."""
    plt = plt_module()
    rows = columns(rows)
    entries = power_sweep(rows) if entries is None else entries
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    if not entries:
        for ax in axes:
            ax.text(0.5, 0.5, "no power-family runs", ha="center", transform=ax.transAxes)
        return fig
    p = np.array([e["p"] for e in entries])
    rng = stable_range(entries)
    for ax in axes:
        if rng is not None:
            lo, hi = rng
            pad = 0.02
            ax.axvspan(lo - pad, hi + pad, color="tab:green", alpha=0.15, label="stable range")
        ax.set_xlabel("power p  (g = lambda^-p; p = 1/2 whitening)")
    for col, name, fmt in (("probe_acc_h", "linear probe", "o-"), ("knn_acc_h", "kNN", "s--")):
        m = np.array([e[col] for e in entries])
        s = np.array([e[col + "_sd"] for e in entries])
        axes[0].errorbar(p, m, yerr=s, fmt=fmt, capsize=3, label=f"{name} (H)")
    failed = [e for e in entries if e["failed"]]
    for e in failed:
        axes[0].annotate(
            f"{e['failed']}/{e['seeds']} failed",
            (e["p"], e["probe_acc_h"]),
            fontsize=7,
            color="tab:red",
        )
    others = [lab for lab in configs(rows) if lab not in {e["label"] for e in entries}]
    colors = config_colors(others) if others else {}
    for label in others:
        sub = final_rows(rows, label)
        ok = ~np.isin(np.asarray(sub["status"]).astype(str), FAILED)
        if ok.any():
            acc = float(np.mean(np.asarray(sub["probe_acc_h"], np.float64)[ok]))
            axes[0].axhline(acc, color=colors[label], lw=0.8, ls=":", label=f"{label} (probe)")
            er = float(np.mean(np.asarray(sub["erank_z"], np.float64)[ok]))
            axes[1].axhline(er, color=colors[label], lw=0.8, ls=":", label=label)
    axes[0].set_ylabel("test accuracy")
    axes[0].set_title("accuracy against p")
    axes[0].legend(fontsize=7)
    m = np.array([e["erank_z"] for e in entries])
    s = np.array([e["erank_z_sd"] for e in entries])
    axes[1].errorbar(p, m, yerr=s, fmt="o-", capsize=3, color="k", label="power ST")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("effective rank of Z")
    axes[1].set_title("effective rank of Z against p")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def write_figures(folder, rows, entries=None) -> list[Path]:
    """The three figures as ``DIR/figures/{spectra,erank_over_training,accuracy_vs_p}.png``."""
    figdir = Path(folder) / "figures"
    return [
        save_figure(plot_spectra(rows), figdir / "spectra.png"),
        save_figure(plot_erank_over_training(rows), figdir / "erank_over_training.png"),
        save_figure(plot_accuracy_vs_p(rows, entries), figdir / "accuracy_vs_p.png"),
    ]
