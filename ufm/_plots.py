"""Matplotlib figures of the UFM landscape job (theory.md section 6, figures 1-3).

Every function takes plain columns (dicts of numpy arrays, or a pandas DataFrame) and returns a
``matplotlib.figure.Figure``; nothing is shown or saved implicitly. matplotlib is imported lazily.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

from ._theory import optimal_value
from ._spec import UFMSpec

_FLOOR = 1e-18


def _plt():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        import os

        if not os.environ.get("DISPLAY") and not os.environ.get("MPLBACKEND"):
            matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _col(rows, key) -> np.ndarray:
    return np.asarray(rows[key])


def plot_gap_distribution(rows: Mapping, *, ax=None, title: Optional[str] = None):
    """Distribution of ``|f - f*|`` at the end of optimisation, per variant (log scale).

    One column of jittered points per ``loss-bias`` variant, coloured by ``K``; seeds that did not
    converge are drawn as crosses. Values below ``1e-18`` are drawn at ``1e-18``.
    """
    plt = _plt()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(8, 4), layout="constrained")
    if "source" in rows:  # only the random starts are compared with f*
        keep = np.asarray(rows["source"]).astype(str) == "random"
        rows = {k: np.asarray(v)[keep] for k, v in rows.items()}
    variant = np.char.add(np.char.add(_col(rows, "loss").astype(str), "-"), _col(rows, "bias").astype(str))
    names = list(dict.fromkeys(variant.tolist()))
    Ks = np.asarray(_col(rows, "K"))
    cmap = plt.get_cmap("viridis")
    uK = sorted(set(Ks.tolist()))
    rng = np.random.default_rng(0)
    gap = np.maximum(np.abs(_col(rows, "f_gap").astype(float)), _FLOOR)
    conv = _col(rows, "status") == "converged"
    for i, name in enumerate(names):
        for j, K in enumerate(uK):
            sel = (variant == name) & (Ks == K)
            x = i + (j - (len(uK) - 1) / 2) * 0.8 / max(len(uK), 1) + rng.uniform(-0.05, 0.05, sel.sum())
            c = cmap(j / max(len(uK) - 1, 1))
            ax.scatter(x[conv[sel]], gap[sel][conv[sel]], s=6, color=c, alpha=0.6,
                       label=f"K={K}" if i == 0 else None)
            ax.scatter(x[~conv[sel]], gap[sel][~conv[sel]], s=14, marker="x", color=c)
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set_ylabel(r"$|f - f^\star|$ after polishing")
    ax.axhline(1e-8, color="grey", ls="--", lw=0.8)
    ax.set_title(title or r"Distance to the closed-form optimum (x: not converged)")
    ax.legend(loc="upper right", fontsize=8)
    return fig


def _pad_rows(a: np.ndarray, rows: int) -> np.ndarray:
    """Repeat the last trace row (runs stop once every seed has converged; seeds then stay put)."""
    return np.concatenate([a, np.repeat(a[-1:], rows - a.shape[0], axis=0)]) if a.shape[0] < rows else a


def group_traces(traces: Mapping[str, Mapping], key=lambda label: label.split()[0]) -> dict:
    """Merge the traces of configurations with the same ``key(label)`` (default: the variant).

    Seeds are concatenated; shorter traces are padded with their last row. Traces must share the
    recording interval (they do within one landscape run).
    """
    groups: dict = {}
    for label, tr in traces.items():
        groups.setdefault(key(label), []).append(tr)
    out = {}
    for name, trs in groups.items():
        longest = max(trs, key=lambda t: len(t["step"]))
        rows = len(longest["step"])
        merged = {"step": np.asarray(longest["step"])}
        for k in trs[0]:
            if k != "step" and all(k in t for t in trs):
                merged[k] = np.concatenate([_pad_rows(np.asarray(t[k], float), rows) for t in trs], axis=1)
        out[name] = merged
    return out


def plot_nc_traces(traces: Mapping[str, Mapping], metrics: Sequence[str] = ("nc1_pinv", "nc2_etf_W",
                   "nc3_zhu", "grad_norm"), *, by_variant: bool = True, quantiles=(0.1, 0.9)):
    """NC metrics vs iteration (median over seeds with a quantile band, log-log axes).

    ``traces`` maps a configuration label to a trace dict (``step`` plus ``(R, S)`` arrays), as
    returned by the landscape job or :attr:`ufm.OptimizeResult.trace`. With ``by_variant`` the
    configurations of one ``loss-bias`` variant are pooled (:func:`group_traces`).
    """
    plt = _plt()
    if by_variant:
        traces = group_traces(traces)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics) + 1.8, 3.4),
                             layout="constrained", squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ci, (label, tr) in enumerate(traces.items()):
        x = np.maximum(np.asarray(tr["step"], float), 1.0)
        for ax, m in zip(axes[0], metrics):
            if m not in tr:
                continue
            v = np.abs(np.asarray(tr[m], float))
            med = np.nanmedian(v, axis=1)
            lo, hi = np.nanquantile(v, quantiles, axis=1)
            ax.plot(x, np.maximum(med, _FLOOR), color=cmap(ci % 10), lw=1.2, label=label)
            ax.fill_between(x, np.maximum(lo, _FLOOR), np.maximum(hi, _FLOOR), color=cmap(ci % 10),
                            alpha=0.15, lw=0)
    for ax, m in zip(axes[0], metrics):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_title(m)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=7)
    return fig


def plot_optimal_value_vs_s(K: int = 4, n: int = 5, *, lambda_b: float = 1e-2, num: int = 400,
                            ax=None):
    """``f*`` against ``s = sqrt(n lW lH)`` for CE and the MSE variants, with the threshold ``s = 1/K``.

    Also marks the MSE regularised-bias phase boundary ``lambda_b* = K s/(1 - K s)`` (where it
    crosses the chosen ``lambda_b``). Closed forms of theory.md section 2.
    """
    plt = _plt()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 4), layout="constrained")
    s = np.linspace(1e-4, 1.6 / K, num)
    lam = s / np.sqrt(n)  # lambda_W = lambda_H = s / sqrt(n)
    curves = [("ce", "none", 0.0), ("mse", "none", 0.0), ("mse", "free", 0.0), ("mse", "regularized", lambda_b)]
    for loss, bias, lb in curves:
        vals = [optimal_value(UFMSpec(K=K, n=n, d=K, loss=loss, bias=bias, lambda_W=l, lambda_H=l,
                                      lambda_b=lb)) for l in lam]
        lab = f"{loss.upper()} {bias}" + (f" (lb={lb:g})" if lb else "")
        ax.plot(s, vals, label=lab)
    ax.axvline(1.0 / K, color="k", ls="--", lw=0.8, label="collapse threshold s = 1/K")
    # MSE bias phase boundary: lb* = Ks/(1-Ks) = lambda_b  <=>  s = lb / (K (1 + lb))
    s_b = lambda_b / (K * (1 + lambda_b))
    ax.axvline(s_b, color="grey", ls=":", lw=0.8, label=rf"MSE bias phase boundary $\lambda_b^*=\lambda_b$")
    ax.set_xlabel(r"$s = \sqrt{n \lambda_W \lambda_H}$")
    ax.set_ylabel(r"$f^\star$")
    ax.set_title(f"Closed-form optimum, K={K}, n={n}")
    ax.legend(fontsize=7)
    return fig


_CLASS_COLORS = {"global_min": "tab:green", "strict_saddle": "tab:blue", "local_min": "tab:olive",
                 "spurious_min": "tab:red", "degenerate": "tab:red", "not_critical": "tab:grey"}


def plot_lambda_min_vs_gap(rows: Mapping, *, ax=None, linthresh: float = 1e-12):
    """Scatter of ``lambda_min`` against ``f - f*`` for every classified point, coloured by class.

    Symmetric-log axes: global minima sit at ``(0, ~0)``, strict saddles at ``f - f* > 0`` and
    ``lambda_min < 0``; a point with ``f > f*`` and ``lambda_min >= 0`` would be a spurious minimum.
    """
    plt = _plt()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 4.5), layout="constrained")
    cls = np.asarray(rows["class"]).astype(str)
    gap = np.asarray(rows["f_gap"], float)
    lam = np.asarray(rows["lambda_min"], float)
    for name in dict.fromkeys(cls.tolist()):
        sel = cls == name
        ax.scatter(gap[sel], lam[sel], s=10, alpha=0.6, color=_CLASS_COLORS.get(name, "k"),
                   label=f"{name} ({sel.sum()})")
    ax.set_xscale("symlog", linthresh=linthresh)
    ax.set_yscale("symlog", linthresh=linthresh)
    ax.axhline(0, color="k", lw=0.5)
    ax.axvline(0, color="k", lw=0.5)
    ax.set_xlabel(r"$f - f^\star$")
    ax.set_ylabel(r"$\lambda_{\min}(\nabla^2 f)$")
    ax.set_title("Critical points: curvature against suboptimality")
    ax.legend(fontsize=7)
    return fig


def plot_negative_counts(rows: Mapping, *, ax=None):
    """Histogram of the number of negative Hessian eigenvalues (the Morse index) per source."""
    plt = _plt()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 3.6), layout="constrained")
    n_neg = np.asarray(rows["n_neg"], int)
    src = np.asarray(rows["source"]).astype(str)
    ok = n_neg >= 0
    bins = np.arange(-0.5, max(int(n_neg[ok].max(initial=0)), 1) + 1.5)
    names = list(dict.fromkeys(src.tolist()))
    ax.hist([n_neg[ok & (src == s)] for s in names], bins=bins, label=names, stacked=True)
    ax.set_yscale("log")
    ax.set_xlabel("number of negative Hessian eigenvalues")
    ax.set_ylabel("points")
    ax.set_title("Morse index of the critical points")
    ax.legend(fontsize=7)
    return fig


def plot_saddle_bound(rows: Mapping, *, ax=None):
    """Planted saddles: ``lambda_min`` against the curvature bound of theory.md section 3.

    The bound ``2 (sqrt(lW lH) - sigma_1) / (sqrt(lH/lW) + sqrt(lW/lH))`` is an upper bound on
    ``lambda_min``; plotted as ``-lambda_min`` against ``-bound`` every point lies on or above the
    diagonal (on it when ``lW = lH``, where the bound is tight).
    """
    plt = _plt()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(4.8, 4.5), layout="constrained")
    src = np.asarray(rows["source"]).astype(str)
    bound = np.asarray(rows["curvature_bound"], float)
    lam = np.asarray(rows["lambda_min"], float)
    sel = np.isin(src, ["planted", "origin"]) & np.isfinite(bound)
    variant = np.char.add(np.char.add(np.asarray(rows["loss"]).astype(str), "-"),
                          np.asarray(rows["bias"]).astype(str))
    for name in dict.fromkeys(variant[sel].tolist()):
        s = sel & (variant == name)
        ax.scatter(-bound[s], -lam[s], s=12, alpha=0.7, label=name)
    if sel.any():
        lo, hi = np.min(-bound[sel]), np.max(-lam[sel])
        lo = max(lo, 1e-6)
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label=r"$\lambda_{\min}$ = bound")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"$-$ curvature bound")
    ax.set_ylabel(r"$-\lambda_{\min}$")
    ax.set_title("Planted saddles against the curvature bound")
    ax.legend(fontsize=7)
    return fig
